"""Command line for the ingest stage (what ``rules/ingest.smk`` runs).

    python -m workflow_scripts.ingest.cli --settings '{"participants": ...}' \\
        --ledger results/ingest/ledger.tsv --cohort results/ingest/cohort --log ingest.log

On bad input it prints every problem to stderr and the log, writes nothing and
exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..cohort import write_cohort
from ..errors import InputError
from .harmonise import Settings, ingest

log = logging.getLogger("ingest")


def setup_logging(path: str | None) -> None:
    handlers = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", required=True,
                        help="JSON object of ingest settings (see Settings), or @file.json")
    parser.add_argument("--ledger", required=True, help="where to write ledger.tsv")
    parser.add_argument("--cohort", required=True, help="directory for the harmonised cohort")
    parser.add_argument("--log", help="log file")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    text = Path(args.settings[1:]).read_text() if args.settings.startswith("@") else args.settings
    settings = Settings(**json.loads(text))
    try:
        cohort, ledger = ingest(settings)
    except InputError as err:
        log.error("%s\nNothing was written. Fix the input and run again.", err.report())
        return 2
    Path(args.ledger).parent.mkdir(parents=True, exist_ok=True)
    ledger.to_csv(args.ledger, sep="\t", index=False, lineterminator="\n")
    write_cohort(cohort, args.cohort)
    dropped = ledger[ledger["outcome"] == "dropped"]
    log.info("kept %d participants, %d stool samples, %d features (%d taxa at rank %s)%s",
             cohort.info["n_participants"], cohort.info["n_samples"], cohort.info["n_features"],
             cohort.info["n_taxa"], cohort.info["rank"],
             f", {cohort.info['n_variants']} variants" if cohort.info["has_genotypes"] else "")
    for (entity, reason), n in dropped.groupby(["entity", "reason"]).size().items():
        log.info("dropped %d %s(s): %s", n, entity, reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
