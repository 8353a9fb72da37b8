"""Score test of one added variable in a logistic regression, for thousands of binary responses at once.

Model, for every response ``j`` (a column of ``Y``, 0/1, e.g. a taxon's
presence) on its rows (``mask[:, j]``, all by default)::

    logit P(y_ij = 1) = z_i' gamma_j + beta_j x_i,

with ``H0: beta_j = 0``. Only the null model (``Z``) is fitted, by iteratively
reweighted least squares batched over responses (a ``q x q`` solve per response
and iteration). The score test needs no fit under the alternative, so it
exists where the Wald test does not (a response that separates on ``x``).

Statistic
    At the null fit (:math:`\\hat\\mu_{ij}`, weights :math:`w_{ij} =
    \\hat\\mu_{ij}(1-\\hat\\mu_{ij})`, residuals :math:`r_{ij} = y_{ij} -
    \\hat\\mu_{ij}`), with :math:`\\tilde x_{ij} = x_i - z_i^\\top (Z^\\top W_j
    Z)^{-1} Z^\\top W_j x` the part of ``x`` the covariates do not explain,
    the score is :math:`U_j = \\sum_i \\tilde x_{ij} r_{ij}` and the efficient
    information :math:`I_j = \\sum_i w_{ij} \\tilde x_{ij}^2`.

    - ``variance="model"``: :math:`z = U/\\sqrt{I}` (Rao's score test,
      statsmodels ``GLM(...).fit().score_test(exog_extra=x)``);
    - ``variance="robust"``: :math:`z = U / \\sqrt{V}`, :math:`V =
      c \\sum_g (\\sum_{i \\in g} \\tilde x_{ij} r_{ij})^2` over clusters ``g``
      (each row its own cluster when none are given), :math:`c = G/(G-1)`;
      valid when the variance model is wrong and for correlated rows of one
      cluster (Boos 1992; Liang & Zeger 1986). Without clusters and
      :math:`c = 1` it is statsmodels' ``score_test(..., cov_type="HC0")``
      up to its centring of the score covariance;
    - ``variance="hc2"`` / ``"hc3"``: the same with every row's score
      :math:`\tilde x_{ij} r_{ij}` divided by :math:`(1 - h_{ij})^{1/2}` or
      :math:`(1 - h_{ij})`, :math:`h_{ij}` the hat value of the null fit
      (:math:`w_{ij} z_i^\top (Z^\top W_j Z)^{-1} z_i`), and :math:`c = 1`:
      the small-sample corrections of HC2 / HC3 for OLS carried to the score
      (Kauermann & Carroll 2001), which the plain robust variance needs below
      a few hundred rows.

    ``effect`` is the one-step estimate :math:`U/I` (log odds ratio per unit
    of ``x``), ``se`` :math:`\\sqrt{V}/I`; p-values are two-sided normal.

:func:`logistic_score_test` is the model-variance test batched over
replicates of the tested column (the label swaps of the differential stage's
calibration share one null fit per taxon).

References
----------
.. [1] Boos DD (1992). On generalized score tests. Am Stat 46:327-333.
.. [2] Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized
   linear models. Biometrika 73:13-22.
.. [3] Kauermann G, Carroll RJ (2001). A note on the efficiency of sandwich
   covariance matrix estimation. J Am Stat Assoc 96:1387-1396.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr

from .robust_ols import cluster_codes, gram_per_column, pinv_sym, quadratic_per_column, row_outer

VARIANCE = ("model", "robust", "hc2", "hc3")


def null_fit(Y, Z, mask=None, max_iter: int = 30, tol: float = 1e-8, weights=None):
    """IRLS fit of ``logit P(y_j = 1) = Z gamma_j`` for every column; returns ``mu`` (n, p) and ``converged``.

    Linear predictors are kept within +-30, so a response that a column of
    ``Z`` separates (a site where a taxon is never present) converges to
    fitted values of about 0 or 1 there instead of diverging. Columns stop
    iterating once their deviance changes by less than ``tol`` (relative).
    ``weights`` are prior weights of the rows.
    """
    Y = np.asarray(Y, dtype=float)
    Z = np.asarray(Z, dtype=float)
    norms = np.linalg.norm(Z, axis=0)
    Z = Z / np.where(norms > 0, norms, 1.0)  # unit columns: better-conditioned Gram matrices, same fit
    w_mask = np.ones_like(Y) if mask is None else np.asarray(mask, dtype=float)
    if weights is not None:
        w_mask = w_mask * np.asarray(weights, dtype=float)[:, None]
    mu = np.where(w_mask > 0, (Y + 0.5) / 2, 0.5)
    eta = np.log(mu / (1 - mu))
    deviance = np.full(Y.shape[1], np.inf)
    active = np.arange(Y.shape[1])
    outer = row_outer(Z)
    for _ in range(max_iter):
        y, m, e, u = Y[:, active], w_mask[:, active], eta[:, active], mu[:, active]
        w = u * (1 - u) * m
        working = e + (y - u) / np.maximum(u * (1 - u), 1e-300)
        inv, _ = pinv_sym(gram_per_column(Z, w, outer))
        gamma = np.einsum("jkl,lj->jk", inv, Z.T @ (w * working))
        e = np.clip(Z @ gamma.T, -30, 30)
        u = expit(e)
        eta[:, active], mu[:, active] = e, u
        with np.errstate(divide="ignore", invalid="ignore"):
            new = -2 * np.sum(m * (y * np.log(u) + (1 - y) * np.log1p(-u)), axis=0)
        done = np.abs(new - deviance[active]) <= tol * (np.abs(new) + 0.1)
        deviance[active] = new
        active = active[~done]
        if not active.size:
            break
    converged = np.ones(Y.shape[1], dtype=bool)
    converged[active] = False
    return mu, converged


def score_test(Y, x, Z, clusters=None, mask=None, variance: str = "robust", weights=None
               ) -> dict[str, np.ndarray]:
    """Score test of ``x`` added to ``logit P(y_j = 1) ~ Z`` for every column of ``Y``.

    Parameters
    ----------
    Y : array_like, shape (n, p)
        0/1 responses (values outside ``mask`` are ignored).
    x : array_like, shape (n,)
        The variable tested.
    Z : array_like, shape (n, q)
        Null-model design with the intercept.
    clusters : array_like, shape (n,), optional
        Cluster of every row (robust variance only); rows are their own
        clusters when omitted.
    mask : array_like of bool, shape (n, p), optional
        Rows each response is fitted on.
    variance : {"robust", "hc2", "hc3", "model"}
    weights : array_like, shape (n,), optional
        Prior weights of the rows (the score and information become weighted sums).

    Returns
    -------
    dict
        ``effect`` (one-step log odds ratio), ``se``, ``stat`` (z), ``pvalue``,
        ``n`` (rows), ``n_events`` (rows with y = 1), ``converged``; NaN where a
        response does not vary on its rows.
    """
    if variance not in VARIANCE:
        raise ValueError(f"variance must be one of {VARIANCE}, not {variance!r}")
    Y = np.asarray(Y, dtype=float)
    Z = np.asarray(Z, dtype=float)
    norms = np.linalg.norm(Z, axis=0)
    Z = Z / np.where(norms > 0, norms, 1.0)  # the projection of x on Z does not depend on Z's column scales
    x = np.asarray(x, dtype=float)
    n, p = Y.shape
    m = np.ones((n, p), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    Y = np.where(m, Y, 0.0)
    prior = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    mu, converged = null_fit(Y, Z, m, weights=prior)
    w = mu * (1 - mu) * m * prior[:, None]
    inv, _ = pinv_sym(gram_per_column(Z, w))
    B = np.einsum("jkl,lj->jk", inv, Z.T @ (w * x[:, None]))        # (p, q)
    xt = (x[:, None] - Z @ B.T) * m                                 # x~, zero off the mask
    r = (Y - mu) * m * prior[:, None]
    U = np.einsum("ij,ij->j", xt, r)
    info = np.einsum("ij,ij,ij->j", w, xt, xt)
    n_used = m.sum(axis=0)
    events = (Y * m).sum(axis=0)
    if variance == "model":
        V = info
    else:
        contribution = xt * r
        if variance in ("hc2", "hc3"):
            h = quadratic_per_column(Z, inv) * w                    # hat values of the null fit
            power = 1.0 if variance == "hc3" else 0.5
            contribution = contribution / np.where(h < 1 - 1e-10, 1 - h, np.inf) ** power
        codes = np.arange(n) if clusters is None else cluster_codes(clusters, n)
        sums = np.zeros((codes.max() + 1, p))
        np.add.at(sums, codes, contribution)
        used = np.zeros((codes.max() + 1, p), dtype=bool)
        np.logical_or.at(used, codes, m)
        G = used.sum(axis=0).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = G / (G - 1) if clusters is not None and variance == "robust" else 1.0
            V = np.einsum("gj,gj->j", sums, sums) * factor
    varies = (events > 0) & (events < n_used)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(varies, U / np.sqrt(V), np.nan)
        effect = np.where(varies, U / info, np.nan)
        se = np.where(varies, np.sqrt(V) / info, np.nan)
    return {"effect": effect, "se": se, "stat": stat, "pvalue": 2 * ndtr(-np.abs(stat)), "n": n_used,
            "n_events": events.astype(int), "converged": converged}


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
