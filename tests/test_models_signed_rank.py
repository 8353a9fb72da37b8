"""The paired Wilcoxon signed-rank test (one implementation for alpha diversity and abundances)."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from workflow_scripts.models import signed_rank


def test_every_column_equals_scipy_on_that_column_alone():
    rng = np.random.default_rng(1)
    D = rng.normal(size=(40, 30))
    D[:, ::3] = np.round(D[:, ::3], 1)          # ties
    D[:5, 1::4] = 0.0                           # zero differences (dropped)
    for j in range(D.shape[1]):                 # one column at a time, as the alpha tests call it
        ours = signed_rank.signed_rank_test(D[:, [j]]).iloc[0]
        ref = stats.wilcoxon(D[:, j])
        assert ours["w_statistic"] == ref.statistic and ours["pvalue"] == ref.pvalue, j
        walsh = [(a + b) / 2 for a, b in itertools.combinations_with_replacement(D[:, j], 2)]
        assert ours["effect"] == np.median(walsh)


def test_many_columns_share_one_method_choice():
    """scipy picks exact or normal for the whole matrix: a tie in one column makes every column normal."""
    rng = np.random.default_rng(1)
    D = rng.normal(size=(40, 6))
    exact = signed_rank.signed_rank_test(D)
    for j in range(D.shape[1]):
        assert exact["pvalue"][j] == stats.wilcoxon(D[:, j], method="exact").pvalue
    D[:, 0] = np.round(D[:, 0], 1)
    normal = signed_rank.signed_rank_test(D)
    for j in range(1, D.shape[1]):
        assert normal["pvalue"][j] == stats.wilcoxon(D[:, j], method="approx").pvalue
        assert normal["w_statistic"][j] == exact["w_statistic"][j]
    assert (np.sign(normal["stat"]) == np.sign(normal["effect"]))[np.abs(normal["effect"]) > 0.2].all()


def test_hodges_lehmann_in_chunks_equals_the_direct_median(monkeypatch):
    D = np.random.default_rng(2).normal(size=(25, 7))
    direct = signed_rank.hodges_lehmann(D)
    monkeypatch.setattr(signed_rank, "CHUNK", 400)  # 325 Walsh averages: one feature per chunk
    np.testing.assert_allclose(signed_rank.hodges_lehmann(D), direct, rtol=0, atol=0)
