"""The Wilcoxon signed-rank test of paired differences, for many columns at once.

Used for within-household differences (case minus control): of CLR
abundances by the differential stage, of alpha diversity by the diversity
stage.  Two-sided, :func:`scipy.stats.wilcoxon` with ``zero_method="wilcox"``
(zero differences dropped) and no continuity correction, vectorised over
columns: the exact null distribution when there are at most 50 pairs and no
column has ties or zeros, the normal approximation otherwise (scipy makes one
choice for the whole matrix; one column at a time, as the alpha tests call it,
the choice is that column's).

References
----------
.. [1] Wilcoxon, F. (1945). Individual comparisons by ranking methods.
   *Biometrics Bulletin* 1(6), 80-83.
.. [2] Hodges, J. L. & Lehmann, E. L. (1963). Estimates of location based on
   rank tests. *Ann. Math. Statist.* 34(2), 598-611.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import ndtri

#: Walsh averages held in memory at once (features x pairs^2 / 2).
CHUNK = 20_000_000


def hodges_lehmann(D) -> np.ndarray:
    """One-sample Hodges-Lehmann estimate of every column of ``D`` (pairs x features).

    Notes
    -----
    :math:`\\hat\\Delta = \\operatorname{median}\\{(d_i + d_j)/2 : i \\le j\\}`,
    the estimator that inverts the signed-rank test. Columns are done in
    chunks so the Walsh averages stay within :data:`CHUNK` numbers.
    """
    D = np.asarray(D, dtype=float)
    G, p = D.shape
    out = np.full(p, np.nan)
    if G == 0:
        return out
    i, j = np.triu_indices(G)
    step = max(1, CHUNK // max(i.size, 1))
    for start in range(0, p, step):
        block = D[:, start : start + step]
        out[start : start + step] = np.median((block[i] + block[j]) / 2.0, axis=0)
    return out


def signed_rank_test(D) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank test of every column of ``D`` (pairs x features).

    Returns
    -------
    DataFrame with ``effect`` (Hodges-Lehmann), ``stat`` (signed normal score
    of the p-value: positive when positive differences dominate), ``se``,
    ``pvalue`` and ``w_statistic``.
    """
    D = np.asarray(D, dtype=float)
    G, p = D.shape
    if G < 1:
        nan = np.full(p, np.nan)
        return pd.DataFrame({"effect": nan, "se": nan, "stat": nan, "pvalue": nan, "w_statistic": nan})
    with np.errstate(invalid="ignore", divide="ignore"):
        test = stats.wilcoxon(D, axis=0, zero_method="wilcox", correction=False, alternative="two-sided",
                              method="auto")
    pvalue = np.atleast_1d(np.asarray(test.pvalue, dtype=float))
    nonzero = D != 0
    ranks = stats.rankdata(np.where(nonzero, np.abs(D), np.nan), axis=0, nan_policy="omit")
    positive = np.nansum(np.where(D > 0, ranks, 0.0), axis=0)
    m = nonzero.sum(axis=0)
    direction = np.sign(positive - m * (m + 1) / 4.0)
    z = direction * ndtri(1.0 - np.clip(pvalue, 1e-300, 1.0) / 2.0)
    effect = hodges_lehmann(D)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(z != 0, np.abs(effect) / np.abs(z), np.nan)
    return pd.DataFrame({"effect": effect, "se": se, "stat": z, "pvalue": pvalue,
                         "w_statistic": np.atleast_1d(np.asarray(test.statistic, dtype=float))})
