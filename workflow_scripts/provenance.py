"""Provenance of a run, as QIIME 2 keeps it: what went in, with what, to make what.

``provenance.json`` (next to the results, and shown in the report) records the
full validated config, the seed, the SHA-256 of every input file, the versions
of Python and of every package the statistics use, and the SHA-256 of every
output the run made (paths relative to ``outdir``). Nothing time- or
host-dependent is recorded, and ``outdir`` itself is left out of the recorded
config (the file sits in it), so the same inputs give the same file wherever the
results are written.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

from . import runner

PACKAGES = ("imsms-workflow", "snakemake", "numpy", "scipy", "pandas", "statsmodels", "scikit-bio",
            "biom-format", "h5py", "matplotlib", "pyyaml", "jsonschema")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(config: dict, outputs: list[str], outdir: str) -> dict:
    """The provenance record of a run (see the module docstring)."""
    inputs = {key: {"path": path, "sha256": sha256(path)}
              for key, path in sorted(config["inputs"].items())
              if isinstance(path, str) and key != "abundance_kind" and Path(path).is_file()}
    root = Path(outdir)
    made = {str(Path(p).relative_to(root)) if Path(p).is_relative_to(root) else p: sha256(p)
            for p in sorted(outputs)}
    config = {k: v for k, v in config.items() if k != "outdir"}
    return {"config": config, "seed": config.get("seed"), "inputs": inputs, "packages": package_versions(),
            "outputs": made}


def cmd_provenance(args) -> None:
    runner.write_json(collect(json.loads(args.config), args.outputs, args.outdir), args.out)


def parser():
    parser = runner.parser("Write provenance.json for a run.")
    parser.add_argument("--config", required=True, help="the validated config as JSON")
    parser.add_argument("--outdir", required=True,
                        help="the run's output directory (outputs are recorded relative to it)")
    parser.add_argument("--out", required=True)
    parser.add_argument("outputs", nargs="*")
    return runner.command(parser, cmd_provenance)


main = runner.entry_point(parser, "provenance")


if __name__ == "__main__":
    sys.exit(main())
