"""Command line for the classification stage (what ``rules/classification.smk`` runs).

    python -m workflow_scripts.classification.cli --differential results/differential \\
        --cohort results/ingest/cohort [--association results/association] \\
        --settings '{"min_effect": 0.0, ...}' --out results/classification/species_classification.tsv
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from ..ingest.cli import setup_logging
from .rule import Rule, classify

log = logging.getLogger("classification")


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, sep="\t", dtype={"feature": str, "id": str, "variant_id": str}) \
        if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--differential", required=True, help="the differential stage's directory")
    parser.add_argument("--cohort", required=True, help="the harmonised cohort directory")
    parser.add_argument("--association", help="the association stage's directory (when genotypes exist)")
    parser.add_argument("--settings", required=True, help="JSON object of Rule parameters")
    parser.add_argument("--out", required=True)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    rule = Rule(**json.loads(args.settings))
    d = Path(args.differential)
    ledger = _read(d / "ledger.tsv")
    untested = ledger[ledger["entity"] == "feature"] if ledger is not None else None
    associations = _read(Path(args.association) / "genotype_species.tsv") if args.association else None
    table = classify(_read(d / "consensus.tsv"), _read(d / f"{rule.primary_method}.tsv"),
                     _read(d / "site_effects.tsv"), rule, untested=untested,
                     treatment=_read(d / "treatment_effects.tsv"), associations=associations,
                     variants=_read(Path(args.cohort) / "variants.tsv"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False, lineterminator="\n")
    for name, n in table["class"].value_counts().sort_index().items():
        log.info("%s: %d", name, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
