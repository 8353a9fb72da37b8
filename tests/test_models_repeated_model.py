"""Participant within household within site: exact against lme4, a dense reference and closed forms.

References the fast fit must equal:
- lme4 ``lmer`` on the fixtures made by ``tests/fixtures/lme4/make_repeated_fixtures.R``
  (four nestings, REML and ML), and live when Rscript is installed;
- a slow, obvious dense-matrix fit written here (``dense_fit``);
- the ANOVA (closed-form) estimators of a balanced one-way and two-way nested design;
- statsmodels ``MixedLM`` with a variance component (participant within household);
- the engine's own special cases: the household-within-site model and the one-intercept model.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from workflow_scripts.models.mixed_model import fit_random_intercept, test_term
from workflow_scripts.models.nested_model import fit_nested_random_intercepts
from workflow_scripts.models.repeated_model import fit_repeated

from conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "lme4"
FITS = [("psh", True), ("psh", False), ("ph", True), ("ps", True), ("p", True)]


def simulate(seed=0, n_households=40, n_sites=4, p=8):
    """Households of 1-3 participants with 1-4 samples each, in sites; some variance components 0."""
    rng = np.random.default_rng(seed)
    household_size = rng.choice([1, 2, 3], n_households, p=[0.2, 0.6, 0.2])
    household_of = np.repeat(np.arange(n_households), household_size)
    n_part = household_of.size
    part = np.repeat(np.arange(n_part), rng.choice([1, 2, 3, 4], n_part, p=[0.3, 0.3, 0.2, 0.2]))
    hh = household_of[part]
    site = rng.integers(n_sites, size=n_households)[hh]
    n = part.size
    status = (rng.random(n_part) < 0.5).astype(float)[part]
    age = rng.normal(45, 10, n_part)[part]
    X = np.column_stack([np.ones(n), status, age])
    sd = rng.uniform(0, 1.2, (3, p))
    sd[0, :2] = sd[1, 2:4] = sd[2, 4:6] = 0.0
    Y = ((rng.normal(size=(n_part, p)) * sd[0])[part] + (rng.normal(size=(n_households, p)) * sd[1])[hh]
         + (rng.normal(size=(n_sites, p)) * sd[2])[site] + 0.3 * status[:, None] + rng.normal(size=(n, p)))
    return Y, X, part, hh, site


def indicators(labels):
    return (labels[:, None] == np.unique(labels)[None, :]).astype(float)


def dense_fit(y, X, levels, reml=True):
    """One feature, dense V, Powell from two starts: (lambdas, loglik, beta, se).

    V is block-diagonal by the outermost level, so each block is inverted on its own.
    """
    n, k = X.shape
    blocks = [np.flatnonzero(levels[-1] == value) for value in np.unique(levels[-1])]
    ZZ = [[indicators(g[rows]) @ indicators(g[rows]).T for g in levels] for rows in blocks]

    def profile(lam):
        A, b, yy, log_det = np.zeros((k, k)), np.zeros(k), 0.0, 0.0
        for rows, zz in zip(blocks, ZZ):
            V = np.eye(rows.size) + sum(value * z for value, z in zip(lam, zz))
            Vi = np.linalg.inv(V)
            Xb, yb = X[rows], y[rows]
            A += Xb.T @ Vi @ Xb
            b += Xb.T @ Vi @ yb
            yy += yb @ Vi @ yb
            log_det += np.linalg.slogdet(V)[1]
        beta = np.linalg.solve(A, b)
        Q = yy - b @ beta
        f = n - k if reml else n
        ll = -f / 2 * (np.log(2 * np.pi * Q / f) + 1) - log_det / 2
        if reml:
            ll -= np.linalg.slogdet(A)[1] / 2
        return ll, beta, np.sqrt(Q / f * np.diag(np.linalg.inv(A)))

    d = len(levels)
    starts = [np.full(d, 0.3), np.where(np.arange(d) == 0, 1.0, 0.05)]
    best = min((minimize(lambda t: -profile(t**2)[0], start, method="Powell",
                         options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 20000}) for start in starts),
               key=lambda r: r.fun)
    lam = best.x**2
    return (lam,) + profile(lam)


def test_matches_dense_reference():
    """REML here; ML and the other nestings against lme4 below."""
    Y, X, part, hh, site = simulate(seed=3, n_households=24, p=5)
    reml = True
    fit = fit_repeated(Y, X, part, hh, site, reml=reml)
    assert fit.levels == ("participant", "household", "site") and fit.converged.all()
    ratios = np.column_stack([fit.ratio, fit.household_ratio, fit.site_ratio])
    assert (ratios == 0).any() and fit.boundary.any() and (~fit.boundary).any()
    for j in range(Y.shape[1]):
        lam, ll, beta, se = dense_fit(Y[:, j], X, [part, hh, site], reml)
        np.testing.assert_allclose(ratios[j], lam, rtol=1e-4, atol=1e-5)
        assert fit.loglik[j] >= ll - 1e-9  # at least as good a maximum
        np.testing.assert_allclose(fit.loglik[j], ll, rtol=1e-11)
        np.testing.assert_allclose(fit.beta[:, j], beta, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(fit.se[:, j], se, rtol=1e-6)


def fixture_design(data, model):
    base = pd.DataFrame({"(Intercept)": 1.0, "status": data["status"].astype(float), "age": data["age"].astype(float)})
    if "s" in model:
        return base
    sites = pd.get_dummies(data["site"], drop_first=True, dtype=float).add_prefix("site")
    return pd.concat([base, sites], axis=1)


def compare_with_lme4(directory):
    data = pd.read_csv(directory / "repeated_data.tsv", sep="\t")
    fixef = pd.read_csv(directory / "repeated_fixef.tsv", sep="\t")
    varcomp = pd.read_csv(directory / "repeated_varcomp.tsv", sep="\t")
    Y = data[[f"y{j}" for j in range(1, 9)]]
    seen_zero = set()
    for model, reml in FITS:
        X = fixture_design(data, model)
        fit = fit_repeated(Y, X, data["participant"], data["household"] if "h" in model else None,
                           data["site"] if "s" in model else None, reml=reml)
        assert fit.converged.all()
        rows = fixef[(fixef["model"] == model) & (fixef["reml"] == reml)]
        beta = rows.pivot(index="term", columns="feature", values="beta").loc[list(X.columns), Y.columns]
        se = rows.pivot(index="term", columns="feature", values="se").loc[list(X.columns), Y.columns]
        vc = varcomp[(varcomp["model"] == model) & (varcomp["reml"] == reml)].set_index("feature").loc[Y.columns]
        np.testing.assert_allclose(fit.beta, beta, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fit.se, se, rtol=1e-5)
        assert (fit.loglik >= vc["loglik"].to_numpy() - 1e-8).all()  # never a worse optimum than lme4
        np.testing.assert_allclose(fit.loglik, vc["loglik"], rtol=1e-10)
        for ours, name in ((fit.group_var, "participant"), (fit.household_var, "household"),
                           (fit.site_var, "site"), (fit.sigma2, "residual")):
            np.testing.assert_allclose(ours, vc[name], atol=2e-6)
            if name != "residual" and (vc[name] < 1e-8).any() and name[0] in model:
                seen_zero.add(name)
    assert seen_zero == {"participant", "household", "site"}  # each level on the boundary somewhere


def test_matches_lme4_fixtures():
    compare_with_lme4(FIXTURES)


@pytest.mark.needs_r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_matches_lme4_live(tmp_path):
    """The fixture script, run now, makes the stored data, and the engine matches lme4's fits of them.

    (lme4's own estimates can move in the 7th digit between runs: its optimiser stops at its
    tolerance, and BLAS sums in a different order; hence the comparison with this run.)
    """
    subprocess.run(["Rscript", str(FIXTURES / "make_repeated_fixtures.R"), str(tmp_path)], check=True,
                   capture_output=True, timeout=300)
    assert (tmp_path / "repeated_data.tsv").read_bytes() == (FIXTURES / "repeated_data.tsv").read_bytes()
    compare_with_lme4(tmp_path)


def test_balanced_one_way_equals_the_anova_estimators():
    """Participants with K samples each, intercept only: REML is the one-way ANOVA, ICC in closed form."""
    rng = np.random.default_rng(11)
    P, K, p = 50, 4, 5
    part = np.repeat(np.arange(P), K)
    sd_p = np.array([0.5, 1.0, 2.0, 0.8, 1.5])
    Y = (rng.normal(size=(P, p)) * sd_p)[part] + rng.normal(size=(P * K, p))
    fit = fit_repeated(Y, np.ones((P * K, 1)), part)
    means = Y.reshape(P, K, p).mean(axis=1)
    msb = K * ((means - means.mean(axis=0)) ** 2).sum(axis=0) / (P - 1)
    msw = ((Y.reshape(P, K, p) - means[:, None, :]) ** 2).sum(axis=(0, 1)) / (P * (K - 1))
    var_p = (msb - msw) / K
    assert (var_p > 0).all()
    np.testing.assert_allclose(fit.sigma2, msw, rtol=1e-8)
    np.testing.assert_allclose(fit.group_var, var_p, rtol=1e-7)
    np.testing.assert_allclose(fit.icc, var_p / (var_p + msw), rtol=1e-7)
    np.testing.assert_allclose(fit.se[0], np.sqrt(msb / (P * K)), rtol=1e-7)
    assert fit.levels == ("participant",)


def test_balanced_nested_equals_the_anova_estimators():
    """H households x J participants x K samples: REML is the nested ANOVA (Searle et al. 1992, ch. 6)."""
    rng = np.random.default_rng(12)
    H, J, K, p = 40, 2, 3, 4
    n = H * J * K
    hh = np.repeat(np.arange(H), J * K)
    part = np.repeat(np.arange(H * J), K)
    Y = ((rng.normal(size=(H, p)) * [0.8, 1.2, 1.0, 1.0])[hh] + (rng.normal(size=(H * J, p)) * [1.0, 0.5, 1.5, 0.9])[part]
         + rng.normal(size=(n, p)))
    fit = fit_repeated(Y, np.ones((n, 1)), part, hh)
    cube = Y.reshape(H, J, K, p)
    m_hp, m_h = cube.mean(axis=2), cube.mean(axis=(1, 2))
    ms_h = J * K * ((m_h - m_h.mean(axis=0)) ** 2).sum(axis=0) / (H - 1)
    ms_p = K * ((m_hp - m_h[:, None, :]) ** 2).sum(axis=(0, 1)) / (H * (J - 1))
    ms_e = ((cube - m_hp[:, :, None, :]) ** 2).sum(axis=(0, 1, 2)) / (H * J * (K - 1))
    var_p, var_h = (ms_p - ms_e) / K, (ms_h - ms_p) / (J * K)
    assert (var_p > 0).all() and (var_h > 0).all()
    np.testing.assert_allclose(fit.sigma2, ms_e, rtol=1e-7)
    np.testing.assert_allclose(fit.group_var, var_p, rtol=1e-6)
    np.testing.assert_allclose(fit.household_var, var_h, rtol=1e-6)
    np.testing.assert_allclose(fit.icc, (var_p + var_h) / (var_p + var_h + ms_e), rtol=1e-6)
    np.testing.assert_allclose(fit.participant_share, var_p / (var_p + var_h + ms_e), rtol=1e-6)


def test_no_worse_than_statsmodels_variance_components():
    """statsmodels MixedLM (household groups, participant variance component) never finds a better optimum;
    at the same optimum, the same estimates."""
    import statsmodels.formula.api as smf

    Y, X, part, hh, _ = simulate(seed=5, n_households=80, p=4)
    fit = fit_repeated(Y, X, part, hh)
    frame = pd.DataFrame({"status": X[:, 1], "age": X[:, 2], "hh": hh, "part": part})
    compared = 0
    for j in range(Y.shape[1]):
        frame["y"] = Y[:, j]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm = smf.mixedlm("y ~ status + age", frame, groups="hh", re_formula="1",
                             vc_formula={"part": "0 + C(part)"}).fit(reml=True)
        assert fit.loglik[j] >= sm.llf - 1e-6
        if sm.converged and fit.loglik[j] - sm.llf < 1e-5:  # statsmodels' tolerance
            compared += 1
            np.testing.assert_allclose(sm.fe_params.to_numpy(), fit.beta[:, j], atol=1e-4)
            np.testing.assert_allclose(float(sm.cov_re.iloc[0, 0]), fit.household_var[j], atol=1e-3)
            np.testing.assert_allclose(float(sm.vcomp[0]), fit.group_var[j], atol=1e-3)
    assert compared >= 3


def test_special_cases_are_the_simpler_engines():
    Y, X, part, hh, site = simulate(seed=3, p=6)
    # participants alone: the one-intercept model (lme4's standard errors)
    one = fit_repeated(Y, X, part)
    ref = fit_random_intercept(Y, X, part, information="expected")
    np.testing.assert_allclose(one.beta, ref.beta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(one.se, ref.se, rtol=1e-6)
    np.testing.assert_allclose(one.loglik, ref.loglik, rtol=1e-10)
    # households as the participants, sites random: the household-within-site model
    two = fit_repeated(Y, X, hh, None, site)
    nested = fit_nested_random_intercepts(Y, X, hh, site)
    np.testing.assert_allclose(two.beta, nested.beta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(two.se, nested.se, rtol=1e-6)
    np.testing.assert_allclose(two.loglik, nested.loglik, rtol=1e-10)
    np.testing.assert_allclose(two.site_var, nested.cluster_var, rtol=1e-4, atol=1e-7)


def test_levels_that_cannot_be_separated_are_left_out():
    Y, X, part, hh, site = simulate(seed=6, p=3)
    first = np.r_[True, part[1:] != part[:-1]]  # one sample per participant
    only = fit_repeated(Y[first], X[first], part[first], hh[first])
    assert only.levels == ("household",)
    ref = fit_random_intercept(Y[first], X[first], hh[first], information="expected")
    np.testing.assert_allclose(only.beta, ref.beta, rtol=1e-7, atol=1e-9)
    # no households (each participant its own) and one sample each: OLS with t tests
    ols = fit_repeated(Y[first], X[first], part[first], part[first])
    assert ols.levels == () and ols.method == "OLS" and np.isfinite(ols.df)
    assert (ols.group_var == 0).all() and (ols.icc == 0).all()
    # households of two among unpaired people: a household variance needs ten of them
    hh_few = np.where(hh < 5, hh, 1000 + part)
    assert fit_repeated(Y, X, part, hh_few).levels == ("participant",)
    assert fit_repeated(Y, X, part, np.where(hh < 14, hh, 1000 + part)).levels == ("participant", "household")
    # one site: no site level
    assert fit_repeated(Y, X, part, hh, np.zeros(len(part))).levels == ("participant", "household")


def test_row_order_and_labels_do_not_matter():
    Y, X, part, hh, site = simulate(seed=4, p=4)
    fit = fit_repeated(Y, X, part, hh, site)
    perm = np.random.default_rng(1).permutation(len(part))
    again = fit_repeated(Y[perm], X[perm], np.array([f"P{i}" for i in part])[perm], hh[perm] * 7 + 3,
                         np.array([f"site{s}" for s in site])[perm])
    np.testing.assert_allclose(again.beta, fit.beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(again.loglik, fit.loglik, rtol=1e-12)
    frame = test_term(again, 1)
    assert list(frame.columns) == ["effect", "se", "stat", "pvalue", "converged"]


def test_bad_designs_are_refused():
    Y, X, part, hh, site = simulate(p=2)
    moved = hh.copy()
    moved[np.flatnonzero(part == part[0])[-1]] = hh.max() + 1  # a participant's last sample elsewhere
    if (part == part[0]).sum() > 1:
        with pytest.raises(ValueError, match="more than one household"):
            fit_repeated(Y, X, part, moved)
    crossed = site.copy()
    crossed[hh == hh[0]] = np.arange((hh == hh[0]).sum()) % 4
    if len(np.unique(crossed[hh == hh[0]])) > 1:
        with pytest.raises(ValueError, match="more than one site"):
            fit_repeated(Y, X, part, hh, crossed)
    with pytest.raises(ValueError, match="missing"):
        fit_repeated(Y, X, np.where(part == 0, None, part), hh)
    flat = np.column_stack([Y[:, 0], np.full(len(part), 3.0)])
    fit = fit_repeated(flat, X, part, hh)
    assert fit.converged[0] and not fit.converged[1] and np.isnan(fit.beta[:, 1]).all()
