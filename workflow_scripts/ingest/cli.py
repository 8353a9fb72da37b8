"""Command line for the ingest stage (what ``rules/ingest.smk`` runs).

    python -m workflow_scripts.ingest.cli --settings '{"participants": ...}' \\
        --ledger results/ingest/ledger.tsv --cohort results/ingest/cohort --log ingest.log

On bad input it prints every problem to stderr and the log, writes nothing and
exits with status 1.
"""

from __future__ import annotations

import logging
import sys

from .. import runner
from ..cohort import write_cohort
from .harmonise import Settings, ingest

log = logging.getLogger("ingest")


def cmd_ingest(args) -> None:
    settings = Settings(**runner.json_argument(args.settings))
    cohort, ledger = ingest(settings)
    runner.write_table(ledger, args.ledger)
    write_cohort(cohort, args.cohort)
    dropped = ledger[ledger["outcome"] == "dropped"]
    log.info("kept %d participants, %d stool samples, %d features (%d taxa at rank %s)%s",
             cohort.info["n_participants"], cohort.info["n_samples"], cohort.info["n_features"],
             cohort.info["n_taxa"], cohort.info["rank"],
             f", {cohort.info['n_variants']} variants" if cohort.info["has_genotypes"] else "")
    for (entity, reason), n in dropped.groupby(["entity", "reason"]).size().items():
        log.info("dropped %d %s(s): %s", n, entity, reason)


def parser():
    parser = runner.parser(__doc__)
    parser.add_argument("--settings", required=True,
                        help="JSON object of ingest settings (see harmonise.Settings), or @file.json")
    parser.add_argument("--ledger", required=True, help="where to write ledger.tsv")
    parser.add_argument("--cohort", required=True, help="directory for the harmonised cohort")
    return runner.command(parser, cmd_ingest)


main = runner.entry_point(parser, "ingest")


if __name__ == "__main__":
    sys.exit(main())
