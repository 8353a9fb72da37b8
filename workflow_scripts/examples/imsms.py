"""Convert the public iMSMS 16S cohort (``shared/data/real/imsms_16s``) to the input contract.

The authors' ``metadata.tsv`` has one row per stool sample and participant. This
writes ``participants.tsv`` and ``stool_manifest.tsv`` plus a ``config.yaml``
that points at them and at the authors' count and taxonomy files in place (they
are never copied). Run::

    python -m workflow_scripts.examples.imsms --source ../shared/data/real/imsms_16s \\
        --out results/imsms_example
    snakemake --cores 2 --configfile results/imsms_example/config.yaml

Mapping (documented, nothing else changes):

- participant_id = stool sample_id = the authors' ``sample_id`` (one sample each);
- household_id = ``household`` (576 households of one MS patient and one control);
- status = ``MS`` / ``HHC`` from ``disease`` (``Control`` -> ``HHC``);
- disease_course, dmt and edss of controls are kept as the authors record them
  (``Control``, ``Control``, ``0``): ingest reads these conventions as "not
  applicable" (README "Validation");
- dmt of patients = ``untreated`` or the therapy in ``treatments``, as a plain identifier
  (``Dimethyl fumarate`` -> ``dimethyl_fumarate``; ``ocrevus(rituxan)`` -> ``anti_cd20``);
- disease_duration = the authors' ``disease_duration`` for patients (whole
  years; their uGMSSS equals the updated MSSS table at row duration + 1, i.e.
  they count the year of disease in progress), empty for controls, so the
  clinical stage can score MSSS (completed years: the clinical stage reads
  ``disease_duration`` as given, rows ``floor(duration)`` of the table);
- extra columns kept as optional covariates: ``treatment_status``, ``HEI``, ``smoke``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd
import yaml

DMT_NAMES = {"ocrevus(rituxan)": "anti_cd20", "Untreated": "untreated"}
EXTRA = ("treatment_status", "HEI", "smoke")


def dmt_name(value: str) -> str:
    """A therapy name as a plain identifier."""
    name = DMT_NAMES.get(value, value)
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def participants_table(meta: pd.DataFrame) -> pd.DataFrame:
    case = meta["disease"] == "MS"
    out = pd.DataFrame({
        "participant_id": meta["sample_id"],
        "household_id": meta["household"],
        "site": meta["site"],
        "status": case.map({True: "MS", False: "HHC"}),
        "sex": meta["sex"],
        "age": meta["age"],
        "bmi": meta["bmi"],
        "disease_course": meta["disease_course"],
        "dmt": meta["treatments"].map(dmt_name).where(case, meta["treatments"]),
        "edss": meta["edss"].str.strip(),
        "disease_duration": meta["disease_duration"].where(case, ""),
    })
    for column in EXTRA:
        out[column] = meta[column]
    return out


def stool_manifest(meta: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": meta["sample_id"], "participant_id": meta["sample_id"]})


def convert(source: Path, out: Path, outdir: str | None = None) -> Path:
    """Write the contract files and a config; return the config path."""
    source, out = Path(source).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = pd.read_csv(source / "metadata.tsv", sep="\t", dtype=str, keep_default_na=False)
    participants_table(meta).to_csv(out / "participants.tsv", sep="\t", index=False, lineterminator="\n")
    stool_manifest(meta).to_csv(out / "stool_manifest.tsv", sep="\t", index=False, lineterminator="\n")
    config = {
        "inputs": {
            "participants": str((out / "participants.tsv").resolve()),
            "stool_manifest": str((out / "stool_manifest.tsv").resolve()),
            "abundance": str(source / "asv_counts.tsv.gz"),
            "abundance_kind": "counts",
            "taxonomy": str(source / "asv_taxonomy.tsv"),
        },
        "rank": "genus",
        "covariates": ["sex", "age", "bmi"],
        "outdir": outdir or str((out / "results").resolve()),
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="../shared/data/real/imsms_16s")
    parser.add_argument("--out", default="results/imsms_example")
    parser.add_argument("--outdir", help="results directory written into the config")
    args = parser.parse_args(argv)
    print(convert(Path(args.source), Path(args.out), args.outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
