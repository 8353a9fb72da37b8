"""Distances between all rows of a matrix: city-block, squared Euclidean, and unshared fraction.

:func:`unshared_fraction` (Jaccard, unweighted UniFrac) is one matrix product.
The other two are
numba kernels, parallel over blocks of rows, that fill a square ``n x n``
matrix: each pair :math:`i < j` is computed once and written to both
:math:`(i, j)` and :math:`(j, i)`, so the matrix is exactly symmetric, and
the diagonal is 0.

.. math:: d_1(x, y) = \\sum_k |x_k - y_k|, \\qquad
          d_2^2(x, y) = \\sum_k (x_k - y_k)^2

Both sums run directly over the differences (not
:math:`\\|x\\|^2 + \\|y\\|^2 - 2 x \\cdot y`, which cancels catastrophically
for close rows), one term at a time in feature order, as scipy's ``cdist``:
without ``fastmath`` the result does not depend on the number of threads or
on the tiling. Speed comes from the layout instead: the kernels read the
transposed matrix, so the innermost loop runs over a tile of samples, each
with its own partial sum, which the compiler vectorises; tiles over samples
and features keep the data in cache. (Several partial sums per pair along
the features instead stay scalar, numba turning off LLVM's SLP vectoriser:
2 to 3 times slower.)

Threads: numba's (``NUMBA_NUM_THREADS``; the workflow sets it from the rule's
``threads``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

ROWS = 64
"""Rows per parallel task (a task takes a block near the top and its mirror near the bottom)."""
COLUMNS = 128
"""Samples per tile, each with its own partial sum: the vectorised loop."""
FEATURES = 128
"""Features per pass over a tile: a ``FEATURES x COLUMNS`` slice (128 KiB) stays in cache."""
GROUP = 8
"""Rows that share each load of a tile column."""


@njit(parallel=True, cache=True)
def _fill(xt, out, squared):
    """``out[i, j] = sum_k term(xt[k, i] - xt[k, j])``, ``term`` = ``x**2`` or ``|x|``, k in order."""
    features, n = xt.shape
    blocks = (n + ROWS - 1) // ROWS
    for task in prange((blocks + 1) // 2):
        acc = np.empty((ROWS, COLUMNS))
        first = np.int64(task)
        for half in range(2):  # block `first` and its mirror: equal work per task
            block = first if half == 0 else blocks - 1 - first
            if half == 1 and block == first:
                continue
            i0 = block * ROWS
            i1 = min(i0 + ROWS, n)
            for i in range(i0, i1):
                out[i, i] = 0.0
            for j0 in range(i0, n, COLUMNS):
                j1 = min(j0 + COLUMNS, n)
                acc[:, :] = 0.0
                for k0 in range(0, features, FEATURES):
                    for r0 in range(i0, i1, GROUP):
                        c0 = max(j0, r0 + 1)  # pairs i < j only
                        for k in range(k0, min(k0 + FEATURES, features)):
                            tile = xt[k, c0:j1]
                            for r in range(min(GROUP, i1 - r0)):
                                a = xt[k, r0 + r]
                                partial = acc[r0 - i0 + r, c0 - j0:j1 - j0]
                                if squared:
                                    for c in range(j1 - c0):
                                        d = a - tile[c]
                                        partial[c] += d * d
                                else:
                                    for c in range(j1 - c0):
                                        partial[c] += abs(a - tile[c])
                for i in range(i0, i1):
                    for j in range(max(j0, i + 1), j1):
                        out[i, j] = acc[i - i0, j - j0]
                        out[j, i] = acc[i - i0, j - j0]


def _square(x: np.ndarray, squared: bool) -> np.ndarray:
    xt = np.ascontiguousarray(np.asarray(x, dtype=np.float64).T)  # no copy for a Fortran-ordered x
    out = np.empty((xt.shape[1], xt.shape[1]))
    _fill(xt, out, squared)
    return out


def cityblock(x: np.ndarray) -> np.ndarray:
    """City-block (L1) distances between the rows of ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        ``n x p``; a Fortran-ordered array is read without a copy.

    Returns
    -------
    numpy.ndarray
        ``n x n`` float64, exactly symmetric, zero diagonal.

    Notes
    -----
    :math:`d_{ij} = \\sum_k |x_{ik} - x_{jk}|`, summed in feature order (as
    ``scipy.spatial.distance.cdist(x, x, "cityblock")``).
    """
    return _square(x, False)


def sqeuclidean(x: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        ``n x p``; a Fortran-ordered array is read without a copy.

    Returns
    -------
    numpy.ndarray
        ``n x n`` float64, exactly symmetric, zero diagonal.

    Notes
    -----
    :math:`d_{ij} = \\sum_k (x_{ik} - x_{jk})^2`, summed directly over the
    differences in feature order (as ``cdist(x, x, "sqeuclidean")``).
    """
    return _square(x, True)


def unshared_fraction(present: np.ndarray, weights: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Weighted fraction of the union not shared, between all rows of a 0/1 matrix.

    Parameters
    ----------
    present : numpy.ndarray
        ``n x k`` presence (0/1, float).
    weights : numpy.ndarray
        ``k`` non-negative weights: 1 for Jaccard, branch lengths for unweighted UniFrac.

    Returns
    -------
    numpy.ndarray
        ``n x n``: with :math:`S = (X \\circ w) X^\\top` (one matrix product) and
        :math:`U_{ij} = S_{ii} + S_{jj} - S_{ij}`, :math:`d_{ij} = (U_{ij} - S_{ij}) / U_{ij}`,
        0 when :math:`U_{ij} = 0` (both rows empty, as scipy and scikit-bio);
        exactly symmetric (the upper triangle is copied down), in [0, 1], zero diagonal.
    """
    distances = (present * weights) @ present.T
    sizes = np.diag(distances).copy()
    n = len(sizes)
    for start in range(0, n, chunk):  # in place, a chunk of rows at a time
        shared = distances[start:start + chunk]
        union = sizes[start:start + chunk, None] + sizes[None, :] - shared
        np.subtract(union, shared, out=shared)
        np.divide(shared, union, out=shared, where=union > 0)  # else 0 - 0 already
    for start in range(0, n, chunk):  # rounding can differ between (i, j) and (j, i)
        stop = min(start + chunk, n)
        distances[stop:, start:stop] = distances[start:stop, stop:].T
        block = distances[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        block[lower] = block.T[lower]
    np.clip(distances, 0.0, 1.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances
