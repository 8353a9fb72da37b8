"""Command line for the classification stage (what ``rules/classification.smk`` runs).

    python -m workflow_scripts.classification.cli --consensus differential/consensus.tsv \\
        --primary differential/primary.tsv --calibration differential/calibration.tsv \\
        --site-effects differential/site_effects.tsv \\
        --treatment differential/treatment_effects.tsv --untested differential/ledger.tsv \\
        [--associations association/genotype_species.tsv --variants ingest/cohort/variants.tsv] \\
        [--progression clinical/progression.tsv] \\
        --settings '{"min_prevalence": 0.1, ...}' --out classification/species_classification.tsv

It reads the other stages' output files only (never their code).
"""

from __future__ import annotations

import logging
import sys

import pandas as pd

from .. import runner
from .classify import ClassificationRule, classify
from .progression import merge_progression

log = logging.getLogger("classification")


def _read(path) -> pd.DataFrame | None:
    return runner.read_table(path, dtype={"feature": str, "id": str, "variant_id": str}) if path else None


def cmd_classify(args) -> None:
    rule = ClassificationRule.from_config(runner.json_argument(args.settings))
    ledger = _read(args.untested)
    untested = ledger[ledger["entity"] == "feature"]
    table = classify(_read(args.consensus), _read(args.primary), _read(args.site_effects), rule,
                     untested=untested, treatment=_read(args.treatment), calibration=_read(args.calibration),
                     associations=_read(args.associations), variants=_read(args.variants))
    table = merge_progression(table, _read(args.progression))
    runner.write_table(table, args.out)
    for name, n in table["class"].value_counts().sort_index().items():
        log.info("%s: %d", name, n)
    for name, n in table["evidence"].replace("", "called").value_counts().sort_index().items():
        log.info("evidence %s: %d", name, n)


def parser():
    parser = runner.parser(__doc__)
    # The differential stage's consensus (the calls), primary test, calibration, site effects,
    # therapy effects and ledger (its feature rows: the taxa that were not tested).
    runner.required(parser, "consensus", "primary", "calibration", "site-effects", "treatment", "untested")
    # With genotypes (the flag without a value otherwise): the genotype x MS interactions and
    # the cohort's variants.tsv (the variants' labels).
    parser.add_argument("--associations", nargs="?")
    parser.add_argument("--variants", nargs="?")
    # The clinical stage's progression calls (optional: without them progression_class is neutral).
    parser.add_argument("--progression", nargs="?")
    runner.required(parser, "settings", "out")  # the classification config section as JSON
    return runner.command(parser, cmd_classify)


main = runner.entry_point(parser, "classification")


if __name__ == "__main__":
    sys.exit(main())
