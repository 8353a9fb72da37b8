"""Random-intercept linear mixed model fitted to thousands of features at once.

Model, for every feature ``j`` (a column of ``Y``)::

    y_j = X beta_j + Z u_j + e_j,   u_j ~ N(0, sigma2_j * lambda_j * I),
                                     e_j ~ N(0, sigma2_j * I)

with one random intercept per group (household). ``X`` and the groups are
shared by all features; ``beta_j``, ``sigma2_j`` and the variance ratio
``lambda_j`` are estimated per feature by REML (default) or ML, and agree with
``statsmodels`` ``MixedLM`` (``re_formula="1"``), Wald z tests included.

How it is fast: a Helmert rotation inside each group (see
:mod:`workflow_scripts.models.group_rotation`) turns the model into
weighted least squares whose weights depend on ``lambda`` and the group size
only. All the data needed are then a few ``k x k`` and ``k x p`` sums per
group-size class, computed once; profiling the likelihood over ``lambda`` for
every feature costs a batch of ``k x k`` solves per step, never a Python loop
over features.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import solve_triangular
from scipy.special import ndtr

from .group_rotation import group_structure, helmert_rotate

#: log10(lambda) grid used to bracket the maximum, plus lambda = 0.
RATIO_GRID = np.concatenate([[0.0], 10.0 ** np.arange(-6.0, 6.0 + 1e-9, 0.5)])
#: Relative width of the bracket at which the refinement of lambda stops.
RATIO_RTOL = 1e-11
#: Cap on refinement iterations (Illinois usually needs about 10).
MAX_REFINEMENTS = 100
#: |lambda * score| below this (log-likelihood units) counts as converged.
SCORE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MixedModelResult:
    """Estimates for ``p`` features and ``k`` fixed-effect columns.

    Attributes
    ----------
    beta, se, stat, pvalue : ndarray, shape (k, p)
        Fixed effects, standard errors, Wald statistic ``beta / se`` and
        two-sided p-value (normal reference when ``df`` is infinite, else
        Student t with ``df`` degrees of freedom).
    sigma2 : ndarray, shape (p,)
        Residual variance.
    group_var : ndarray, shape (p,)
        Random-intercept variance, ``sigma2 * ratio`` (0 on the boundary).
    ratio : ndarray, shape (p,)
        Variance ratio lambda = group_var / sigma2.
    loglik : ndarray, shape (p,)
        Maximised (restricted) log-likelihood, on statsmodels' scale.
    converged : ndarray of bool, shape (p,)
        False for features that could not be fitted (constant or perfectly
        fitted ``y``) or whose ratio ran off the top of the search grid.
    boundary : ndarray of bool, shape (p,)
        True where the estimate is lambda = 0 (no group variance).
    df : float
        Degrees of freedom of the reference distribution (``inf`` = normal).
    method : str
        ``"REML"``, ``"ML"`` or ``"OLS"``.
    columns : tuple of str
        Names of the ``k`` columns of ``X``.
    features : tuple
        Names of the ``p`` features.
    """

    beta: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pvalue: np.ndarray
    sigma2: np.ndarray
    group_var: np.ndarray
    ratio: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray
    df: float
    method: str
    columns: tuple
    features: tuple


@dataclass(frozen=True)
class _Moments:
    """Cross-products of the rotated data, all the fit needs.

    ``A0, c0, q0`` sum over within-group rows (weight 1); ``B[s], C[s], q[s]``
    sum over the between rows of the groups of size ``m[s]`` (``G[s]`` groups,
    weight ``1 / (1 + lambda m[s])``). ``Y`` enters as OLS residuals.
    """

    A0: np.ndarray  # (k, k)
    c0: np.ndarray  # (p, k)
    q0: np.ndarray  # (p,)
    B: np.ndarray  # (S, k, k)
    C: np.ndarray  # (S, p, k)
    q: np.ndarray  # (S, p)
    m: np.ndarray  # (S,)
    G: np.ndarray  # (S,)
    n: int
    k: int


@dataclass(frozen=True)
class _Profile:
    """The GLS fit and profiled likelihood at one ratio per feature."""

    w: np.ndarray  # (S, p) between-row weights
    beta: np.ndarray  # (p, k)
    Ainv: np.ndarray  # (p, k, k) inverse of X' V^-1 X (V unscaled)
    Q: np.ndarray  # (p,) r' V^-1 r
    R: np.ndarray  # (S, p) between-row residual sums of squares per class
    loglik: np.ndarray  # (p,)
    score: np.ndarray  # (p,) d loglik / d lambda


def fit_random_intercept(Y, X, groups, reml: bool = True, information: str = "observed"):
    """Fit ``y_j = X beta_j + u_group + e`` to every column of ``Y``.

    Parameters
    ----------
    Y : array_like or DataFrame, shape (n, p)
        Responses, one column per feature (e.g. CLR abundances). Missing
        values are not allowed: callers drop incomplete rows first (and the
        same rows from ``X`` and ``groups``).
    X : array_like or DataFrame, shape (n, k)
        Fixed-effect design shared by all features (intercept, status,
        covariates, site dummies, ...). Must have full column rank.
    groups : array_like, shape (n,)
        Group (household) label of every row. Groups may have any size;
        at least one must have two or more rows.
    reml : bool, default True
        Restricted maximum likelihood (True) or maximum likelihood.
    information : {"observed", "expected"}, default "observed"
        ``"observed"``: standard errors from the inverse observed information
        of (beta, lambda) with sigma2 profiled out, as statsmodels ``MixedLM``
        does. ``"expected"``: ``sigma2 (X' V^-1 X)^-1`` as lme4's ``vcov``.

    Returns
    -------
    MixedModelResult
        Wald z statistics and normal p-values (``df = inf``), as in the
        statsmodels ``MixedLM`` summary.

    Notes
    -----
    With :math:`V = I + \\lambda ZZ^\\top` (so :math:`\\operatorname{Var} y =
    \\sigma^2 V`), the Helmert rotation makes :math:`V` diagonal: 1 on the
    :math:`n - G` within rows, :math:`v_g = 1 + \\lambda m_g` on the between
    rows. For a given :math:`\\lambda`, with :math:`w = 1/v` on between rows,

    .. math::

        A = \\tilde X^\\top W \\tilde X,\\quad
        \\hat\\beta = A^{-1}\\tilde X^\\top W \\tilde y,\\quad
        Q = (\\tilde y - \\tilde X\\hat\\beta)^\\top W (\\tilde y - \\tilde X\\hat\\beta),

    and, with :math:`f = n - k` (REML) or :math:`n` (ML), the profiled
    log-likelihood is

    .. math::

        \\ell(\\lambda) = -\\tfrac f2\\left[\\log\\tfrac{2\\pi Q}{f} + 1\\right]
        - \\tfrac12\\sum_g \\log(1 + \\lambda m_g)
        \\;[-\\tfrac12 \\log|A| \\text{ for REML}],

    maximised over :math:`\\lambda \\ge 0`; then
    :math:`\\hat\\sigma^2 = Q / f`. The maximum is bracketed on a grid of
    :math:`\\lambda \\in \\{0\\} \\cup \\{10^{-6}, 10^{-5.5}, \\dots, 10^6\\}`
    and refined by regula falsi (Illinois) on the analytic score.

    Boundary: if the best grid point is :math:`\\lambda = 0` and the score
    there is :math:`\\le 0`, the estimate is exactly :math:`\\hat\\lambda = 0`
    (``boundary`` True, ``group_var`` 0): :math:`\\hat\\beta` is then OLS and,
    for REML, :math:`\\hat\\sigma^2 = RSS/(n-k)`. statsmodels reaches the
    same point up to its optimiser tolerance (a variance of ~1e-9 and a
    "boundary" warning); lme4 returns 0. Standard errors there are the same
    observed-information formula evaluated at :math:`\\lambda = 0`. A
    maximum beyond the top of the grid (within-group variance vanishing) is
    flagged ``converged = False``.

    ``Y`` is replaced by its OLS residuals before the rotation (the fit is
    invariant to this and it avoids cancellation in :math:`Q`); all sums per
    group-size class are formed once, so every likelihood evaluation costs
    :math:`O(p(Sk^2 + k^3))` for :math:`S` distinct group sizes, independent of
    :math:`n`.

    References
    ----------
    .. [1] Patterson, H. D. & Thompson, R. (1971). Recovery of inter-block
       information when block sizes are unequal. *Biometrika* 58, 545-554.
    .. [2] Kang, H. M. et al. (2008). Efficient control of population
       structure in model organism association mapping (EMMA). *Genetics*
       178, 1709-1723.
    .. [3] Lippert, C. et al. (2011). FaST linear mixed models for
       genome-wide association studies. *Nature Methods* 8, 833-835.
    .. [4] Lindstrom, M. J. & Bates, D. M. (1988). Newton-Raphson and EM
       algorithms for linear mixed-effects models for repeated-measures
       data. *JASA* 83, 1014-1022 (the statsmodels MixedLM parametrisation).
    """
    if information not in ("observed", "expected"):
        raise ValueError(f"information must be 'observed' or 'expected', got {information!r}")
    Ya, Xa, columns, features = check_inputs(Y, X)
    groups = np.asarray(groups, dtype=object)
    if groups.shape != (Ya.shape[0],):
        raise ValueError(
            f"groups has {groups.size} labels but Y has {Ya.shape[0]} rows; "
            "pass one group label per row"
        )
    if pd.isna(pd.Series(groups)).any():
        raise ValueError("groups contains missing labels; drop those rows or give them a label")
    structure = group_structure(groups)
    if structure.n_groups == structure.n_rows:
        raise ValueError(
            "every group has a single row, so the group variance is not identifiable; "
            "use fit_ols instead"
        )

    n, k = Xa.shape
    p = Ya.shape[1]
    beta_ols, resid = ols_residuals(Ya, Xa)
    fitable = with_variation(Ya, resid)

    out = _empty_result(k, p)
    if fitable.any():
        mom = _moments(resid[:, fitable], Xa, structure)
        ratio, converged, boundary, prof = _maximise_ratio(mom, reml)
        fac = n - k if reml else n
        sigma2 = prof.Q / fac
        cov = (
            _observed_covariance(ratio, prof, mom, reml)
            if information == "observed"
            else sigma2[:, None, None] * prof.Ainv
        )
        var = np.diagonal(cov, axis1=1, axis2=2).T
        se = np.sqrt(np.where(var >= 0, var, np.nan))
        out["beta"][:, fitable] = beta_ols[:, fitable] + prof.beta.T
        out["se"][:, fitable] = se
        out["sigma2"][fitable] = sigma2
        out["ratio"][fitable] = ratio
        out["loglik"][fitable] = prof.loglik
        out["converged"][fitable] = converged
        out["boundary"][fitable] = boundary
    out["group_var"] = out["sigma2"] * out["ratio"]
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = out["beta"] / out["se"]
    return MixedModelResult(
        stat=stat,
        pvalue=2.0 * ndtr(-np.abs(stat)),
        df=np.inf,
        method="REML" if reml else "ML",
        columns=columns,
        features=features,
        **out,
    )


def fit_ols(Y, X):
    """Ordinary least squares for every column of ``Y`` (no groups).

    Parameters
    ----------
    Y : array_like or DataFrame, shape (n, p)
        Responses, no missing values.
    X : array_like or DataFrame, shape (n, k)
        Design with full column rank.

    Returns
    -------
    MixedModelResult
        With ``ratio = group_var = 0``, ``method = "OLS"``, t statistics
        on ``df = n - k`` and the Gaussian log-likelihood at the ML variance.

    Notes
    -----
    :math:`\\hat\\beta = (X^\\top X)^{-1}X^\\top Y`, :math:`\\hat\\sigma^2 =
    \\lVert y - X\\hat\\beta\\rVert^2/(n-k)`, :math:`\\operatorname{se} =
    \\sqrt{\\hat\\sigma^2 [(X^\\top X)^{-1}]_{ii}}`, as R's ``lm``.

    References
    ----------
    .. [1] Seber, G. A. F. & Lee, A. J. (2003). *Linear Regression
       Analysis*, 2nd ed., ch. 3. Wiley.
    """
    Ya, Xa, columns, features = check_inputs(Y, X)
    n, k = Xa.shape
    beta, resid = ols_residuals(Ya, Xa)
    rss = np.einsum("ij,ij->j", resid, resid)
    sigma2 = rss / (n - k)
    xtx_inv = np.linalg.inv(Xa.T @ Xa)
    se = np.sqrt(np.outer(np.diag(xtx_inv), sigma2))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = beta / se
        loglik = -n / 2 * (np.log(2 * np.pi * rss / n) + 1)
    df = float(n - k)
    zeros = np.zeros(Ya.shape[1])
    return MixedModelResult(
        beta=beta,
        se=se,
        stat=stat,
        pvalue=2.0 * stats.t.sf(np.abs(stat), df),
        sigma2=sigma2,
        group_var=zeros,
        ratio=zeros.copy(),
        loglik=loglik,
        converged=rss > 0,
        boundary=np.zeros(Ya.shape[1], dtype=bool),
        df=df,
        method="OLS",
        columns=columns,
        features=features,
    )


def test_term(result: MixedModelResult, column) -> pd.DataFrame:
    """Tidy table of one fixed-effect term across all features.

    Parameters
    ----------
    result : MixedModelResult
    column : int or str
        Index or name of the column of ``X``.

    Returns
    -------
    DataFrame
        Index: feature; columns ``effect``, ``se``, ``stat``, ``pvalue``
        (Wald test of effect = 0) and ``converged``.
    """
    if isinstance(column, str):
        if column not in result.columns:
            raise KeyError(f"no column {column!r} in the design; columns are {list(result.columns)}")
        column = result.columns.index(column)
    return pd.DataFrame(
        {
            "effect": result.beta[column],
            "se": result.se[column],
            "stat": result.stat[column],
            "pvalue": result.pvalue[column],
            "converged": result.converged,
        },
        index=pd.Index(result.features, name="feature"),
    )


test_term.__test__ = False  # not a pytest test despite the name


# ---------------------------------------------------------------------------
# Inputs


def check_inputs(Y, X):
    """``Y`` and ``X`` as float arrays with their names, after the checks every fit shares.

    Returns
    -------
    Y : ndarray (n, p); X : ndarray (n, k); columns : tuple of k names; features : tuple of p names
    """
    features = tuple(Y.columns) if isinstance(Y, pd.DataFrame) else None
    columns = tuple(str(c) for c in X.columns) if isinstance(X, pd.DataFrame) else None
    Ya = np.asarray(Y, dtype=float)
    if Ya.ndim == 1:
        Ya = Ya[:, None]
    Xa = np.asarray(X, dtype=float)
    if Ya.ndim != 2 or Xa.ndim != 2:
        raise ValueError("Y must be (n samples x p features) and X (n samples x k columns)")
    n, k = Xa.shape
    if Ya.shape[0] != n:
        raise ValueError(f"Y has {Ya.shape[0]} rows but X has {n}; they must describe the same samples")
    if not np.isfinite(Ya).all():
        raise ValueError("Y contains NaN or infinite values; drop samples with missing data before fitting")
    if not np.isfinite(Xa).all():
        raise ValueError(
            "X contains NaN or infinite values; drop samples with missing covariates before fitting"
        )
    if n <= k:
        raise ValueError(f"{n} samples cannot fit {k} fixed effects; use fewer covariates")
    if np.linalg.matrix_rank(Xa) < k:
        raise ValueError(
            "X does not have full column rank; drop the redundant columns "
            "(e.g. a dummy for every level of a factor together with the intercept)"
        )
    columns = columns or tuple(f"x{i}" for i in range(k))
    features = features or tuple(range(Ya.shape[1]))
    return Ya, Xa, columns, features


def ols_residuals(Y, X):
    """OLS coefficients (k, p) and residuals (n, p) of every column of ``Y``, via the QR of ``X``."""
    q, r = np.linalg.qr(X)
    qty = q.T @ Y
    return solve_triangular(r, qty), Y - q @ qty


def with_variation(Y, resid):
    """Features with residual variation left to model (not constant, not exact)."""
    scale = np.einsum("ij,ij->j", Y, Y) + 1.0
    return np.einsum("ij,ij->j", resid, resid) > 1e-20 * scale


def coordinate_grid_start(log_likelihood, p: int, width: int, order, grid) -> tuple[np.ndarray, np.ndarray]:
    """Variance ratios (p, width) searched on ``grid`` one coordinate at a time, in ``order``.

    ``log_likelihood(ratios)`` evaluates every feature at once. Returns the
    square roots of the best ratios (the Newton steps' parameters) and their
    log-likelihoods. Shared by the nested and repeated-samples models.
    """
    lam = np.zeros((p, width))
    best = np.full(p, -np.inf)
    for axis in order:
        for value in grid:
            trial = lam.copy()
            trial[:, axis] = value
            ll = log_likelihood(trial)
            better = ll > best
            best[better] = ll[better]
            lam[better] = trial[better]
    return np.sqrt(lam), best


def newton_update(theta, current, idx, step, log_likelihood, tol: float, max_halvings: int = 40) -> np.ndarray:
    """One safeguarded Newton step of profiled (RE)ML for the features ``idx``; returns which are done.

    Each feature's step is halved until its log-likelihood does not decrease
    (up to rounding); ``theta`` and ``current`` (its log-likelihood) are updated
    in place. A feature is done when no halving helped or it moved less than
    ``tol`` relative to its size. ``log_likelihood(candidates, j)`` evaluates
    the rows ``j`` of ``idx``. Shared by the nested and repeated-samples models.
    """
    th, now = theta[idx], current[idx]
    accepted = np.zeros(idx.size, dtype=bool)
    new_th, new_ll = th.copy(), now.copy()
    alpha = np.ones(idx.size)
    trying = np.ones(idx.size, dtype=bool)
    for _ in range(max_halvings):
        j = np.flatnonzero(trying)
        if j.size == 0:
            break
        cand = th[j] + alpha[j, None] * step[j]
        ll = log_likelihood(cand, j)
        ok = ll >= now[j] - 1e-12 * np.abs(now[j])
        good = j[ok]
        new_th[good], new_ll[good] = cand[ok], ll[ok]
        accepted[good] = True
        trying[good] = False
        alpha[j[~ok]] /= 2.0
    moved = np.abs(new_th - th).max(axis=1)
    theta[idx] = np.where(accepted[:, None], new_th, th)
    current[idx] = np.where(accepted, new_ll, now)
    return ~accepted | (moved <= tol * (1.0 + np.abs(th).max(axis=1)))


def _empty_result(k, p):
    nan_kp = np.full((k, p), np.nan)
    return {
        "beta": nan_kp.copy(),
        "se": nan_kp.copy(),
        "sigma2": np.full(p, np.nan),
        "ratio": np.full(p, np.nan),
        "loglik": np.full(p, np.nan),
        "converged": np.zeros(p, dtype=bool),
        "boundary": np.zeros(p, dtype=bool),
    }


# ---------------------------------------------------------------------------
# Rotation and likelihood


def _moments(E, X, structure) -> _Moments:
    """Rotate once and reduce the data to sums per group-size class."""
    Xb, Xw = helmert_rotate(X, structure)
    Eb, Ew = helmert_rotate(E, structure)
    sizes = structure.sizes
    m, cls = np.unique(sizes, return_inverse=True)
    B = np.stack([Xb[cls == s].T @ Xb[cls == s] for s in range(m.size)])
    C = np.stack([Eb[cls == s].T @ Xb[cls == s] for s in range(m.size)])
    q = np.stack([np.einsum("ij,ij->j", Eb[cls == s], Eb[cls == s]) for s in range(m.size)])
    return _Moments(
        A0=Xw.T @ Xw,
        c0=Ew.T @ Xw,
        q0=np.einsum("ij,ij->j", Ew, Ew),
        B=B,
        C=C,
        q=q,
        m=m.astype(float),
        G=np.bincount(cls).astype(float),
        n=structure.n_rows,
        k=X.shape[1],
    )


def _normal_equations(ratio, mom: _Moments):
    """Between-row weights and the weighted normal equations at ``ratio``."""
    S, k, p = mom.m.size, mom.k, ratio.size
    w = 1.0 / (1.0 + mom.m[:, None] * ratio[None, :])  # (S, p)
    A = mom.A0 + (w.T @ mom.B.reshape(S, k * k)).reshape(p, k, k)
    b = mom.c0 + np.einsum("sp,spk->pk", w, mom.C)
    yy = mom.q0 + np.einsum("sp,sp->p", w, mom.q)
    return w, A, b, yy


def _loglik_from(Q, A, ratio, mom: _Moments, reml: bool):
    """Profiled log-likelihood, statsmodels' constants included."""
    fac = mom.n - mom.k if reml else mom.n
    log_det_v = mom.G @ np.log1p(mom.m[:, None] * ratio[None, :])
    loglik = -fac / 2.0 * (np.log(2.0 * np.pi * Q / fac) + 1.0) - log_det_v / 2.0
    if reml:
        loglik -= np.linalg.slogdet(A)[1] / 2.0
    return loglik


def _loglik(ratio, mom: _Moments, reml: bool):
    """Profiled log-likelihood only: the cheap evaluation used on the grid."""
    _, A, b, yy = _normal_equations(ratio, mom)
    beta = np.linalg.solve(A, b[:, :, None])[:, :, 0]
    Q = yy - np.einsum("pk,pk->p", b, beta)
    return _loglik_from(Q, A, ratio, mom, reml)


def _profile(ratio, mom: _Moments, reml: bool, loglik: bool = True) -> _Profile:
    """GLS fit, profiled log-likelihood and its score at ``ratio`` (one per feature)."""
    S, k, p = mom.m.size, mom.k, ratio.size
    w, A, b, yy = _normal_equations(ratio, mom)
    Ainv = np.linalg.inv(A)
    beta = np.matmul(Ainv, b[:, :, None])[:, :, 0]
    Q = yy - np.einsum("pk,pk->p", b, beta)
    # between-row residual sum of squares per class: q - 2 beta.C + beta' B beta
    R = (
        mom.q
        - 2.0 * np.einsum("spk,pk->sp", mom.C, beta)
        + np.einsum("pk,skl,pl->sp", beta, mom.B, beta, optimize=True)
    )
    fac = mom.n - k if reml else mom.n
    dw = -mom.m[:, None] * w**2  # d w / d lambda
    score = -fac / 2.0 * np.einsum("sp,sp->p", dw, R) / Q - (mom.G * mom.m) @ w / 2.0
    if reml:
        tr_ainv_b = mom.B.reshape(S, k * k) @ Ainv.reshape(p, k * k).T  # (S, p)
        score -= np.einsum("sp,sp->p", dw, tr_ainv_b) / 2.0
    ll = _loglik_from(Q, A, ratio, mom, reml) if loglik else None
    return _Profile(w=w, beta=beta, Ainv=Ainv, Q=Q, R=R, loglik=ll, score=score)


def _subset(mom: _Moments, index) -> _Moments:
    """The moments of some features only."""
    return replace(mom, c0=mom.c0[index], q0=mom.q0[index], C=mom.C[:, index], q=mom.q[:, index])


def _maximise_ratio(mom: _Moments, reml: bool):
    """Maximise the profiled likelihood over lambda >= 0 for all features.

    Returns
    -------
    ratio : ndarray (p,)
    converged, boundary : ndarray of bool (p,)
    profile : _Profile
        The fit at ``ratio``.

    Notes
    -----
    1. Evaluate the profiled log-likelihood on ``RATIO_GRID`` and take the
       best point ``i`` per feature.
    2. If ``i`` is lambda = 0 and the score there is <= 0, the estimate is the
       boundary lambda = 0.
    3. Otherwise find the root of the score in ``[grid[i-1], grid[i+1]]`` by
       the Illinois variant of regula falsi [1]_ (superlinear, keeps the
       bracket), keeping the best grid point if that does not improve on it.
    4. A maximum at the top of the grid with a positive score there (the
       within-group variance vanishing) is reported as not converged.

    References
    ----------
    .. [1] Dowell, M. & Jarratt, P. (1971). A modified regula falsi method for
       computing the root of an equation. *BIT* 11, 168-174.
    """
    p = mom.q0.size
    features = np.arange(p)
    grid_ll = np.stack([_loglik(np.full(p, g), mom, reml) for g in RATIO_GRID])
    best = np.argmax(grid_ll, axis=0)
    top = RATIO_GRID.size - 1
    lo = RATIO_GRID[np.maximum(best - 1, 0)]
    hi = RATIO_GRID[np.minimum(best + 1, top)]
    score_lo = _profile(lo, mom, reml, loglik=False).score
    score_hi = _profile(hi, mom, reml, loglik=False).score

    ratio = _illinois(lo, hi, score_lo, score_hi, mom, reml)
    refined = _loglik(ratio, mom, reml) > grid_ll[best, features]
    ratio = np.where(refined, ratio, RATIO_GRID[best])
    boundary = (best == 0) & (score_lo <= 0)
    ratio[boundary] = 0.0

    profile = _profile(ratio, mom, reml)
    off_top = (best == top) & (score_hi > 0)
    converged = boundary | (np.abs(ratio * profile.score) < SCORE_TOLERANCE)
    converged &= ~off_top & np.isfinite(profile.score)
    return ratio, converged, boundary, profile


def _illinois(lo, hi, f_lo, f_hi, mom: _Moments, reml: bool):
    """Root of the score in ``[lo, hi]`` for features with ``f_lo > 0 > f_hi``.

    Other features get the midpoint (the caller replaces it). Iterates only on
    the features still active; stops at a relative bracket width of
    ``RATIO_RTOL``.
    """
    a, b, fa, fb = (np.array(v, dtype=float) for v in (lo, hi, f_lo, f_hi))
    x = 0.5 * (a + b)
    kept = np.zeros(a.size, dtype=int)  # -1: b moved last time, +1: a moved last time
    active = np.flatnonzero((fa > 0) & (fb < 0))
    for _ in range(MAX_REFINEMENTS):
        if active.size == 0:
            break
        i = active
        x[i] = (a[i] * fb[i] - b[i] * fa[i]) / (fb[i] - fa[i])
        fx = _profile(x[i], _subset(mom, i), reml, loglik=False).score
        move_b = fx < 0
        ib, ia = i[move_b], i[~move_b]
        b[ib], fb[ib] = x[ib], fx[move_b]
        fa[ib[kept[ib] == -1]] *= 0.5  # Illinois: halve the end that stays put
        a[ia], fa[ia] = x[ia], fx[~move_b]
        fb[ia[kept[ia] == 1]] *= 0.5
        kept[ib], kept[ia] = -1, 1
        done = (b[i] - a[i] <= RATIO_RTOL * b[i]) | (fx == 0) | ~np.isfinite(fx)
        active = i[~done]
    return x


def _observed_covariance(ratio, prof: _Profile, mom: _Moments, reml: bool):
    """Inverse observed information of (beta, lambda), profiled over sigma2.

    Notes
    -----
    With :math:`a = f`, :math:`g_s = \\sum_{g\\in s}\\tilde x_g\\tilde r_g`,
    :math:`R_s = \\sum_{g\\in s}\\tilde r_g^2`, :math:`w_s' = -m_s w_s^2` and
    :math:`w_s'' = 2 m_s^2 w_s^3`, the Hessian of :math:`\\ell(\\beta, \\lambda)`
    at the optimum is

    .. math::

        H_{\\beta\\beta} = -aA/Q,\\quad
        H_{\\beta\\lambda} = -\\tfrac aQ\\sum_s m_s w_s^2 g_s,\\quad
        H_{\\lambda\\lambda} = -\\tfrac a2\\left(\\tfrac{Q''}{Q} - \\tfrac{Q'^2}{Q^2}\\right)
        + \\tfrac12\\sum_s G_s m_s^2 w_s^2
        \\;[+\\tfrac12\\operatorname{tr}(A^{-1}A'A^{-1}A' - A^{-1}A'')],

    :math:`Q' = \\sum_s w_s' R_s`, :math:`Q'' = \\sum_s w_s'' R_s`,
    :math:`A' = \\sum_s w_s' B_s`, :math:`A'' = \\sum_s w_s'' B_s`; the REML
    term in brackets. This is the matrix ``MixedLM.hessian`` forms, whose
    inverse gives statsmodels' standard errors.
    """
    S, k = mom.m.size, mom.k
    p = ratio.size
    fac = mom.n - k if reml else mom.n
    w, Q = prof.w, prof.Q
    d1 = -mom.m[:, None] * w**2
    d2 = 2.0 * mom.m[:, None] ** 2 * w**3
    g = mom.C - np.einsum("skl,pl->spk", mom.B, prof.beta)  # (S, p, k)

    A = np.linalg.inv(prof.Ainv)
    h_bb = -fac * A / Q[:, None, None]
    h_bl = fac / Q[:, None] * np.einsum("sp,spk->pk", d1, g)  # = -(a/Q) sum m w^2 g
    q1 = np.einsum("sp,sp->p", d1, prof.R)
    q2 = np.einsum("sp,sp->p", d2, prof.R)
    h_ll = -fac / 2.0 * (q2 / Q - q1**2 / Q**2) + (mom.G * mom.m**2) @ w**2 / 2.0
    if reml:
        A1 = (d1.T @ mom.B.reshape(S, k * k)).reshape(p, k, k)
        A2 = (d2.T @ mom.B.reshape(S, k * k)).reshape(p, k, k)
        M1 = np.matmul(prof.Ainv, A1)
        h_ll += 0.5 * (
            np.einsum("pij,pji->p", M1, M1) - np.einsum("pij,pji->p", prof.Ainv, A2)
        )

    H = np.empty((p, k + 1, k + 1))
    H[:, :k, :k] = h_bb
    H[:, :k, k] = h_bl
    H[:, k, :k] = h_bl
    H[:, k, k] = h_ll
    return np.linalg.inv(-H)[:, :k, :k]
