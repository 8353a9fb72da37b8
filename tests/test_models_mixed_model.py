"""Tests for the vectorised random-intercept mixed model.

References the fast fit must equal:
- statsmodels ``MixedLM`` (``re_formula="1"``), at its default tolerance and
  at a tight one;
- a slow, obvious dense-matrix fit written here (``dense_fit``);
- R lme4 ``lmer(y ~ 0 + X + (1 | g))`` live, when Rscript is installed;
- closed forms: the paired t-test for a pure pair design, and OLS when the
  group variance is on the boundary (lambda = 0).
"""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from scipy.optimize import minimize_scalar

from workflow_scripts.models.group_rotation import group_structure, helmert_rotate
from workflow_scripts.models.mixed_model import fit_ols, fit_random_intercept, test_term

FORMULA = "y ~ status + C(site) + sex + age + bmi"
N_STATSMODELS = 12  # features compared with statsmodels at its default tolerance
N_TIGHT = 3  # ... and at a tight one (feature 0 is on the boundary)


# ---------------------------------------------------------------------------
# Simulated cohort: households of size 1, 2 and 3


def simulate_cohort(seed=7, n_households=100, p=24):
    """~200 samples; households of 1-3 people; one MS patient per household.

    Feature j has household SD ``hh_sd[j]``; a third of the features have no
    household effect, so several REML fits land on the boundary.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 3], size=n_households, p=[0.15, 0.7, 0.15])
    hh = np.repeat(np.arange(n_households), sizes)
    n = hh.size
    first = np.r_[True, hh[1:] != hh[:-1]]
    status = first.astype(float)
    single = np.isin(hh, np.flatnonzero(sizes == 1))
    status[single] = rng.integers(0, 2, single.sum())
    site = np.array(["Boston", "Edinburgh", "San Francisco"])[rng.integers(0, 3, n_households)][hh]
    meta = pd.DataFrame(
        {
            "household": [f"H{h:03d}" for h in hh],
            "status": status,
            "site": site,
            "sex": np.where(rng.random(n) < 0.5, "F", "M"),
            "age": rng.normal(45, 12, n),
            "bmi": rng.normal(26, 4, n),
        }
    )
    hh_sd = np.resize([0.0, 0.3, 1.0, 2.0, 0.0, 0.6], p)
    u = rng.normal(size=(n_households, p)) * hh_sd
    Y = (
        0.5 * status[:, None] * rng.normal(size=p)
        + 0.02 * (meta["age"].to_numpy()[:, None] - 45)
        + 0.4 * (site == "Edinburgh")[:, None]
        + u[hh]
        + rng.normal(size=(n, p))
    )
    return meta, Y


def statsmodels_fit(meta, y, reml, **fit_kwargs):
    data = meta.assign(y=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm(FORMULA, data, groups=data["household"], re_formula="1")
        return model.fit(reml=reml, **fit_kwargs)


def design(meta):
    """The exact design matrix statsmodels builds from FORMULA."""
    model = smf.mixedlm(FORMULA, meta.assign(y=0.0), groups=meta["household"], re_formula="1")
    return pd.DataFrame(model.exog, columns=model.exog_names)


@pytest.fixture(scope="module")
def cohort():
    meta, Y = simulate_cohort()
    return meta, Y, design(meta)


@pytest.fixture(scope="module")
def reml_fit(cohort):
    meta, Y, X = cohort
    return fit_random_intercept(Y, X, meta["household"], reml=True)


def _subset(result, p):
    """The first p features of a result, as a namespace of arrays."""
    return pd.Series(
        {
            key: (value[..., :p] if isinstance(value, np.ndarray) else value)
            for key, value in vars(result).items()
        }
    )


def statsmodels_table(meta, Y, reml, **fit_kwargs):
    fits = [statsmodels_fit(meta, Y[:, j], reml, **fit_kwargs) for j in range(Y.shape[1])]
    k = len(fits[0].fe_params)
    return {
        "beta": np.column_stack([f.fe_params.to_numpy() for f in fits]),
        "se": np.column_stack([f.bse_fe.to_numpy() for f in fits]),
        "stat": np.column_stack([f.tvalues.to_numpy()[:k] for f in fits]),
        "pvalue": np.column_stack([f.pvalues.to_numpy()[:k] for f in fits]),
        "group_var": np.array([f.cov_re.iloc[0, 0] for f in fits]),
        "sigma2": np.array([f.scale for f in fits]),
        "loglik": np.array([f.llf for f in fits]),
        "converged": np.array([f.converged for f in fits]),
    }


# ---------------------------------------------------------------------------
# The slow, obvious reference: dense V, one feature at a time


def dense_loglik(lam, y, X, Z, reml):
    """Profiled (RE)ML log-likelihood on statsmodels' scale, dense matrices."""
    n, k = X.shape
    V = np.eye(n) + lam * Z @ Z.T
    Vinv = np.linalg.inv(V)
    A = X.T @ Vinv @ X
    beta = np.linalg.solve(A, X.T @ Vinv @ y)
    r = y - X @ beta
    Q = r @ Vinv @ r
    f = n - k if reml else n
    ll = -f / 2 * (np.log(2 * np.pi * Q / f) + 1) - np.linalg.slogdet(V)[1] / 2
    if reml:
        ll -= np.linalg.slogdet(A)[1] / 2
    return ll, beta, Q / f, A


def dense_fit(y, X, Z, reml):
    res = minimize_scalar(
        lambda t: -dense_loglik(np.exp(t), y, X, Z, reml)[0],
        bounds=(-14, 8),
        method="bounded",
        options={"xatol": 1e-10},
    )
    lam = np.exp(res.x)
    if dense_loglik(0.0, y, X, Z, reml)[0] >= dense_loglik(lam, y, X, Z, reml)[0]:
        lam = 0.0
    ll, beta, sigma2, A = dense_loglik(lam, y, X, Z, reml)
    return lam, ll, beta, sigma2, A


def dense_observed_se(lam, beta, y, X, Z, reml, h=1e-4):
    """SE from a finite-difference Hessian of l(beta, lambda), sigma2 profiled."""
    n, k = X.shape
    f = n - k if reml else n

    def ll(theta):
        b, la = theta[:k], theta[k]
        V = np.eye(n) + la * Z @ Z.T
        Vinv = np.linalg.inv(V)
        r = y - X @ b
        out = -f / 2 * np.log(r @ Vinv @ r) - np.linalg.slogdet(V)[1] / 2
        if reml:
            out -= np.linalg.slogdet(X.T @ Vinv @ X)[1] / 2
        return out

    theta = np.r_[beta, lam]
    H = np.empty((k + 1, k + 1))
    E = np.eye(k + 1) * h
    for i in range(k + 1):
        for j in range(k + 1):
            H[i, j] = (
                ll(theta + E[i] + E[j]) - ll(theta + E[i] - E[j])
                - ll(theta - E[i] + E[j]) + ll(theta - E[i] - E[j])
            ) / (4 * h * h)
    return np.sqrt(np.diag(np.linalg.inv(-H))[:k])


def indicator(groups):
    codes, _ = pd.factorize(pd.Series(groups))
    return np.eye(codes.max() + 1)[codes]


# ---------------------------------------------------------------------------
# The rotation


def test_helmert_rotation_is_orthonormal_and_diagonalises_the_covariance():
    groups = np.array(["b", "a", "b", "c", "a", "b", "d", "d", "e", "b"])
    structure = group_structure(groups)
    between, within = helmert_rotate(np.eye(groups.size), structure)
    H = np.vstack([between, within])
    np.testing.assert_allclose(H @ H.T, np.eye(groups.size), atol=1e-12)

    lam = 0.7
    Z = indicator(groups)
    V = np.eye(groups.size) + lam * Z @ Z.T
    expected = np.r_[1 + lam * structure.sizes, np.ones(groups.size - structure.n_groups)]
    np.testing.assert_allclose(H @ V @ H.T, np.diag(expected), atol=1e-12)
    np.testing.assert_array_equal(structure.sizes, [4, 2, 1, 2, 1])  # b, a, c, d, e


def test_helmert_between_rows_are_scaled_group_sums():
    groups = np.array([3, 1, 3, 3, 2, 1])
    y = np.array([1.0, 2.0, 4.0, 7.0, 5.0, 6.0])
    between, within = helmert_rotate(y, group_structure(groups))
    # groups in order of first appearance: 3 (1, 4, 7), 1 (2, 6), 2 (5)
    np.testing.assert_allclose(between, [12 / np.sqrt(3), 8 / np.sqrt(2), 5.0])
    np.testing.assert_allclose(within, [(1 - 4) / np.sqrt(2), (1 + 4 - 2 * 7) / np.sqrt(6), (2 - 6) / np.sqrt(2)])


# ---------------------------------------------------------------------------
# Agreement with statsmodels MixedLM


def test_reml_matches_statsmodels_default_fit(cohort, reml_fit):
    meta, Y, X = cohort
    sm_ = statsmodels_table(meta, Y[:, :N_STATSMODELS], reml=True)
    ours = _subset(reml_fit, N_STATSMODELS)
    # the comparison covers the boundary (group variance 0) and interior fits
    assert ours.boundary.sum() >= 2
    assert (ours.ratio > 0.5).sum() >= 4
    assert ours.converged.all()
    np.testing.assert_array_equal(ours.group_var[ours.boundary], 0.0)
    assert (sm_["group_var"][ours.boundary] < 1e-6).all()

    for key in ("beta", "se", "stat", "pvalue"):
        np.testing.assert_allclose(getattr(ours, key), sm_[key], rtol=1e-4, atol=1e-4, err_msg=key)
    np.testing.assert_allclose(ours.sigma2, sm_["sigma2"], rtol=1e-4)
    np.testing.assert_allclose(ours.group_var, sm_["group_var"], rtol=1e-4, atol=1e-4)
    # we find the maximum at least as well as statsmodels does
    assert (ours.loglik >= sm_["loglik"] - 1e-9).all()
    np.testing.assert_allclose(ours.loglik, sm_["loglik"], rtol=1e-8)


@pytest.mark.parametrize("reml", [True, False])
def test_matches_statsmodels_at_tight_tolerance(cohort, reml):
    """With statsmodels pushed to convergence the two agree to ~1e-7."""
    meta, Y, X = cohort
    Y = Y[:, :N_TIGHT]
    ours = fit_random_intercept(Y, X, meta["household"], reml=reml)
    sm_ = statsmodels_table(meta, Y, reml=reml, gtol=1e-10)
    ok = sm_["converged"]
    assert ok.all()
    assert ours.boundary[ok].any() and (~ours.boundary[ok]).any()
    for key in ("beta", "se", "pvalue"):
        np.testing.assert_allclose(getattr(ours, key)[:, ok], sm_[key][:, ok], rtol=1e-6, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(ours.group_var[ok], sm_["group_var"][ok], atol=1e-6)
    assert (ours.loglik >= sm_["loglik"] - 1e-9).all()


# ---------------------------------------------------------------------------
# Agreement with R lme4 (live)

LMER_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
Y <- as.matrix(read.delim(file.path(args[1], "Y.tsv")))
X <- as.matrix(read.delim(file.path(args[1], "X.tsv")))
g <- factor(read.delim(file.path(args[1], "groups.tsv"))$group)
rows <- list()
for (j in seq_len(ncol(Y))) {
  y <- Y[, j]
  fit <- suppressMessages(lmer(y ~ 0 + X + (1 | g), REML = TRUE))
  vc <- as.data.frame(VarCorr(fit))
  rows[[j]] <- data.frame(feature = j - 1, column = seq_len(ncol(X)) - 1,
                          beta = sprintf("%.17g", fixef(fit)),
                          se = sprintf("%.17g", sqrt(diag(as.matrix(vcov(fit))))),
                          group_var = sprintf("%.17g", vc$vcov[1]), sigma2 = sprintf("%.17g", vc$vcov[2]),
                          loglik = sprintf("%.17g", as.numeric(logLik(fit))))
}
write.table(do.call(rbind, rows), file.path(args[1], "lmer.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
"""


@pytest.mark.needs_r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_matches_lme4_live(tmp_path, cohort):
    """lme4 reports sigma2 (X' V^-1 X)^-1 standard errors: information="expected"."""
    meta, Y, X = cohort
    Y = Y[:, :8]
    pd.DataFrame(Y).to_csv(tmp_path / "Y.tsv", sep="\t", index=False)
    X.set_axis([f"x{i}" for i in range(X.shape[1])], axis=1).to_csv(tmp_path / "X.tsv", sep="\t", index=False)
    pd.DataFrame({"group": meta["household"]}).to_csv(tmp_path / "groups.tsv", sep="\t", index=False)
    (tmp_path / "run.R").write_text(LMER_SCRIPT)
    subprocess.run(["Rscript", str(tmp_path / "run.R"), str(tmp_path)], check=True, capture_output=True, timeout=120)
    lmer = pd.read_csv(tmp_path / "lmer.tsv", sep="\t")
    per_feature = lmer.groupby("feature").first()

    ours = fit_random_intercept(Y, X, meta["household"], information="expected")
    assert ours.boundary.any() and (~ours.boundary).any()
    np.testing.assert_array_equal(per_feature["group_var"].to_numpy()[ours.boundary], 0.0)
    beta = lmer.pivot(index="column", columns="feature", values="beta").to_numpy()
    se = lmer.pivot(index="column", columns="feature", values="se").to_numpy()
    np.testing.assert_allclose(ours.beta, beta, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.se, se, rtol=1e-6)
    np.testing.assert_allclose(ours.group_var, per_feature["group_var"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.sigma2, per_feature["sigma2"], rtol=1e-6)
    np.testing.assert_allclose(ours.loglik, per_feature["loglik"], rtol=1e-9)


# ---------------------------------------------------------------------------
# Agreement with the slow dense reference


@pytest.mark.parametrize("reml", [True, False])
def test_matches_dense_reference(reml):
    meta, Y = simulate_cohort(seed=11, n_households=30, p=8)
    X = design(meta).to_numpy()
    Z = indicator(meta["household"])
    fast = fit_random_intercept(Y, X, meta["household"], reml=reml)
    fast_expected = fit_random_intercept(Y, X, meta["household"], reml=reml, information="expected")
    assert fast.boundary.any() and (~fast.boundary).any()
    for j in range(Y.shape[1]):
        lam, ll, beta, sigma2, A = dense_fit(Y[:, j], X, Z, reml)
        np.testing.assert_allclose(fast.ratio[j], lam, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(fast.loglik[j], ll, rtol=1e-10)
        np.testing.assert_allclose(fast.beta[:, j], beta, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(fast.sigma2[j], sigma2, rtol=1e-6)
        np.testing.assert_allclose(fast_expected.se[:, j], np.sqrt(sigma2 * np.diag(np.linalg.inv(A))), rtol=1e-6)
        if lam > 0:
            se = dense_observed_se(fast.ratio[j], fast.beta[:, j], Y[:, j], X, Z, reml)
            np.testing.assert_allclose(fast.se[:, j], se, rtol=1e-4)


# ---------------------------------------------------------------------------
# Closed forms


def test_pure_pair_design_equals_paired_t_test():
    rng = np.random.default_rng(3)
    G = 60
    household = np.repeat(np.arange(G), 2)
    status = np.tile([1.0, 0.0], G)
    swap = np.repeat(rng.random(G) < 0.5, 2)
    status[swap] = 1 - status[swap]  # case is first or second at random
    y = 2.0 * rng.normal(size=G)[household] + 0.7 * status + rng.normal(size=2 * G)
    X = np.column_stack([np.ones(2 * G), status])

    res = fit_random_intercept(y, X, household)
    assert not res.boundary[0] and res.group_var[0] > 1.0

    case = y[status == 1][np.argsort(household[status == 1])]
    control = y[status == 0][np.argsort(household[status == 0])]
    d = case - control
    t = stats.ttest_rel(case, control)
    np.testing.assert_allclose(res.beta[1, 0], d.mean(), rtol=1e-9)
    np.testing.assert_allclose(res.se[1, 0], d.std(ddof=1) / np.sqrt(G), rtol=1e-7)
    np.testing.assert_allclose(res.stat[1, 0], t.statistic, rtol=1e-7)
    np.testing.assert_allclose(res.pvalue[1, 0], 2 * stats.norm.sf(abs(t.statistic)), rtol=1e-6)
    np.testing.assert_allclose(res.sigma2[0], d.var(ddof=1) / 2, rtol=1e-7)


def test_boundary_fit_is_ordinary_least_squares():
    """Negative within-household correlation: lambda = 0 and the fit is OLS."""
    rng = np.random.default_rng(5)
    G = 50
    household = np.repeat(np.arange(G), 2)
    status = np.tile([1.0, 0.0], G)
    age = rng.normal(50, 10, 2 * G)
    e = rng.normal(size=G)
    y = np.repeat(e, 2) * np.tile([1.0, -1.0], G) + 0.3 * status + 0.01 * age + 0.2 * rng.normal(size=2 * G)
    X = np.column_stack([np.ones(2 * G), status, age])

    res = fit_random_intercept(y, X, household)
    res_expected = fit_random_intercept(y, X, household, information="expected")
    ols = sm.OLS(y, X).fit()
    assert res.boundary[0] and res.converged[0]
    assert res.group_var[0] == 0.0 and res.ratio[0] == 0.0
    np.testing.assert_allclose(res.beta[:, 0], ols.params, rtol=1e-10)
    np.testing.assert_allclose(res.sigma2[0], ols.scale, rtol=1e-10)  # REML sigma2 = RSS / (n - k)
    np.testing.assert_allclose(res_expected.se[:, 0], ols.bse, rtol=1e-10)
    # lambda = 0 is the maximum: no ratio does better (dense reference)
    Z = indicator(household)
    np.testing.assert_allclose(res.loglik[0], dense_loglik(0.0, y, X, Z, True)[0], rtol=1e-12)
    assert all(dense_loglik(lam, y, X, Z, True)[0] < res.loglik[0] for lam in (1e-6, 1e-3, 0.1, 1.0, 10.0))


# ---------------------------------------------------------------------------
# Behaviour and inputs


def test_row_order_and_group_labels_do_not_matter(cohort, reml_fit):
    meta, Y, X = cohort
    perm = np.random.default_rng(0).permutation(len(meta))
    labels = pd.factorize(meta["household"])[0][perm] * 7 + 3  # integers instead of strings
    res = fit_random_intercept(Y[perm], X.iloc[perm], labels)
    np.testing.assert_allclose(res.beta, reml_fit.beta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.se, reml_fit.se, rtol=1e-8)
    np.testing.assert_allclose(res.loglik, reml_fit.loglik, rtol=1e-12)


def test_degenerate_feature_is_flagged_without_affecting_others(cohort, reml_fit):
    meta, Y, X = cohort
    Y2 = np.column_stack([Y[:, :3], np.full(len(meta), 2.5)])
    res = fit_random_intercept(Y2, X, meta["household"])
    assert not res.converged[3] and np.isnan(res.beta[:, 3]).all()
    np.testing.assert_allclose(res.beta[:, :3], reml_fit.beta[:, :3], rtol=1e-12)


def test_no_within_household_variation_is_not_converged():
    """y constant inside every household: lambda runs off the top of the grid."""
    rng = np.random.default_rng(1)
    household = np.repeat(np.arange(40), 2)
    X = np.column_stack([np.ones(80), rng.normal(size=40)[household]])
    y = np.column_stack([rng.normal(size=40)[household], rng.normal(size=80)])
    res = fit_random_intercept(y, X, household)
    assert not res.converged[0] and res.ratio[0] >= 1e6
    assert res.converged[1]


def test_test_term_table(cohort, reml_fit):
    meta, Y, X = cohort
    frame = pd.DataFrame(Y, columns=[f"g{j}" for j in range(Y.shape[1])])
    res = fit_random_intercept(frame, X, meta["household"])
    table = test_term(res, "status")
    assert list(table.columns) == ["effect", "se", "stat", "pvalue", "converged"]
    assert list(table.index) == list(frame.columns)
    j = X.columns.get_loc("status")
    np.testing.assert_allclose(table["effect"], reml_fit.beta[j])
    np.testing.assert_allclose(table["pvalue"], reml_fit.pvalue[j])
    np.testing.assert_allclose(test_term(res, j)["se"], reml_fit.se[j])
    with pytest.raises(KeyError, match="no column 'disease'"):
        test_term(res, "disease")


def test_fit_ols_matches_statsmodels(cohort):
    meta, Y, X = cohort
    res = fit_ols(Y[:, :5], X)
    for j in range(5):
        ols = sm.OLS(Y[:, j], X.to_numpy()).fit()
        np.testing.assert_allclose(res.beta[:, j], ols.params, rtol=1e-10)
        np.testing.assert_allclose(res.se[:, j], ols.bse, rtol=1e-10)
        np.testing.assert_allclose(res.pvalue[:, j], ols.pvalues, rtol=1e-8)
        np.testing.assert_allclose(res.loglik[j], ols.llf, rtol=1e-12)


def test_bad_inputs_raise(cohort):
    meta, Y, X = cohort
    groups = meta["household"]
    Ynan = Y.copy()
    Ynan[4, 2] = np.nan
    with pytest.raises(ValueError, match="drop samples with missing data"):
        fit_random_intercept(Ynan, X, groups)
    with pytest.raises(ValueError, match="full column rank"):
        fit_random_intercept(Y, np.column_stack([X, X.iloc[:, 1]]), groups)
    with pytest.raises(ValueError, match="use fit_ols"):
        fit_random_intercept(Y, X, np.arange(len(meta)))
    with pytest.raises(ValueError, match="one group label per row"):
        fit_random_intercept(Y, X, groups[:-1])
