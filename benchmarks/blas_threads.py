"""BLAS and OpenMP read their thread count once, when NumPy (or scikit-bio) loads.

A benchmark entry point calls :func:`limit` before importing NumPy, so the
per-core figures mean one core.
"""

from __future__ import annotations

import os

VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def limit(threads: int) -> dict[str, str]:
    """Set the thread variables of this process; return the environment as it was before."""
    before = dict(os.environ)
    for variable in VARIABLES:
        os.environ[variable] = str(threads)
    return before
