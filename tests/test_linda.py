"""Tests for LinDA (bias-corrected CLR linear models): the plain reference on planted data, and the
pieces the workflow's LinDA (workflow_scripts/differential/linda.py) shares with it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from workflow_scripts.differential.linda import bandwidth_nrd0, kde_mode, shorth
from workflow_scripts.models.multiple_testing import bh
from workflow_scripts.transforms import clr, impute_zeros

from linda_reference import linda


def simulate_counts(seed=0, n_households=100, p=300, n_up=60, paired=True, depth=(5000, 40000)):
    """Multinomial counts from absolute abundances with planted log2 fold changes.

    ``n_up`` features increase in absolute abundance in cases (log2 FC 1-2);
    turning absolute abundances into proportions shifts every CLR coefficient
    by about ``-mean(lfc)``, the bias LinDA must remove. With ``paired``, each
    household holds one case and one control and shares a random effect.
    """
    rng = np.random.default_rng(seed)
    hh = np.repeat(np.arange(n_households), 2)
    status = np.tile([1.0, 0.0], n_households)
    n = hh.size
    lfc = np.zeros(p)
    lfc[rng.permutation(p)[:n_up]] = rng.uniform(1, 2, n_up)
    household_sd = 0.7 if paired else 0.0
    log2_abundance = (
        rng.normal(0, 1.5, p)
        + lfc * status[:, None]
        + household_sd * rng.normal(size=(n_households, p))[hh]
        + 0.7 * rng.normal(size=(n, p))
    )
    prop = 2.0**log2_abundance
    prop /= prop.sum(axis=1, keepdims=True)
    counts = rng.multinomial(rng.integers(*depth, n), prop)
    X = pd.DataFrame({"Intercept": 1.0, "status": status})
    features = [f"taxon{j}" for j in range(p)]
    return pd.DataFrame(counts, columns=features), X, hh, lfc


@pytest.fixture(scope="module")
def paired():
    counts, X, hh, lfc = simulate_counts()
    return counts, X, hh, lfc, linda(counts, X, groups=hh)


# ---------------------------------------------------------------------------
# End to end on simulated compositional data


def test_bias_correction_recovers_planted_log_fold_changes(paired):
    counts, X, hh, lfc, res = paired
    assert (counts.to_numpy() == 0).any()  # the pseudo-count is exercised
    planted = lfc != 0
    corrected = np.abs(res["log2fc"].to_numpy() - lfc)
    uncorrected = np.abs(res["log2fc"].to_numpy() + res["bias"].to_numpy() - lfc)
    assert np.median(corrected[planted]) < 0.15
    assert np.median(uncorrected[planted]) > 0.25  # without the correction it fails
    # the estimated bias is the compositional shift, about -mean(lfc)
    assert abs(res["bias"].iloc[0] + lfc.mean()) < 0.06
    assert (res.loc[planted, "qvalue"] < 0.05).mean() > 0.95
    discoveries = res["qvalue"] < 0.05
    assert (discoveries & ~planted).sum() / discoveries.sum() < 0.15


def test_null_pvalues_are_uniform_with_household_random_effect(paired):
    counts, X, hh, lfc, res = paired
    null_p = res.loc[lfc == 0, "pvalue"].to_numpy()
    assert null_p.size == 240
    assert stats.kstest(null_p, "uniform").statistic < 0.1
    assert 0.02 < (null_p < 0.05).mean() < 0.09


def test_result_table_layout(paired):
    counts, X, hh, lfc, res = paired
    assert list(res.columns) == [
        "term", "feature", "log2fc", "lfc_se", "stat", "pvalue", "qvalue", "bias", "df", "converged",
    ]
    assert (res["term"] == "status").all() and list(res["feature"]) == list(counts.columns)
    assert res.attrs["zero_handling"] == "pseudo-count"
    assert np.isinf(res["df"]).all() and res["converged"].all()
    np.testing.assert_allclose(res["stat"], res["log2fc"] / res["lfc_se"])
    np.testing.assert_allclose(res["qvalue"], bh(res["pvalue"]))


def test_ordinary_least_squares_without_groups():
    counts, X, _, lfc = simulate_counts(seed=4, paired=False)
    res = linda(counts, X)
    planted = lfc != 0
    assert (res["df"] == len(X) - 2).all()
    np.testing.assert_allclose(res["pvalue"], 2 * stats.t.sf(np.abs(res["stat"]), len(X) - 2))
    assert np.median(np.abs(res["log2fc"] - lfc)[planted]) < 0.15
    null_p = res.loc[~planted, "pvalue"]
    assert stats.kstest(null_p, "uniform").statistic < 0.1
    assert 0.02 < (null_p < 0.05).mean() < 0.09


# ---------------------------------------------------------------------------
# Pieces


def test_bandwidth_nrd0_matches_r():
    # R: bw.nrd0(1:10) prints 1.719 = 0.9 * sd(1:10) * 10^-0.2 (sd = sqrt(55/6) < IQR/1.34 = 3.36)
    assert bandwidth_nrd0(np.arange(1, 11)) == pytest.approx(0.9 * np.sqrt(55 / 6) * 10**-0.2, rel=1e-12)
    assert round(bandwidth_nrd0(np.arange(1, 11)), 3) == 1.719
    # IQR smaller than SD: 0.9 * (IQR / 1.34) * n^-0.2
    x = np.r_[np.zeros(8), 1.0, 2.0, 30.0]
    iqr = np.subtract(*np.percentile(x, [75, 25]))
    assert bandwidth_nrd0(x) == pytest.approx(0.9 * min(x.std(ddof=1), iqr / 1.34) * 11**-0.2)


def test_kde_mode_equals_argmax_of_density_on_a_fine_grid():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(-0.3, 0.2, 250), rng.normal(1.5, 0.5, 60)]
    h = bandwidth_nrd0(x)
    grid = np.linspace(x.min(), x.max(), 20_001)
    density = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / h) ** 2).sum(axis=1)  # slow, obvious
    expected = grid[np.argmax(density)]
    assert kde_mode(x) == pytest.approx(expected, abs=2 * (grid[1] - grid[0]))
    assert abs(kde_mode(x) - (-0.3)) < 0.1
    # scale-equivariant, so LinDA's sqrt(n) scaling makes no difference
    assert kde_mode(np.sqrt(300) * x) / np.sqrt(300) == pytest.approx(kde_mode(x), abs=1e-8)


def test_shorth_is_mean_of_shortest_half():
    x = np.array([10.0, 0.0, 0.1, 0.2, 5.0, 0.15, 7.0])
    # half + 1 = 4 values; tightest four: 0, 0.1, 0.15, 0.2
    assert shorth(x) == pytest.approx(0.1125)


def test_clr_is_centred_log2():
    y = np.array([[1.0, 2.0, 4.0, 8.0], [3.0, 3.0, 3.0, 3.0]])
    np.testing.assert_allclose(clr(y), [[-1.5, -0.5, 0.5, 1.5], [0, 0, 0, 0]])


def test_zero_imputation_uses_relative_depth():
    counts = np.array([[0, 5, 5], [0, 0, 20], [3, 0, 7]])  # depths 10, 20, 10
    imputed = impute_zeros(counts, "imputation")
    # feature 0 is zero in samples 0 (depth 10) and 1 (depth 20): 10/20, 20/20
    # feature 1 is zero in samples 1 (20) and 2 (10): 20/20, 10/20
    np.testing.assert_allclose(imputed, [[0.5, 5, 5], [1.0, 1.0, 20], [3, 0.5, 7]])
    np.testing.assert_allclose(impute_zeros(counts), counts + 0.5)


def test_adaptive_zero_handling_follows_the_depth_test():
    counts, X, hh, _ = simulate_counts(seed=2, p=60, n_up=10)
    res = linda(counts, X, groups=hh, zero_handling="adaptive")
    assert res.attrs["zero_handling"] == "pseudo-count"  # depth independent of status

    rng = np.random.default_rng(0)
    deeper = counts.to_numpy() * np.where(X["status"].to_numpy() == 1, 3, 1)[:, None]
    thinned = rng.binomial(deeper, 0.5)  # cases sequenced ~3x deeper
    res = linda(pd.DataFrame(thinned, columns=counts.columns), X, groups=hh, zero_handling="adaptive")
    assert res.attrs["zero_handling"] == "imputation"


def test_bad_counts_raise():
    counts, X, hh, _ = simulate_counts(seed=3, p=20, n_up=2)
    bad = counts.astype(float)
    bad.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite and non-negative"):
        linda(bad, X, groups=hh)
    with pytest.raises(ValueError, match="zero_handling"):
        linda(counts, X, groups=hh, zero_handling="impute")
