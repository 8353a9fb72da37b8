"""Small helpers the association rules call while Snakemake builds the DAG: chunks, and memory per job.

Kept here (not in the rule file) so that ``rules/association.smk`` holds only
rules.  No estimate grows with the number of variants: a job reads its
chunk in blocks of :data:`~workflow_scripts.association.chunks.BLOCK_VARIANTS`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .chunks import BLOCK_VARIANTS

#: Memory of the Python process with NumPy, pandas, pyarrow and the readers loaded, in MB.
BASE_MB = 500
#: Values the exact Benjamini-Hochberg holds at most (``gwas.fdr.bh_over_chunks``'s budget).
FDR_BUDGET = 20_000_000


def _summary(path) -> dict:
    return json.loads(Path(path).read_text())


def n_chunks(summary_path) -> int:
    """Number of variant chunks the preparation planned (``prepared.json``)."""
    return int(_summary(summary_path)["n_chunks"])


def chunk_id(i: int) -> str:
    """The chunk's name in file names: zero-padded, so that the files list in chunk order."""
    return f"{i:05d}"


def chunk_files(summary_path, pattern: str) -> list[str]:
    """``pattern.format(chunk_id(i))`` for every chunk ``i`` (none when nothing is tested)."""
    return [pattern.format(chunk_id(i)) for i in range(n_chunks(summary_path))]


def _mb(work_bytes: float, baseline_mb: int, attempt: int) -> int:
    return int((baseline_mb + BASE_MB + math.ceil(work_bytes / 1e6)) * 2 ** (attempt - 1))


def prepare_mem_mb(n_participants: int, n_variants: int, baseline_mb: int, attempt: int = 1) -> int:
    """The preparation: the genetic relationship matrix and its eigenvectors (participants^2), the
    variant table (about 200 bytes per variant) and the abundance tables."""
    return _mb(8 * 4 * n_participants ** 2 + 200 * n_variants, baseline_mb, attempt)


def chunk_mem_mb(summary_path, baseline_mb: int, attempt: int = 1) -> int:
    """One chunk job: constant in the number of variants.

    The models' per-species arrays (about 16 rows x species arrays: the
    projected abundances and their within-cluster products, the hurdle
    model's fitted probabilities, weights and residuals, the carriers'
    projections), one block of dosages (file samples, participants, rows)
    and one block's tests (about 30 numbers per test, three copies while
    they are assembled and written).
    """
    s = _summary(summary_path)
    rows, S = s.get("n_rows", s["n_participants"]), s["n_features"]
    k = len(s.get("covariate_columns", [])) + 2
    samples = s.get("n_file_samples", s["n_participants"])
    work = 8 * (16 * rows * S + rows * S * k) + BLOCK_VARIANTS * (4 * samples + 8 * 10 * rows) \
        + 3 * 8 * 30 * BLOCK_VARIANTS * S
    return _mb(work, baseline_mb, attempt)


def fdr_mem_mb(summary_path, baseline_mb: int, attempt: int = 1) -> int:
    """The multiple-testing job: the exact BH's budget (twice, while sorting), one chunk's p-value column,
    and the lambda GC counters."""
    s = _summary(summary_path)
    work = 16 * FDR_BUDGET + 3 * 8 * s["chunk_size"] * s["n_features"] + 8 * 4096 * s["n_features"] * 4
    return _mb(work, baseline_mb, attempt)


def sumstats_mem_mb(summary_path, baseline_mb: int, attempt: int = 1) -> int:
    """A chunk's final files: one block of tests at a time, plus the BH step functions (at most the budget)."""
    s = _summary(summary_path)
    return _mb(4 * 8 * 30 * BLOCK_VARIANTS * s["n_features"] + 16 * FDR_BUDGET // 4, baseline_mb, attempt)
