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

    - ``variance="model"``: :math:`z = U/\\sqrt{I}` (Rao's score test [4]_,
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
    Everything is NaN where the null fit leaves ``x`` no information,
    :math:`I_j \\le 10^{-8} \\sum_i x_i^2` over the response's rows (a
    response the covariates separate, e.g. one without variation when ``Z``
    has an intercept, or ``x`` aliased with ``Z`` on those rows).

``x`` may also be one tested column per replicate (shape ``(R, n)``, e.g. the
label swaps of the differential stage's calibration); the replicates share
the null fit, and every output then has a leading replicate axis.

For 1:1 matched sets the conditional (stratified) logistic likelihood is, on
the discordant sets, the unconditional logistic likelihood of "the case is
the member with the outcome" on the within-set covariate differences (no
intercept; the tested column is all ones); its score test of the status
effect with no covariates is McNemar's test [5]_.

References
----------
.. [1] Boos DD (1992). On generalized score tests. Am Stat 46:327-333.
.. [2] Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized
   linear models. Biometrika 73:13-22.
.. [3] Kauermann G, Carroll RJ (2001). A note on the efficiency of sandwich
   covariance matrix estimation. J Am Stat Assoc 96:1387-1396.
.. [4] Rao CR (1948). Large sample tests of statistical hypotheses concerning
   several parameters with applications to problems of estimation. Proc
   Cambridge Philos Soc 44:50-57.
.. [5] Breslow NE, Day NE (1980). Statistical Methods in Cancer Research I: The
   Analysis of Case-Control Studies, ch. 7. IARC.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr

from .robust_ols import cluster_codes, gram_per_column, pinv_sym, quadratic_per_column, row_outer

VARIANCE = ("model", "robust", "hc2", "hc3")
#: Information below this fraction of ``sum x^2`` (the response's rows) counts as none.
MIN_INFORMATION = 1e-8
#: Largest replicates x rows x responses block of score contributions held at once (float64 elements).
BLOCK_ELEMENTS = 4_000_000


def null_fit(Y, Z, mask=None, max_iter: int = 30, tol: float = 1e-8, weights=None):
    r"""IRLS fit of ``logit P(y_j = 1) = Z gamma_j`` for every column; returns ``mu`` (n, p) and ``converged``.

    Parameters
    ----------
    Y : array_like, shape (n, p)
        0/1 responses (values outside ``mask`` are ignored).
    Z : array_like, shape (n, q)
        Design; may have no columns (the fitted probability is then 1/2).
    mask : array_like of bool, shape (n, p), optional
        Rows each response is fitted on.
    max_iter : int
        Most IRLS steps.
    tol : float
        A column stops once its deviance has changed by at most ``tol``
        (relative) on two steps in a row.
    weights : array_like, shape (n,), optional
        Prior weights of the rows.

    Returns
    -------
    mu : ndarray, shape (n, p)
        Fitted probabilities.
    converged : ndarray of bool, shape (p,)

    Notes
    -----
    Iteratively reweighted least squares (Newton-Raphson for the canonical
    link), batched over columns (one ``q x q`` pseudo-inverse per column and
    step), from :math:`\mu = (y + 1/2)/2`. Linear predictors are kept within
    +-30, so a response that a column of ``Z`` separates (a site where a taxon
    is never present) converges to fitted values of about 0 or 1 there
    instead of diverging; the score test then finds no information in it.
    The step after the deviance settles takes a regular fit from about
    :math:`\sqrt{tol}` to the floating-point limit (Newton-Raphson converges
    quadratically), where iterating on would only drift a partly separated
    fit towards the bound.
    """
    Y = np.asarray(Y, dtype=float)
    Z = np.asarray(Z, dtype=float)
    norms = np.linalg.norm(Z, axis=0)
    Z = Z / np.where(norms > 0, norms, 1.0)  # unit columns: better-conditioned Gram matrices, same fit
    w_mask = np.ones_like(Y) if mask is None else np.asarray(mask, dtype=float)
    if weights is not None:
        w_mask = w_mask * np.asarray(weights, dtype=float)[:, None]
    if Z.shape[1] == 0:
        return np.full(Y.shape, 0.5), np.ones(Y.shape[1], dtype=bool)
    mu = np.where(w_mask > 0, (Y + 0.5) / 2, 0.5)
    eta = np.log(mu / (1 - mu))
    deviance = np.full(Y.shape[1], np.inf)
    settled = np.zeros(Y.shape[1], dtype=bool)
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
        small = np.abs(new - deviance[active]) <= tol * (np.abs(new) + 0.1)
        done = small & settled[active]
        deviance[active], settled[active] = new, small
        active = active[~done]
        if not active.size:
            break
    converged = np.ones(Y.shape[1], dtype=bool)
    converged[active] = False
    return mu, converged


def score_test(Y, x, Z, clusters=None, mask=None, variance: str = "robust", weights=None
               ) -> dict[str, np.ndarray]:
    r"""Score test of ``x`` added to ``logit P(y_j = 1) ~ Z`` for every column of ``Y``.

    Parameters
    ----------
    Y : array_like, shape (n, p)
        0/1 responses (values outside ``mask`` are ignored).
    x : array_like, shape (n,) or (R, n)
        The variable tested, or one per replicate (all share the null fit).
    Z : array_like, shape (n, q)
        Null-model design (with the intercept if wanted; may have no columns).
    clusters : array_like, shape (n,), optional
        Cluster of every row (robust variances only); rows are their own
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
        ``n`` (rows), ``n_events`` (rows with y = 1), ``converged``, arrays of
        shape ``(p,)`` for a 1-D ``x``, ``(R, p)`` for a 2-D one; NaN where
        the null fit leaves ``x`` no information (module docstring).

    Notes
    -----
    With the null fit's weights :math:`W_j` and
    :math:`B_j = (Z^\top W_j Z)^{-1} Z^\top W_j x`, the score is
    :math:`U_j = x^\top r_j - B_j^\top Z^\top r_j` and the efficient
    information :math:`I_j = x^\top W_j x - B_j^\top Z^\top W_j x` (the
    module docstring's sums over :math:`\tilde x = x - Z B_j`), so that the
    model-variance test of many replicates of ``x`` needs no
    replicate x row x response array; the robust variances sum the rows'
    contributions :math:`\tilde x_{ij} r_{ij}` in blocks of replicates.
    """
    if variance not in VARIANCE:
        raise ValueError(f"variance must be one of {VARIANCE}, not {variance!r}")
    Y = np.asarray(Y, dtype=float)
    Z = np.asarray(Z, dtype=float)
    norms = np.linalg.norm(Z, axis=0)
    Z = Z / np.where(norms > 0, norms, 1.0)  # the projection of x on Z does not depend on Z's column scales
    x = np.asarray(x, dtype=float)
    single = x.ndim == 1
    X = x[None] if single else x                                    # (R, n)
    n, p = Y.shape
    m = np.ones((n, p), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    Y = np.where(m, Y, 0.0)
    prior = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    mu, converged = null_fit(Y, Z, m, weights=prior)
    w = mu * (1 - mu) * m * prior[:, None]
    r = (Y - mu) * m * prior[:, None]
    inv, _ = pinv_sym(gram_per_column(Z, w))                        # (p, q, q)
    cross = np.matmul((X[:, :, None] * Z[None]).transpose(0, 2, 1), w)  # (R, q, p): Z' W_j x
    B = np.einsum("jkl,rlj->rjk", inv, cross)                       # (R, p, q)
    U = X @ r - np.einsum("rjk,kj->rj", B, Z.T @ r)
    info = (X * X) @ w - np.einsum("rjk,rkj->rj", B, cross)
    scale = (X * X) @ (m * prior[:, None])                          # sum x^2 over the rows (weighted)
    if variance == "model":
        V = info
    else:
        h = None
        if variance in ("hc2", "hc3"):
            h = quadratic_per_column(Z, inv) * w                    # hat values of the null fit
        codes = np.arange(n) if clusters is None else cluster_codes(clusters, n)
        used = np.zeros((codes.max() + 1, p), dtype=bool)
        np.logical_or.at(used, codes, m)
        G = used.sum(axis=0).astype(float)
        step = max(1, BLOCK_ELEMENTS // max(n * p, 1))
        V = np.concatenate([_robust_variance(X[s:s + step], Z, B[s:s + step], r, m, h, codes, variance)
                            for s in range(0, len(X), step)])
        with np.errstate(divide="ignore", invalid="ignore"):
            V = V * (G / (G - 1) if clusters is not None and variance == "robust" else 1.0)
    n_used = m.sum(axis=0)
    events = (Y * m).sum(axis=0)
    informative = info > MIN_INFORMATION * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(informative, U / np.sqrt(V), np.nan)
        effect = np.where(informative, U / info, np.nan)
        se = np.where(informative, np.sqrt(V) / info, np.nan)
    shape = stat.shape
    out = {"effect": effect, "se": se, "stat": stat, "pvalue": 2 * ndtr(-np.abs(stat)),
           "n": np.broadcast_to(n_used, shape), "n_events": np.broadcast_to(events.astype(int), shape),
           "converged": np.broadcast_to(converged, shape)}
    return {key: value[0] for key, value in out.items()} if single else out


def _robust_variance(X, Z, B, r, m, h, codes, variance) -> np.ndarray:
    """``sum_g (sum_{i in g} x~_ij r_ij / (1 - h_ij)^power)^2`` for replicates ``X`` (R, n): shape (R, p)."""
    xt = (X[:, :, None] - np.einsum("nk,rjk->rnj", Z, B)) * m       # (R, n, p), zero off the mask
    contribution = xt * r
    if h is not None:
        power = 1.0 if variance == "hc3" else 0.5
        contribution = contribution / np.where(h < 1 - 1e-10, 1 - h, np.inf) ** power
    sums = np.zeros((len(X), codes.max() + 1, r.shape[1]))
    np.add.at(sums, (slice(None), codes), contribution)
    return np.einsum("rgj,rgj->rj", sums, sums)
