"""Small helpers the association rules call while Snakemake builds the DAG.

Kept here (not in the rule file) so that ``rules/association.smk`` holds only
rules: the number of chunks after QC, and memory estimates for the jobs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..models.cluster_robust import BLOCK

#: Memory of the Python process with NumPy, pandas and the cohort loaded, in MB.
BASE_MB = 500


def _summary(path) -> dict:
    return json.loads(Path(path).read_text())


def n_chunks(summary_path) -> int:
    """Number of variant chunks the preparation wrote (``prepared/summary.json``)."""
    return int(_summary(summary_path)["n_chunks"])


def chunk_files(summary_path, pattern: str) -> list[str]:
    """``pattern.format(i)`` for every chunk ``i`` (none when nothing is tested)."""
    return [pattern.format(i) for i in range(n_chunks(summary_path))]


def chunk_mem_mb(summary_path, baseline_mb: int, attempt: int = 1) -> int:
    """Memory for one chunk job: grows with chunk size x (participants + species).

    The shared abundance arrays (about six copies of participants x species),
    the work arrays of one block of :data:`BLOCK` variants, the dosage blocks
    read from the memory map and the chunk's result (chunk size x species x 12
    numbers, twice while it is assembled), plus the interpreter; the
    configured baseline is added and everything doubles on each retry.
    """
    s = _summary(summary_path)
    n, S, c = s["n_participants"], s["n_features"], s["chunk_size"]
    work = 8 * (6 * n * S + 4 * BLOCK * n * 2 + BLOCK * (16 * n + 12 * S) + 24 * c * S)
    return int((baseline_mb + BASE_MB + math.ceil(work / 1e6)) * 2 ** (attempt - 1))


def gather_mem_mb(summary_path, baseline_mb: int, attempt: int = 1) -> int:
    """Memory for the gather: 32 bytes per test (p- and q-values of both kinds) plus one chunk."""
    s = _summary(summary_path)
    tests = s["n_variants_tested"] * s["n_features"]
    chunk = min(s["chunk_size"], max(s["n_variants_tested"], 1)) * s["n_features"]
    work = 32 * tests + 300 * chunk
    return int((baseline_mb + BASE_MB + math.ceil(work / 1e6)) * 2 ** (attempt - 1))
