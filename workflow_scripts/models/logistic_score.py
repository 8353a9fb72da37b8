"""Score tests in logistic regressions, batched over thousands of responses and over replicates.

The presence/absence component of the differential stage's primary test: is
a taxon's presence associated with disease status, given covariates? One
null model per taxon (fitted once), then the score statistic of the tested
column, for the observed labels and for every label swap of the calibration
at the cost of a matrix product: under a swap only the tested column changes,
never the null model.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

#: Newton-Raphson steps of the null fits (they stop earlier once every fit has converged).
MAX_ITER = 50
TOLERANCE = 1e-10


def logistic_null_fit(W, U, mask) -> np.ndarray:
    """Fitted probabilities of the logistic regressions of every column of ``U`` on ``W``.

    Parameters
    ----------
    W : array_like, shape (N, k)
        Null design (may have no columns: the fitted probability is then 1/2).
    U : array_like, shape (N, p)
        0/1 outcomes.
    mask : array_like of bool, shape (N, p)
        Rows each column uses.

    Returns
    -------
    ndarray, shape (N, p)
        Fitted probabilities (1/2 where masked).

    Notes
    -----
    Newton-Raphson (IRLS) from zero, batched over columns (one ``k x k`` solve
    per column and step). A column whose outcomes the design separates has no
    finite maximum; its iterates grow until the probabilities are within
    floating-point of 0 and 1, so its score test has no information and
    returns NaN.
    """
    W = np.asarray(W, dtype=float)
    U = np.asarray(U, dtype=float)
    M = np.asarray(mask, dtype=float)
    N, k = W.shape
    p = U.shape[1]
    if k == 0:
        return np.full((N, p), 0.5)
    gamma = np.zeros((p, k))
    ridge = 1e-10 * np.eye(k)
    for _ in range(MAX_ITER):
        mu = expit(W @ gamma.T)
        weight = M * mu * (1 - mu)
        info = np.einsum("nk,np,nl->pkl", W, weight, W, optimize=True) + ridge
        grad = np.einsum("nk,np->pk", W, M * (U - mu), optimize=True)
        step = np.linalg.solve(info, grad[..., None])[..., 0]
        gamma = gamma + step
        if np.nanmax(np.abs(step), initial=0.0) < TOLERANCE:
            break
    return expit(W @ gamma.T)


def logistic_score_test(W, U, mask, tested) -> np.ndarray:
    """Score statistic of adding the column ``tested`` to logistic regressions of ``U`` on ``W``.

    Parameters
    ----------
    W : array_like, shape (N, k)
        Null design (intercept included if wanted).
    U : array_like, shape (N, p)
        0/1 outcomes, one column per response (taxon).
    mask : array_like of bool, shape (N, p)
        Rows each column uses.
    tested : array_like, shape (N,) or (R, N)
        The tested column, or one per replicate (all share the null fit).

    Returns
    -------
    ndarray, shape (p,) or (R, p)
        Signed score statistics :math:`z`; two-sided p-values are
        :math:`2\\Phi(-|z|)`. NaN where a column has no information.

    Notes
    -----
    With the null fit :math:`\\hat\\mu`, :math:`V = \\hat\\mu(1-\\hat\\mu)` and the
    tested column :math:`t`,

    .. math::

        z = \\frac{t^\\top (u - \\hat\\mu)}
        {\\sqrt{t^\\top V t - t^\\top V W (W^\\top V W)^{-1} W^\\top V t}},

    Rao's score test with the efficient information for the tested
    coefficient [1]_. For 1:1 matched sets the conditional (stratified)
    logistic likelihood is, on the discordant sets, the unconditional
    logistic likelihood of "the case is the member with the outcome" on the
    within-set covariate differences; its score test of the status effect
    with no covariates is McNemar's test [2]_.

    References
    ----------
    .. [1] Rao, C. R. (1948). Large sample tests of statistical hypotheses
       concerning several parameters with applications to problems of
       estimation. *Proc. Cambridge Philos. Soc.* 44, 50-57.
    .. [2] Breslow, N. E. & Day, N. E. (1980). *Statistical Methods in Cancer
       Research I: The Analysis of Case-Control Studies*, ch. 7. IARC.
    """
    W = np.asarray(W, dtype=float)
    U = np.asarray(U, dtype=float)
    M = np.asarray(mask, dtype=float)
    t = np.asarray(tested, dtype=float)
    single = t.ndim == 1
    T = t[None] if single else t
    mu = logistic_null_fit(W, U, mask)
    V = M * mu * (1 - mu)
    score = T @ (M * (U - mu))  # (R, p)
    info = (T**2) @ V
    if W.shape[1]:
        cross = np.einsum("rn,np,nk->rpk", T, V, W, optimize=True)  # t' V W
        null_info = np.einsum("nk,np,nl->pkl", W, V, W, optimize=True) + 1e-12 * np.eye(W.shape[1])
        solved = np.linalg.solve(null_info[None], cross[..., None])[..., 0]
        info = info - np.einsum("rpk,rpk->rp", cross, solved)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(info > 1e-10, score / np.sqrt(np.maximum(info, 1e-300)), np.nan)
    return z[0] if single else z
