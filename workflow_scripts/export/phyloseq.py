"""phyloseq-ready files: OTU table, rank-split taxonomy table, sample data and tree.

Plain TSVs that base R's ``read.delim`` reads without options beyond
``row.names = 1`` and ``check.names = FALSE``: the first column holds the row
names, missing values are ``NA``, booleans are ``TRUE``/``FALSE`` (read as
logicals). The OTU table is features x samples (``taxa_are_rows = TRUE``) at
feature level, so the tree's tips are its rows.

References
----------
McMurdie and Holmes (2013) phyloseq: an R package for reproducible interactive
analysis and graphics of microbiome census data. PLoS ONE 8:e61217.
"""

from __future__ import annotations

import json
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import skbio

FILES = ("otu_table.tsv", "tax_table.tsv", "sample_data.tsv")
TREE = "tree.nwk"


def otu_table(table: biom.Table) -> pd.DataFrame:
    """Features x samples; whole numbers as integers (counts), other values as they are."""
    data = table.matrix_data.toarray()
    if np.all(np.isfinite(data)) and np.all(data == np.round(data)):
        data = data.astype(np.int64)
    return pd.DataFrame(data, index=pd.Index(table.ids(axis="observation"), name="feature_id"),
                        columns=list(table.ids(axis="sample")))


def sample_data(samples: pd.DataFrame) -> pd.DataFrame:
    """Kept stool samples (index sample id) with their participants' attributes."""
    frame = samples.copy()
    for column, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            frame[column] = frame[column].map({True: "TRUE", False: "FALSE"}).astype(object)
    frame.index = frame.index.astype(str).rename("sample_id")
    return frame


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """TSV with row names first, ``NA`` for missing values."""
    frame.to_csv(path, sep="\t", lineterminator="\n", na_rep="NA")


def write_tree(tree: skbio.TreeNode, path: str | Path) -> None:
    tree.write(str(path), format="newick")


def text_columns(frame: pd.DataFrame) -> list[str]:
    """Categorical columns R's ``read.delim`` would turn into numbers or logicals.

    ``type.convert`` reads ``F``/``T`` as logicals and ``001`` as the number 1;
    these columns are read with ``colClasses = "character"`` in the snippet.
    """
    out = []
    for column, dtype in frame.dtypes.items():
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            continue
        values = [str(v) for v in frame[column] if v is not None and v == v and str(v) != "NA"]
        if values and all(v in _R_LOGICAL or _is_number(v) for v in values):
            out.append(column)
    return out


def snippet(directory: str, has_tree: bool, text_columns: list[str] = ()) -> str:
    """Two lines of R that load the files in ``directory`` into a phyloseq object ``ps``.

    ``text_columns`` (:func:`text_columns`) are read as character.
    """
    tree = ', read_tree(f("tree.nwk"))' if has_tree else ""
    classes = ""
    if text_columns:
        pairs = ", ".join(f"{json.dumps(c)} = \"character\"" for c in text_columns)
        classes = f", colClasses = c({pairs})"
    return (
        f"library(phyloseq); f <- function(x) file.path({json.dumps(directory)}, x); "
        "r <- function(x, ...) read.delim(f(x), row.names = 1, check.names = FALSE, ...)\n"
        'ps <- phyloseq(otu_table(as.matrix(r("otu_table.tsv")), taxa_are_rows = TRUE), '
        'tax_table(as.matrix(r("tax_table.tsv", colClasses = "character"))), '
        f'sample_data(r("sample_data.tsv"{classes})){tree})'
    )


_R_LOGICAL = {"T", "F", "TRUE", "FALSE", "true", "false", "True", "False"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
