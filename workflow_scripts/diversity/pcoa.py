"""Principal coordinates: one eigendecomposition shared by the ordination and PERMDISP.

:func:`pcoa_axes` decomposes the Gower-centred matrix on every axis (as
``vegan::betadisper`` needs); :func:`ordination` takes the leading axes from
it in scikit-bio's ``OrdinationResults`` form, equal to ``skbio.stats.ordination.pcoa``
up to the sign of each axis (``tests/test_alpha_beta.py``), so the diversity
stage decomposes each distance matrix once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import linalg
from skbio import DistanceMatrix
from skbio.stats.ordination import OrdinationResults


def gower_matrix(distances: np.ndarray, block: int = 512) -> np.ndarray:
    """:math:`-\\tfrac12 J D^{(2)} J` from the lower triangle, bitwise symmetric, C order.

    vegan reads the lower triangle (``as.dist``); exact symmetry makes the
    eigenvectors independent of which triangle LAPACK reads and of the
    input's memory order, and every element is formed as
    :math:`(a_{ij} - (\\bar a_i + \\bar a_j)) + \\bar a` for the same reason. Row
    blocks keep the extra memory to ``block x n``.
    """
    n = len(distances)
    squared = np.square(distances, order="C")
    np.fill_diagonal(squared, 0.0)  # as.dist has no diagonal
    for start in range(0, n, block):
        stop = min(start + block, n)
        squared[start:stop, stop:] = squared[stop:, start:stop].T  # upper from lower
        rows = squared[start:stop, start:stop]
        rows[np.triu_indices(stop - start, 1)] = rows.T[np.triu_indices(stop - start, 1)]
    means = squared.mean(axis=1)
    grand = means.mean()
    for start in range(0, n, block):
        rows = squared[start : start + block]
        rows -= means[start : start + block, None] + means[None, :]
        rows += grand
        rows *= -0.5
    return squared


def pcoa_axes(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal coordinates on every real and imaginary axis, as ``betadisper``.

    Parameters
    ----------
    distances : numpy.ndarray
        ``n x n`` dissimilarities (the lower triangle is used, as vegan).

    Returns
    -------
    vectors : numpy.ndarray
        ``n x n`` eigenvectors scaled by :math:`\\sqrt{|\\lambda|}`, columns in
        decreasing eigenvalue order (R's ``eigen``). Only the columns
        :func:`.permdisp.kept_axes` returns are axes.
    eigenvalues : numpy.ndarray
        ``n`` eigenvalues, decreasing.

    Notes
    -----
    LAPACK ``dsyevr`` (R's ``eigen`` uses it too) needs ``O(n)`` workspace
    where ``dsyevd`` needs two more ``n x n`` arrays; it overwrites the Gower
    matrix, so the peak is the input, the Gower matrix and the eigenvectors.
    """
    gower = gower_matrix(distances)
    # symmetric: the transpose is the same matrix in Fortran order, which LAPACK overwrites in place
    values, vectors = linalg.eigh(gower.T, overwrite_a=True, driver="evr", check_finite=False)
    del gower
    values, vectors = values[::-1], vectors[:, ::-1]
    vectors *= np.sqrt(np.abs(values))
    return vectors, values


def ordination(distances: DistanceMatrix, dimensions: int = 10, axes=None) -> OrdinationResults:
    """Principal coordinates, at most ``dimensions`` axes, as scikit-bio's ``pcoa(method="eigh")``.

    Parameters
    ----------
    distances : skbio.DistanceMatrix
    dimensions : int
        Axes kept (at most samples - 1).
    axes : tuple of numpy.ndarray, optional
        :func:`pcoa_axes` of ``distances``, when already computed.

    Returns
    -------
    skbio.OrdinationResults
        As scikit-bio: eigenvalues near 0 (``numpy.isclose``) become 0, axes
        with a negative eigenvalue have eigenvalue and coordinates 0, and the
        proportion explained divides by the sum of all eigenvalues (the trace).
    """
    vectors, values = pcoa_axes(distances.data) if axes is None else axes
    n = min(dimensions, len(values) - 1)
    eigvals = np.where(np.isclose(values[:n], 0.0), 0.0, values[:n])
    positive = eigvals > 0
    eigvals = np.where(positive, eigvals, 0.0)
    names = [f"PC{i + 1}" for i in range(n)]
    coordinates = pd.DataFrame(vectors[:, :n] * positive, index=list(distances.ids), columns=names)
    return OrdinationResults(
        short_method_name="PCoA", long_method_name="Principal Coordinate Analysis",
        eigvals=pd.Series(eigvals, index=names), samples=coordinates,
        proportion_explained=pd.Series(eigvals / values.sum(), index=names))
