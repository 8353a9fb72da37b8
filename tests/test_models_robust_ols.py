"""The batched OLS term with sandwich errors against statsmodels, response by response."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import statsmodels.api as sm

from workflow_scripts.models.robust_ols import ols_term


def data(n=90, p=5, seed=0, repeats=True):
    """A design with a factor, heavy-tailed and zero-heavy responses, and clusters of 1-4 rows."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.uniform(20, 70, n), rng.integers(0, 2, n),
                         (np.arange(n) % 3 == 0).astype(float)])
    present = rng.random((n, p)) < np.array([1.0, 0.9, 0.6, 0.4, 0.8])[:p]
    Y = np.where(present, rng.normal(2, 1, (n, p)) + 0.3 * X[:, [1]], -3.0)
    Y[:, 1] = rng.standard_t(2, n)
    sizes = rng.integers(1, 5, n) if repeats else np.ones(n, int)
    clusters = np.repeat(np.arange(n), sizes)[:n]
    return Y, X, clusters, present


@pytest.mark.parametrize("errors,cov_type", [("classical", "nonrobust"), ("hc0", "HC0"), ("hc1", "HC1"),
                                             ("hc2", "HC2"), ("hc3", "HC3")])
def test_heteroskedasticity_consistent_errors_equal_statsmodels(errors, cov_type):
    Y, X, _, _ = data()
    out = ols_term(Y, X, term=1, errors=errors)
    for j in range(Y.shape[1]):
        fit = sm.OLS(Y[:, j], X).fit(cov_type=cov_type, use_t=True)
        assert out["effect"][j] == pytest.approx(fit.params[1], rel=1e-10)
        assert out["se"][j] == pytest.approx(fit.bse[1], rel=1e-9)
        assert out["pvalue"][j] == pytest.approx(fit.pvalues[1], rel=1e-8)
    assert (out["df"] == len(X) - X.shape[1]).all()


def test_cluster_robust_cr1_equals_statsmodels_cluster():
    Y, X, clusters, _ = data()
    out = ols_term(Y, X, term=1, errors="cr1", clusters=clusters)
    G = len(np.unique(clusters))
    for j in range(Y.shape[1]):
        fit = sm.OLS(Y[:, j], X).fit(cov_type="cluster", cov_kwds={"groups": clusters}, use_t=True)
        assert out["se"][j] == pytest.approx(fit.bse[1], rel=1e-9)
        assert out["pvalue"][j] == pytest.approx(fit.pvalues[1], rel=1e-8)
    assert (out["df"] == G - 1).all() and (out["n_clusters"] == G).all()


def reference_cr(y, X, clusters, power):
    """CR2 (power -1/2) / CR3 (power -1) of coefficient 1, cluster by cluster with scipy."""
    inv = np.linalg.inv(X.T @ X)
    e = y - X @ inv @ X.T @ y
    meat = np.zeros((X.shape[1], X.shape[1]))
    for g in np.unique(clusters):
        rows = clusters == g
        Xg = X[rows]
        M = np.eye(rows.sum()) - Xg @ inv @ Xg.T
        A = np.real(scipy.linalg.fractional_matrix_power(M, power))
        u = Xg.T @ A @ e[rows]
        meat += np.outer(u, u)
    return np.sqrt((inv @ meat @ inv)[1, 1])


@pytest.mark.parametrize("errors,power", [("cr2", -0.5), ("cr3", -1.0)])
def test_cr2_cr3_equal_the_cluster_by_cluster_formula(errors, power):
    Y, X, clusters, _ = data()
    out = ols_term(Y, X, term=1, errors=errors, clusters=clusters)
    for j in range(Y.shape[1]):
        assert out["se"][j] == pytest.approx(reference_cr(Y[:, j], X, clusters, power), rel=1e-8)


@pytest.mark.parametrize("cluster,single", [("cr2", "hc2"), ("cr3", "hc3")])
def test_clusters_of_one_are_the_heteroskedasticity_consistent_errors(cluster, single):
    Y, X, _, _ = data()
    a = ols_term(Y, X, errors=cluster, clusters=np.arange(len(X)))
    b = ols_term(Y, X, errors=single)
    np.testing.assert_allclose(a["se"], b["se"], rtol=1e-9)


@pytest.mark.parametrize("errors,cov_type", [("classical", "nonrobust"), ("hc3", "HC3"), ("cr1", "cluster")])
def test_a_mask_fits_each_response_on_its_own_rows(errors, cov_type):
    Y, X, clusters, present = data(seed=3)
    out = ols_term(np.where(present, Y, np.nan), X, errors=errors, clusters=clusters, mask=present)
    for j in range(Y.shape[1]):
        rows = present[:, j]
        kwargs = {"groups": clusters[rows]} if cov_type == "cluster" else None
        fit = sm.OLS(Y[rows, j], X[rows]).fit(cov_type=cov_type, cov_kwds=kwargs, use_t=True)
        assert out["effect"][j] == pytest.approx(fit.params[1], rel=1e-9)
        assert out["se"][j] == pytest.approx(fit.bse[1], rel=1e-8)
        assert out["n"][j] == rows.sum()


def test_masked_cr2_equals_the_formula_on_the_rows_used():
    Y, X, clusters, present = data(seed=4)
    out = ols_term(Y, X, errors="cr2", clusters=clusters, mask=present)
    for j in range(Y.shape[1]):
        rows = present[:, j]
        assert out["se"][j] == pytest.approx(reference_cr(Y[rows, j], X[rows], clusters[rows], -0.5), rel=1e-8)


def test_a_column_without_rows_is_dropped_for_that_response_and_leverage_one_adds_nothing():
    Y, X, _, present = data(seed=5)
    present[:, 2] &= X[:, 4] == 0  # the taxon is never present where column 4 is 1
    lone = np.zeros(len(X))
    lone[7] = 1.0  # one row alone in a level: leverage 1
    X = np.column_stack([X, lone])
    out = ols_term(Y, X, errors="hc3", mask=present)
    rows = present[:, 2]
    keep = [0, 1, 2, 3] + ([5] if rows[7] else [])
    fit = sm.OLS(Y[rows, 2], X[rows][:, keep]).fit()
    assert out["effect"][2] == pytest.approx(fit.params[1], rel=1e-9)
    assert out["k"][2] == len(keep)
    assert np.isfinite(out["se"]).all()


@pytest.mark.parametrize("errors,cov_type", [("hc3", "HC3"), ("cr1", "cluster")])
def test_weights_are_weighted_least_squares_as_statsmodels(errors, cov_type):
    Y, X, clusters, present = data(seed=6)
    weights = 1.0 / np.bincount(clusters)[clusters]  # every cluster weighs 1 in total
    out = ols_term(Y, X, errors=errors, clusters=clusters, weights=weights)
    for j in range(Y.shape[1]):
        kwargs = {"groups": clusters} if cov_type == "cluster" else None
        fit = sm.WLS(Y[:, j], X, weights=weights).fit(cov_type=cov_type, cov_kwds=kwargs, use_t=True)
        assert out["effect"][j] == pytest.approx(fit.params[1], rel=1e-9)
        assert out["se"][j] == pytest.approx(fit.bse[1], rel=1e-8)


def replicated_data(seed=0, n=80, p=6):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    Y = rng.standard_t(3, size=(n, p)) * (1 + X[:, [1]] ** 2) + 0.5 * X[:, [1]]
    mask = rng.random((n, p)) < 0.7
    return X, Y, mask


@pytest.mark.parametrize("coef", [0, 1, 2])
def test_masked_columns_equal_statsmodels_hc3_on_their_rows(coef):
    X, Y, mask = replicated_data()
    fit = ols_term(Y, X, coef, "hc3", mask=mask)
    for j in range(Y.shape[1]):
        rows = mask[:, j]
        ref = sm.OLS(Y[rows, j], X[rows]).fit(cov_type="HC3")
        assert fit["effect"][j] == pytest.approx(ref.params[coef], rel=1e-10, abs=1e-12)
        assert fit["se"][j] == pytest.approx(ref.bse[coef], rel=1e-10)
        assert fit["df"][j] == ref.df_resid and fit["n"][j] == rows.sum()


def test_unmasked_and_replicated_designs_equal_separate_fits():
    X, Y, _ = replicated_data(1)
    full = ols_term(Y, X, 1, "hc3")
    for j in range(Y.shape[1]):
        ref = sm.OLS(Y[:, j], X).fit(cov_type="HC3")
        assert full["se"][j] == pytest.approx(ref.bse[1], rel=1e-10)
    rng = np.random.default_rng(2)
    designs = np.stack([X * np.where(rng.random(len(X)) < 0.5, -1.0, 1.0)[:, None] for _ in range(4)])
    batched = ols_term(Y, designs, 0, "hc3")
    masked = ols_term(Y, designs, 0, "hc3", mask=np.ones_like(Y, bool))
    for r in range(4):
        one = ols_term(Y, designs[r], 0, "hc3")
        np.testing.assert_allclose(batched["effect"][r], one["effect"], rtol=1e-10)
        np.testing.assert_allclose(batched["se"][r], one["se"], rtol=1e-10)
        np.testing.assert_allclose(masked["se"][r], one["se"], rtol=1e-10)


def test_intercept_only_is_the_paired_t_with_the_hc3_correction():
    rng = np.random.default_rng(5)
    d = rng.normal(0.3, 1.0, size=(40, 3))
    fit = ols_term(d, np.ones((40, 1)), 0, "hc3")
    # leverage 1/n: HC3 variance = sum e^2 / (n - 1)^2 = s^2 / (n - 1)
    np.testing.assert_allclose(fit["effect"], d.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fit["se"], d.std(axis=0, ddof=1) / np.sqrt(39), rtol=1e-12)
    assert (fit["df"] == 39).all()


def test_few_rows_report_their_degrees_of_freedom_and_aliased_columns_do_not_break_the_fit():
    X, Y, mask = replicated_data(3, n=30)
    mask[:, 0] = False
    mask[:4, 0] = True  # 4 rows for 3 columns: one residual degree of freedom, for the caller to refuse
    fit = ols_term(Y, X, 1, "hc3", mask=mask)
    assert fit["df"][0] == 1 and fit["n"][0] == 4 and np.isfinite(fit["se"][1:]).all()
    aliased = np.column_stack([X, X[:, 2]])  # a duplicated column gets no weight
    a = ols_term(Y, aliased, 1, "hc3")
    b = ols_term(Y, X, 1, "hc3")
    np.testing.assert_allclose(a["effect"], b["effect"], rtol=1e-8)
    np.testing.assert_allclose(a["se"], b["se"], rtol=1e-8)


@pytest.mark.parametrize("errors", ["classical", "hc1", "hc3", "cr1", "cr2", "cr3"])
def test_every_error_type_on_replicated_designs_equals_one_fit_per_design(errors):
    Y, X, clusters, present = data(n=60, seed=7)
    rng = np.random.default_rng(8)
    designs = np.stack([np.column_stack([X[:, 0], rng.permutation(X[:, 1]), X[:, 2:]]) for _ in range(3)])
    weights = rng.uniform(0.5, 2.0, len(X))
    batched = ols_term(Y, designs, 1, errors, clusters, mask=present, weights=weights)
    for r in range(3):
        one = ols_term(Y, designs[r], 1, errors, clusters, mask=present, weights=weights)
        for key in ("effect", "se", "pvalue", "df"):
            np.testing.assert_allclose(batched[key][r], one[key], rtol=1e-10)
