"""Differential-abundance results in MaAsLin 2's ``all_results.tsv`` layout.

MaAsLin 2 writes ``feature  metadata  value  coef  stderr  N  N.not.0  pval
qval``: tab-separated, unquoted, ordered by increasing q-value, rows without a
q-value left out, ``NA`` for a missing value. For a categorical term
``metadata`` is the variable and ``value`` the level compared with the
reference, so MS vs household control is ``status`` / ``MS``. Each method's
``coef`` is on that method's own scale (the ``scale`` column of
``differential/<method>.tsv``); it is not MaAsLin's model.

References
----------
Mallick et al. (2021) Multivariable association discovery in population-scale
meta-omics studies. PLoS Comput Biol 17:e1009442 (MaAsLin 2; the layout is
``Maaslin2.R``'s ``write.table`` of ``all_results.tsv``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from workflow_scripts.errors import InputError, Problem

COLUMNS = ["feature", "metadata", "value", "coef", "stderr", "N", "N.not.0", "pval", "qval"]
#: differential/<method>.tsv column behind each MaAsLin column.
SOURCE = {"feature": "feature", "coef": "effect", "stderr": "se", "N": "n", "N.not.0": "n_nonzero",
          "pval": "pvalue", "qval": "qvalue"}


def check_method_table(table: pd.DataFrame, path: str) -> None:
    """Raise :class:`InputError` naming the file and the columns it lacks."""
    missing = [c for c in SOURCE.values() if c not in table.columns]
    if missing:
        raise InputError([Problem(str(path), f"missing column(s) {', '.join(missing)}",
                                  "give a differential/<method>.tsv written by this workflow",
                                  column=missing[0])])


def all_results(table: pd.DataFrame, metadata: str, value: str) -> pd.DataFrame:
    """One method's table as MaAsLin 2's ``all_results``.

    Parameters
    ----------
    table : DataFrame
        ``differential/<method>.tsv``.
    metadata, value : str
        The tested variable and its non-reference level (``status``, ``MS``).
    """
    out = pd.DataFrame({column: table[source].to_numpy() for column, source in SOURCE.items()})
    out.insert(1, "metadata", metadata)
    out.insert(2, "value", value)
    out = out[out["qval"].notna()]
    # R's order() is stable: ties keep the input order (our tables are sorted by feature).
    out = out.sort_values("qval", kind="stable", ignore_index=True)
    return out[COLUMNS].astype({"N": "int64", "N.not.0": "int64"})


def write_all_results(frame: pd.DataFrame, path: str | Path) -> None:
    """Unquoted TSV, ``NA`` for missing, 15 significant digits as R's ``write.table``."""
    frame.to_csv(path, sep="\t", index=False, lineterminator="\n", na_rep="NA",
                 float_format="%.15g", quoting=csv.QUOTE_NONE)
