"""Benjamini-Hochberg q-values against their definition and statsmodels; the Cauchy combination against its closed form."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from workflow_scripts.models.multiple_testing import bh


def bh_reference(p):
    """BH step-up by the definition: q_(i) = min over j >= i of m p_(j) / j."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    for rank, i in enumerate(order, start=1):
        q[i] = min(1.0, min(m * p[order[j - 1]] / j for j in range(rank, m + 1)))
    return np.array(q)


def test_bh_matches_definition_and_statsmodels_and_keeps_nan():
    p = np.random.default_rng(15).uniform(size=200) ** 3
    q = bh(p)
    np.testing.assert_allclose(q, bh_reference(p), rtol=1e-12)
    np.testing.assert_allclose(q, multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    with_nan = np.concatenate([p, [np.nan] * 5])
    q_nan = bh(with_nan)
    assert np.isnan(q_nan[-5:]).all()
    np.testing.assert_allclose(q_nan[:-5], q, rtol=1e-15)
    np.testing.assert_allclose(bh([0.01, 0.04, 0.03, 0.2]), [0.04, 0.16 / 3, 0.16 / 3, 0.2])


def test_bh_matches_statsmodels_and_keeps_nan():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5, 0.002, 0.04])
    ok = ~np.isnan(p)
    expected = multipletests(p[ok], method="fdr_bh")[1]
    q = bh(p)
    np.testing.assert_allclose(q[ok], expected)
    assert np.isnan(q[2])


def test_acat_equals_the_closed_form_and_keeps_precision():
    from scipy import stats

    from workflow_scripts.models.multiple_testing import cauchy_combination

    p = np.array([[0.01, 0.2, 0.5], [0.3, np.nan, 0.9], [1e-20, 0.5, 0.5], [np.nan, np.nan, np.nan]])
    out = cauchy_combination(p)
    T = np.tan((0.5 - np.array([0.01, 0.2, 0.5])) * np.pi).mean()
    assert out[0] == pytest.approx(stats.cauchy.sf(T), rel=1e-12)
    T = np.tan((0.5 - np.array([0.3, 0.9])) * np.pi).mean()
    assert out[1] == pytest.approx(stats.cauchy.sf(T), rel=1e-12)
    assert out[2] == pytest.approx(3e-20, rel=1e-6)  # one tiny p among m: about m times it
    assert np.isnan(out[3])
    assert cauchy_combination([[0.04]])[0] == pytest.approx(0.04, rel=1e-12)  # one test: itself
    # a valid test: uniform p-values combine to uniform ones, also when the components are identical
    rng = np.random.default_rng(1)
    u = rng.random((20000, 1))
    combined = cauchy_combination(np.hstack([u, u, rng.random((20000, 1))]))
    assert np.mean(combined < 0.05) == pytest.approx(0.05, abs=0.006)


def test_cauchy_combination_against_the_closed_form():
    from scipy import stats

    from workflow_scripts.models.multiple_testing import cauchy_combination

    rng = np.random.default_rng(3)
    P = rng.uniform(size=(50, 3)) ** 2
    # Liu & Xie (2020): T = mean tan((0.5 - p) pi), p = P(Cauchy > T)
    expected = stats.cauchy.sf(np.tan((0.5 - P) * np.pi).mean(axis=1))
    np.testing.assert_allclose(cauchy_combination(P), expected, rtol=1e-10)
    # one p-value: itself; NaN left out; all NaN stays NaN
    np.testing.assert_allclose(cauchy_combination([[0.3], [1e-250]]), [0.3, 1e-250], rtol=1e-10)
    out = cauchy_combination([[0.01, np.nan, 0.2], [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(out[0], cauchy_combination([[0.01, 0.2]])[0], rtol=1e-14)
    assert np.isnan(out[1])
    # tiny p-values keep their precision (the term is about 1/(pi p))
    assert cauchy_combination([[1e-30, 1e-30]])[0] == pytest.approx(1e-30, rel=1e-8)
    # a p-value of exactly 1 cancels everything; bounded at 0.99 it does not
    assert cauchy_combination([[1e-8, 1.0]])[0] > 0.9
    assert cauchy_combination([[1e-8, 1.0]], max_pvalue=0.99)[0] < 1e-7


def test_cauchy_combination_is_uniform_under_the_null_for_correlated_components():
    from workflow_scripts.models.multiple_testing import cauchy_combination
    from scipy.special import ndtr

    rng = np.random.default_rng(4)
    z = rng.multivariate_normal(np.zeros(3), [[1, 0.6, 0.3], [0.6, 1, 0.3], [0.3, 0.3, 1]], size=200_000)
    p = cauchy_combination(2 * ndtr(-np.abs(z)))
    for alpha in (0.05, 0.01):
        assert abs((p < alpha).mean() - alpha) < 0.12 * alpha
