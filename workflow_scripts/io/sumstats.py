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

__all__ = ["SUMSTATS_SCHEMA", "iter_sumstats", "read_sumstats", "write_sumstats"]

_FLOAT = ["allele_frequency", "beta_genotype", "se_genotype", "t_genotype", "p_genotype", "q_genotype",
          "beta_interaction", "se_interaction", "t_interaction", "p_interaction", "q_interaction",
          "beta_genotype_in_controls"]
#: Every column a sumstats file may hold, in file order, with its type.
SUMSTATS_SCHEMA = pa.schema(
    [("variant_id", pa.string()), ("chrom", pa.string()), ("pos", pa.int64()), ("feature", pa.string()),
     ("n", pa.int32()), ("n_households", pa.int32())] + [(c, pa.float64()) for c in _FLOAT])
#: The contract's columns: a file must hold these.
REQUIRED = ["variant_id", "feature", "beta_genotype", "p_genotype", "q_genotype", "beta_interaction",
            "p_interaction", "q_interaction", "n"]


def _table(frame: pd.DataFrame) -> pa.Table:
    missing = [c for c in REQUIRED if c not in frame.columns]
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
        else:
            arrays.append(pa.array(values.astype(str).tolist(), type=f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_sumstats(path, frame: pd.DataFrame, compression: str = "zstd") -> Path:
    """Write one chunk's tests as Parquet (row order kept; NaN stays NaN).

    Raises ``ValueError`` for a frame without the contract's columns or with
    columns not in :data:`SUMSTATS_SCHEMA`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    pq.write_table(_table(frame), tmp, compression=compression, write_statistics=True,
                   row_group_size=1_000_000, store_schema=True)
    tmp.replace(path)     # a killed job leaves no half-written file under the final name
    return path


def read_sumstats(path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One chunk file as a DataFrame (only ``columns`` when given)."""
    return pq.read_table(path, columns=list(columns) if columns else None).to_pandas()


def iter_sumstats(paths: Sequence, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """The chunk files in the given order, one DataFrame at a time (memory of one chunk)."""
    for path in paths:
        yield read_sumstats(path, columns)
