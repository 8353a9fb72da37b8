"""Two nested random intercepts (household within site) fitted to every feature at once.

Model, for every feature ``j`` (a column of ``Y``)::

    y_j = X beta_j + Z_h u_j + Z_s v_j + e_j,
    u_j ~ N(0, sigma2_j lambda_h,j I),  v_j ~ N(0, sigma2_j lambda_s,j I),
    e_j ~ N(0, sigma2_j I),

with one random intercept per household (``groups``) and one per site
(``clusters``); every household lies inside one site. This is the iMSMS
consortium's ``lmer(y ~ status + covariates + (1 | household) + (1 | site))``.
Estimates are REML (default) or ML and agree with lme4 (live test in
``tests/test_models_nested_model.py``); standard errors are lme4's
``vcov``, :math:`\\hat\\sigma^2 (X^\\top V^{-1} X)^{-1}`, and tests are Wald z
tests (lmerTest's Satterthwaite t has hundreds of degrees of freedom in a
cohort of iMSMS size, so the two agree to the reported precision).

How it is fast: the household Helmert rotation of
:mod:`workflow_scripts.models.group_rotation` diagonalises the household
part of :math:`V`; the site part is a rank-one update per site, removed by the
Sherman-Morrison formula. All data enter through a few sums per (site,
household size) class computed once, so one likelihood evaluation for all
``p`` features costs :math:`O(p(Ck^2 + Sk^2 + k^3))` for ``C`` classes and
``S`` sites, independent of the number of participants, and the two variance
ratios are optimised for every feature simultaneously (vectorised grid search
then damped Newton steps), never in a Python loop over features.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .group_rotation import group_structure, helmert_rotate
from .mixed_model import MixedModelResult, check_inputs, coordinate_grid_start, newton_update, ols_residuals, with_variation

#: Variance-ratio grid (lambda) used to bracket the maximum in each coordinate.
RATIO_GRID = np.concatenate([[0.0], 10.0 ** np.arange(-4.0, 3.0 + 1e-9, 0.5)])
#: Newton iterations at most.
MAX_NEWTON = 60
#: Stop when no coordinate of sqrt(lambda) moves by more than this.
THETA_TOL = 1e-9
#: A maximum at sqrt(lambda) above this is a vanishing residual variance: not converged.
THETA_MAX = 1e3


@dataclass(frozen=True)
class NestedResult(MixedModelResult):
    """:class:`~workflow_scripts.models.mixed_model.MixedModelResult` plus the site part.

    ``group_var``/``ratio`` describe the household intercept; ``cluster_var``
    and ``cluster_ratio`` the site intercept (``boundary`` is True where either
    variance is 0).
    """

    cluster_var: np.ndarray = None
    cluster_ratio: np.ndarray = None


@dataclass(frozen=True)
class _Moments:
    """Sums over the rotated rows: within rows, and between rows per (site, size) class."""

    A0: np.ndarray  # (k, k)
    c0: np.ndarray  # (p, k)
    q0: np.ndarray  # (p,)
    B: np.ndarray  # (C, k, k)  sum of xb xb'
    Cm: np.ndarray  # (C, p, k) sum of eb xb'
    q: np.ndarray  # (C, p)    sum of eb^2
    U: np.ndarray  # (C, k)    sum over households of the x row sums
    V: np.ndarray  # (C, p)    sum over households of the e row sums
    m: np.ndarray  # (C,) household size of the class
    G: np.ndarray  # (C,) households in the class
    onehot: np.ndarray  # (S, C) 1 where the class belongs to the site
    n_sites: int
    n: int
    k: int


def fit_nested_random_intercepts(Y, X, groups, clusters, reml: bool = True) -> NestedResult:
    """Fit ``y_j = X beta_j + u_household + v_site + e`` to every column of ``Y``.

    Parameters
    ----------
    Y : array_like or DataFrame, shape (n, p)
        Responses, one column per feature; no missing values.
    X : array_like or DataFrame, shape (n, k)
        Fixed effects with an intercept and full column rank (no site dummies:
        site is the random effect here).
    groups : array_like, shape (n,)
        Household of every row (unpaired participants: their own label).
    clusters : array_like, shape (n,)
        Site of every row; every household must lie in one site.
    reml : bool, default True

    Returns
    -------
    NestedResult
        ``beta``, ``se``, ``stat``, ``pvalue`` (k, p) with Wald z tests;
        ``group_var``/``ratio`` (household), ``cluster_var``/``cluster_ratio``
        (site), ``sigma2``, ``loglik`` (lme4's ``logLik``), ``converged``,
        ``boundary``.

    Notes
    -----
    Write :math:`V = D + \\lambda_s \\sum_s 1_s 1_s^\\top` with the household
    part :math:`D = I + \\lambda_h Z_h Z_h^\\top`. In Helmert coordinates
    :math:`D` is diagonal (1 on within rows, :math:`1 + \\lambda_h m_g` on the
    between row of household :math:`g`), and for site :math:`s`
    (Sherman-Morrison)

    .. math::

        V_s^{-1} = D_s^{-1} - \\gamma_s D_s^{-1} 1 1^\\top D_s^{-1},\\quad
        \\gamma_s = \\frac{\\lambda_s}{1 + \\lambda_s t_s},\\quad
        t_s = \\sum_{g \\in s} \\frac{m_g}{1 + \\lambda_h m_g},

    so :math:`A = X^\\top V^{-1}X = X^\\top D^{-1} X - \\sum_s \\gamma_s u_s u_s^\\top`
    with :math:`u_s = \\sum_{g\\in s} X_g^\\top 1/(1 + \\lambda_h m_g)`, likewise
    :math:`X^\\top V^{-1} y` and :math:`y^\\top V^{-1} y`, and
    :math:`\\log|V| = \\sum_g \\log(1 + \\lambda_h m_g) + \\sum_s \\log(1 + \\lambda_s t_s)`.
    The profiled (RE)ML log-likelihood is then, with :math:`f = n - k` (REML)
    or :math:`n` (ML) and :math:`Q = y^\\top V^{-1} y - b^\\top A^{-1} b`,

    .. math::

        \\ell = -\\tfrac f2 \\left[\\log \\tfrac{2\\pi Q}{f} + 1\\right]
        - \\tfrac12 \\log|V| \\; [-\\tfrac12 \\log|A| \\text{ for REML}],

    maximised over :math:`\\theta = (\\sqrt{\\lambda_h}, \\sqrt{\\lambda_s})`
    (lme4's relative covariance factors): a grid over both ratios, then
    damped Newton steps on finite-difference derivatives with a line search
    (:math:`\\ell` is even in each :math:`\\theta`, so the boundary
    :math:`\\lambda = 0` needs no constraint). :math:`\\hat\\sigma^2 = Q/f`.

    References
    ----------
    .. [1] Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting
       linear mixed-effects models using lme4. *J. Statistical Software*
       67(1), 1-48 (profiled REML criterion, relative covariance factors).
    .. [2] Searle, S. R., Casella, G. & McCulloch, C. E. (1992). *Variance
       Components*, ch. 6 (two-way nested classification). Wiley.
    .. [3] Sherman, J. & Morrison, W. J. (1950). Adjustment of an inverse
       matrix corresponding to a change in one element of a given matrix.
       *Ann. Math. Statist.* 21(1), 124-127.
    .. [4] iMSMS Consortium (2022). Gut microbiome of multiple sclerosis
       patients and paired household healthy controls reveal associations
       with disease risk and course. *Cell* 185(19), 3467-3486.
    """
    Ya, Xa, columns, features = check_inputs(Y, X)
    n, k = Xa.shape
    groups = _labels(groups, n, "groups")
    clusters = _labels(clusters, n, "clusters")
    structure = group_structure(groups)
    site_codes, site_names = pd.factorize(pd.Series(clusters), sort=True)
    sorted_sites = site_codes[structure.order]
    starts = np.concatenate([[0], np.cumsum(structure.sizes)[:-1]])
    household_site = sorted_sites[starts]
    if (sorted_sites != household_site[structure.group]).any():
        raise ValueError(
            "some households span two sites; the household-within-site model needs every "
            "household in one site (fix the participants table or use site as a fixed effect)"
        )
    if site_names.size < 2:
        raise ValueError("one site only: the site variance is not identifiable; use fit_random_intercept")

    p = Ya.shape[1]
    beta_ols, resid = ols_residuals(Ya, Xa)
    fitable = with_variation(Ya, resid)
    out = {
        "beta": np.full((k, p), np.nan),
        "se": np.full((k, p), np.nan),
        "sigma2": np.full(p, np.nan),
        "ratio": np.full(p, np.nan),
        "cluster_ratio": np.full(p, np.nan),
        "loglik": np.full(p, np.nan),
        "converged": np.zeros(p, dtype=bool),
        "boundary": np.zeros(p, dtype=bool),
    }
    if fitable.any():
        mom = _moments(resid[:, fitable], Xa, structure, household_site, site_names.size)
        theta, converged = _maximise(mom, reml)
        lam = theta**2
        fit = _evaluate(lam, mom, reml, full=True)
        fac = n - k if reml else n
        sigma2 = fit["Q"] / fac
        var = sigma2[:, None] * np.diagonal(np.linalg.inv(fit["A"]), axis1=1, axis2=2)
        out["beta"][:, fitable] = beta_ols[:, fitable] + fit["beta"].T
        out["se"][:, fitable] = np.sqrt(np.where(var >= 0, var, np.nan)).T
        out["sigma2"][fitable] = sigma2
        out["ratio"][fitable] = lam[:, 0]
        out["cluster_ratio"][fitable] = lam[:, 1]
        out["loglik"][fitable] = fit["loglik"]
        out["converged"][fitable] = converged
        out["boundary"][fitable] = (lam == 0).any(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = out["beta"] / out["se"]
    return NestedResult(
        beta=out["beta"],
        se=out["se"],
        stat=stat,
        pvalue=2.0 * ndtr(-np.abs(stat)),
        sigma2=out["sigma2"],
        group_var=out["sigma2"] * out["ratio"],
        ratio=out["ratio"],
        loglik=out["loglik"],
        converged=out["converged"],
        boundary=out["boundary"],
        df=np.inf,
        method="REML" if reml else "ML",
        columns=columns,
        features=features,
        cluster_var=out["sigma2"] * out["cluster_ratio"],
        cluster_ratio=out["cluster_ratio"],
    )


# ---------------------------------------------------------------------------
# Inputs and moments


def _labels(values, n, name):
    values = np.asarray(values, dtype=object)
    if values.shape != (n,):
        raise ValueError(f"{name} has {values.size} labels but Y has {n} rows; pass one label per row")
    if pd.isna(pd.Series(values)).any():
        raise ValueError(f"{name} contains missing labels; drop those rows or give them a label")
    return values


def _moments(E, X, structure, household_site, n_sites) -> _Moments:
    Xb, Xw = helmert_rotate(X, structure)
    Eb, Ew = helmert_rotate(E, structure)
    sizes = structure.sizes
    key = household_site * (sizes.max() + 1) + sizes
    classes, cls = np.unique(key, return_inverse=True)
    root = np.sqrt(sizes)[:, None]
    C = classes.size
    B = np.stack([Xb[cls == c].T @ Xb[cls == c] for c in range(C)])
    Cm = np.stack([Eb[cls == c].T @ Xb[cls == c] for c in range(C)])
    q = np.stack([np.einsum("ij,ij->j", Eb[cls == c], Eb[cls == c]) for c in range(C)])
    U = np.stack([(root[cls == c] * Xb[cls == c]).sum(axis=0) for c in range(C)])
    V = np.stack([(root[cls == c] * Eb[cls == c]).sum(axis=0) for c in range(C)])
    site = classes // (sizes.max() + 1)
    onehot = np.zeros((n_sites, C))
    onehot[site, np.arange(C)] = 1.0
    return _Moments(
        A0=Xw.T @ Xw,
        c0=Ew.T @ Xw,
        q0=np.einsum("ij,ij->j", Ew, Ew),
        B=B,
        Cm=Cm,
        q=q,
        U=U,
        V=V,
        m=(classes % (sizes.max() + 1)).astype(float),
        G=np.bincount(cls).astype(float),
        onehot=onehot,
        n_sites=n_sites,
        n=structure.n_rows,
        k=X.shape[1],
    )


# ---------------------------------------------------------------------------
# Likelihood


def _evaluate(lam, mom: _Moments, reml: bool, full: bool = False):
    """Profiled log-likelihood at ratios ``lam`` (p, 2) for every feature.

    With ``full``, also the GLS estimates (relative to the OLS fit), ``Q`` and ``A``.
    """
    k, S, C = mom.k, mom.n_sites, mom.m.size
    lam_h, lam_s = lam[:, 0], lam[:, 1]
    p = lam.shape[0]
    w = 1.0 / (1.0 + mom.m[:, None] * lam_h[None, :])  # (C, p)
    A = mom.A0 + (w.T @ mom.B.reshape(C, k * k)).reshape(p, k, k)
    b = mom.c0 + np.einsum("cp,cpk->pk", w, mom.Cm)
    yy = mom.q0 + np.einsum("cp,cp->p", w, mom.q)
    # per-site sums of D^-1 1: onto X (u), onto y (v), and 1' D^-1 1 (t)
    site_w = mom.onehot[None, :, :] * w.T[:, None, :]  # (p, S, C)
    u = site_w @ mom.U  # (p, S, k)
    v = np.einsum("psc,cp->ps", site_w, mom.V)
    t = site_w @ (mom.m * mom.G)  # (p, S)
    gamma = lam_s[:, None] / (1.0 + lam_s[:, None] * t)  # (p, S)
    gu = gamma[:, :, None] * u
    A = A - np.matmul(gu.transpose(0, 2, 1), u)
    b = b - np.einsum("ps,psk->pk", v, gu)
    yy = yy - np.einsum("ps,ps->p", gamma, v * v)
    beta = np.linalg.solve(A, b[:, :, None])[:, :, 0]
    Q = yy - np.einsum("pk,pk->p", b, beta)
    fac = mom.n - k if reml else mom.n
    log_det_v = mom.G @ np.log1p(mom.m[:, None] * lam_h[None, :]) + np.log1p(lam_s[:, None] * t).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = -fac / 2.0 * (np.log(2.0 * np.pi * Q / fac) + 1.0) - log_det_v / 2.0
        if reml:
            loglik -= np.linalg.slogdet(A)[1] / 2.0
    loglik = np.where(Q > 0, loglik, -np.inf)
    if not full:
        return loglik
    return {"loglik": loglik, "beta": beta, "Q": Q, "A": A}


def _grid_start(mom: _Moments, reml: bool):
    """A starting point per feature: the ratio grid searched one coordinate at a time.

    Household ratio with no site variance, then the site ratio at that
    household ratio, then the household ratio again: three passes over
    :data:`RATIO_GRID` instead of its square. The Newton steps that follow
    refine both ratios jointly.
    """
    return coordinate_grid_start(lambda lam: _evaluate(lam, mom, reml), mom.q0.size, 2, (0, 1, 0), RATIO_GRID)


def _maximise(mom: _Moments, reml: bool):
    """sqrt(lambda) maximising the profiled likelihood, for every feature at once.

    Returns
    -------
    theta : ndarray (p, 2)
        Non-negative (household, site) relative standard deviations.
    converged : ndarray of bool (p,)
    """
    p = mom.q0.size
    theta, current = _grid_start(mom, reml)
    active = np.ones(p, dtype=bool)
    converged = np.zeros(p, dtype=bool)
    for _ in range(MAX_NEWTON):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        sub = _restrict(mom, idx)
        th = theta[idx]
        stencil = _restrict(sub, np.tile(np.arange(idx.size), 8))

        def f_many(points, stencil=stencil):
            return _evaluate(np.vstack(points) ** 2, stencil, reml).reshape(len(points), -1)

        g, H = _derivatives(f_many, th, current[idx])
        step = _newton_step(g, H, th)
        done = newton_update(theta, current, idx, step,
                             lambda cand, j, sub=sub: _evaluate(cand**2, _restrict(sub, j), reml), THETA_TOL)
        converged[idx[done]] = True
        active[idx[done]] = False
    theta = np.abs(theta)
    converged &= np.isfinite(current) & (theta.max(axis=1) < THETA_MAX)
    return theta, converged


def _restrict(mom: _Moments, idx) -> _Moments:
    """The moments of some features only."""
    return replace(mom, c0=mom.c0[idx], q0=mom.q0[idx], Cm=mom.Cm[:, idx], q=mom.q[:, idx], V=mom.V[:, idx])


def _derivatives(f_many, theta, f0):
    """Central finite-difference gradient and Hessian at ``theta`` (p, 2).

    ``f_many(points)`` evaluates the log-likelihood at a list of (p, 2)
    arrays in one call and returns (len(points), p).
    """
    h = 1e-4 * np.maximum(np.abs(theta), 1e-2)
    e0 = np.column_stack([h[:, 0], np.zeros(len(h))])
    e1 = np.column_stack([np.zeros(len(h)), h[:, 1]])
    plus0, minus0, plus1, minus1, pp, pm, mp, mm = f_many([
        theta + e0, theta - e0, theta + e1, theta - e1,
        theta + e0 + e1, theta + e0 - e1, theta - e0 + e1, theta - e0 - e1])
    g = np.column_stack([(plus0 - minus0) / (2 * h[:, 0]), (plus1 - minus1) / (2 * h[:, 1])])
    H = np.empty((len(h), 2, 2))
    H[:, 0, 0] = (plus0 - 2 * f0 + minus0) / h[:, 0] ** 2
    H[:, 1, 1] = (plus1 - 2 * f0 + minus1) / h[:, 1] ** 2
    H[:, 0, 1] = H[:, 1, 0] = (pp - pm - mp + mm) / (4 * h[:, 0] * h[:, 1])
    return g, H


def _newton_step(g, H, theta):
    """Newton step for a maximum, damped where the Hessian is not negative definite.

    A coordinate sitting at sqrt(lambda) = 0 with positive curvature (the boundary is a
    minimum along it) is nudged away from 0 so the ascent can leave the boundary.
    """
    top = np.linalg.eigvalsh(H)[:, -1]
    shift = np.where(top >= 0, top + 1e-3 * (1.0 + np.abs(H).max(axis=(1, 2))), 0.0)
    M = H - shift[:, None, None] * np.eye(2)
    step = -np.linalg.solve(M, g[:, :, None])[:, :, 0]
    for i in range(2):
        stuck = (np.abs(theta[:, i]) < 1e-8) & (H[:, i, i] > 0)
        step[stuck, i] = np.sqrt(RATIO_GRID[1])
    return step
