"""Repeated samples: participant within household within site, fitted to every feature at once.

Model, for every feature ``j`` (a column of ``Y``; one row per stool sample)::

    y_j = X beta_j + Z_p a_j + Z_h u_j + Z_s v_j + e_j,
    a_j ~ N(0, sigma2_j lambda_p,j I),  u_j ~ N(0, sigma2_j lambda_h,j I),
    v_j ~ N(0, sigma2_j lambda_s,j I),  e_j ~ N(0, sigma2_j I),

with one random intercept per participant, per household (optional) and per
site (optional), each nested in the next: lme4's
``lmer(y ~ X + (1 | site/household/participant))``. Estimates are REML
(default) or ML; standard errors are lme4's ``vcov``,
:math:`\\hat\\sigma^2 (X^\\top V^{-1} X)^{-1}`, and tests are Wald z tests.

Call it with one label per row::

    fit = fit_repeated(clr, X, participants=sample_participant,
                       households=sample_household, sites=None)
    test_term(fit, "status")          # effect, se, stat, pvalue per feature
    fit.icc                           # within-participant correlation per feature

A level with nothing to separate it from the level below (no participant with
two samples, fewer than :data:`MIN_SHARED_HOUSEHOLDS` households with two
participants, fewer than two sites) is left out of the model and out of
``levels``; with no level left the fit is OLS. The participant level stays in
with a single repeated participant: leaving it out would count one person's
samples as independent people.

How it is fast: a Helmert rotation inside each participant makes the
participant part of :math:`V` diagonal (:mod:`.group_rotation`); the household
part is then a rank-one update per household and the site part a rank-one
update per site (Sherman-Morrison, twice). A household enters only through its
*composition* (how many participants with how many samples), so all data are
reduced once to sums per sample count, per composition and per (site,
composition); a likelihood evaluation for all ``p`` features then costs
:math:`O(p(Tk^2 + Fk + k^3))` for ``T`` (composition, sample count, sample
count) triples and ``F`` (site, composition, sample count) triples, independent
of the number of samples, and the variance ratios of all features are optimised
together (a grid, then damped Newton steps), never in a loop over features.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .group_rotation import group_structure, helmert_rotate
from .mixed_model import MixedModelResult, check_inputs, coordinate_grid_start, newton_update, fit_ols, ols_residuals, with_variation

#: The random intercepts, innermost first.
LEVELS = ("participant", "household", "site")
#: Variance-ratio grid (lambda) used to bracket the maximum in each coordinate.
RATIO_GRID = np.concatenate([[0.0], 10.0 ** np.arange(-4.0, 3.0 + 1e-9, 0.5)])
#: Newton iterations at most.
MAX_NEWTON = 60
#: Stop when no coordinate of sqrt(lambda) moves by more than this (relative).
THETA_TOL = 1e-9
#: A maximum at sqrt(lambda) above this is a vanishing residual variance: not converged.
THETA_MAX = 1e3
#: sqrt(lambda) below this is tried at exactly 0 (the boundary) after the ascent.
BOUNDARY_THETA = 1e-4
#: The household level enters only with at least this many households of two or more
#: participants: a variance from a handful of households is not estimated, it is guessed, and
#: with 2-5 such households among unpaired people the Wald tests of a status that varies within
#: households rejected 6.6-7.2% of true nulls at 5% (3,000 simulated features each), 5.3-6.1% with
#: 10 or 20 (benchmarks/README.md, "Repeated samples").
MIN_SHARED_HOUSEHOLDS = 10


@dataclass(frozen=True)
class RepeatedResult(MixedModelResult):
    """:class:`~workflow_scripts.models.mixed_model.MixedModelResult` with three variance components.

    ``group_var``/``ratio`` are the participant intercept (as in the parent
    class, where the group is the participant); ``household_var``/
    ``household_ratio`` and ``site_var``/``site_ratio`` the outer levels (0
    where a level is not in the model). ``boundary`` is True where a fitted
    level's variance is 0.

    Attributes
    ----------
    levels : tuple of str
        The random intercepts in the model, among ``participant``,
        ``household``, ``site`` (empty: the fit is OLS).
    n_participants, n_households, n_sites : int
    """

    household_var: np.ndarray = None
    household_ratio: np.ndarray = None
    site_var: np.ndarray = None
    site_ratio: np.ndarray = None
    levels: tuple = ()
    n_participants: int = 0
    n_households: int = 0
    n_sites: int = 0

    @property
    def total_var(self) -> np.ndarray:
        """Variance of one sample given the fixed effects: every component plus the residual."""
        return self.sigma2 + self.group_var + self.household_var + self.site_var

    @property
    def icc(self) -> np.ndarray:
        """Correlation of two samples of one participant: 1 - residual / total variance.

        The share of a sample's variance (given the fixed effects) that its
        participant's other samples share: the participant, household and site
        intercepts together.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 - self.sigma2 / self.total_var

    @property
    def participant_share(self) -> np.ndarray:
        """The participant intercept's share of the total variance alone."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.group_var / self.total_var


def fit_repeated(Y, X, participants, households=None, sites=None, reml: bool = True) -> RepeatedResult:
    """Fit ``y_j = X beta_j + a_participant + u_household + v_site + e`` to every column of ``Y``.

    Parameters
    ----------
    Y : array_like or DataFrame, shape (n, p)
        Responses, one row per sample and one column per feature (e.g. CLR
        abundances); no missing values.
    X : array_like or DataFrame, shape (n, k)
        Fixed effects shared by all features, one row per sample (a
        participant's rows repeat their values), with an intercept and full
        column rank. With ``sites``, no site dummies: site is random then.
    participants : array_like, shape (n,)
        Participant of every row.
    households : array_like, shape (n,), optional
        Household of every row (unpaired participants: a label of their own);
        every participant must lie in one household. None: no household level.
    sites : array_like, shape (n,), optional
        Site of every row for a random site intercept; every household (or
        participant) must lie in one site. None: no site level (give site as
        fixed effects in ``X`` instead).
    reml : bool, default True

    Returns
    -------
    RepeatedResult
        ``beta``, ``se``, ``stat``, ``pvalue`` (k, p) with Wald z tests
        (``df`` infinite; with no random level, OLS with t tests on ``n - k``
        degrees of freedom), the variance components, ``icc``, ``loglik``
        (lme4's ``logLik``), ``converged``, ``levels``.

    Notes
    -----
    Write :math:`V = P + \\lambda_h Z_h Z_h^\\top + \\lambda_s Z_s Z_s^\\top` with
    the participant part :math:`P = I + \\lambda_p Z_p Z_p^\\top`. For a
    participant with :math:`m` samples and column sums :math:`s = 1^\\top X_i`,
    the Helmert rotation makes :math:`P_i` diagonal (:math:`w_m = 1/(1 +
    \\lambda_p m)` on the between row), and :math:`1^\\top P_i^{-1} 1 = m w_m`,
    :math:`1^\\top P_i^{-1} X_i = w_m s`. A household :math:`h` adds a rank-one
    term; by Sherman-Morrison,

    .. math::

        D_h^{-1} = P_h^{-1} - \\gamma_h P_h^{-1}1 1^\\top P_h^{-1},\\quad
        \\gamma_h = \\frac{\\lambda_h}{1 + \\lambda_h T_h},\\quad
        T_h = \\sum_{i \\in h} m_i w_{m_i},

    so :math:`X^\\top D^{-1} X = X^\\top P^{-1} X - \\sum_h \\gamma_h U_h U_h^\\top`
    with :math:`U_h = \\sum_{i\\in h} w_{m_i} s_i`, and likewise for
    :math:`X^\\top D^{-1} y` and :math:`y^\\top D^{-1} y`. :math:`T_h` and
    :math:`\\gamma_h` depend on the household's composition only, and
    :math:`\\sum_{h \\in c}U_hU_h^\\top = \\sum_{a,b} w_a w_b \\sum_{h\\in c}
    S_{h,a}S_{h,b}^\\top` with :math:`S_{h,a}` the sum of :math:`s_i` over
    the household's participants with :math:`a` samples: these sums per
    composition :math:`c` are formed once. A site is a rank-one update of
    :math:`D` in the same way, with :math:`1^\\top D_h^{-1} 1 = T_h / (1 +
    \\lambda_h T_h)` and :math:`1^\\top D_h^{-1} X_h = U_h / (1 + \\lambda_h T_h)`;
    and

    .. math::

        \\log|V| = \\sum_i \\log(1 + \\lambda_p m_i) + \\sum_h \\log(1 + \\lambda_h T_h)
        + \\sum_s \\log(1 + \\lambda_s T_s).

    With :math:`A = X^\\top V^{-1}X`, :math:`b = X^\\top V^{-1} y`,
    :math:`Q = y^\\top V^{-1} y - b^\\top A^{-1} b` and :math:`f = n - k`
    (REML) or :math:`n` (ML), the profiled log-likelihood

    .. math::

        \\ell = -\\tfrac f2 \\left[\\log \\tfrac{2\\pi Q}{f} + 1\\right]
        - \\tfrac12 \\log|V| \\; [-\\tfrac12 \\log|A| \\text{ for REML}]

    is maximised over :math:`\\theta = \\sqrt{\\lambda}` of the levels in the
    model (lme4's relative covariance factors): a grid searched one
    coordinate at a time, then damped Newton steps on finite-difference
    derivatives with a line search (:math:`\\ell` is even in each
    :math:`\\theta`, so the boundary :math:`\\lambda = 0` needs no
    constraint). :math:`\\hat\\sigma^2 = Q/f`.

    References
    ----------
    .. [1] Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting
       linear mixed-effects models using lme4. *J. Statistical Software*
       67(1), 1-48.
    .. [2] Searle, S. R., Casella, G. & McCulloch, C. E. (1992). *Variance
       Components*, ch. 6 (nested classifications). Wiley.
    .. [3] Sherman, J. & Morrison, W. J. (1950). Adjustment of an inverse
       matrix corresponding to a change in one element of a given matrix.
       *Ann. Math. Statist.* 21(1), 124-127.
    """
    Ya, Xa, columns, features = check_inputs(Y, X)
    n, k = Xa.shape
    part = _codes(participants, n, "participants")
    house = _codes(households, n, "households") if households is not None else part
    site = _codes(sites, n, "sites") if sites is not None else np.zeros(n, dtype=int)
    _check_nesting(part, house, "participant", "household")
    _check_nesting(house, site, "household" if households is not None else "participant", "site")
    layout = _layout(part, house, site)
    free = _identifiable(layout, households is not None, sites is not None)
    counts = {"n_participants": layout.n_participants, "n_households": layout.n_households,
              "n_sites": layout.n_sites}
    if not free.any():
        return _as_repeated(fit_ols(Ya, Xa), columns, features, counts)

    p = Ya.shape[1]
    beta_ols, resid = ols_residuals(Ya, Xa)
    fitable = with_variation(Ya, resid)
    out = {name: np.full(p, np.nan) for name in ("sigma2", "loglik")}
    out["ratio"] = np.full((p, 3), np.nan)
    out["beta"], out["se"] = np.full((k, p), np.nan), np.full((k, p), np.nan)
    out["converged"] = np.zeros(p, dtype=bool)
    if fitable.any():
        mom = _moments(resid[:, fitable], Xa, layout)
        theta, converged = _maximise(mom, free, reml)
        lam = theta**2
        fit = _evaluate(lam, mom, reml, full=True)
        sigma2 = fit["Q"] / (n - k if reml else n)
        var = sigma2[:, None] * np.diagonal(np.linalg.inv(fit["A"]), axis1=1, axis2=2)
        out["beta"][:, fitable] = beta_ols[:, fitable] + fit["beta"].T
        out["se"][:, fitable] = np.sqrt(np.where(var >= 0, var, np.nan)).T
        out["sigma2"][fitable] = sigma2
        out["ratio"][fitable] = lam
        out["loglik"][fitable] = fit["loglik"]
        out["converged"][fitable] = converged
    ratio = out["ratio"]
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = out["beta"] / out["se"]
    return RepeatedResult(
        beta=out["beta"], se=out["se"], stat=stat, pvalue=2.0 * ndtr(-np.abs(stat)),
        sigma2=out["sigma2"], group_var=out["sigma2"] * ratio[:, 0], ratio=ratio[:, 0],
        loglik=out["loglik"], converged=out["converged"], boundary=(ratio[:, free] == 0).any(axis=1),
        df=np.inf, method="REML" if reml else "ML", columns=columns, features=features,
        household_var=out["sigma2"] * ratio[:, 1], household_ratio=ratio[:, 1],
        site_var=out["sigma2"] * ratio[:, 2], site_ratio=ratio[:, 2],
        levels=tuple(name for name, on in zip(LEVELS, free) if on), **counts,
    )


def _as_repeated(fit: MixedModelResult, columns, features, counts) -> RepeatedResult:
    zeros = np.zeros_like(fit.sigma2)
    fields = {name: getattr(fit, name) for name in MixedModelResult.__dataclass_fields__}
    fields.update(columns=columns, features=features)
    return RepeatedResult(**fields, household_var=zeros, household_ratio=zeros, site_var=zeros,
                          site_ratio=zeros, levels=(), **counts)


# ---------------------------------------------------------------------------
# Inputs and layout


def _codes(values, n, name) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    if values.shape != (n,):
        raise ValueError(f"{name} has {values.size} labels but Y has {n} rows; pass one label per row")
    if pd.isna(pd.Series(values)).any():
        raise ValueError(f"{name} contains missing labels; drop those rows or give them a label")
    return pd.factorize(pd.Series(values), sort=True)[0]


def _check_nesting(inner, outer, inner_name, outer_name) -> None:
    spread = pd.Series(outer).groupby(inner).nunique()
    if (spread > 1).any():
        raise ValueError(f"{int((spread > 1).sum())} {inner_name}(s) lie in more than one {outer_name}; "
                         f"each {inner_name} must lie in one {outer_name} (fix the labels, or leave the "
                         f"{outer_name} level out)")


@dataclass(frozen=True)
class _Layout:
    """How rows fall into participants, participants into households, households into sites."""

    structure: object  # GroupStructure of the participants (codes 0..P-1)
    size: np.ndarray  # (P,) samples per participant
    household: np.ndarray  # (P,) household code of each participant
    site: np.ndarray  # (H,) site code of each household
    n_participants: int
    n_households: int
    n_sites: int


def _layout(part, house, site) -> _Layout:
    structure = group_structure(part)
    first_row = structure.order[np.concatenate([[0], np.cumsum(structure.sizes)[:-1]])]
    household = house[first_row]
    P = structure.n_groups
    H = int(house.max()) + 1
    site_of_household = np.zeros(H, dtype=int)
    site_of_household[house] = site
    return _Layout(structure, structure.sizes, household, site_of_household, P, H, int(site.max()) + 1)


def _identifiable(layout: _Layout, households: bool, sites: bool) -> np.ndarray:
    """Which of the three levels can be told apart from the level below."""
    per_household = np.bincount(layout.household, minlength=layout.n_households)
    per_site = np.bincount(layout.site, minlength=layout.n_sites)
    return np.array([
        bool((layout.size > 1).any()),
        households and int((per_household > 1).sum()) >= MIN_SHARED_HOUSEHOLDS,
        sites and layout.n_sites > 1 and bool((per_site > 1).any()),
    ])


@dataclass(frozen=True)
class _Moments:
    """Sums of the rotated data, all the fit needs (``Y`` enters as OLS residuals ``E``).

    Within-participant rows (weight 1): ``A0, c0, q0``. Between rows by sample
    count ``a``: ``B, Cm, q``. Household compositions (``comp``: participants
    of each sample count; ``Hc`` households): pair sums ``MXX, MYX, MYY`` over
    the (composition, a, b) triples ``tc, ta, tb``. Site sums ``FX, FY`` over
    the (site, composition, a) triples ``fc, fa``, ordered by site
    (``f_start``), and ``Hsc`` households per (site, composition).
    """

    A0: np.ndarray
    c0: np.ndarray
    q0: np.ndarray
    a: np.ndarray  # (R,) sample counts
    Na: np.ndarray  # (R,) participants with that count
    B: np.ndarray  # (R, k, k)
    Cm: np.ndarray  # (R, p, k)
    q: np.ndarray  # (R, p)
    comp: np.ndarray  # (Cc, R)
    Hc: np.ndarray  # (Cc,)
    tc: np.ndarray
    ta: np.ndarray
    tb: np.ndarray
    MXX: np.ndarray  # (T, k, k)
    MYX: np.ndarray  # (T, p, k)
    MYY: np.ndarray  # (T, p)
    fc: np.ndarray
    fa: np.ndarray
    f_start: np.ndarray  # (S,) first triple of each site
    FX: np.ndarray  # (F, k)
    FY: np.ndarray  # (F, p)
    Hsc: np.ndarray  # (S, Cc)
    n: int
    k: int


def _moments(E, X, layout: _Layout) -> _Moments:
    structure = layout.structure
    Xb, Xw = helmert_rotate(X, structure)
    Eb, Ew = helmert_rotate(E, structure)
    root = np.sqrt(layout.size)[:, None]
    SX, SY = Xb * root, Eb * root  # column sums per participant
    a, cls = np.unique(layout.size, return_inverse=True)
    R = a.size
    B = np.stack([Xb[cls == r].T @ Xb[cls == r] for r in range(R)])
    Cm = np.stack([Eb[cls == r].T @ Xb[cls == r] for r in range(R)])
    q = np.stack([np.einsum("ij,ij->j", Eb[cls == r], Eb[cls == r]) for r in range(R)])

    # households: composition = participants per sample count; S_{h,a} = sums per count
    H = layout.n_households
    comp_h = np.zeros((H, R), dtype=int)
    np.add.at(comp_h, (layout.household, cls), 1)
    comps, comp_of = np.unique(comp_h, axis=0, return_inverse=True)
    comp_of = comp_of.ravel()
    ha = layout.household * R + cls  # (household, count) cell of each participant
    cells, cell_of = np.unique(ha, return_inverse=True)
    cell_h, cell_a = cells // R, cells % R
    CX = np.zeros((cells.size, X.shape[1]))
    CY = np.zeros((cells.size, E.shape[1]))
    np.add.at(CX, cell_of, SX)
    np.add.at(CY, cell_of, SY)
    triples, MXX, MYX, MYY = [], [], [], []
    for c in range(comps.shape[0]):
        present = np.flatnonzero(comps[c])
        for ia in present:
            rows_a = (comp_of[cell_h] == c) & (cell_a == ia)
            for ib in present:
                rows_b = (comp_of[cell_h] == c) & (cell_a == ib)
                # both lists are in household order, one cell per household of the composition
                xa, xb = CX[rows_a], CX[rows_b]
                ya, yb = CY[rows_a], CY[rows_b]
                triples.append((c, ia, ib))
                MXX.append(xa.T @ xb)
                MYX.append(ya.T @ xb)
                MYY.append(np.einsum("ij,ij->j", ya, yb))
    tc, ta, tb = (np.array(t) for t in zip(*triples))

    # sites: sums of S_{h,a} per (site, composition, count), ordered by site
    key = (layout.site[cell_h] * comps.shape[0] + comp_of[cell_h]) * R + cell_a
    fkeys, f_of = np.unique(key, return_inverse=True)
    FX = np.zeros((fkeys.size, X.shape[1]))
    FY = np.zeros((fkeys.size, E.shape[1]))
    np.add.at(FX, f_of, CX)
    np.add.at(FY, f_of, CY)
    f_site = fkeys // (comps.shape[0] * R)
    Hsc = np.zeros((layout.n_sites, comps.shape[0]))
    np.add.at(Hsc, (layout.site, comp_of), 1.0)
    return _Moments(
        A0=Xw.T @ Xw, c0=Ew.T @ Xw, q0=np.einsum("ij,ij->j", Ew, Ew),
        a=a.astype(float), Na=np.bincount(cls).astype(float), B=B, Cm=Cm, q=q,
        comp=comps.astype(float), Hc=np.bincount(comp_of, minlength=comps.shape[0]).astype(float),
        tc=tc, ta=ta, tb=tb, MXX=np.stack(MXX), MYX=np.stack(MYX), MYY=np.stack(MYY),
        fc=(fkeys // R) % comps.shape[0], fa=fkeys % R,
        f_start=np.searchsorted(f_site, np.arange(layout.n_sites)), FX=FX, FY=FY, Hsc=Hsc,
        n=structure.n_rows, k=X.shape[1],
    )


def _restrict(mom: _Moments, idx) -> _Moments:
    """The moments of some features only."""
    return replace(mom, c0=mom.c0[idx], q0=mom.q0[idx], Cm=mom.Cm[:, idx], q=mom.q[:, idx],
                   MYX=mom.MYX[:, idx], MYY=mom.MYY[:, idx], FY=mom.FY[:, idx])


# ---------------------------------------------------------------------------
# Likelihood


def _evaluate(lam, mom: _Moments, reml: bool, full: bool = False):
    """Profiled log-likelihood at ratios ``lam`` (p, 3) for every feature.

    With ``full``, also the GLS estimates (relative to the OLS fit), ``Q`` and ``A``.
    """
    k, R = mom.k, mom.a.size
    p = lam.shape[0]
    l_p, l_h, l_s = lam[:, 0], lam[:, 1], lam[:, 2]
    w = 1.0 / (1.0 + mom.a[:, None] * l_p[None, :])  # (R, p)
    A = mom.A0 + (w.T @ mom.B.reshape(R, k * k)).reshape(p, k, k)
    b = mom.c0 + np.einsum("rp,rpk->pk", w, mom.Cm)
    yy = mom.q0 + np.einsum("rp,rp->p", w, mom.q)
    log_det_v = mom.Na @ np.log1p(mom.a[:, None] * l_p[None, :])

    T_c = mom.comp @ (mom.a[:, None] * w)  # (Cc, p): 1' P_h^-1 1 per composition
    if np.any(l_h):
        gamma = l_h[None, :] / (1.0 + l_h[None, :] * T_c)
        coef = gamma[mom.tc] * w[mom.ta] * w[mom.tb]  # (T, p)
        A = A - (coef.T @ mom.MXX.reshape(-1, k * k)).reshape(p, k, k)
        b = b - np.einsum("tp,tpk->pk", coef, mom.MYX)
        yy = yy - np.einsum("tp,tp->p", coef, mom.MYY)
        log_det_v = log_det_v + mom.Hc @ np.log1p(l_h[None, :] * T_c)
    if np.any(l_s):
        shrink = 1.0 / (1.0 + l_h[None, :] * T_c)  # (Cc, p)
        e = w[mom.fa] * shrink[mom.fc]  # (F, p)
        U = np.add.reduceat(e[:, :, None] * mom.FX[:, None, :], mom.f_start, axis=0)  # (S, p, k)
        v = np.add.reduceat(e * mom.FY, mom.f_start, axis=0)  # (S, p)
        T_s = mom.Hsc @ (T_c * shrink)  # (S, p)
        g = l_s[None, :] / (1.0 + l_s[None, :] * T_s)
        gU = g[:, :, None] * U
        A = A - np.einsum("spk,spl->pkl", gU, U)
        b = b - np.einsum("sp,spk->pk", v, gU)
        yy = yy - np.einsum("sp,sp->p", g, v * v)
        log_det_v = log_det_v + np.log1p(l_s[None, :] * T_s).sum(axis=0)
    beta = np.linalg.solve(A, b[:, :, None])[:, :, 0]
    Q = yy - np.einsum("pk,pk->p", b, beta)
    fac = mom.n - k if reml else mom.n
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = -fac / 2.0 * (np.log(2.0 * np.pi * Q / fac) + 1.0) - log_det_v / 2.0
        if reml:
            loglik -= _log_det(A) / 2.0
    loglik = np.where(Q > 0, loglik, -np.inf)
    if not full:
        return loglik
    return {"loglik": loglik, "beta": beta, "Q": Q, "A": A}


def _log_det(A):
    """log|A| of symmetric positive definite matrices (p, k, k): Cholesky, three times faster than slogdet."""
    try:
        return 2.0 * np.log(np.diagonal(np.linalg.cholesky(A), axis1=1, axis2=2)).sum(axis=1)
    except np.linalg.LinAlgError:  # a matrix not numerically positive definite: the general route
        return np.linalg.slogdet(A)[1]


# ---------------------------------------------------------------------------
# Maximisation over sqrt(lambda) of the levels in the model


def _grid_start(mom: _Moments, axes, reml: bool):
    """A starting point per feature: :data:`RATIO_GRID` searched one coordinate at a time.

    Each free axis in turn, then all but the last again, so every ratio is
    revisited after the others have moved; the Newton steps that follow refine
    them jointly.
    """
    return coordinate_grid_start(lambda lam: _evaluate(lam, mom, reml), mom.q0.size, 3,
                                 list(axes) + list(axes[:-1]), RATIO_GRID)


def _maximise(mom: _Moments, free, reml: bool):
    """sqrt(lambda) (p, 3) maximising the profiled likelihood, and convergence, for every feature."""
    axes = np.flatnonzero(free)
    p = mom.q0.size
    theta, current = _grid_start(mom, axes, reml)
    active = np.ones(p, dtype=bool)
    converged = np.zeros(p, dtype=bool)
    for _ in range(MAX_NEWTON):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        sub = _restrict(mom, idx)
        th = theta[idx]

        def f(point, sub=sub):
            return _evaluate(point**2, sub, reml)

        g, H = _derivatives(f, th, current[idx], axes)
        step = np.zeros_like(th)
        step[:, axes] = _newton_step(g, H, th[:, axes])
        done = newton_update(theta, current, idx, step,
                             lambda cand, j, sub=sub: _evaluate(cand**2, _restrict(sub, j), reml), THETA_TOL)
        converged[idx[done]] = True
        active[idx[done]] = False
    theta = np.abs(theta)
    # A ratio the ascent left within rounding of 0 is the boundary: set it to exactly 0 when
    # that costs no likelihood, so ``boundary`` and the variances say so (as lme4 reports 0).
    for axis in axes:
        near = np.flatnonzero(theta[:, axis] < BOUNDARY_THETA)
        if near.size:
            trial = theta[near].copy()
            trial[:, axis] = 0.0
            ll = _evaluate(trial**2, _restrict(mom, near), reml)
            snap = ll >= current[near] - 1e-12 * np.abs(current[near])
            theta[near[snap], axis] = 0.0
            current[near[snap]] = np.maximum(current[near[snap]], ll[snap])
    converged &= np.isfinite(current) & (theta.max(axis=1) < THETA_MAX)
    return theta, converged


def _derivatives(f, theta, f0, axes):
    """Central finite-difference gradient (p, d) and Hessian (p, d, d) over the free ``axes``."""
    d = len(axes)
    h = 1e-4 * np.maximum(np.abs(theta[:, axes]), 1e-2)  # (p, d)

    def shifted(*moves):
        point = theta.copy()
        for i, sign in moves:
            point[:, axes[i]] += sign * h[:, i]
        return f(point)

    g = np.empty((len(theta), d))
    H = np.empty((len(theta), d, d))
    for i in range(d):
        plus, minus = shifted((i, 1)), shifted((i, -1))
        g[:, i] = (plus - minus) / (2 * h[:, i])
        H[:, i, i] = (plus - 2 * f0 + minus) / h[:, i] ** 2
        for j in range(i):
            pp, pm = shifted((i, 1), (j, 1)), shifted((i, 1), (j, -1))
            mp, mm = shifted((i, -1), (j, 1)), shifted((i, -1), (j, -1))
            H[:, i, j] = H[:, j, i] = (pp - pm - mp + mm) / (4 * h[:, i] * h[:, j])
    return g, H


def _newton_step(g, H, theta):
    """Newton step for a maximum, damped where the Hessian is not negative definite.

    A coordinate sitting at sqrt(lambda) = 0 with positive curvature (the
    boundary is a minimum along it) is nudged away from 0 so the ascent can
    leave the boundary.
    """
    d = g.shape[1]
    top = np.linalg.eigvalsh(H)[:, -1]
    shift = np.where(top >= 0, top + 1e-3 * (1.0 + np.abs(H).max(axis=(1, 2))), 0.0)
    M = H - shift[:, None, None] * np.eye(d)
    step = -np.linalg.solve(M, g[:, :, None])[:, :, 0]
    for i in range(d):
        stuck = (np.abs(theta[:, i]) < 1e-8) & (H[:, i, i] > 0)
        step[stuck, i] = np.sqrt(RATIO_GRID[1])
    return step
