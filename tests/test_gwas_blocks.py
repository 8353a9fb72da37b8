"""Genome-scale building blocks against independent references: numpy/scipy, statsmodels, slow loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from workflow_scripts.gwas.clump import clump
from workflow_scripts.gwas.hurdle import carrier_abundance_test, hurdle, presence_score_test
from workflow_scripts.gwas.inflation import MEDIAN_CHI2_1DF, grouped_lambda_gc, lambda_gc, qq_points
from workflow_scripts.gwas.qc import dosage_r2, imputation_quality, plan_chunks
from workflow_scripts.io.sumstats import read_sumstats, write_sumstats

# ----------------------------------------------------------------------------- lambda GC and QQ


def test_lambda_gc_of_null_and_inflated_p():
    rng = np.random.default_rng(2)
    assert abs(lambda_gc(rng.random(200_000)) - 1) < 0.02
    z = rng.normal(0, np.sqrt(1.2), 200_000)          # chi2 inflated by 1.2
    assert abs(lambda_gc(2 * stats.norm.sf(np.abs(z))) - 1.2) < 0.03
    assert MEDIAN_CHI2_1DF == pytest.approx(0.454936, abs=1e-6)


@pytest.mark.parametrize("bins", [4096, 3])
def test_grouped_lambda_gc_equals_in_memory(bins):
    rng = np.random.default_rng(5)
    n_groups = 6
    groups = rng.integers(0, n_groups - 1, 30_001)          # the last group stays empty
    p = rng.beta(0.7, 1, groups.size)
    p[::11] = np.nan
    p[:50] = np.round(p[:50], 1)                            # some ties
    pieces = list(zip(np.array_split(groups, 5), np.array_split(p, 5)))
    got = grouped_lambda_gc(lambda: iter(pieces), n_groups, bins=bins)
    expected = [lambda_gc(p[groups == g]) for g in range(n_groups)]
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    assert np.isnan(got[-1])


def test_qq_points_follow_the_order_statistics():
    rng = np.random.default_rng(3)
    p = np.r_[rng.random(50_000), 10.0 ** -rng.uniform(4, 12, 40)]
    pieces = np.array_split(p, 4)
    qq = qq_points(lambda: iter(pieces), resolution=0.01, exact_below=1e-4)
    assert qq["n"].sum() == p.size and len(qq) < 500
    obs = -np.log10(np.sort(p))
    exp = -np.log10((np.arange(1, p.size + 1) - 0.5) / p.size)
    tail = qq["observed"] > 4           # p < 1e-4: one exact point per test
    k = int((p < 1e-4).sum())
    assert k >= 40 and tail.sum() == k and (qq.loc[tail, "n"] == 1).all()
    np.testing.assert_allclose(np.sort(qq.loc[tail, "observed"].to_numpy())[::-1], obs[:k], rtol=1e-12)
    np.testing.assert_allclose(qq.loc[tail, "expected"].sort_values(ascending=False), exp[:k], rtol=1e-12)
    # binned points: the observed value of the middle rank lies within half a bin
    middle = np.rint(2 * (10.0 ** -qq.loc[~tail, "expected"].to_numpy() * p.size + 0.5)) / 2
    for rank in (np.floor(middle).astype(int), np.ceil(middle).astype(int)):
        assert np.all(np.abs(obs[rank - 1] - qq.loc[~tail, "observed"].to_numpy()) <= 0.005 + 1e-9)


# ----------------------------------------------------------------------------- clumping


def slow_clump(tests, p_threshold, window):
    out = []
    for feature, rows in tests[tests["p"] < p_threshold].groupby("feature"):
        left = rows.sort_values("p", kind="stable")
        while len(left):
            lead = left.iloc[0]
            near = (left["chrom"] == lead["chrom"]) & ((left["pos"] - lead["pos"]).abs() <= window)
            out.append((feature, lead["variant_id"], int(near.sum())))
            left = left[~near]
    return out


def test_clump_equals_the_obvious_loop():
    rng = np.random.default_rng(4)
    n = 3000
    tests = pd.DataFrame({"feature": rng.choice(["a", "b", "c"], n), "variant_id": [f"v{i}" for i in range(n)],
                          "chrom": rng.choice(["1", "2"], n), "pos": rng.integers(1, 5_000_000, n),
                          "p": 10.0 ** -rng.uniform(0, 12, n)})
    got = clump(tests, p_threshold=1e-6, window=250_000)
    assert list(zip(got["feature"], got["variant_id"], got["n_in_clump"])) == slow_clump(tests, 1e-6, 250_000)
    assert (got["clump_start"] <= got["pos"]).all() and (got["pos"] <= got["clump_end"]).all()
    assert got["n_in_clump"].sum() == (tests["p"] < 1e-6).sum()


# ----------------------------------------------------------------------------- QC and chunks


def test_dosage_r2_and_imputation_quality():
    rng = np.random.default_rng(6)
    calls = (rng.random((2, 4000)) < 0.3).astype(float) + (rng.random((2, 4000)) < 0.3)
    blurred = 0.2 * calls + 0.8 * calls.mean(axis=1, keepdims=True)    # r2 = 0.04 by construction
    G = np.vstack([calls, blurred, np.zeros((1, 4000))])
    r2 = dosage_r2(G)
    assert abs(r2[0] - 1) < 0.05 and abs(r2[2] - 0.04 * r2[0]) < 1e-12 and np.isnan(r2[4])
    variants = pd.DataFrame({"quality": [0.9, np.nan, np.nan, 0.2, np.nan],
                             "quality_field": ["R2", "", "", "R2", ""]})
    q = imputation_quality(variants, 0.3)
    assert q["low_quality"].tolist() == [False, False, False, True, False]
    q = imputation_quality(variants, 0.3, G)
    assert q["low_quality"].tolist() == [False, False, True, True, False]
    assert q["quality_field"].tolist() == ["R2", "dosage_r2", "dosage_r2", "R2", "dosage_r2"]


def test_plan_chunks_cover_every_variant_once():
    variants = pd.DataFrame({"chrom": ["1"] * 7 + ["2"] * 3, "pos": [5, 9, 9, 9, 12, 40, 41, 3, 4, 8]})
    plan = plan_chunks(variants, 2)
    assert plan[["chrom", "start", "end", "n_variants"]].values.tolist() == [
        ["1", 1, 9, 4], ["1", 10, 40, 2], ["1", 41, 41, 1], ["2", 1, 4, 2], ["2", 5, 8, 1]]
    assert plan["n_variants"].sum() == len(variants)


# ----------------------------------------------------------------------------- Parquet sumstats


def test_sumstats_round_trip_and_bytes(tmp_path):
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"variant_id": ["rs1", "rs1", "rs2"], "feature": ["s__a", "s__b", "s__a"],
                          "n": [100, 100, 98], "beta_genotype": rng.normal(size=3),
                          "p_genotype": [0.5, 1e-300, np.nan], "q_genotype": [0.9, 1e-297, np.nan],
                          "beta_interaction": [np.nan, 0.1, 0.2], "p_interaction": [np.nan, 0.3, 0.04],
                          "q_interaction": [np.nan, 0.6, 0.12], "chrom": ["1", "1", "2"], "pos": [5, 5, 7]})
    a = write_sumstats(tmp_path / "chunk_0.parquet", frame)
    b = write_sumstats(tmp_path / "again.parquet", frame)
    assert a.read_bytes() == b.read_bytes()
    back = read_sumstats(a)
    assert list(back.columns) == ["variant_id", "chrom", "pos", "feature", "n", "beta_genotype", "p_genotype",
                                  "q_genotype", "beta_interaction", "p_interaction", "q_interaction"]
    pd.testing.assert_frame_equal(back[frame.columns], frame, check_dtype=False)
    assert read_sumstats(a, ["p_genotype"])["p_genotype"].iloc[1] == 1e-300
    with pytest.raises(ValueError, match="missing"):
        write_sumstats(tmp_path / "bad.parquet", frame.drop(columns="q_genotype"))


# ----------------------------------------------------------------------------- hurdle


@pytest.fixture(scope="module")
def small_case():
    rng = np.random.default_rng(9)
    n, V, S = 240, 12, 5
    G = ((rng.random((V, n)) < 0.3).astype(float) + (rng.random((V, n)) < 0.3))
    G[0, 3] = np.nan
    C = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    logit = -0.3 + 0.5 * G[1][:, None] + 0.3 * C[:, :1] + rng.normal(0, 0.1, (n, S))
    present = rng.random((n, S)) < 1 / (1 + np.exp(-logit))
    present[:, 4] = rng.random(n) < 0.97                                 # too common for the presence test
    log_abundance = rng.normal(0, 1, (n, S))
    log_abundance[:, 0] += 0.6 * G[2]                                      # carriers of taxon 0: variant 2
    abundance = np.where(present, np.exp(log_abundance), 0.0)
    abundance[:, 4] += 1.0                                                 # no participant without any taxon
    households = np.repeat(np.arange(n // 2), 2)
    return G, C, present, abundance, households


def test_presence_score_test_equals_statsmodels(small_case):
    G, C, present, _, _ = small_case
    res = presence_score_test(G, present[:, :4], C)
    X = sm.add_constant(C)
    Gi = np.where(np.isnan(G), np.nanmean(G, axis=1, keepdims=True), G)
    for v in range(G.shape[0]):
        for s in range(4):
            fit = sm.GLM(present[:, s].astype(float), X, family=sm.families.Binomial()).fit(tol=1e-12)
            stat, p = fit.score_test(exog_extra=Gi[v][:, None])[:2]
            assert res["chi2"][v, s] == pytest.approx(float(np.squeeze(stat)), rel=1e-7)
            assert res["p"][v, s] == pytest.approx(float(np.squeeze(p)), rel=1e-6)
    assert np.nanmin(res["p"][1]) < 1e-3          # the planted presence effect is found


def test_cluster_robust_presence_score_test_equals_statsmodels_gee(small_case):
    """With households, the score's variance is the GEE robust one (independence working correlation)."""
    import warnings

    from statsmodels.genmod.generalized_estimating_equations import GEE

    G, C, present, _, households = small_case
    res = presence_score_test(G[:4], present[:, :2], C, clusters=households)
    X = sm.add_constant(C)
    Gi = np.where(np.isnan(G), np.nanmean(G, axis=1, keepdims=True), G)
    family, independent = sm.families.Binomial, sm.cov_struct.Independence
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(2):
            y = present[:, s].astype(float)
            null = GEE(y, X, groups=households, family=family(), cov_struct=independent()).fit()
            for v in range(4):
                full = GEE(y, np.column_stack([X, Gi[v]]), groups=households, family=family(),
                           cov_struct=independent())
                expected = full.compare_score_test(null)
                assert res["chi2"][v, s] == pytest.approx(expected["statistic"], rel=1e-9)
                assert res["p"][v, s] == pytest.approx(expected["p-value"], rel=1e-7, abs=1e-15)
    naive = presence_score_test(G[:4], present[:, :2], C)
    assert not np.allclose(naive["chi2"], res["chi2"])          # the households change the variance


@pytest.mark.parametrize("robust", [False, True])
def test_carrier_abundance_equals_statsmodels_ols(small_case, robust):
    G, C, present, abundance, households = small_case
    with np.errstate(divide="ignore"):
        values = np.log(abundance / abundance.sum(axis=1, keepdims=True))
    res = carrier_abundance_test(G, values, present, C, households if robust else None)
    for s in range(present.shape[1]):
        rows = present[:, s]
        for v in range(G.shape[0]):
            g = G[v, rows]
            g = np.where(np.isnan(g), np.nanmean(g), g)
            X = np.column_stack([np.ones(rows.sum()), C[rows], g])
            model = sm.OLS(values[rows, s], X)
            fit = model.fit(cov_type="cluster", cov_kwds={"groups": households[rows]}, use_t=True) if robust \
                else model.fit()
            assert res["beta"][v, s] == pytest.approx(fit.params[-1], rel=1e-9, abs=1e-12)
            assert res["se"][v, s] == pytest.approx(fit.bse[-1], rel=1e-9)
            assert res["p"][v, s] == pytest.approx(fit.pvalues[-1], rel=1e-7)
    assert res["p"][2, 0] < 1e-3          # the planted carrier-abundance effect is found


def test_hurdle_table(small_case):
    G, C, present, abundance, households = small_case
    table = hurdle(G, abundance, C, households=households, variant_ids=[f"v{i}" for i in range(12)],
                   feature_ids=list("abcde"))
    assert len(table) == 12 * 5 and table["variant_id"].iloc[5] == "v1" and table["feature"].iloc[5] == "a"
    assert table.loc[table["feature"] == "e", "p_presence"].isna().all()          # 97 % prevalent
    assert table.loc[table["feature"] != "e", "p_presence"].notna().all()


# ----------------------------------------------------------------------------- the pieces together


def test_chunked_scan_from_a_genotype_file_to_q_values(tmp_path):
    """Plan chunks, read each region, test, write Parquet per chunk, then BH and lambda over the files."""
    from statsmodels.stats.multitest import multipletests

    from workflow_scripts.io.genotype_source import open_genotypes
    from workflow_scripts.io.sumstats import iter_sumstats
    from workflow_scripts.synthetic import generate, write
    from workflow_scripts.gwas.fdr import bh_over_chunks

    cohort = generate(n_households=30, n_species=12, n_variants=90, seed=4)
    path = write(cohort, tmp_path / "c", abundance_format="tsv", genotype_format="bgen")["genotypes"]
    rng = np.random.default_rng(0)
    with open_genotypes(path) as source:
        n = len(source.samples)
        abundance = np.where(rng.random((n, 3)) < 0.8, np.exp(rng.normal(size=(n, 3))), 0.0)
        abundance[:, 0] += 0.5
        with np.errstate(divide="ignore"):      # log(0) where absent: never used
            values = np.log(abundance / abundance.sum(axis=1, keepdims=True))
        table = source.variant_table()
        plan = plan_chunks(table[~table["multiallelic"]], 20)
        files = []
        for chunk in plan.itertuples():
            variants, G = source.read(chunk.chrom, chunk.start, chunk.end)
            res = carrier_abundance_test(G, values, abundance > 0, min_carriers=5)
            frame = pd.DataFrame({
                "variant_id": np.repeat(variants["variant_id"].to_numpy(), 3),
                "chrom": np.repeat(variants["chrom"].to_numpy(), 3), "pos": np.repeat(variants["pos"].to_numpy(), 3),
                "feature": np.tile(["a", "b", "c"], len(variants)), "n": np.tile(res["n"], len(variants)),
                "beta_genotype": res["beta"].ravel(), "p_genotype": res["p"].ravel(), "q_genotype": np.nan,
                "beta_interaction": np.nan, "p_interaction": np.nan, "q_interaction": np.nan})
            files.append(write_sumstats(tmp_path / "sumstats" / f"chunk_{chunk.chunk}.parquet", frame))
    assert plan["n_variants"].sum() == len(table)
    whole = pd.concat(iter_sumstats(files))
    assert whole["variant_id"].tolist() == np.repeat(table["variant_id"].to_numpy(), 3).tolist()
    step = bh_over_chunks(lambda: (f["p_genotype"].to_numpy() for f in iter_sumstats(files, ["p_genotype"])))
    np.testing.assert_array_equal(step(whole["p_genotype"]), multipletests(whole["p_genotype"], method="fdr_bh")[1])
    codes = {"a": 0, "b": 1, "c": 2}
    lam = grouped_lambda_gc(lambda: ((f["feature"].map(codes).to_numpy(), f["p_genotype"].to_numpy())
                                     for f in iter_sumstats(files, ["feature", "p_genotype"])), 3)
    np.testing.assert_allclose(lam, [lambda_gc(whole.loc[whole["feature"] == k, "p_genotype"]) for k in "abc"],
                               rtol=1e-13)
    leads = clump(whole.rename(columns={"p_genotype": "p"}), p_threshold=0.05, window=1_000_000)
    assert leads["n_in_clump"].sum() == (whole["p_genotype"] < 0.05).sum()
