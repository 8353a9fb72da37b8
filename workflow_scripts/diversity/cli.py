"""Command line for the diversity stage (what ``rules/diversity.smk`` runs).

    python -m workflow_scripts.diversity.cli alpha --cohort results/ingest/cohort \\
        --settings '{"covariates": ["sex", "age", "bmi"], ...}' --outdir results/diversity
    python -m workflow_scripts.diversity.cli beta --metric braycurtis --cohort ... --settings ... --outdir ...
    python -m workflow_scripts.diversity.cli gather --settings ... --outdir results/diversity

One job per beta metric, so a cluster (or two cores) runs them side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..cohort import read_cohort
from ..ingest.cli import setup_logging
from . import figures
from .alpha_tests import participant_means
from .stage import PERMANOVA_COLUMNS, PERMDISP_COLUMNS, Settings, run

log = logging.getLogger("diversity")


def write_distances(dm, path: Path) -> None:
    """``dm`` in scikit-bio's lsmat format, byte for byte as ``dm.write(path)`` but twice as fast.

    The cost is formatting 16 million floats at 4,000 samples; ``repr`` of
    Python floats (what scikit-bio writes) on whole rows is the quickest exact way.
    """
    ids = [str(i) for i in dm.ids]
    with open(path, "w", newline="\n") as fh:
        fh.write("\t" + "\t".join(ids) + "\n")
        for name, row in zip(ids, dm.data.tolist()):
            fh.write(name + "\t" + "\t".join(map(repr, row)) + "\n")


def _tsv(frame, path: Path, index: bool = False) -> None:
    frame.to_csv(path, sep="\t", index=index, lineterminator="\n")


def write_alpha(results, cohort, outdir: Path) -> None:
    """alpha.tsv, alpha_tests.tsv, the stage ledger and the alpha figure."""
    (outdir / "figures").mkdir(parents=True, exist_ok=True)
    _tsv(results.alpha, outdir / "alpha.tsv", index=True)
    _tsv(results.alpha_tests, outdir / "alpha_tests.tsv")
    _tsv(results.ledger, outdir / "ledger.tsv")
    samples = cohort.samples.loc[results.alpha.index]
    figures.alpha_boxplots(participant_means(results.alpha, samples), results.labels, cohort.case_label,
                           cohort.control_label, outdir / "figures" / "alpha.png")


def write_beta(results, cohort, outdir: Path) -> None:
    """Per metric: the distance matrix, the ordination, its figure, and the PERMANOVA and PERMDISP
    rows under ``parts/`` (joined by :func:`gather`)."""
    (outdir / "figures").mkdir(parents=True, exist_ok=True)
    (outdir / "parts").mkdir(exist_ok=True)
    for metric, dm in results.distances.items():
        write_distances(dm, outdir / f"beta_{metric}.tsv")
        results.ordinations[metric].write(str(outdir / f"pcoa_{metric}.txt"))
        figures.pcoa_plot(results.ordinations[metric], results.labels, metric, cohort.case_label,
                          outdir / "figures" / f"pcoa_{metric}.png")
        _tsv(results.permanova[results.permanova["metric"] == metric], outdir / "parts" / f"permanova_{metric}.tsv")
        _tsv(results.permdisp[results.permdisp["metric"] == metric], outdir / "parts" / f"permdisp_{metric}.tsv")


def gather(outdir: Path, metrics: list[str]) -> None:
    """permanova.tsv and permdisp.tsv: the metrics' parts, in the configured order."""
    for name in ("permanova", "permdisp"):
        parts = [pd.read_csv(outdir / "parts" / f"{name}_{m}.tsv", sep="\t") for m in metrics]
        columns = PERMANOVA_COLUMNS if name == "permanova" else PERMDISP_COLUMNS
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
        _tsv(table, outdir / f"{name}.tsv")
        if name == "permanova":
            for row in table[(table["model"] == "status") & (table["term"] == "status")].itertuples():
                log.info("PERMANOVA %s: status R2 %.4f, pseudo-F %.3f, p %.3f (strata: %s)", row.metric,
                         row.r2, row.pseudo_f, row.p_value, row.strata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["alpha", "beta", "gather"],
                        help="alpha diversity and its tests; one beta metric; or join the metrics' tests")
    parser.add_argument("--cohort", help="harmonised cohort directory (ingest output); alpha and beta")
    parser.add_argument("--settings", required=True, help="JSON object of diversity settings")
    parser.add_argument("--metric", help="the beta metric (beta)")
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    settings = Settings(**json.loads(args.settings))
    outdir = Path(args.outdir)
    if args.part == "gather":
        gather(outdir, settings.metrics)
        return 0
    cohort = read_cohort(args.cohort)
    if args.part == "alpha":
        write_alpha(run(cohort, replace(settings, metrics=[])), cohort, outdir)
    else:
        write_beta(run(cohort, replace(settings, metrics=[args.metric]), alpha=False), cohort, outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
