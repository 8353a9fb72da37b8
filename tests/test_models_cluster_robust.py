"""Household cluster-robust association models and the fast Student-t tail.

The reference is the slow, obvious version: one ``statsmodels`` OLS fit per
variant x feature with ``cov_type="cluster"`` (CR1, Student t with G - 1 df)
on the complete cases.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special

from workflow_scripts.errors import InputError
from workflow_scripts.models.association import associate, associate_chunks
from workflow_scripts.models.cluster_robust import CLUSTERED_COLUMNS, prepare_clustered
from workflow_scripts.models.tdist import MIN_TABLE_USE, two_sided_p, two_sided_p_exact

RTOL = 1e-8
COMPARED = ["beta_genotype", "se_genotype", "t_genotype", "p_genotype",
            "beta_interaction", "se_interaction", "t_interaction", "p_interaction",
            "beta_genotype_interaction_model"]


def cohort(n_pairs=120, n_single=15, n_triples=4, n_features=12, n_variants=20, seed=0, missing=0.0):
    """Case-control households, same-status pairs, households of three, singletons."""
    rng = np.random.default_rng(seed)
    hh, status = [], []
    for h in range(n_pairs):
        hh += [f"H{h}", f"H{h}"]
        status += [1, 0] if h % 10 else [1, 1]          # every tenth pair: two cases
    for h in range(n_triples):
        hh += [f"T{h}"] * 3
        status += [1, 0, 0]
    for s in range(n_single):
        hh.append(f"S{s}")
        status.append(s % 2)
    order = rng.permutation(len(hh))                   # households not contiguous in the input
    hh, status = np.array(hh, dtype=object)[order], np.array(status, float)[order]
    n = len(hh)
    cov = np.column_stack([rng.normal(45, 12, n), rng.integers(0, 2, n), rng.normal(26, 4, n)])
    codes = pd.factorize(hh)[0]
    shared = rng.standard_normal((codes.max() + 1, n_features))[codes]
    Y = rng.standard_normal((n, n_features)) * (1 + status[:, None]) + shared + 0.3 * status[:, None]
    G = rng.binomial(2, rng.uniform(0.1, 0.5, n_variants)[:, None], (n_variants, n)).astype(float)
    if missing:
        holes = rng.random(G.shape) < missing
        holes[::2] = False
        G[holes] = np.nan
    vids = [f"rs{i}" for i in range(n_variants)]
    fids = [f"sp{j}" for j in range(n_features)]
    return Y, G, status, cov, hh, vids, fids


def reference(Y, G, status, cov, hh, v, s):
    keep = ~np.isnan(G[v])
    g, st = G[v, keep], status[keep]
    groups = pd.factorize(hh[keep])[0]
    base = np.column_stack([np.ones(keep.sum()), st, cov[keep], g])
    kw = dict(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    fa = sm.OLS(Y[keep, s], base).fit(**kw)
    fb = sm.OLS(Y[keep, s], np.column_stack([base, g * st])).fit(**kw)
    return {
        "beta_genotype": fa.params[-1], "se_genotype": fa.bse[-1], "t_genotype": fa.tvalues[-1],
        "p_genotype": fa.pvalues[-1], "beta_interaction": fb.params[-1], "se_interaction": fb.bse[-1],
        "t_interaction": fb.tvalues[-1], "p_interaction": fb.pvalues[-1],
        "beta_genotype_interaction_model": fb.params[-2],
        "n": keep.sum(), "n_households": len(np.unique(groups)),
    }


def run(Y, G, status, cov, hh, vids, fids, chunk_size=1000):
    """The one association entry point with households: the household-robust errors."""
    return pd.concat(associate(Y, G, status, cov, vids, fids, households=hh, chunk_size=chunk_size),
                     ignore_index=True)


def check(result, data, pairs):
    Y, G, status, cov, hh = data[:5]
    n_features = Y.shape[1]
    worst = 0.0
    for v, s in pairs:
        row = result.iloc[v * n_features + s]
        ref = reference(Y, G, status, cov, hh, v, s)
        assert row["n"] == ref["n"] and row["n_households"] == ref["n_households"]
        got = np.array([row[c] for c in COMPARED], dtype=float)
        want = np.array([ref[c] for c in COMPARED], dtype=float)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0, err_msg=f"rs{v} x sp{s}")
        worst = max(worst, np.max(np.abs(got[[3, 7]] - want[[3, 7]])))
    return worst


def test_household_robust_errors_equal_statsmodels_cluster():
    data = cohort(seed=1)
    result = run(*data, chunk_size=7)
    assert list(result.columns) == CLUSTERED_COLUMNS and len(result) == 20 * 12
    assert result[COMPARED].notna().all().all()
    assert (result["n_households"] == 120 + 4 + 15).all()
    rng = np.random.default_rng(2)
    worst = check(result, data, list(zip(rng.integers(0, 20, 60), rng.integers(0, 12, 60))))
    assert worst < 1e-10


def test_missing_dosages_use_the_observed_participants_and_their_households():
    data = cohort(seed=3, missing=0.06)
    Y, G, *_ = data
    G[6] = np.where(np.isnan(G[5]), np.nan, G[6])    # two variants share a missingness pattern
    G[8, :40] = np.nan
    result = run(*data, chunk_size=6)
    incomplete = np.flatnonzero(np.isnan(G).any(axis=1))
    assert incomplete.size >= 10
    pairs = [(v, s) for v in incomplete for s in (0, 5, 11)]
    check(result, data, pairs)
    n = result.groupby("variant_id", observed=True)["n"].first().reindex(data[5]).to_numpy()
    np.testing.assert_array_equal(n, (~np.isnan(G)).sum(axis=1))


def test_estimates_are_the_engines_ols_estimates():
    Y, G, status, cov, hh, vids, fids = cohort(seed=4, missing=0.03)
    robust = run(Y, G, status, cov, hh, vids, fids)
    ols = pd.concat(associate(Y, G, status, cov, vids, fids), ignore_index=True)
    for column in ("beta_genotype", "beta_interaction", "beta_genotype_interaction_model", "allele_frequency"):
        np.testing.assert_allclose(robust[column], ols[column], rtol=1e-9, err_msg=column)
    # and the errors are not the model-based ones: the households are correlated
    assert not np.allclose(robust["se_genotype"], ols["se_genotype"], rtol=1e-3)


def test_order_of_participants_and_chunking_do_not_matter():
    Y, G, status, cov, hh, vids, fids = cohort(seed=5, missing=0.02)
    whole = run(Y, G, status, cov, hh, vids, fids)
    perm = np.random.default_rng(6).permutation(len(hh))
    shuffled = run(Y[perm], G[:, perm], status[perm], cov[perm], hh[perm], vids, fids, chunk_size=3)
    for column in COMPARED + ["n", "n_households"]:
        np.testing.assert_allclose(shuffled[column], whole[column], rtol=1e-9, err_msg=column)


@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")
def test_unidentified_terms_are_nan_like_the_engine():
    Y, G, status, cov, hh, vids, fids = cohort(seed=7, n_variants=4)
    G[0] = 1.0                                        # monomorphic
    G[1, status == 1] = 0.0                           # no carrier among cases: no interaction
    result = run(Y, G, status, cov, hh, vids, fids)
    rs0 = result[result["variant_id"] == "rs0"]
    assert rs0[COMPARED].isna().all().all()
    rs1 = result[result["variant_id"] == "rs1"]
    assert rs1["p_genotype"].notna().all() and rs1["p_interaction"].isna().all()
    ref = reference(Y, G, status, cov, hh, 1, 2)
    np.testing.assert_allclose(rs1.iloc[2]["p_genotype"], ref["p_genotype"], rtol=RTOL)


def test_households_of_one_reduce_to_hc1_errors():
    """With no household of two or more, CR1 is the HC1 heteroscedasticity-robust error."""
    rng = np.random.default_rng(8)
    n = 150
    Y = rng.standard_normal((n, 3)) * rng.uniform(0.5, 2, (n, 1))
    G = rng.binomial(2, 0.3, (4, n)).astype(float)
    status = rng.integers(0, 2, n).astype(float)
    cov = rng.standard_normal((n, 2))
    result = run(Y, G, status, cov, np.arange(n), ["a", "b", "c", "d"], ["x", "y", "z"])
    X = np.column_stack([np.ones(n), status, cov, G[2]])
    hc1 = sm.OLS(Y[:, 1], X).fit(cov_type="HC1")
    row = result.iloc[2 * 3 + 1]
    # CR1 with n clusters of one: n/(n-1) * (n-1)/(n-k) = n/(n-k), the HC1 factor
    np.testing.assert_allclose(row["se_genotype"], hc1.bse[-1], rtol=RTOL)


def test_stream_is_lazy_and_bad_households_are_input_errors():
    Y, G, status, cov, hh, vids, fids = cohort(seed=9, n_variants=9)
    produced = []

    def blocks():
        for start in range(0, 9, 3):
            produced.append(start)
            yield vids[start:start + 3], G[start:start + 3]

    stream = associate_chunks(Y, blocks(), status, cov, fids, households=hh)
    next(stream)
    assert produced == [0]
    bad = hh.copy()
    bad[3] = None
    with pytest.raises(InputError, match="household ids contain missing values"):
        prepare_clustered(Y, status, cov, bad, fids)
    with pytest.raises(InputError, match="household ids"):
        prepare_clustered(Y, status, cov, hh[:-1], fids)


# --------------------------------------------------------------------------
# Student-t tail
# --------------------------------------------------------------------------


@pytest.mark.parametrize("df", [3, 4, 9, 30, 120, 575, 1143, 1e4, 1e6])
def test_fast_t_tail_equals_stdtr(df):
    rng = np.random.default_rng(int(df) % 1000)
    t = np.concatenate([rng.standard_normal(MIN_TABLE_USE) * 3, rng.uniform(0, 45, 5000),
                        rng.uniform(0, 1e-4, 100), [0.0, 35.99, 36.0, 1e3, np.inf]])
    t = t * np.where(rng.random(t.size) < 0.5, -1, 1)
    got = two_sided_p(t[None, :], np.array([df]))[0]
    want = 2 * special.stdtr(df, -np.abs(t))
    positive = want > 0
    np.testing.assert_allclose(got[positive], want[positive], rtol=1e-10)
    assert (got[~positive] == 0).all()


def test_fast_t_tail_handles_nan_and_row_wise_df():
    t = np.array([[1.0, np.nan, -2.0], [0.5, 3.0, np.inf], [1.0, 1.0, 1.0]])
    df = np.array([10.0, 2.0, np.nan])
    got = two_sided_p(t, df)
    assert np.isnan(got[0, 1]) and np.isnan(got[2]).all()
    np.testing.assert_allclose(got[0, [0, 2]], two_sided_p_exact(t[0, [0, 2]], 10.0), rtol=1e-14)
    np.testing.assert_allclose(got[1], two_sided_p_exact(t[1], 2.0), rtol=1e-14)
