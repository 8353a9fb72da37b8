"""Command line for the diversity stage (what ``rules/diversity.smk`` runs).

    python -m workflow_scripts.diversity.cli alpha --cohort results/ingest/cohort \\
        --settings '{"covariates": ["sex", "age", "bmi"], ...}' --alpha alpha.tsv \\
        --alpha-tests alpha_tests.tsv --ledger ledger.tsv --figure figures/alpha.png
    python -m workflow_scripts.diversity.cli beta --metric braycurtis --cohort ... --settings ... \\
        --distances beta_braycurtis.tsv --ordination pcoa_braycurtis.txt \\
        --permanova intermediate/diversity/permanova_braycurtis.tsv \\
        --permdisp intermediate/diversity/permdisp_braycurtis.tsv --figure figures/pcoa_braycurtis.png
    python -m workflow_scripts.diversity.cli gather --permanova-parts A.tsv B.tsv \\
        --permdisp-parts A.tsv B.tsv --permanova permanova.tsv --permdisp permdisp.tsv
    python -m workflow_scripts.diversity.cli stability --cohort ... --settings ... \\
        --stability stability.tsv --summary stability.json --figure figures/stability.png

One job per beta metric, so a cluster (or two cores) runs them side by side;
``gather`` joins the metrics' tests in the order their files are given.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace

import pandas as pd

from .. import runner
from ..cohort import read_cohort
from . import figures
from ..design import build_design
from .analysis import PERMANOVA_COLUMNS, PERMDISP_COLUMNS, DiversitySettings, run
from .stability import stability

log = logging.getLogger("diversity")


def write_distances(dm, path) -> None:
    """``dm`` in scikit-bio's lsmat format, byte for byte as ``dm.write(path)`` but twice as fast.

    The cost is formatting 16 million floats at 4,000 samples; ``repr`` of
    Python floats (what scikit-bio writes) on whole rows is the quickest exact way.
    """
    ids = [str(i) for i in dm.ids]
    with open(path, "w", newline="\n") as fh:
        fh.write("\t" + "\t".join(ids) + "\n")
        for name, row in zip(ids, dm.data.tolist()):
            fh.write(name + "\t" + "\t".join(map(repr, row)) + "\n")


def cmd_alpha(args) -> None:
    """alpha.tsv, alpha_tests.tsv, the stage ledger and the alpha figure."""
    settings = DiversitySettings.from_config(runner.json_argument(args.settings))
    cohort = read_cohort(args.cohort)
    results = run(cohort, replace(settings, metrics=[]))
    runner.write_table(results.alpha, args.alpha, index=True)
    runner.write_table(results.alpha_tests, args.alpha_tests)
    runner.write_table(results.ledger, args.ledger)
    for row in results.alpha_tests.itertuples():
        log.info("alpha %s, %s: effect %.4g, p %.3g (%s)", row.metric, row.test, row.effect, row.p_value, row.model)
    figures.alpha_boxplots(results.alpha_participants, results.labels, cohort.case_label,
                           cohort.control_label, args.figure)


def cmd_beta(args) -> None:
    """One metric: the distance matrix, the ordination, its figure, and its PERMANOVA and PERMDISP rows."""
    settings = DiversitySettings.from_config(runner.json_argument(args.settings))
    cohort = read_cohort(args.cohort)
    results = run(cohort, replace(settings, metrics=[args.metric]), alpha=False)
    metric = args.metric
    write_distances(results.distances[metric], args.distances)
    results.ordinations[metric].write(str(args.ordination))
    figures.pcoa_plot(results.ordinations[metric], results.labels, metric, cohort.case_label, args.figure)
    runner.write_table(results.permanova[results.permanova["metric"] == metric], args.permanova)
    runner.write_table(results.permdisp[results.permdisp["metric"] == metric], args.permdisp)


def cmd_gather(args) -> None:
    """permanova.tsv and permdisp.tsv: the metrics' parts, in the order given."""
    for name, parts, columns, path in (("permanova", args.permanova_parts, PERMANOVA_COLUMNS, args.permanova),
                                       ("permdisp", args.permdisp_parts, PERMDISP_COLUMNS, args.permdisp)):
        frames = [runner.read_table(part) for part in parts]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
        runner.write_table(table, path)
        if name == "permanova":
            for row in table[(table["model"] == "status") & (table["term"] == "status")].itertuples():
                log.info("PERMANOVA %s: status R2 %.4f, pseudo-F %.3f, p %.3f (strata: %s)", row.metric,
                         row.r2, row.pseudo_f, row.p_value, row.strata)


def cmd_stability(args) -> None:
    """stability.tsv, its summary (with the note when skipped) and the stability figure."""
    settings = DiversitySettings.from_config(runner.json_argument(args.settings))
    cohort = read_cohort(args.cohort)
    samples = cohort.samples
    participants = cohort.participants.loc[pd.unique(samples["participant_id"])]
    design = build_design(participants, settings.covariates, cohort.case_label, stage="diversity", samples=samples)
    kind = "counts" if cohort.info["abundance_kind"] == "counts" else "relative"
    table, summary = stability(cohort.table("taxa").loc[samples.index], samples, design, kind,
                               settings.stability_min_prevalence)
    log.info("stability: %s", summary["note"])
    runner.write_table(table, args.stability)
    runner.write_json(summary, args.summary)
    figures.stability_plot(table, summary, args.figure)


def parser():
    top, commands = runner.subcommands(__doc__, {
        "alpha": (cmd_alpha, "alpha diversity and its tests"),
        "beta": (cmd_beta, "one beta metric"),
        "gather": (cmd_gather, "join the metrics' tests"),
        "stability": (cmd_stability, "within-participant stability of every taxon")})
    alpha, beta, gather, stable = commands.values()
    for command in (alpha, beta, stable):  # --cohort: the harmonised cohort directory (ingest output)
        runner.required(command, "cohort", "settings", "figure")
    runner.required(alpha, "alpha", "alpha-tests", "ledger")
    runner.required(beta, "metric", "distances", "ordination", "permanova", "permdisp")
    runner.required(gather, "permanova-parts", "permdisp-parts", nargs="*")
    runner.required(gather, "permanova", "permdisp")
    runner.required(stable, "stability", "summary")
    return top


main = runner.entry_point(parser, "diversity")


if __name__ == "__main__":
    sys.exit(main())
