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


def cauchy_combination(pvalues, axis: int = -1, max_pvalue: float = 1.0) -> np.ndarray:
    """Cauchy combination (ACAT) of p-values along ``axis``, equal weights; NaN p-values are left out.

    Parameters
    ----------
    pvalues : array_like
        p-values of tests of one hypothesis (e.g. the components of one
        taxon's test), any dependence between them.
    axis : int
        The axis to combine over.
    max_pvalue : float
        p-values above it are set to it before combining (see Notes).

    Returns
    -------
    numpy.ndarray
        Combined p-values (NaN where every p-value is NaN).

    Notes
    -----
    :math:`T = \\frac1d\\sum_i \\tan\\{(0.5 - p_i)\\pi\\}` and
    :math:`p = 1/2 - \\arctan(T)/\\pi`, the upper tail of the standard Cauchy.
    Each term is standard Cauchy under its null, and the tail of the average
    stays Cauchy under arbitrary dependence for small p [1]_, so the
    combination is valid for correlated components. Tiny p-values use
    :math:`\\tan\\{(0.5-p)\\pi\\} = 1/\\tan(p\\pi)` and the upper tail
    :math:`\\arctan(1/T)/\\pi`, which keep full precision.

    A term tends to :math:`-\\infty` as its p-value tends to 1, so one p-value
    of exactly 1 (a discrete two-sided test at its centre, such as an exact
    McNemar test with as many discordant pairs each way) would cancel any
    evidence in the others. ``max_pvalue`` (e.g. 0.99) bounds each term
    below; it can only lower the combined p-value, and only when a component
    exceeds it, which under the null has probability ``1 - max_pvalue``.

    References
    ----------
    .. [1] Liu, Y. & Xie, J. (2020). Cauchy combination test: a powerful test
       with analytic p-value calculation under arbitrary dependency structures.
       *Journal of the American Statistical Association* 115(529), 393-402.
    """
    p = np.asarray(pvalues, dtype=float)
    ok = np.isfinite(p)
    clipped = np.clip(np.where(ok, p, 0.5), 1e-300, max_pvalue)
    terms = np.where(ok, 1.0 / np.tan(clipped * np.pi), 0.0)
    count = ok.sum(axis=axis)
    T = terms.sum(axis=axis) / np.maximum(count, 1)
    with np.errstate(divide="ignore"):
        upper = np.where(T > 0, np.arctan(1.0 / np.where(T > 0, T, 1.0)) / np.pi, 0.5 - np.arctan(T) / np.pi)
    return np.where(count > 0, np.clip(upper, 0.0, 1.0), np.nan)
