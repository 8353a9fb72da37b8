"""Command line of the clinical stage (what ``rules/clinical.smk`` runs).

    python -m workflow_scripts.clinical.cli analyse --cohort DIR --settings JSON \\
        --associations clinical/associations.tsv --scores clinical/scores.tsv \\
        --progression clinical/progression.tsv --ledger clinical/ledger.tsv \\
        --summary clinical/summary.json --markdown clinical/summary.md
    python -m workflow_scripts.clinical.cli figures --settings JSON --associations clinical/associations.tsv \\
        --progression clinical/progression.tsv --scores clinical/scores.tsv --summary clinical/summary.json \\
        --effect-figures F_edss.png F_armss.png F_msss.png F_snfl_z.png F_gfap_z.png F_progressive.png \\
        --marker-figure markers.png

``--settings`` is the ``clinical`` config section with the top-level
``covariates`` as JSON (or ``@file.json``); ``--effect-figures`` are one PNG
per axis in the order of :data:`workflow_scripts.clinical.associations.AXES`.
The statistics live in the other modules of :mod:`workflow_scripts.clinical`;
this module only reads and writes.
"""

from __future__ import annotations

import logging
import sys

from .. import runner
from ..cohort import read_cohort
from ..errors import InputError, Problem
from . import figures
from .analyse import STAGE, ClinicalSettings, analyse
from .associations import AXES
from .summary import markdown

log = logging.getLogger(STAGE)


def load_settings(text: str) -> ClinicalSettings:
    return ClinicalSettings.from_config(runner.json_argument(text))


def cmd_analyse(args) -> None:
    settings = load_settings(args.settings)
    cohort = read_cohort(args.cohort, mmap_genotypes=True)
    result = analyse(cohort, settings)
    runner.write_table(result.associations, args.associations)
    runner.write_table(result.scores.rename_axis("participant_id"), args.scores, index=True)
    runner.write_table(result.progression, args.progression)
    runner.write_table(result.ledger, args.ledger)
    runner.write_json(result.summary, args.summary)
    with open(args.markdown, "w", encoding="utf-8") as handle:
        handle.write(markdown(result.summary, result.progression))
    for row in result.skipped.itertuples(index=False):
        log.info("axis %s (%s) skipped: %s", row.axis, row.subset, row.reason)
    log.info("%d patients, %d taxa, axes tested: %s; progression calls: %s", result.summary["patients"],
             result.summary["taxa_tested"], ", ".join(result.summary["axes_tested"]) or "none",
             result.summary["progression_classes"])


def cmd_figures(args) -> None:
    settings = load_settings(args.settings)
    if len(args.effect_figures) != len(AXES):
        raise InputError([Problem("--effect-figures", f"{len(args.effect_figures)} paths for {len(AXES)} axes",
                                  f"give one PNG per axis, in the order {', '.join(AXES)}")])
    table = runner.read_table(args.associations, dtype={"feature": str})
    calls = runner.read_table(args.progression, dtype={"feature": str})
    scores = runner.read_table(args.scores, dtype={"participant_id": str}, index_col="participant_id")
    summary = runner.json_argument(f"@{args.summary}")
    reasons = {}
    for row in summary["skipped"]:
        if row["subset"] == "all":
            reasons[row["axis"]] = row["reason"]
    for axis, path in zip(AXES, args.effect_figures):
        figures.axis_effects(table, calls, axis, path, settings.figure_taxa, reasons.get(axis, ""))
    figures.markers_by_course(scores, summary["control_label"], args.marker_figure)


def parser():
    top, commands = runner.subcommands(__doc__, {
        "analyse": (cmd_analyse, "scores, marker Z-scores, taxon x axis associations, progression calls"),
        "figures": (cmd_figures, "effect plots per axis and the markers by disease course"),
    })
    runner.required(commands["analyse"], "cohort", "settings", "associations", "scores", "progression", "ledger",
                    "summary", "markdown")
    runner.required(commands["figures"], "settings", "associations", "progression", "scores", "summary",
                    "marker-figure")
    runner.required(commands["figures"], "effect-figures", nargs="+")
    return top


main = runner.entry_point(parser, STAGE)


if __name__ == "__main__":
    sys.exit(main())
