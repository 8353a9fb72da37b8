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
    """Cauchy combination (ACAT) of p-values along ``axis``, equal weights; NaN entries are left out.

    Parameters
    ----------
    pvalues : array_like
        p-values of the tests combined (e.g. one row per taxon, one column per
        component test); a row without any finite p-value gives NaN.
    axis : int
        The axis combined.
    max_pvalue : float
        p-values above it are set to it first: a term tends to minus infinity as
        its p-value tends to 1, so one p-value of exactly 1 would cancel any
        evidence in the others; a bound such as 0.99 can only lower the combined
        p-value, and only when a component exceeds it.

    Returns
    -------
    numpy.ndarray
        The combined p-values (``axis`` removed).

    Notes
    -----
    :math:`T = \\frac1m\\sum_i \\tan\\{(0.5 - p_i)\\pi\\}`, combined
    :math:`p = 1/2 - \\arctan(T)/\\pi`, the upper tail of the standard Cauchy.
    The tail of :math:`T` is Cauchy whatever the dependence between the tests,
    approximately, and the more exactly the smaller :math:`p` (Liu & Xie 2020),
    so correlated components (several tests of one taxon on the same
    participants) are combined without modelling their correlation. Very
    small p-values use :math:`\\tan\\{(0.5 - p)\\pi\\} \\approx 1/(p\\pi)` and
    large :math:`T` uses :math:`p \\approx \\arctan(1/T)/\\pi`, which keep
    their precision.

    References
    ----------
    .. [1] Liu Y, Xie J (2020). Cauchy combination test: a powerful test with
       analytic p-value calculation under arbitrary dependency structures.
       J Am Stat Assoc 115:393-402.
    """
    p = np.moveaxis(np.asarray(pvalues, dtype=float), axis, -1)
    finite = np.isfinite(p)
    p = np.clip(np.where(finite, p, 0.5), 1e-300, max_pvalue)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p < 1e-15, 1.0 / (p * np.pi), np.tan((0.5 - p) * np.pi))
        m = finite.sum(axis=-1)
        T = np.where(finite, terms, 0.0).sum(axis=-1) / m
        out = np.where(T > 1, np.arctan(1.0 / T) / np.pi, 0.5 - np.arctan(T) / np.pi)
    return np.where(m > 0, out, np.nan)
