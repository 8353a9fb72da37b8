"""Ordinary least squares for thousands of responses at once, with HC3 sandwich standard errors.

One design (or one design per replicate) and many response columns, each with
its own rows (a mask per column): the regressions of the differential stage's
primary test (every taxon, and every label swap of the calibration) in a few
batched ``k x k`` solves, never a Python loop over taxa.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Largest replicates x rows x columns block held in memory at once (float64 elements).
BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class RobustFit:
    """One coefficient of many regressions.

    Attributes
    ----------
    estimate, se : ndarray, shape (p,) or (R, p)
        The coefficient and its HC3 standard error (NaN where a column has
        fewer than ``k + 2`` rows).
    df : ndarray
        Residual degrees of freedom, rows used minus columns.
    n : ndarray
        Rows used.
    """

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    n: np.ndarray


def ols_hc3(X, Y, mask=None, coef: int = 0) -> RobustFit:
    """OLS of every column of ``Y`` on ``X``; coefficient ``coef`` with its HC3 standard error.

    Parameters
    ----------
    X : array_like, shape (N, k) or (R, N, k)
        The design, or one design per replicate (e.g. per label swap: only the
        tested column changes).
    Y : array_like, shape (N, p)
        Responses, shared by every replicate.
    mask : array_like of bool, shape (N, p), optional
        Rows each column uses (default all); masked entries of ``Y`` are ignored.
    coef : int
        The column of ``X`` whose coefficient is returned.

    Returns
    -------
    RobustFit
        Arrays of shape (p,) for a 2-D ``X``, (R, p) for a 3-D one.

    Notes
    -----
    With the rows of column :math:`j` in :math:`X_j`,
    :math:`\\hat\\beta = (X_j^\\top X_j)^{-1}X_j^\\top y`, residuals :math:`e`,
    leverages :math:`h_i = x_i^\\top (X_j^\\top X_j)^{-1} x_i`, and

    .. math::

        \\widehat{V}_{HC3} = (X^\\top X)^{-1} X^\\top
        \\operatorname{diag}\\!\\left(\\frac{e_i^2}{(1-h_i)^2}\\right) X (X^\\top X)^{-1},

    MacKinnon and White's jackknife-like estimator, valid under
    heteroscedasticity and the least liberal of the HC family in small
    samples [1]_ [2]_. Equals statsmodels ``OLS(...).fit(cov_type="HC3")`` on
    the same rows. Without a mask the ``k x k`` solve is shared by every
    column; with one it is batched per column. A design that is singular on a
    column's rows is solved by pseudo-inverse (the aliased column gets no
    weight).

    References
    ----------
    .. [1] MacKinnon, J. G. & White, H. (1985). Some heteroskedasticity-consistent
       covariance matrix estimators with improved finite sample properties.
       *Journal of Econometrics* 29, 305-325.
    .. [2] Long, J. S. & Ervin, L. H. (2000). Using heteroscedasticity consistent
       standard errors in the linear regression model. *The American
       Statistician* 54(3), 217-224.
    """
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    single = X.ndim == 2
    if single:
        X = X[None]
    R, N, k = X.shape
    p = Y.shape[1]
    M = None if mask is None else np.asarray(mask, dtype=bool)
    if M is not None:
        Y = np.where(M, Y, 0.0)
    step = max(1, BLOCK_ELEMENTS // max(N * p, 1))
    parts = [_block(X[r:r + step], Y, M, coef) for r in range(0, R, step)]
    estimate, se, n = (np.concatenate([part[i] for part in parts]) for i in range(3))
    df = n - k
    ok = n >= k + 2
    estimate = np.where(ok, estimate, np.nan)
    se = np.where(ok, se, np.nan)
    if single:
        return RobustFit(estimate[0], se[0], df[0], n[0])
    return RobustFit(estimate, se, df, n)


def _block(X, Y, M, coef):
    """:func:`ols_hc3` for a block of replicates (X: (r, N, k))."""
    r, N, k = X.shape
    p = Y.shape[1]
    if M is None:
        inverse = np.linalg.pinv(np.einsum("rnk,rnl->rkl", X, X))  # (r, k, k), shared by the columns
        beta = np.einsum("rkl,rnl,np->rkp", inverse, X, Y, optimize=True)
        resid = Y[None] - np.einsum("rnk,rkp->rnp", X, beta, optimize=True)
        h = np.einsum("rnk,rkl,rnl->rn", X, inverse, X, optimize=True)
        a = np.einsum("rl,rnl->rn", inverse[:, coef, :], X)  # row coef of (X'X)^-1 X'
        weight = np.where(h < 1 - 1e-12, a / np.where(h < 1 - 1e-12, 1 - h, 1.0), 0.0)
        var = np.einsum("rn,rnp->rp", weight**2, resid**2, optimize=True)
        n = np.full((r, p), float(N))
        return beta[:, coef, :], np.sqrt(np.maximum(var, 0.0)), n
    Mf = M.astype(float)
    outer = np.einsum("rnk,rnl->rnkl", X, X).reshape(r, N, k * k)  # x x' per row, flattened
    gram = np.einsum("rnq,np->rpq", outer, Mf, optimize=True).reshape(r, p, k, k)
    inverse = np.linalg.pinv(gram)  # (r, p, k, k)
    beta = np.einsum("rpkl,rpl->rpk", inverse, np.einsum("rnl,np->rpl", X, Y, optimize=True))
    resid = (Y[None] - np.einsum("rnk,rpk->rnp", X, beta, optimize=True)) * Mf
    a = np.einsum("rpl,rnl->rnp", inverse[:, :, coef, :], X, optimize=True) * Mf
    h = np.einsum("rnq,rpq->rnp", outer, inverse.reshape(r, p, k * k), optimize=True) * Mf
    free = h < 1 - 1e-12
    weight = np.where(free, a / np.where(free, 1 - h, 1.0), 0.0)
    var = np.einsum("rnp,rnp->rp", weight**2, resid**2, optimize=True)
    n = np.broadcast_to(Mf.sum(axis=0), (r, p)).copy()
    return beta[:, :, coef], np.sqrt(np.maximum(var, 0.0)), n
