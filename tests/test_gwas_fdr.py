"""Streaming Benjamini-Hochberg equals statsmodels' fdr_bh bit for bit, whatever the p-values and chunks."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from workflow_scripts.gwas.fdr import bh_over_chunks


def cases():
    rng = np.random.default_rng(7)
    n = 20_000
    yield "uniform", rng.random(n)
    signal = rng.random(n)
    signal[:300] = rng.random(300) * 1e-9
    yield "signals", signal
    yield "ties", np.round(rng.random(n), 2)
    yield "ones_and_zeros", np.r_[np.ones(500), np.zeros(20), rng.random(1000)]
    inflated = rng.beta(0.6, 1.0, n)
    yield "inflated", inflated
    tiny = 10.0 ** -rng.uniform(0, 300, n)
    yield "tiny", tiny
    yield "one", np.array([0.03])
    with_nan = rng.random(5000)
    with_nan[::7] = np.nan
    yield "nan", with_nan


@pytest.mark.parametrize("budget,bits", [(20_000_000, 12), (50, 12), (10, 4), (1, 20)])
@pytest.mark.parametrize("name,p", list(cases()), ids=[c[0] for c in cases()])
def test_equals_statsmodels_exactly(name, p, budget, bits):
    finite = ~np.isnan(p)
    expected = np.full(p.shape, np.nan)
    expected[finite] = multipletests(p[finite], method="fdr_bh")[1]
    pieces = np.array_split(p, 7)
    step = bh_over_chunks(lambda: iter(pieces), budget=budget, bits=bits)
    assert step.n_tests == finite.sum()
    got = np.concatenate([step(piece) for piece in pieces])
    np.testing.assert_array_equal(got, expected)


def test_memory_is_bounded_by_the_budget_not_the_tests():
    """Dense uniform p-values: the collected values stay within the budget, at the cost of passes."""
    rng = np.random.default_rng(1)
    pieces = [rng.random(50_000) for _ in range(8)]
    seen = []

    def chunks():
        seen.append(1)
        return iter(pieces)

    step = bh_over_chunks(chunks, budget=5_000)
    assert step.passes == len(seen) >= 3
    assert step.starts.size < 400_000 * 0.6     # the step function is smaller than the tests
    p = np.concatenate(pieces)
    np.testing.assert_array_equal(step(p), multipletests(p, method="fdr_bh")[1])


def test_the_step_function_keeps_runs_not_tests_and_the_largest_passing_p():
    """Neighbouring p-values with one q are one step: the function shrinks, its values and the BH threshold do not."""
    rng = np.random.default_rng(3)
    p = np.r_[rng.random(400_000), rng.random(400) * 1e-7]
    step = bh_over_chunks(lambda: iter(np.array_split(p, 5)))
    q = multipletests(p, method="fdr_bh")[1]
    np.testing.assert_array_equal(step(p), q)
    assert step.starts.size < p.size / 20
    for level in (0.05, 0.2):
        assert step.starts[step.q_at < level].max() == p[q < level].max()  # the largest p-value called


def test_empty_and_negative():
    assert bh_over_chunks(lambda: iter([np.array([np.nan])])).n_tests == 0
    with pytest.raises(ValueError, match=">= 0"):
        bh_over_chunks(lambda: iter([np.array([-0.1, 0.2])]))
