"""Genome-scale summary statistics: one Parquet file per chunk (``association/sumstats/``).

Columns are those of ``association/genotype_species.tsv`` (the contract's
``variant_id``, ``feature``, ``beta_genotype``, ``p_genotype``, ``q_genotype``,
``beta_interaction``, ``p_interaction``, ``q_interaction``, ``n`` and the
stage's further columns) with fixed Arrow types, plus optional position
columns (``chrom``, ``pos``) for Manhattan plots and clumping.  Any Parquet
reader opens them (pyarrow, DuckDB ``read_parquet('sumstats/*.parquet')``,
Polars ``scan_parquet``).  Files are written with fixed settings (no
timestamps), so the same table gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["REQUIRED", "SUMSTATS_SCHEMA", "SumstatsWriter", "iter_row_groups", "iter_sumstats", "read_sumstats",
           "write_sumstats"]

#: Every column a sumstats file may hold, in file order, with its type.
SUMSTATS_SCHEMA = pa.schema([
    ("variant_id", pa.string()), ("chrom", pa.string()), ("pos", pa.int64()), ("feature", pa.string()),
    ("n", pa.int32()), ("n_households", pa.int32()), ("allele_frequency", pa.float64()),
    ("beta_genotype", pa.float64()), ("se_genotype", pa.float64()), ("t_genotype", pa.float64()),
    ("p_genotype", pa.float64()), ("q_genotype", pa.float64()),
    ("beta_interaction", pa.float64()), ("se_interaction", pa.float64()), ("t_interaction", pa.float64()),
    ("p_interaction", pa.float64()), ("q_interaction", pa.float64()),
    ("beta_genotype_in_controls", pa.float64()),
    ("beta_presence", pa.float64()), ("se_presence", pa.float64()), ("p_presence", pa.float64()),
    ("q_presence", pa.float64()),
    ("n_carriers", pa.int32()), ("beta_carriers", pa.float64()), ("se_carriers", pa.float64()),
    ("p_carriers", pa.float64()), ("q_carriers", pa.float64()),
])
#: The contract's columns: a file must hold these.
REQUIRED = ["variant_id", "feature", "beta_genotype", "p_genotype", "q_genotype", "beta_interaction",
            "p_interaction", "q_interaction", "n"]
#: Options of every file written, so that the same table gives the same bytes.
_OPTIONS = {"compression": "zstd", "write_statistics": True, "store_schema": True}


def _table(frame: pd.DataFrame, required=REQUIRED) -> pa.Table:
    missing = [c for c in required if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in SUMSTATS_SCHEMA.names]
    if missing or unknown:
        raise ValueError(f"sumstats columns: missing {missing}, unknown {unknown}")
    fields = [f for f in SUMSTATS_SCHEMA if f.name in frame.columns]
    arrays = []
    for f in fields:
        values = frame[f.name]
        if pa.types.is_integer(f.type):
            arrays.append(pa.array(values.to_numpy(np.int64), type=f.type))
        elif pa.types.is_floating(f.type):
            arrays.append(pa.array(values.to_numpy(np.float64), type=f.type))
        elif isinstance(values.dtype, pd.CategoricalDtype):      # repeated ids: no Python string per row
            codes = pa.array(values.cat.codes.to_numpy(np.int32))
            categories = pa.array(values.cat.categories.astype(str).tolist(), type=pa.string())
            arrays.append(pa.DictionaryArray.from_arrays(codes, categories).cast(f.type))
        else:
            arrays.append(pa.array(values.astype(str).tolist(), type=f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_sumstats(path, frame: pd.DataFrame, compression: str = "zstd") -> Path:
    """Write one chunk's tests as Parquet (row order kept; NaN stays NaN).

    Raises ``ValueError`` for a frame without the contract's columns or with
    columns not in :data:`SUMSTATS_SCHEMA`.
    """
    with SumstatsWriter(path, compression=compression) as writer:
        writer.write(frame)
    return Path(path)


class SumstatsWriter:
    """A sumstats file written block by block (one row group each), under its final name only when closed.

    ``required``: the columns every block must have (default the
    contract's; the association chunk jobs write their p-values first and
    the q-values later, so they pass fewer).  An empty file (no block) has
    the columns of :data:`REQUIRED`.
    """

    def __init__(self, path, required=REQUIRED, compression: str = "zstd"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".part")
        self.required = list(required)
        self.options = dict(_OPTIONS, compression=compression)
        self.writer = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        table = _table(frame, self.required)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema, **self.options)
        self.writer.write_table(table, row_group_size=max(len(frame), 1))
        self.rows += len(frame)

    def close(self) -> None:
        if self.writer is None:
            empty = pd.DataFrame({c: pd.Series(dtype=SUMSTATS_SCHEMA.field(c).type.to_pandas_dtype())
                                  for c in self.required})
            self.writer = pq.ParquetWriter(self.tmp, _table(empty, self.required).schema, **self.options)
        self.writer.close()
        self.tmp.replace(self.path)     # a killed job leaves no half-written file under the final name

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        if kind is None:
            self.close()
        elif self.writer is not None:
            self.writer.close()
            self.tmp.unlink(missing_ok=True)


def iter_row_groups(path, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """One file's row groups (the blocks it was written in), one DataFrame at a time."""
    handle = pq.ParquetFile(path)
    for i in range(handle.num_row_groups):
        yield handle.read_row_group(i, columns=list(columns) if columns else None).to_pandas()


def read_sumstats(path, columns: Sequence[str] | None = None, filters=None) -> pd.DataFrame:
    """One chunk file as a DataFrame (only ``columns``, and the rows matching pyarrow ``filters``, when given)."""
    return pq.read_table(path, columns=list(columns) if columns else None, filters=filters).to_pandas()


def iter_sumstats(paths: Sequence, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """The chunk files in the given order, one DataFrame at a time (memory of one chunk)."""
    for path in paths:
        yield read_sumstats(path, columns)
