"""One coefficient of ordinary least squares, for thousands of responses at once, with sandwich errors.

Model, for every response ``j`` (a column of ``Y``)::

    y_j = X beta_j + e_j,

on all rows, or on the rows ``mask[:, j]`` (a design subset per response,
e.g. the participants in whom a taxon is present). :func:`ols_term` returns
the estimate of one coefficient (``term``), its standard error, t statistic and
p-value for every response; the design is shared, so the algebra is a few
matrix products (and, with a mask, one ``k x k`` solve per response), never a
Python loop over responses.

Errors (``errors``)
    With :math:`a_i` the ``term`` row of :math:`(X^\\top X)^{-1}X^\\top`,
    residuals :math:`e_i` and leverages :math:`h_i = x_i^\\top (X^\\top X)^{-1} x_i`:

    - ``classical``: :math:`\\hat\\sigma^2 [(X^\\top X)^{-1}]_{tt}`,
      :math:`\\hat\\sigma^2 = \\mathrm{RSS}/(n-k)`;
    - ``hc0`` ... ``hc3``: :math:`\\sum_i a_i^2 e_i^2 \\omega_i` with
      :math:`\\omega_i` = 1, :math:`n/(n-k)`, :math:`1/(1-h_i)`,
      :math:`1/(1-h_i)^2` (White 1980; MacKinnon & White 1985);
    - ``cr1`` ... ``cr3`` (with ``clusters``, e.g. one participant's repeated
      samples): :math:`\\sum_g (a_g^\\top A_g e_g)^2` over clusters, with
      :math:`A_g = I` times :math:`\\sqrt{G/(G-1) \\cdot (n-1)/(n-k)}` (CR1,
      Liang & Zeger 1986, the Stata / statsmodels ``cov_type="cluster"``
      convention), :math:`A_g = (I - H_{gg})^{-1/2}` (CR2, Bell & McCaffrey
      2002) or :math:`(I - H_{gg})^{-1}` (CR3, the cluster jackknife), with
      :math:`H_{gg}` the cluster's block of the hat matrix. With clusters of
      one, CR2 is HC2 and CR3 is HC3.

    p-values are two-sided from Student t on ``n - k`` degrees of freedom
    (classical, HC) or ``G - 1`` (cluster-robust, ``G`` clusters), as
    statsmodels with ``use_t=True``.

:func:`ols_hc3` is the HC3 case batched over replicated designs as well (one
design per label swap of the differential stage's calibration: only the
tested column changes), returning the estimate and error only.

Rows with leverage 1 (a participant alone in a level of a factor) are fitted
exactly; their :math:`a_i` is 0, so they add nothing to the estimate or its
variance (generalised inverses keep this finite). With a mask, a column of
``X`` that is constant zero among a response's rows (a site where the taxon
is never present) is not identified: a generalised inverse drops it for that
response, and ``k`` counts the identified columns only. ``term`` itself must
vary.

References
----------
.. [1] White H (1980). A heteroskedasticity-consistent covariance matrix
   estimator and a direct test for heteroskedasticity. Econometrica 48:817-838.
.. [2] MacKinnon JG, White H (1985). Some heteroskedasticity-consistent
   covariance matrix estimators with improved finite sample properties.
   J Econometrics 29:305-325.
.. [3] Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized
   linear models. Biometrika 73:13-22.
.. [4] Bell RM, McCaffrey DF (2002). Bias reduction in standard errors for
   linear regression with multi-stage samples. Survey Methodology 28:169-181.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .tdist import two_sided_p_exact

HC = ("hc0", "hc1", "hc2", "hc3")
CR = ("cr1", "cr2", "cr3")
ERRORS = ("classical", *HC, *CR)
#: Relative eigenvalue below which a Gram or ``I - H`` block counts as singular.
RANK_TOL = 1e-10


def pinv_sym(M: np.ndarray, power: float = -1.0) -> tuple[np.ndarray, np.ndarray]:
    """``M^power`` on the range of stacked symmetric PSD matrices ``(..., k, k)``, and their ranks."""
    values, vectors = np.linalg.eigh(M)
    top = np.maximum(values[..., -1:], 0.0)
    keep = values > RANK_TOL * np.where(top > 0, top, 1.0)
    scaled = np.where(keep, np.abs(np.where(keep, values, 1.0)) ** power, 0.0)
    return np.einsum("...ik,...k,...jk->...ij", vectors, scaled, vectors), keep.sum(axis=-1)


def row_outer(X: np.ndarray) -> np.ndarray:
    """``x_i x_i'`` of every row, flattened: shape (n, k * k)."""
    return (X[:, :, None] * X[:, None, :]).reshape(len(X), -1)


def gram_per_column(X: np.ndarray, W: np.ndarray, outer: np.ndarray | None = None) -> np.ndarray:
    """``X' diag(W[:, j]) X`` for every column ``j`` of ``W``: shape (p, k, k), one matrix product.

    ``outer`` is :func:`row_outer` of ``X`` when already computed.
    """
    k = X.shape[1]
    outer = row_outer(X) if outer is None else outer
    return (W.T @ outer).reshape(W.shape[1], k, k)


def quadratic_per_column(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``x_i' M_j x_i`` for every row ``i`` and stacked matrix ``M_j`` (p, k, k): shape (n, p)."""
    return row_outer(X) @ M.reshape(len(M), -1).T


def cluster_codes(clusters, n: int) -> np.ndarray:
    """Clusters (any labels, one per row) as codes 0..G-1."""
    values = pd.Series(np.asarray(clusters, dtype=object).ravel())
    if len(values) != n or values.isna().any():
        raise ValueError(f"clusters must give one non-missing label per row ({n} rows)")
    return pd.factorize(values, sort=False)[0].astype(np.intp)


def _cluster_adjusted(a, X, inv, mask, codes, power):
    """``A_g a_g`` stacked by row, ``(n, p)`` or ``(n, 1)``: CR2 (power -1/2) or CR3 (power -1).

    ``inv`` is ``(X'X)^-1`` shared ``(k, k)`` or per response ``(p, k, k)``;
    ``mask`` None or ``(n, p)``. Clusters are batched by size.
    """
    out = np.zeros_like(a)
    sizes = np.bincount(codes)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    inv_p = inv[None] if inv.ndim == 2 else inv                      # (P, k, k)
    for size in np.unique(sizes):
        groups = np.flatnonzero(sizes == size)
        rows = order[starts[groups][:, None] + np.arange(size)]     # (G_s, s)
        Xg = X[rows]                                                # (G_s, s, k)
        H = np.einsum("gak,pkl,gbl->pgab", Xg, inv_p, Xg)           # (P, G_s, s, s)
        if mask is not None:
            m = mask[rows].transpose(2, 0, 1).astype(float)         # (p, G_s, s)
            H = H * m[..., :, None] * m[..., None, :]
        A, _ = pinv_sym(np.eye(size) - H, power)
        ag = a[rows].transpose(2, 0, 1)                             # (P, G_s, s)
        adjusted = np.einsum("pgab,pgb->pga", A, ag)
        out[rows] = adjusted.transpose(1, 2, 0)
    return out


def ols_term(Y, X, term: int = 1, errors: str = "hc3", clusters=None, mask=None, weights=None
             ) -> dict[str, np.ndarray]:
    """Estimate, sandwich standard error and p-value of column ``term`` of ``X`` for every column of ``Y``.

    Parameters
    ----------
    Y : array_like, shape (n, p)
        Responses; values outside ``mask`` are ignored (may be NaN).
    X : array_like, shape (n, k)
        Design, with the intercept if wanted; full column rank on all rows
        (drop aliased columns first, :func:`workflow_scripts.design.drop_aliased`).
    term : int
        Column of ``X`` tested.
    errors : str
        One of :data:`ERRORS` (see the module docstring).
    clusters : array_like, shape (n,), optional
        Cluster label of every row; required by (and only used by) ``cr*``.
    mask : array_like of bool, shape (n, p), optional
        Rows each response is fitted on (all rows when omitted).
    weights : array_like, shape (n,), optional
        Row weights (weighted least squares): the fit and the sandwich are those
        of the rows scaled by the square root of their weight, as R's ``lm``
        with ``weights`` and clubSandwich do.

    Returns
    -------
    dict
        ``effect``, ``se``, ``stat``, ``pvalue``, ``n`` (rows used), ``df``
        and ``k`` (identified columns), arrays of length ``p``; ``n_clusters``
        with clusters (clusters with a row used).
    """
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, not {errors!r}")
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    if Y.ndim == 1:
        Y = Y[:, None]
    if weights is not None:
        root = np.sqrt(np.asarray(weights, dtype=float))
        X, Y = X * root[:, None], Y * root[:, None]
    n, k = X.shape
    p = Y.shape[1]
    if Y.shape[0] != n:
        raise ValueError(f"Y has {Y.shape[0]} rows but X has {n}")
    # Columns scaled to unit length: the Gram matrices are better conditioned (age in years next to
    # 0/1 indicators); the term's estimate and error are scaled back at the end.
    scale = np.linalg.norm(X, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    X = X / scale
    codes = None
    if errors in CR:
        if clusters is None:
            raise ValueError(f"errors={errors!r} needs clusters")
        codes = cluster_codes(clusters, n)

    if mask is None:
        inv, rank = pinv_sym(X.T @ X)
        a = (X @ inv[term])[:, None]                                 # (n, 1)
        beta = inv @ (X.T @ Y)                                       # (k, p)
        resid = Y - X @ beta
        h = np.einsum("ik,kl,il->i", X, inv, X)[:, None]
        n_used = np.full(p, n)
        k_used = np.full(p, int(rank))
        inv_tt = np.full(p, inv[term, term])
        m = None
    else:
        m = np.asarray(mask, dtype=bool)
        w = m.astype(float)
        Yz = np.where(m, Y, 0.0)
        inv, rank = pinv_sym(gram_per_column(X, w))                 # (p, k, k)
        beta = np.einsum("jkl,lj->kj", inv, X.T @ Yz)               # (k, p)
        resid = np.where(m, Yz - X @ beta, 0.0)
        a = (X @ inv[:, term, :].T) * w                             # (n, p)
        h = quadratic_per_column(X, inv) * w
        n_used = m.sum(axis=0)
        k_used = rank.astype(int)
        inv_tt = inv[:, term, term]
    df = (n_used - k_used).astype(float)

    with np.errstate(invalid="ignore", divide="ignore"):
        if errors == "classical":
            var = inv_tt * np.einsum("ij,ij->j", resid, resid) / df
        elif errors in HC:
            inside = h < 1 - 1e-10
            power = {"hc0": 0, "hc1": 0, "hc2": 1, "hc3": 2}[errors]
            omega = np.where(inside, 1 - h, 1.0) ** -power
            if errors == "hc1":
                omega = omega * (n_used / df)[None, :]
            var = np.einsum("ij,ij->j", np.where(inside, a * a * omega, 0.0), resid * resid)
        else:
            if errors == "cr1":
                adjusted = a
            else:
                adjusted = _cluster_adjusted(a, X, inv, m, codes, -0.5 if errors == "cr2" else -1.0)
            G_all = codes.max() + 1
            sums = np.zeros((G_all, p))
            np.add.at(sums, codes, adjusted * resid)
            var = np.einsum("gj,gj->j", sums, sums)
            used = np.zeros((G_all, p), dtype=bool)
            np.logical_or.at(used, codes, np.ones((n, p), dtype=bool) if m is None else m)
            G = used.sum(axis=0).astype(float)
            if errors == "cr1":
                var *= G / (G - 1) * (n_used - 1) / df
            df = np.where(G >= 2, G - 1, np.nan)
        se = np.sqrt(var)
        stat = beta[term] / se
    out = {"effect": beta[term] / scale[term], "se": se / scale[term], "stat": stat, "pvalue": two_sided_p_exact(stat, df), "n": n_used,
           "df": df, "k": k_used}
    if codes is not None:
        out["n_clusters"] = G.astype(int)
    return out


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
