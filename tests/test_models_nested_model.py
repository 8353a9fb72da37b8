"""Household-within-site random intercepts: exact against a dense reference and lme4, and fast."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from workflow_scripts.models.mixed_model import fit_random_intercept
from workflow_scripts.models.nested_model import fit_nested_random_intercepts


def simulate(seed=0, n_households=40, n_sites=4, p=12, n_unpaired=5):
    """Pairs in sites plus unpaired people; features with and without each variance component."""
    rng = np.random.default_rng(seed)
    hh = np.concatenate([np.repeat(np.arange(n_households), 2), n_households + np.arange(n_unpaired)])
    site_of = rng.integers(n_sites, size=n_households + n_unpaired)
    site = site_of[hh]
    n = hh.size
    status = np.concatenate([np.tile([1.0, 0.0], n_households), np.arange(n_unpaired) % 2 == 0]).astype(float)
    age = rng.normal(45, 10, n)
    X = np.column_stack([np.ones(n), status, age])
    sd_h = rng.uniform(0, 1.5, p)
    sd_s = rng.uniform(0, 1.0, p)
    sd_s[:3] = 0.0
    sd_h[3:5] = 0.0
    Y = ((rng.normal(size=(n_households + n_unpaired, p)) * sd_h)[hh]
         + (rng.normal(size=(n_sites, p)) * sd_s)[site] + 0.3 * status[:, None] + rng.normal(size=(n, p)))
    return Y, X, hh, site


def dense_fit(y, X, hh, site, reml=True):
    """One feature, dense V, Nelder-Mead from several starts: (lambdas, loglik, beta, se)."""
    n, k = X.shape
    Zh = (hh[:, None] == np.unique(hh)[None, :]).astype(float)
    Zs = (site[:, None] == np.unique(site)[None, :]).astype(float)

    def profile(lam):
        V = np.eye(n) + lam[0] * Zh @ Zh.T + lam[1] * Zs @ Zs.T
        Vi = np.linalg.inv(V)
        A = X.T @ Vi @ X
        beta = np.linalg.solve(A, X.T @ Vi @ y)
        r = y - X @ beta
        Q = r @ Vi @ r
        f = n - k if reml else n
        ll = -f / 2 * (np.log(2 * np.pi * Q / f) + 1) - np.linalg.slogdet(V)[1] / 2
        if reml:
            ll -= np.linalg.slogdet(A)[1] / 2
        return ll, beta, np.sqrt(Q / f * np.diag(np.linalg.inv(A)))

    best = min((minimize(lambda t: -profile(t**2)[0], np.sqrt(start), method="Nelder-Mead",
                         options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 2000})
                for start in [(0.3, 0.3), (1.0, 0.01), (0.01, 1.0)]), key=lambda r: r.fun)
    lam = best.x**2
    ll, beta, se = profile(lam)
    return lam, ll, beta, se


@pytest.mark.parametrize("reml", [True, False])
def test_matches_dense_reference(reml):
    Y, X, hh, site = simulate(p=8)
    fit = fit_nested_random_intercepts(Y, X, hh, site, reml=reml)
    assert fit.converged.all()
    assert fit.boundary.any() and (~fit.boundary).any()  # both kinds of fit are covered
    assert ((fit.cluster_ratio == 0) & (fit.ratio > 0)).any()
    assert ((fit.ratio == 0) & (fit.cluster_ratio > 0)).any()
    for j in range(Y.shape[1]):
        lam, ll, beta, se = dense_fit(Y[:, j], X, hh, site, reml)
        np.testing.assert_allclose([fit.ratio[j], fit.cluster_ratio[j]], lam, rtol=1e-4, atol=1e-6)
        assert fit.loglik[j] >= ll - 1e-9  # at least as good a maximum
        np.testing.assert_allclose(fit.loglik[j], ll, rtol=1e-10)
        np.testing.assert_allclose(fit.beta[:, j], beta, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(fit.se[:, j], se, rtol=1e-6)


def test_no_site_variance_gives_the_household_model():
    """Where the site variance is estimated as 0, the fit is the one-random-intercept REML fit."""
    Y, X, hh, site = simulate(seed=3)
    nested = fit_nested_random_intercepts(Y, X, hh, site)
    single = fit_random_intercept(Y, X, hh, information="expected")
    at_zero = nested.cluster_ratio == 0
    assert at_zero.sum() >= 2
    np.testing.assert_allclose(nested.beta[:, at_zero], single.beta[:, at_zero], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(nested.se[:, at_zero], single.se[:, at_zero], rtol=1e-6)
    np.testing.assert_allclose(nested.loglik[at_zero], single.loglik[at_zero], rtol=1e-10)


def test_row_order_and_labels_do_not_matter():
    Y, X, hh, site = simulate(seed=4, p=6)
    fit = fit_nested_random_intercepts(Y, X, hh, site)
    perm = np.random.default_rng(1).permutation(len(hh))
    labels = np.array([f"site{s}" for s in site])
    again = fit_nested_random_intercepts(Y[perm], X[perm], hh[perm] * 3 + 7, labels[perm])
    np.testing.assert_allclose(again.beta, fit.beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(again.loglik, fit.loglik, rtol=1e-12)


def test_bad_designs_are_refused():
    Y, X, hh, site = simulate(p=2)
    crossed = site.copy()
    crossed[0] = (site[1] + 1) % 4  # the two members of household 0 in different sites
    with pytest.raises(ValueError, match="span two sites"):
        fit_nested_random_intercepts(Y, X, hh, crossed)
    with pytest.raises(ValueError, match="one site only"):
        fit_nested_random_intercepts(Y, X, hh, np.zeros_like(site))
    flat = np.column_stack([Y[:, 0], np.full(len(hh), 3.0)])
    fit = fit_nested_random_intercepts(flat, X, hh, site)
    assert fit.converged[0] and not fit.converged[1] and np.isnan(fit.beta[:, 1]).all()


def test_no_worse_than_statsmodels_nested_mixedlm():
    """statsmodels' nested MixedLM never finds a better optimum; at the same optimum, the same estimates.

    (Speed is measured in benchmarks/bench_nested_model.py, not here.)
    """
    import statsmodels.formula.api as smf

    Y, X, hh, site = simulate(seed=5, n_households=300, n_sites=3, p=200)
    fit = fit_nested_random_intercepts(Y, X, hh, site)
    frame = pd.DataFrame({"status": X[:, 1], "age": X[:, 2], "hh": hh.astype(str), "site": site.astype(str)})
    frame["y"] = Y[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("y ~ status + age", frame, groups="site", vc_formula={"hh": "0 + C(hh)"}).fit(reml=True)
    assert fit.loglik[1] >= sm.llf - 1e-6
    if sm.converged and fit.loglik[1] - sm.llf < 1e-6:  # same optimum: same estimates
        np.testing.assert_allclose(sm.fe_params.to_numpy(), fit.beta[:, 1], atol=1e-4)


LMER = r"""
suppressMessages(library(lme4))
a <- commandArgs(TRUE)
Y <- read.delim(file.path(a[1], "Y.tsv")); M <- read.delim(file.path(a[1], "M.tsv"))
M$hh <- factor(M$hh); M$site <- factor(M$site)
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
out <- do.call(rbind, lapply(seq_len(ncol(Y)), function(j) {
  M$y <- Y[[j]]
  f <- suppressMessages(lmer(y ~ status + age + (1 | hh) + (1 | site), data = M, REML = TRUE, control = ctl))
  vc <- as.data.frame(VarCorr(f))
  data.frame(j = j - 1, term = 0:2, beta = sprintf("%.15g", fixef(f)), se = sprintf("%.15g", sqrt(diag(as.matrix(vcov(f))))),
             vh = vc$vcov[vc$grp == "hh"], vs = vc$vcov[vc$grp == "site"], ll = sprintf("%.15g", as.numeric(logLik(f))))
}))
write.table(out, file.path(a[1], "out.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
"""


@pytest.mark.needs_r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_matches_lme4_live(tmp_path):
    Y, X, hh, site = simulate(seed=3, n_households=80, n_sites=5, p=10)
    pd.DataFrame(Y).to_csv(tmp_path / "Y.tsv", sep="\t", index=False)
    pd.DataFrame({"status": X[:, 1], "age": X[:, 2], "hh": hh, "site": site}).to_csv(tmp_path / "M.tsv", sep="\t",
                                                                                     index=False)
    (tmp_path / "run.R").write_text(LMER)
    subprocess.run(["Rscript", str(tmp_path / "run.R"), str(tmp_path)], check=True, capture_output=True, timeout=180)
    lmer = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    fit = fit_nested_random_intercepts(Y, X, hh, site)
    per = lmer.groupby("j").first()
    assert (per["vs"] < 1e-8).any() and (per["vs"] > 1e-3).any()
    beta = lmer.pivot(index="term", columns="j", values="beta").to_numpy()
    se = lmer.pivot(index="term", columns="j", values="se").to_numpy()
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fit.se, se, rtol=1e-5)
    np.testing.assert_allclose(fit.group_var, per["vh"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fit.cluster_var, per["vs"], rtol=1e-4, atol=1e-6)
    assert (fit.loglik >= per["ll"].to_numpy() - 1e-7).all()
    np.testing.assert_allclose(fit.loglik, per["ll"], rtol=1e-9)
