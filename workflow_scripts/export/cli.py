"""Command line of the export step (what the ``export`` rule runs).

    python -m workflow_scripts.export.cli --cohort results/ingest/cohort \\
        --methods results/differential/linda.tsv results/differential/maaslin.tsv \\
        --outdir results/export --log results/logs/export.log

Each ``--methods`` file is ``differential/<method>.tsv``; the method is its
file name. All shaping lives in the other modules of
:mod:`workflow_scripts.export`; this module only reads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from workflow_scripts.cohort import read_cohort
from workflow_scripts.errors import InputError
from workflow_scripts.export.bundle import write_exports
from workflow_scripts.export.maaslin import check_method_table

log = logging.getLogger("export")


def read_method_tables(paths) -> dict[str, pd.DataFrame]:
    """Method name (file stem) -> table; :class:`InputError` if a file lacks a needed column."""
    tables = {}
    for path in paths:
        table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype={"feature": str})
        check_method_table(table, path)
        tables[Path(path).stem] = table
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", required=True, help="the harmonised cohort directory (ingest/cohort)")
    parser.add_argument("--methods", nargs="*", default=[], help="differential/<method>.tsv files")
    parser.add_argument("--outdir", required=True, help="the export directory to write")
    parser.add_argument("--log", help="log file")
    args = parser.parse_args(argv)
    handlers = [logging.StreamHandler(sys.stderr)]
    if args.log:
        Path(args.log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    try:
        tables = read_method_tables(args.methods)
        written = write_exports(read_cohort(args.cohort, mmap_genotypes=True), tables, args.outdir)
    except InputError as err:
        log.error("%s", err.report())
        return 2
    log.info("wrote %d files under %s (see %s/README.md)", len(written), args.outdir, args.outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
