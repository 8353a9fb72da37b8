"""Tests for the genotype x microbiome association engine with model-based errors (no households).

The reference is the slow, obvious version: one ``statsmodels.api.OLS`` fit
per variant x feature on the complete cases. The household cluster-robust
errors are tested in ``test_models_cluster_robust.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from workflow_scripts.errors import InputError
from workflow_scripts.models.association import associate, associate_chunks, genetic_pcs
from workflow_scripts.models.association_core import RESULT_COLUMNS
from workflow_scripts.models.multiple_testing import bh

RTOL = 1e-8

# statsmodels warns when the reference design is rank deficient, which these
# tests construct on purpose.
RANK_DEFICIENT_REFERENCE = pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")


# --------------------------------------------------------------------------
# Simulation and the slow reference
# --------------------------------------------------------------------------


def simulate(n=240, n_features=25, n_variants=40, n_cov=4, seed=0, missing_rate=0.0):
    """Cohort with status, covariates, dosages (0-2) and CLR-like abundances."""
    rng = np.random.default_rng(seed)
    status = np.repeat([1.0, 0.0], n // 2)[rng.permutation(n)]
    cov = np.column_stack([
        rng.normal(45, 12, n),                  # age
        rng.integers(0, 2, n),                  # sex
        rng.normal(26, 4, n),                   # BMI
        rng.standard_normal((n, n_cov - 3)),    # genetic PCs
    ])[:, :n_cov]
    af = rng.uniform(0.08, 0.5, n_variants)
    G = rng.binomial(2, af[:, None], (n_variants, n)).astype(float)
    Y = (rng.standard_normal((n, n_features))
         + 0.02 * cov[:, [0]] + 0.3 * status[:, None] + 0.1 * cov[:, [2]])
    if missing_rate:
        holes = rng.random(G.shape) < missing_rate
        holes[::2] = False                      # half the variants stay complete
        G[holes] = np.nan
    vids = [f"rs{i}" for i in range(n_variants)]
    fids = [f"sp{j}" for j in range(n_features)]
    return Y, G, status, cov, vids, fids


def run(Y, G, status, cov, vids, fids, chunk_size=1000):
    return pd.concat(associate(Y, G, status, cov, vids, fids, chunk_size=chunk_size),
                     ignore_index=True)


def reference(Y, G, status, cov, v, s):
    """One variant x feature by statsmodels OLS on the complete cases."""
    keep = ~np.isnan(G[v])
    g, st = G[v, keep], status[keep]
    base = [np.ones(keep.sum()), st] + ([] if cov is None else [cov[keep]])
    x_main = np.column_stack(base + [g])
    x_int = np.column_stack(base + [g, g * st])
    fit_a = sm.OLS(Y[keep, s], x_main).fit()
    fit_b = sm.OLS(Y[keep, s], x_int).fit()
    return {
        "n": keep.sum(),
        "allele_frequency": g.mean() / 2,
        "beta_genotype": fit_a.params[-1],
        "se_genotype": fit_a.bse[-1],
        "t_genotype": fit_a.tvalues[-1],
        "p_genotype": fit_a.pvalues[-1],
        "beta_interaction": fit_b.params[-1],
        "se_interaction": fit_b.bse[-1],
        "t_interaction": fit_b.tvalues[-1],
        "p_interaction": fit_b.pvalues[-1],
        "beta_genotype_interaction_model": fit_b.params[-2],
        "df_a": fit_a.df_resid,
        "df_b": fit_b.df_resid,
    }


def assert_matches_reference(result, Y, G, status, cov, pairs, skip_interaction=False):
    n_features = Y.shape[1]
    columns = [c for c in RESULT_COLUMNS[2:]
               if not (skip_interaction and ("interaction" in c))]
    for v, s in pairs:
        row = result.iloc[v * n_features + s]
        assert (row["variant_id"], row["feature"]) == (f"rs{v}", f"sp{s}")
        ref = reference(Y, G, status, cov, v, s)
        got = np.array([row[c] for c in columns], dtype=float)
        want = np.array([ref[c] for c in columns], dtype=float)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0, err_msg=f"rs{v} x sp{s}")


def sample_pairs(n_variants, n_features, size, seed=1, variants=None):
    rng = np.random.default_rng(seed)
    pool = np.arange(n_variants) if variants is None else np.asarray(variants)
    return list(zip(rng.choice(pool, size), rng.integers(0, n_features, size)))


# --------------------------------------------------------------------------
# Exactness against statsmodels
# --------------------------------------------------------------------------


def test_both_models_equal_statsmodels_without_missing():
    data = simulate(seed=3)
    result = run(*data, chunk_size=16)
    assert len(result) == 40 * 25 and list(result.columns) == RESULT_COLUMNS
    assert result[RESULT_COLUMNS[2:]].notna().all().all()
    assert_matches_reference(result, *data[:4], sample_pairs(40, 25, 120))


def test_both_models_equal_statsmodels_with_missing_dosages():
    Y, G, status, cov, vids, fids = simulate(seed=4, missing_rate=0.08)
    G[5, :100] = np.nan                         # one variant with heavy missingness
    result = run(Y, G, status, cov, vids, fids, chunk_size=16)
    incomplete = np.flatnonzero(np.isnan(G).any(axis=1))
    assert incomplete.size >= 15
    n = result.groupby("variant_id", observed=True)["n"].first().reindex(vids).to_numpy()
    np.testing.assert_array_equal(n, (~np.isnan(G)).sum(axis=1))
    assert n[5] < 140
    pairs = sample_pairs(40, 25, 120, variants=incomplete) + [(5, s) for s in range(5)]
    assert_matches_reference(result, Y, G, status, cov, pairs)


@RANK_DEFICIENT_REFERENCE
def test_missing_dosage_in_every_case_drops_status_from_the_rank():
    """Only controls observed: status is collinear with the intercept, df grows by one."""
    Y, G, status, cov, vids, fids = simulate(seed=5, n_variants=6)
    G[2, status == 1] = np.nan
    result = run(Y, G, status, cov, vids, fids)
    ref = reference(Y, G, status, cov, 2, 0)
    n_controls = int((status == 0).sum())
    assert ref["df_a"] == n_controls - 1 - 4 - 1          # intercept, 4 covariates, g
    assert_matches_reference(result, Y, G, status, cov, [(2, s) for s in range(6)],
                             skip_interaction=True)
    rows = result[result["variant_id"] == "rs2"]
    assert rows["beta_interaction"].isna().all() and rows["p_interaction"].isna().all()
    assert rows["p_genotype"].notna().all()


@RANK_DEFICIENT_REFERENCE
def test_extreme_and_fractional_dosages_equal_statsmodels():
    """Common ALT alleles, rare variants, imputed (fractional) dosages, missing controls."""
    Y, G, status, cov, vids, fids = simulate(seed=15, n=300, n_variants=8)
    rng = np.random.default_rng(150)
    G[0] = rng.binomial(2, 0.98, 300)                   # ALT almost fixed
    G[1] = rng.binomial(2, 0.01, 300)                   # rare
    G[1, :3] = 1.0                                      # at least three carriers
    G[2] = np.clip(rng.binomial(2, 0.3, 300) + rng.normal(0, 0.15, 300), 0, 2)   # imputed
    G[3] = G[2] * 0.5 + 1.0                             # fractional, mean near 1.2
    G[4, status == 0] = np.nan                          # every control missing
    G[5, rng.random(300) < 0.3] = np.nan                # heavy missingness
    result = run(Y, G, status, cov, vids, fids, chunk_size=3)
    pairs = [(v, s) for v in (0, 1, 2, 3, 5) for s in range(0, 25, 6)]
    assert_matches_reference(result, Y, G, status, cov, pairs)
    # cases only: g * status equals g, so only the main effect is identified
    assert_matches_reference(result, Y, G, status, cov, [(4, s) for s in range(0, 25, 6)],
                             skip_interaction=True)
    rs4 = result[result["variant_id"] == "rs4"]
    assert (rs4["n"] == 150).all() and rs4["p_interaction"].isna().all()


@RANK_DEFICIENT_REFERENCE
def test_rank_deficient_covariates_use_the_exact_residual_df():
    Y, G, status, cov, vids, fids = simulate(seed=6, n_variants=8)
    cov = np.column_stack([cov, cov[:, 0] * 2 + 1, np.full(len(status), 3.0)])
    result = run(Y, G, status, cov, vids, fids)
    ref = reference(Y, G, status, cov, 0, 0)
    assert ref["df_a"] == len(status) - 6 - 1             # rank 6 of 8 columns, plus g
    assert_matches_reference(result, Y, G, status, cov, sample_pairs(8, 25, 30))


def test_works_without_covariates():
    Y, G, status, _, vids, fids = simulate(seed=7, n_variants=5)
    result = run(Y, G, status, None, vids, fids)
    assert_matches_reference(result, Y, G, status, None, sample_pairs(5, 25, 15))


@RANK_DEFICIENT_REFERENCE
def test_unidentified_estimates_are_nan():
    Y, G, status, cov, vids, fids = simulate(seed=8, n_variants=4)
    G[0] = 2.0                                  # monomorphic
    G[1, status == 1] = 0.0                     # no carrier among cases
    G[2] = np.where(status == 1, G[2], 0.0)     # every carrier is a case
    G[2, status == 1] = np.maximum(G[2, status == 1], 1)
    result = run(Y, G, status, cov, vids, fids)
    by_variant = {v: frame for v, frame in result.groupby("variant_id", observed=True)}
    assert by_variant["rs0"][RESULT_COLUMNS[4:]].isna().all().all()
    for v in ("rs1", "rs2"):
        frame = by_variant[v]
        assert frame["p_genotype"].between(0, 1).all()
        assert frame[["beta_interaction", "se_interaction", "p_interaction"]].isna().all().all()
    assert_matches_reference(result, Y, G, status, cov, [(1, 3), (2, 4)], skip_interaction=True)
    assert by_variant["rs3"][RESULT_COLUMNS[4:]].notna().all().all()


# --------------------------------------------------------------------------
# Power, calibration, chunking
# --------------------------------------------------------------------------


def test_planted_main_and_interaction_effects_are_recovered():
    Y, G, status, cov, vids, fids = simulate(n=800, n_features=30, n_variants=50, seed=9)
    G[[3, 7]] = np.random.default_rng(90).binomial(2, 0.4, (2, 800))
    Y[:, 5] += 0.4 * (G[3] - G[3].mean())       # main effect, positive
    Y[:, 11] += -0.8 * G[7] * status            # effect only in MS: negative interaction
    result = run(Y, G, status, cov, vids, fids, chunk_size=13)
    result["q_genotype"] = bh(result["p_genotype"])
    result["q_interaction"] = bh(result["p_interaction"])
    main = result.iloc[3 * 30 + 5]
    inter = result.iloc[7 * 30 + 11]
    assert main["q_genotype"] < 0.05 and main["beta_genotype"] > 0
    assert abs(main["beta_genotype"] - 0.4) < 3 * main["se_genotype"]
    assert inter["q_interaction"] < 0.05 and inter["beta_interaction"] < 0
    assert abs(inter["beta_interaction"] + 0.8) < 3 * inter["se_interaction"]
    hits_main = result.loc[result["q_genotype"] < 0.05, ["variant_id", "feature"]]
    hits_int = result.loc[result["q_interaction"] < 0.05, ["variant_id", "feature"]]
    # the interaction variant also has an average (main) effect; nothing else is found
    assert set(map(tuple, hits_main.to_numpy())) == {("rs3", "sp5"), ("rs7", "sp11")}
    assert set(map(tuple, hits_int.to_numpy())) == {("rs7", "sp11")}


def test_permuted_genotypes_give_uniform_p_values():
    Y, G, status, cov, vids, fids = simulate(n=300, n_features=60, n_variants=60, seed=10)
    Y[:, 0] += 0.8 * G[0] * status              # a real effect, destroyed by permutation
    G = G[:, np.random.default_rng(11).permutation(G.shape[1])]
    result = run(Y, G, status, cov, vids, fids, chunk_size=25)
    p_int = result["p_interaction"].to_numpy()
    p_main = result["p_genotype"].to_numpy()
    assert p_int.size == 3600 and np.isfinite(p_int).all()
    assert stats.kstest(p_int, "uniform").pvalue > 0.01
    assert stats.kstest(p_main, "uniform").pvalue > 0.01
    assert 0.03 < np.mean(p_int < 0.05) < 0.07


def test_chunked_output_equals_unchunked():
    Y, G, status, cov, vids, fids = simulate(seed=12, missing_rate=0.05)
    whole = run(Y, G, status, cov, vids, fids, chunk_size=10_000)
    for size in (1, 7, 16):
        chunked = run(Y, G, status, cov, vids, fids, chunk_size=size)
        for frame in (whole, chunked):
            frame["variant_id"] = frame["variant_id"].astype(str)
            frame["feature"] = frame["feature"].astype(str)
        pd.testing.assert_frame_equal(chunked, whole, check_exact=False, rtol=1e-12, atol=1e-12)


def test_associate_chunks_is_lazy_and_yields_one_frame_per_chunk():
    Y, G, status, cov, vids, fids = simulate(seed=13, n_variants=30)
    produced = []

    def blocks():
        for start in range(0, 30, 10):
            produced.append(start)
            yield vids[start:start + 10], G[start:start + 10]

    stream = associate_chunks(Y, blocks(), status, cov, fids)
    first = next(stream)
    assert produced == [0]
    assert len(first) == 10 * 25 and first["variant_id"].iloc[-1] == "rs9"
    rest = list(stream)
    assert produced == [0, 10, 20] and [len(f) for f in rest] == [250, 250]


def test_bad_input_raises_one_input_error_naming_the_problem():
    Y, G, status, cov, vids, fids = simulate(seed=14, n_variants=4)
    bad_status = status.copy()
    bad_status[0] = 2
    with pytest.raises(InputError, match="status holds values other than 0/1"):
        next(associate(Y, G, bad_status, cov, vids, fids))
    bad_g = G.copy()
    bad_g[2, 7] = 3.0
    with pytest.raises(InputError, match="rs2"):
        list(associate(Y, bad_g, status, cov, vids, fids))
    bad_y = Y.copy()
    bad_y[1, 1] = np.nan
    with pytest.raises(InputError) as err:
        next(associate(bad_y, G, status, cov, vids, fids[:-1]))
    assert len(err.value.problems) == 2


# --------------------------------------------------------------------------
# Genetic PCs
# --------------------------------------------------------------------------


def test_genetic_pcs_equal_svd_and_separate_populations():
    rng = np.random.default_rng(16)
    n, n_variants = 120, 400
    population = np.repeat([0, 1], n // 2)
    af = rng.uniform(0.1, 0.9, (n_variants, 2))
    G = rng.binomial(2, af[:, population]).astype(float)
    G[rng.random(G.shape) < 0.02] = np.nan
    pcs = genetic_pcs(G, k=3, chunk_size=64)
    # reference: standardise, mean-impute, SVD of the participants x variants matrix
    p = np.nanmean(G, axis=1) / 2
    x = np.nan_to_num((G - 2 * p[:, None]) / np.sqrt(2 * p * (1 - p))[:, None]).T
    u = np.linalg.svd(x, full_matrices=False)[0][:, :3]
    np.testing.assert_allclose(np.abs(pcs.T @ u), np.eye(3), atol=1e-8)
    assert np.abs(stats.pearsonr(pcs[:, 0], population)[0]) > 0.99
