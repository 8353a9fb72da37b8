"""Batched OLS with HC3 errors against statsmodels and the paired t closed form."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from workflow_scripts.models.robust_ols import ols_hc3


def data(seed=0, n=80, p=6):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    Y = rng.standard_t(3, size=(n, p)) * (1 + X[:, [1]] ** 2) + 0.5 * X[:, [1]]
    mask = rng.random((n, p)) < 0.7
    return X, Y, mask


@pytest.mark.parametrize("coef", [0, 1, 2])
def test_masked_columns_equal_statsmodels_hc3_on_their_rows(coef):
    X, Y, mask = data()
    fit = ols_hc3(X, Y, mask, coef=coef)
    for j in range(Y.shape[1]):
        rows = mask[:, j]
        ref = sm.OLS(Y[rows, j], X[rows]).fit(cov_type="HC3")
        assert fit.estimate[j] == pytest.approx(ref.params[coef], rel=1e-10, abs=1e-12)
        assert fit.se[j] == pytest.approx(ref.bse[coef], rel=1e-10)
        assert fit.df[j] == ref.df_resid and fit.n[j] == rows.sum()


def test_unmasked_and_replicated_designs_equal_separate_fits():
    X, Y, _ = data(1)
    full = ols_hc3(X, Y, coef=1)
    for j in range(Y.shape[1]):
        ref = sm.OLS(Y[:, j], X).fit(cov_type="HC3")
        assert full.se[j] == pytest.approx(ref.bse[1], rel=1e-10)
    rng = np.random.default_rng(2)
    designs = np.stack([X * np.where(rng.random(len(X)) < 0.5, -1.0, 1.0)[:, None] for _ in range(4)])
    batched = ols_hc3(designs, Y, coef=0)
    masked = ols_hc3(designs, Y, np.ones_like(Y, bool), coef=0)
    for r in range(4):
        one = ols_hc3(designs[r], Y, coef=0)
        np.testing.assert_allclose(batched.estimate[r], one.estimate, rtol=1e-10)
        np.testing.assert_allclose(batched.se[r], one.se, rtol=1e-10)
        np.testing.assert_allclose(masked.se[r], one.se, rtol=1e-10)


def test_intercept_only_is_the_paired_t_with_the_hc3_correction():
    rng = np.random.default_rng(5)
    d = rng.normal(0.3, 1.0, size=(40, 3))
    fit = ols_hc3(np.ones((40, 1)), d)
    # leverage 1/n: HC3 variance = sum e^2 / (n - 1)^2 = s^2 / (n - 1)
    np.testing.assert_allclose(fit.estimate, d.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fit.se, d.std(axis=0, ddof=1) / np.sqrt(39), rtol=1e-12)
    assert (fit.df == 39).all()


def test_too_few_rows_give_nan_and_aliased_columns_do_not_break_the_fit():
    X, Y, mask = data(3, n=30)
    mask[:, 0] = False
    mask[:4, 0] = True  # 4 rows for 3 columns: no residual information
    fit = ols_hc3(X, Y, mask, coef=1)
    assert np.isnan(fit.estimate[0]) and np.isnan(fit.se[0]) and np.isfinite(fit.se[1:]).all()
    aliased = np.column_stack([X, X[:, 2]])  # a duplicated column gets no weight
    a = ols_hc3(aliased, Y, coef=1)
    b = ols_hc3(X, Y, coef=1)
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-8)
    np.testing.assert_allclose(a.se, b.se, rtol=1e-8)
