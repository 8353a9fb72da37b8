"""Helmert rotation of rows by group, used by the random-intercept mixed model.

Within every group of ``m`` rows an orthonormal Helmert matrix splits the rows
into one *between* row (the scaled group mean) and ``m - 1`` *within* rows
(contrasts that sum to zero). Under a random-intercept model the rotated rows
are uncorrelated, so the mixed model becomes a weighted least-squares problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class GroupStructure:
    """Rows of a data set sorted by group, with each row's place in its group.

    Attributes
    ----------
    order : ndarray of int, shape (n,)
        Stable permutation that sorts the rows by group.
    group : ndarray of int, shape (n,)
        Group index (0 .. G-1) of each *sorted* row.
    position : ndarray of int, shape (n,)
        0-based position of each sorted row inside its group.
    sizes : ndarray of int, shape (G,)
        Number of rows in each group.
    """

    order: np.ndarray
    group: np.ndarray
    position: np.ndarray
    sizes: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.sizes.size)

    @property
    def n_rows(self) -> int:
        return int(self.order.size)


def group_structure(groups) -> GroupStructure:
    """Describe how rows fall into groups.

    Parameters
    ----------
    groups : array_like, shape (n,)
        Group label of every row (any hashable values, no missing values).

    Returns
    -------
    GroupStructure
    """
    codes, _ = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), sort=False)
    order = np.argsort(codes, kind="stable")
    group = codes[order]
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.arange(codes.size) - starts[group]
    return GroupStructure(order=order, group=group, position=position, sizes=sizes)


def helmert_rotate(A, structure: GroupStructure) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the rows of ``A`` by a Helmert matrix within each group.

    Parameters
    ----------
    A : array_like, shape (n,) or (n, q)
        Rows in the original order.
    structure : GroupStructure
        From :func:`group_structure`.

    Returns
    -------
    between : ndarray, shape (G, q)
        One row per group: the group sum divided by ``sqrt(m_g)``.
    within : ndarray, shape (n - G, q)
        The ``m_g - 1`` Helmert contrasts of every group, groups in order.

    Notes
    -----
    For a group with rows :math:`a_0, \\dots, a_{m-1}` the rotated rows are

    .. math::

        b = \\frac{1}{\\sqrt m}\\sum_{l<m} a_l, \\qquad
        c_j = \\frac{\\sum_{l<j} a_l - j\\,a_j}{\\sqrt{j(j+1)}}, \\quad j = 1..m-1,

    the rows of the orthonormal Helmert matrix. If the rows of a group have
    covariance :math:`\\sigma^2(I_m + \\lambda \\mathbf 1\\mathbf 1^\\top)` then
    :math:`b` has variance :math:`\\sigma^2(1 + \\lambda m)`, every :math:`c_j`
    has variance :math:`\\sigma^2`, and all are uncorrelated. Rows are centred on
    their group mean first (the contrasts are unchanged by this), so the running
    sums do not accumulate rounding error across groups.

    References
    ----------
    .. [1] Lancaster, H. O. (1965). The Helmert matrices. *American
       Mathematical Monthly* 72(1), 4-12.
    .. [2] Searle, S. R., Casella, G. & McCulloch, C. E. (1992). *Variance
       Components*, ch. 3 (one-way classification). Wiley.
    """
    A = np.asarray(A, dtype=float)
    flat = A.ndim == 1
    S = A[structure.order].reshape(structure.n_rows, -1)
    sizes = structure.sizes
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    sums = np.add.reduceat(S, starts, axis=0)
    between = sums / np.sqrt(sizes)[:, None]

    D = S - (sums / sizes[:, None])[structure.group]
    running = np.cumsum(D, axis=0)
    offset = np.vstack([np.zeros((1, S.shape[1])), running[starts[1:] - 1]])
    running -= offset[structure.group]  # inclusive running sum inside each group
    j = structure.position[:, None].astype(float)
    keep = structure.position > 0
    j = j[keep]
    within = ((running[keep] - D[keep]) - j * D[keep]) / np.sqrt(j * (j + 1.0))

    if flat:
        return between[:, 0], within[:, 0]
    return between, within
