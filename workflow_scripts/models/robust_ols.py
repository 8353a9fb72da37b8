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

``X`` may also be a stack of designs, one per replicate (shape ``(R, n, k)``,
e.g. one per label swap of the differential stage's calibration, where only
the tested column changes); every output then has a leading replicate axis.

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
.. [5] Long JS, Ervin LH (2000). Using heteroscedasticity consistent standard
   errors in the linear regression model. Am Stat 54:217-224.
"""

from __future__ import annotations

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
    """``A_g a_g`` stacked by row, ``(r, n, P)``: CR2 (power -1/2) or CR3 (power -1).

    ``X`` is ``(r, n, k)``; ``inv`` is ``(X'X)^-1`` shared by the responses
    ``(r, 1, k, k)`` or per response ``(r, p, k, k)``; ``mask`` None or
    ``(n, p)``. Clusters are batched by size.
    """
    out = np.zeros_like(a)
    sizes = np.bincount(codes)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for size in np.unique(sizes):
        groups = np.flatnonzero(sizes == size)
        rows = order[starts[groups][:, None] + np.arange(size)]     # (G_s, s)
        Xg = X[:, rows]                                             # (r, G_s, s, k)
        H = np.einsum("rgak,rpkl,rgbl->rpgab", Xg, inv, Xg)         # (r, P, G_s, s, s)
        if mask is not None:
            m = mask[rows].transpose(2, 0, 1).astype(float)         # (p, G_s, s)
            H = H * m[..., :, None] * m[..., None, :]
        A, _ = pinv_sym(np.eye(size) - H, power)
        ag = a[:, rows].transpose(0, 3, 1, 2)                       # (r, P, G_s, s)
        adjusted = np.einsum("rpgab,rpgb->rpga", A, ag)
        out[:, rows] = adjusted.transpose(0, 2, 3, 1)
    return out


def _column_sums(c: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """``sum_i c_i e2_ij`` per replicate, ``c`` shared ``(r, n, 1)`` or per response ``(r, n, p)``."""
    if c.shape[2] == 1:
        return np.einsum("rn,rnp->rp", c[..., 0], e2)
    return np.einsum("rnp,rnp->rp", c, e2)


#: Largest replicates x rows x responses block held in memory at once (float64 elements).
BLOCK_ELEMENTS = 4_000_000


def ols_term(Y, X, term: int = 1, errors: str = "hc3", clusters=None, mask=None, weights=None
             ) -> dict[str, np.ndarray]:
    """Estimate, sandwich standard error and p-value of column ``term`` of ``X`` for every column of ``Y``.

    Parameters
    ----------
    Y : array_like, shape (n, p)
        Responses; values outside ``mask`` are ignored (may be NaN).
    X : array_like, shape (n, k) or (R, n, k)
        Design, with the intercept if wanted; full column rank on all rows
        (drop aliased columns first, :func:`workflow_scripts.design.drop_aliased`).
        Or one design per replicate (e.g. per label swap), all fitted to the
        same responses.
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
        and ``k`` (identified columns), arrays of shape ``(p,)`` for a 2-D
        ``X``, ``(R, p)`` for a 3-D one; ``n_clusters`` with clusters
        (clusters with a row used).

    Notes
    -----
    For response :math:`j` on its rows, :math:`\\hat\\beta = (X^\\top
    X)^{-1}X^\\top y`, and the HC3 variance (the default) is

    .. math::

        \\widehat{V}_{HC3} = (X^\\top X)^{-1} X^\\top
        \\operatorname{diag}\\!\\left(\\frac{e_i^2}{(1-h_i)^2}\\right) X (X^\\top X)^{-1},

    MacKinnon and White's jackknife-like estimator, valid under
    heteroskedasticity and the least liberal of the HC family in small
    samples [2]_ [5]_; the other errors are in the module docstring. Equals
    statsmodels ``OLS(...).fit(cov_type=...)`` (``WLS`` with weights) on the
    same rows. Without a mask the ``k x k`` solve of a design is shared by
    every response; with one it is batched per response. Replicated designs
    are fitted in blocks of at most :data:`BLOCK_ELEMENTS` replicate x row x
    response values.

    References
    ----------
    See the module docstring ([1]_ to [5]_).
    """
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, not {errors!r}")
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    single = X.ndim == 2
    if single:
        X = X[None]
    if Y.ndim == 1:
        Y = Y[:, None]
    if weights is not None:
        root = np.sqrt(np.asarray(weights, dtype=float))
        X, Y = X * root[:, None], Y * root[:, None]
    R, n, k = X.shape
    p = Y.shape[1]
    if Y.shape[0] != n:
        raise ValueError(f"Y has {Y.shape[0]} rows but X has {n}")
    # Columns scaled to unit length: the Gram matrices are better conditioned (age in years next to
    # 0/1 indicators); the term's estimate and error are scaled back at the end.
    scale = np.linalg.norm(X, axis=1)                                # (R, k)
    scale = np.where(scale > 0, scale, 1.0)
    X = X / scale[:, None, :]
    codes = None
    if errors in CR:
        if clusters is None:
            raise ValueError(f"errors={errors!r} needs clusters")
        codes = cluster_codes(clusters, n)
    m = None if mask is None else np.asarray(mask, dtype=bool)
    if m is not None:
        Y = np.where(m, Y, 0.0)
    step = max(1, BLOCK_ELEMENTS // max(n * p, 1))
    parts = [_fit(Y, X[r:r + step], term, errors, codes, m) for r in range(0, R, step)]
    out = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    out["effect"] = out["effect"] / scale[:, term, None]
    out["se"] = out["se"] / scale[:, term, None]
    out["pvalue"] = two_sided_p_exact(out["stat"], out["df"])
    if codes is None:
        out.pop("n_clusters")
    return {key: value[0] for key, value in out.items()} if single else out


def _fit(Y, X, term, errors, codes, m) -> dict[str, np.ndarray]:
    """:func:`ols_term` on unit-scaled designs ``X`` (r, n, k) and masked (zeroed) ``Y`` (n, p)."""
    r, n, k = X.shape
    p = Y.shape[1]
    XtY = np.matmul(X.transpose(0, 2, 1), Y)                        # (r, k, p)
    if m is None:
        inv, rank = pinv_sym(np.matmul(X.transpose(0, 2, 1), X))    # (r, k, k), shared by the responses
        beta = np.matmul(inv, XtY)                                  # (r, k, p)
        a = np.matmul(X, inv[:, term, :, None])                     # (r, n, 1): row term of (X'X)^-1 X'
        h = np.einsum("rnk,rkl,rnl->rn", X, inv, X)[..., None]      # (r, n, 1)
        inv = inv[:, None]                                          # (r, 1, k, k)
        n_used = np.full(p, n)
    else:
        w = m.astype(float)
        outer = (X[..., :, None] * X[..., None, :]).reshape(r, n, k * k)
        gram = np.matmul(outer.transpose(0, 2, 1), w)               # (r, k * k, p)
        inv, rank = pinv_sym(gram.transpose(0, 2, 1).reshape(r, p, k, k))  # (r, p, k, k)
        beta = np.einsum("rjkl,rlj->rkj", inv, XtY)                 # (r, k, p)
        a = np.matmul(X, inv[:, :, term, :].transpose(0, 2, 1)) * w  # (r, n, p)
        h = np.matmul(outer, inv.reshape(r, p, k * k).transpose(0, 2, 1)) * w
        n_used = m.sum(axis=0)
    resid = Y - np.matmul(X, beta)                                  # (r, n, p)
    if m is not None:
        resid = np.where(m, resid, 0.0)
    n_used = np.broadcast_to(n_used, (r, p))
    k_used = np.broadcast_to(rank.reshape(r, -1), (r, p)).astype(int)
    inv_tt = inv[:, :, term, term]                                  # (r, 1) or (r, p)
    df = (n_used - k_used).astype(float)
    G = np.zeros((r, p))

    with np.errstate(invalid="ignore", divide="ignore"):
        if errors == "classical":
            var = inv_tt * np.einsum("rnp,rnp->rp", resid, resid) / df
        elif errors in HC:
            inside = h < 1 - 1e-10
            power = {"hc0": 0, "hc1": 0, "hc2": 1, "hc3": 2}[errors]
            omega = np.where(inside, 1 - h, 1.0) ** -power
            if errors == "hc1":
                omega = omega * (n_used / df)[:, None, :]
            var = _column_sums(np.where(inside, a * a * omega, 0.0), resid * resid)
        else:
            if errors == "cr1":
                adjusted = np.broadcast_to(a, resid.shape)
            else:
                adjusted = _cluster_adjusted(a, X, inv, m, codes, -0.5 if errors == "cr2" else -1.0)
            G_all = codes.max() + 1
            sums = np.zeros((r, G_all, p))
            np.add.at(sums, (slice(None), codes), adjusted * resid)
            var = np.einsum("rgj,rgj->rj", sums, sums)
            used = np.zeros((G_all, p), dtype=bool)
            np.logical_or.at(used, codes, np.ones((n, p), dtype=bool) if m is None else m)
            G = np.broadcast_to(used.sum(axis=0).astype(float), (r, p))
            if errors == "cr1":
                var = var * G / (G - 1) * (n_used - 1) / df
            df = np.where(G >= 2, G - 1, np.nan)
        se = np.sqrt(var)
        stat = beta[:, term, :] / se
    return {"effect": beta[:, term, :], "se": se, "stat": stat, "n": n_used, "df": df, "k": k_used,
            "n_clusters": G.astype(int)}
