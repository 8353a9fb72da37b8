"""Multiple testing: Benjamini-Hochberg q-values for one family of tests."""

from __future__ import annotations

import numpy as np
from statsmodels.stats.multitest import multipletests


def bh(pvalues) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN p-values stay NaN and are not counted.

    Parameters
    ----------
    pvalues : array_like
        p-values of one family of tests (any shape).

    Returns
    -------
    numpy.ndarray
        q-values, same shape as ``pvalues``.

    Notes
    -----
    ``q_(i) = min_{j >= i} min(1, m p_(j) / j)`` over the ``m`` finite
    p-values sorted ascending; computed by
    ``statsmodels.stats.multitest.multipletests(method="fdr_bh")``.

    References
    ----------
    .. [1] Benjamini Y, Hochberg Y (1995). Controlling the false discovery
       rate: a practical and powerful approach to multiple testing. JRSS B
       57(1):289-300.
    """
    p = np.asarray(pvalues, dtype=float)
    q = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        q[finite] = multipletests(p[finite], method="fdr_bh")[1]
    return q
