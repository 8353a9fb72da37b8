"""Command line of the export step (what the ``export`` rule runs).

    python -m workflow_scripts.export.cli --cohort results/ingest/cohort \\
        --methods results/differential/linda.tsv results/differential/maaslin.tsv \\
        --outdir results/export --log results/logs/export.log

Each ``--methods`` file is ``differential/<method>.tsv``; the method is its
file name. All shaping lives in the other modules of
:mod:`workflow_scripts.export`; this module only reads.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from workflow_scripts import runner
from workflow_scripts.cohort import read_cohort
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


def cmd_export(args) -> None:
    tables = read_method_tables(args.methods)
    # The R snippet names files relative to the export directory, so that the files do not
    # depend on where the results were written.
    written = write_exports(read_cohort(args.cohort, mmap_genotypes=True), tables, args.outdir, shown_dir=".")
    log.info("wrote %d files under %s (see %s/README.md)", len(written), args.outdir, args.outdir)


def parser():
    parser = runner.parser(__doc__)
    runner.required(parser, "cohort", "outdir")  # the harmonised cohort directory; the export directory
    parser.add_argument("--methods", nargs="*", default=[], help="differential/<method>.tsv files")
    return runner.command(parser, cmd_export)


main = runner.entry_point(parser, "export")


if __name__ == "__main__":
    sys.exit(main())
