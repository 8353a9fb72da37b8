"""The association stage from the harmonised cohort: chunks, QC, ledger, models, FDR, files, planted truth.

Cohorts come from the synthetic generator through ingest, as in a run of the
workflow; every job of the stage runs in-process through its command line
(:func:`run_stage`, the rules' sequence), so the files are the ones a run writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
import statsmodels.api as sm
import yaml
from scipy import stats
from statsmodels.stats.multitest import multipletests

from conftest import REPO
from workflow_scripts.association import cli
from workflow_scripts.association.chunks import BLOCK_VARIANTS, ChunkInputs, run_chunk
from workflow_scripts.association.gather import OUTPUT_COLUMNS
from workflow_scripts.association.prepare import AssociationSettings, parse_region, plan_chunks, prepare
from workflow_scripts.association.resources import chunk_id, chunk_mem_mb, fdr_mem_mb, sumstats_mem_mb
from workflow_scripts.cohort import read_cohort, write_cohort
from workflow_scripts.design import first_samples
from workflow_scripts.ingest.harmonise import Settings as IngestSettings
from workflow_scripts.io.genotype_source import companion_files
from workflow_scripts.ingest.harmonise import ingest
from workflow_scripts.ledger import COLUMNS as LEDGER_COLUMNS
from workflow_scripts.models.association import genetic_pcs
from workflow_scripts.synthetic import generate, write

COVARIATES = ["sex", "age", "bmi"]


def ingest_to(paths, directory, covariates=COVARIATES, **overrides):
    """Ingest written synthetic files and write the harmonised cohort to ``directory``."""
    values = dict(participants=str(paths["participants"]), stool_manifest=str(paths["stool_manifest"]),
                  abundance=str(paths["abundance"]), blood_manifest=str(paths["blood_manifest"]),
                  taxonomy=str(paths["taxonomy"]), genotypes=str(paths["genotypes"]),
                  variants=str(paths["variants"]), covariates=tuple(covariates))
    values.update(overrides)
    cohort, _ = ingest(IngestSettings(**values))
    write_cohort(cohort, directory)
    return Path(directory)


def make_cohort(root, genotype_format="vcf.gz", **kwargs):
    """Generate, write and ingest a synthetic cohort; returns (cohort directory, synthetic cohort)."""
    synthetic = generate(**kwargs)
    paths = write(synthetic, Path(root) / "inputs", abundance_format="tsv", genotype_format=genotype_format)
    return ingest_to(paths, Path(root) / "cohort"), synthetic


def run_stage(cohort_dir, out, **settings) -> SimpleNamespace:
    """Every job of the stage through its command line, in the rules' order; the results read back."""
    out, inter = Path(out), Path(out) / "intermediate"
    prep = inter / "prepared"
    shared = ["--participants", prep / "participants.tsv", "--rows", prep / "rows.tsv",
              "--abundance", prep / "abundance.tsv", "--relative", prep / "relative.tsv",
              "--chunks", prep / "chunks.tsv"]

    def call(*args):
        assert cli.main([str(a) for a in args]) == 0, args[0]

    settings = {"covariates": COVARIATES, "hurdle": True, **settings}     # the hurdle model too (off by default)
    call("prepare", "--cohort", cohort_dir, "--settings", json.dumps(settings), "--ledger", prep / "ledger.tsv",
         "--labelled", prep / "labelled.tsv", "--prepared", prep / "prepared.json", *shared)
    prepared = json.loads((prep / "prepared.json").read_text())
    ids = [chunk_id(i) for i in range(prepared["n_chunks"])]
    tests = [inter / "tests" / f"chunk_{i}.parquet" for i in ids]
    qc = [inter / "qc" / f"chunk_{i}.tsv" for i in ids]
    for i, t, q in zip(ids, tests, qc):
        call("chunk", "--cohort", cohort_dir, "--prepared", prep / "prepared.json", *shared, "--chunk", i,
             "--tests", t, "--qc", q)
    fdr = inter / "fdr"
    call("fdr", "--prepared", prep / "prepared.json", "--tests", *tests, "--steps", fdr / "steps.parquet",
         "--qq", fdr / "qq.tsv", "--testing", fdr / "testing.json", "--inflation", out / "inflation.tsv")
    parts = {k: [inter / "pieces" / f"chunk_{i}.{k}.tsv" for i in ids] for k in ("table", "variants", "hits", "top")}
    sumstats = [out / "sumstats" / f"chunk_{i}.parquet" for i in ids]
    for j, i in enumerate(ids):
        call("sumstats", "--prepared", prep / "prepared.json", "--labelled", prep / "labelled.tsv",
             "--steps", fdr / "steps.parquet", "--testing", fdr / "testing.json", "--tests", tests[j],
             "--sumstats", sumstats[j], "--table-part", parts["table"][j], "--variant-part", parts["variants"][j],
             "--hits-part", parts["hits"][j], "--top-part", parts["top"][j])
    call("table", "--prepared", prep / "prepared.json", "--testing", fdr / "testing.json",
         "--inflation", out / "inflation.tsv", "--chunks", prep / "chunks.tsv", "--labelled", prep / "labelled.tsv",
         "--ledger-part", prep / "ledger.tsv", "--qc-parts", *qc, "--table-parts", *parts["table"],
         "--variant-parts", *parts["variants"], "--hits-parts", *parts["hits"], "--top-parts", *parts["top"],
         "--sumstats", *sumstats, "--table", out / "genotype_species.tsv",
         "--variant-summary", out / "variant_summary.tsv", "--variant-qc", out / "variant_qc.tsv",
         "--ledger", out / "ledger.tsv", "--leads", out / "lead_variants.tsv", "--heatmap", inter / "heatmap.tsv",
         "--sumstats-index", out / "sumstats.tsv", "--summary", out / "summary.json",
         "--markdown", out / "summary.md")
    read = lambda name, **kw: pd.read_csv(out / name, sep="\t", keep_default_na=False, na_values=[""],
                                          dtype={"variant_id": str, "feature": str, "id": str}, **kw)
    table = read("genotype_species.tsv")
    return SimpleNamespace(
        out=out, prepared=prepared, sumstats_files=sumstats,
        sumstats=pd.concat([pd.read_parquet(f) for f in sumstats], ignore_index=True) if sumstats else None,
        table=table, qc=read("variant_qc.tsv"), ledger=read("ledger.tsv"), leads=read("lead_variants.tsv"),
        inflation=read("inflation.tsv"), summary=json.loads((out / "summary.json").read_text()),
        markdown=(out / "summary.md").read_text(), rows=read("intermediate/prepared/rows.tsv", index_col=0),
        abundance=read("intermediate/prepared/abundance.tsv", index_col=0),
        participants=read("intermediate/prepared/participants.tsv", index_col=0),
        figures=lambda: call("figures", "--variant-summary", out / "variant_summary.tsv",
                             "--heatmap", inter / "heatmap.tsv", "--qq", fdr / "qq.tsv",
                             "--summary", out / "summary.json",
                             "--manhattan-interaction", out / "figures" / "manhattan_interaction.png",
                             "--manhattan-genotype", out / "figures" / "manhattan_genotype.png",
                             "--heatmap-figure", out / "figures" / "heatmap_interaction.png",
                             "--qq-figure", out / "figures" / "qq.png"))


def dosages_of(cohort_dir, participant_ids) -> pd.DataFrame:
    """Participants' dosages of every variant (variants x participants), read whole (small cohorts only)."""
    cohort = read_cohort(cohort_dir)
    variants, G = cohort.genotypes.dosage_matrix(list(participant_ids))
    return pd.DataFrame(G, index=variants["variant_id"], columns=list(participant_ids))


PLANTED_SEEDS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module", params=PLANTED_SEEDS, ids=lambda seed: f"seed{seed}")
def planted(request, tmp_path_factory):
    """About 300 households, 12 variants, 20 species: three planted main effects and three
    genotype x MS interactions; repeated stool samples; one cohort per seed in PLANTED_SEEDS."""
    root = tmp_path_factory.mktemp("planted")
    cohort_dir, synthetic = make_cohort(root, n_households=300, n_unpaired=0, seed=request.param, n_variants=12,
                                        n_species=20)
    return run_stage(cohort_dir, root / "association", chunk_size=5), synthetic.truth_associations


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """300 households, 40 variants x 60 species, repeat stool samples and unpaired participants."""
    root = tmp_path_factory.mktemp("wide")
    return make_cohort(root, n_households=300, n_unpaired=10, seed=11, n_variants=40, n_species=60)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """The workflow's bundled cohort (24 households, edge cases) written as ingest writes it."""
    resources = REPO / "resources" / "synthetic"
    paths = {k: resources / v for k, v in {
        "participants": "participants.tsv", "stool_manifest": "stool_manifest.tsv", "abundance": "abundance.biom",
        "blood_manifest": "blood_manifest.tsv", "taxonomy": "taxonomy.tsv", "genotypes": "genotypes.vcf.gz",
        "variants": "variants.tsv"}.items()}
    return ingest_to(paths, tmp_path_factory.mktemp("bundled") / "cohort")


# --------------------------------------------------------------------------
# Planted truth, calibration, exactness
# --------------------------------------------------------------------------


def test_planted_effects_are_found_with_the_right_sign(planted):
    """Every planted main effect and genotype x MS interaction at q < 0.05, right sign, and at most
    one false interaction, in every cohort of PLANTED_SEEDS (not chosen: the first five), with
    every stool sample a row (repeated_samples: all) and the household clusters.

    The generator plants +-0.8 (main) and +-1.0 (interaction, MS only) natural log per allele on
    core species with common variants (z about 13 and 8 with one profile per participant).
    """
    run, truth = planted
    assert run.prepared["n_participants"] == 600 and run.prepared["n_paired_households"] == 300
    assert run.prepared["n_rows"] > 600                     # repeated samples are rows
    key = run.table.set_index(["variant_id", "feature"])
    for row in truth.itertuples():
        kind = "interaction" if row.effect == "interaction" else "genotype"
        hit = key.loc[(row.variant_id, row.feature)]
        assert hit[f"q_{kind}"] < 0.05, (row, hit[f"q_{kind}"])
        assert np.sign(hit[f"beta_{kind}"]) == np.sign(row.beta), row
    planted_interactions = set(zip(truth.loc[truth["effect"] == "interaction", "variant_id"],
                                   truth.loc[truth["effect"] == "interaction", "feature"]))
    found = set(zip(run.table.loc[run.table["q_interaction"] < 0.05, "variant_id"],
                    run.table.loc[run.table["q_interaction"] < 0.05, "feature"]))
    assert len(found - planted_interactions) <= 1
    assert run.summary["n_significant"]["interaction"] == len(found)
    labelled = {v["variant_id"]: v for v in run.summary["labelled_variants"]}
    assert labelled["rs3135388"]["label"] == "HLA-DRB1*15:01 tag"
    assert labelled["rs3135388"]["interaction"]["feature"] == "s__Akkermansia_muciniphila"
    # the hurdle model ran on every test: presence where the species is 10-90 % prevalent
    assert run.sumstats["p_carriers"].notna().mean() > 0.5 and run.sumstats["p_presence"].notna().any()


def _permuted(cohort_dir, out, seed=2024, **settings):
    """The stage with the participants' genotypes permuted among them (the null of every test)."""
    cohort = read_cohort(cohort_dir)
    rng = np.random.default_rng(seed)
    samples = cohort.genotypes.samples.copy()
    order = rng.permutation(samples["participant_id"].unique())
    mapping = dict(zip(samples["participant_id"].unique(), order))
    samples["participant_id"] = samples["participant_id"].map(mapping)
    target = Path(out) / "cohort"
    target.mkdir(parents=True, exist_ok=True)
    for f in Path(cohort_dir).iterdir():
        if f.is_file():
            (target / f.name).write_bytes(f.read_bytes())
    access = Path(cohort_dir) / "genotype_access"
    if access.is_dir():
        (target / "genotype_access").mkdir(exist_ok=True)
        for f in access.iterdir():
            (target / "genotype_access" / f.name).write_bytes(f.read_bytes())
    samples.to_csv(target / "genotype_samples.tsv", sep="\t", index=False)
    return run_stage(target, Path(out) / "association", **settings)


def test_permuted_genotypes_give_uniform_p_values_with_repeated_samples_as_rows(wide, tmp_path):
    """repeated_samples: all (the default) under the null: every kind of test is calibrated, because a
    participant's samples share a cluster; taking them as independent would not be (checked here too)."""
    cohort_dir, _ = wide
    run = _permuted(cohort_dir, tmp_path)
    s = run.sumstats
    assert run.prepared["n_rows"] > run.prepared["n_participants"] + 50
    for column in ("p_genotype", "p_interaction", "p_presence", "p_carriers"):
        p = s[column].dropna().to_numpy()
        assert p.size > 800, column
        assert stats.kstest(p, "uniform").pvalue > 0.001, column
        assert 0.025 < np.mean(p < 0.05) < 0.08, (column, np.mean(p < 0.05))
    # the same rows as independent observations (model-based errors): too many small p-values
    Y = run.abundance.to_numpy()
    rows = run.rows
    G = dosages_of(run.out.parent / "cohort", run.participants.index)
    g = G.loc[:, rows["participant_id"]].to_numpy()
    covariates = rows[run.prepared["covariate_columns"]].to_numpy(float)
    X0 = np.column_stack([np.ones(len(rows)), rows["status"].to_numpy(float), covariates])
    naive = []
    for v in range(0, g.shape[0], 4):
        for j in range(0, Y.shape[1], 6):
            fit = sm.OLS(Y[:, j], np.column_stack([X0, g[v]])).fit()
            naive.append(fit.pvalues[-1])
    clustered = s["p_genotype"].to_numpy()
    assert np.mean(np.array(naive) < 0.05) > np.mean(clustered < 0.05) + 0.01


def test_stage_results_equal_statsmodels_on_a_random_subset(wide, tmp_path):
    cohort_dir, _ = wide
    run = run_stage(cohort_dir, tmp_path / "a")
    rows, A = run.rows, run.abundance
    cov = rows[run.prepared["covariate_columns"]].to_numpy(dtype=float)
    status = rows["status"].to_numpy(dtype=float)
    groups = pd.factorize(rows["cluster"])[0]
    G = dosages_of(cohort_dir, run.participants.index)
    tested = run.qc.set_index("variant_id")
    rng = np.random.default_rng(5)
    worst = 0.0
    kw = dict(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    for i in rng.choice(len(run.table), 40, replace=False):
        row = run.table.iloc[i]
        g = G.loc[row["variant_id"], rows["participant_id"]].to_numpy(dtype=float)
        y = A[row["feature"]].to_numpy()
        X = np.column_stack([np.ones(len(g)), status, cov, g])
        fa = sm.OLS(y, X).fit(**kw)
        np.testing.assert_allclose([row["beta_genotype"], row["se_genotype"], row["p_genotype"]],
                                   [fa.params[-1], fa.bse[-1], fa.pvalues[-1]], rtol=1e-7)
        worst = max(worst, abs(row["p_genotype"] - fa.pvalues[-1]))
        if tested.loc[row["variant_id"], "test_interaction"]:
            fb = sm.OLS(y, np.column_stack([X, g * status])).fit(**kw)
            np.testing.assert_allclose([row["beta_interaction"], row["se_interaction"], row["p_interaction"]],
                                       [fb.params[-1], fb.bse[-1], fb.pvalues[-1]], rtol=1e-7)
            worst = max(worst, abs(row["p_interaction"] - fb.pvalues[-1]))
    assert worst < 1e-9
    assert (run.table["n"] == len(rows)).mean() > 0.9          # n counts the rows (stool samples)


def test_q_values_are_bh_over_every_chunk_and_chunking_changes_nothing(wide, tmp_path):
    cohort_dir, _ = wide
    one = run_stage(cohort_dir, tmp_path / "one", chunk_size=1000)
    many = run_stage(cohort_dir, tmp_path / "many", chunk_size=7)
    assert one.prepared["n_chunks"] == 1 and many.prepared["n_chunks"] > 5
    pd.testing.assert_frame_equal(one.sumstats, many.sumstats)
    pd.testing.assert_frame_equal(one.table, many.table)
    for kind in ("genotype", "interaction", "presence", "carriers"):
        p = many.sumstats[f"p_{kind}"]
        ok = p.notna().to_numpy()
        expected = np.full(len(p), np.nan)
        expected[ok] = multipletests(p[ok], method="fdr_bh")[1]
        np.testing.assert_array_equal(many.sumstats[f"q_{kind}"].to_numpy(), expected)
    assert list(many.table.columns) == OUTPUT_COLUMNS
    assert len(many.table) == len(many.sumstats) == many.summary["table"]["n_tests"]
    order = many.sumstats.drop_duplicates("variant_id")[["chrom", "pos"]].astype(str).reset_index(drop=True)
    assert order.equals(many.qc.loc[many.qc["keep"], ["chrom", "pos"]].astype(str).reset_index(drop=True))
    lam = one.inflation.set_index(["kind", "feature"])["lambda_gc"]
    p = one.sumstats.loc[one.sumstats["feature"] == one.sumstats["feature"].iloc[0], "p_genotype"]
    assert lam[("genotype", one.sumstats["feature"].iloc[0])] == pytest.approx(
        np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1), rel=1e-9)     # written with 10 digits


def test_table_holds_only_selected_tests_above_the_limit(wide, tmp_path):
    cohort_dir, _ = wide
    run = run_stage(cohort_dir, tmp_path, max_table_tests=100, table_p_max=1e-3)
    s = run.sumstats
    expected = s[(s["q_genotype"] < 0.05) | (s["q_interaction"] < 0.05) | (s["p_genotype"] < 1e-3)
                 | (s["p_interaction"] < 1e-3)]
    assert 0 < len(run.table) == len(expected) < len(s)
    assert run.summary["table"] == {"mode": "selected", "n_rows": len(expected), "n_tests": len(s)}
    assert "more than `association.max_table_tests` (100)" in run.markdown


# --------------------------------------------------------------------------
# Participants, rows, species, variants: QC and ledger
# --------------------------------------------------------------------------


def test_ledger_lists_every_exclusion_with_its_reason(wide, tmp_path):
    cohort_dir, _ = wide
    run = run_stage(cohort_dir, tmp_path, maf_min=0.15, repeated_samples="first")
    ledger = run.ledger
    assert list(ledger.columns) == LEDGER_COLUMNS
    rows = ledger.set_index(["entity", "id"])
    failed = run.qc[~run.qc["keep"]]
    assert len(failed) and set(";".join(failed["reason"]).split(";")) >= {"low_maf"}
    for r in failed.itertuples():
        assert rows.loc[("variant", r.variant_id), "outcome"] == "dropped"
        assert rows.loc[("variant", r.variant_id), "reason"] == r.reason
    assert (run.qc.loc[run.qc["keep"], "maf"] >= 0.15).all()
    assert len(run.qc) == run.prepared["n_variants"]               # every variant has a QC row
    features = set(ledger.loc[ledger["entity"] == "feature", "id"])
    assert features and not features & set(run.abundance.columns)
    cohort = read_cohort(cohort_dir)
    repeats = cohort.samples[cohort.samples["participant_id"].isin(run.participants.index)]
    assert (ledger["reason"] == "repeat_sample_not_used").sum() == len(repeats) - repeats["participant_id"].nunique() > 0
    assert run.summary["n_variants_failed_qc"] == len(failed)


def test_participants_without_genotype_or_covariate_are_ledger_rows(wide, tmp_path):
    cohort_dir, _ = wide
    cohort = read_cohort(cohort_dir)
    target = tmp_path / "cohort"
    target.mkdir()
    for f in Path(cohort_dir).rglob("*"):
        if f.is_file():
            (target / f.relative_to(cohort_dir)).parent.mkdir(parents=True, exist_ok=True)
            (target / f.relative_to(cohort_dir)).write_bytes(f.read_bytes())
    pids = list(cohort.participants.index)
    samples = cohort.genotypes.samples
    samples[samples["participant_id"] != pids[0]].to_csv(target / "genotype_samples.tsv", sep="\t", index=False)
    part = pd.read_csv(target / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    part.loc[part["participant_id"] == pids[0], "has_genotype"] = "False"
    part.loc[part["participant_id"] == pids[1], "bmi"] = ""
    part.to_csv(target / "participants.tsv", sep="\t", index=False)
    run = run_stage(target, tmp_path / "association")
    rows = run.ledger.set_index(["entity", "id"])
    assert rows.loc[("participant", pids[0]), "reason"] == "no_genotype"
    assert rows.loc[("participant", pids[1]), "reason"] == "missing_covariate"
    assert not {pids[0], pids[1]} & set(run.participants.index)


def test_interaction_needs_carriers_among_cases_and_controls(tmp_path):
    synthetic = generate(n_households=150, n_unpaired=0, seed=3, n_variants=10, n_species=20)
    cases = synthetic.blood_manifest["participant_id"].map(
        synthetic.participants.set_index("participant_id")["status"]).eq("MS").to_numpy()
    columns = synthetic.blood_manifest["sample_id"].to_numpy()
    vid = synthetic.dosages.index[4]
    row = np.where(cases, 0.0, synthetic.dosages.loc[vid, columns].to_numpy())
    row[np.flatnonzero(cases)[:2]] = 1.0                       # two carriers among cases
    synthetic.dosages.loc[vid, columns] = row
    synthetic.genotypes.loc[vid, columns] = row
    paths = write(synthetic, tmp_path / "inputs", abundance_format="tsv", genotype_format="dosage")
    run = run_stage(ingest_to(paths, tmp_path / "cohort"), tmp_path / "association")
    qc = run.qc.set_index("variant_id").loc[vid]
    assert qc["keep"] and not qc["test_interaction"] and qc["carriers_cases"] == 2
    tests = run.table[run.table["variant_id"] == vid]
    assert tests["p_genotype"].notna().all()
    assert tests[["beta_interaction", "se_interaction", "p_interaction", "q_interaction"]].isna().all().all()
    note = run.ledger.set_index(["entity", "id"]).loc[("variant", vid)]
    assert note["outcome"] == "kept" and note["reason"] == "interaction_not_tested"


def test_genetic_pcs_come_from_a_thinned_qc_passing_subset(wide, tmp_path):
    cohort_dir, _ = wide
    none = run_stage(cohort_dir, tmp_path / "none")
    assert none.prepared["genetic_pcs"]["used"] == 0 and "pcs_min_variants" in none.prepared["genetic_pcs"]["reason"]
    run = run_stage(cohort_dir, tmp_path / "pcs", genetic_pcs=2, pcs_min_variants=5, pcs_max_variants=15)
    pcs = run.prepared["genetic_pcs"]
    assert run.prepared["covariate_columns"][-2:] == ["PC1", "PC2"] and pcs["used"] == 2
    variants = read_cohort(cohort_dir, with_variants=True).variants
    thinned = variants.iloc[::3]                                 # 40 variants, at most 15: every 3rd
    keep = run.qc.set_index("variant_id").loc[thinned["variant_id"], "keep"]
    assert pcs["n_variants"] == keep.sum() < len(thinned) + 1
    G = dosages_of(cohort_dir, run.participants.index).loc[keep.index[keep.to_numpy()]]
    expected = pd.DataFrame(genetic_pcs(G.to_numpy(), k=2), index=run.participants.index)
    got = run.rows.groupby("participant_id")[["PC1", "PC2"]].first().loc[run.participants.index]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-10)


@pytest.mark.parametrize("policy", ["all", "first", "sum", "mean"])
def test_repeated_samples_policies(wide, tmp_path, policy):
    cohort_dir, _ = wide
    run = run_stage(cohort_dir, tmp_path, repeated_samples=policy, hurdle=False)
    cohort = read_cohort(cohort_dir)
    analysed = cohort.samples[cohort.samples["participant_id"].isin(run.participants.index)]
    if policy == "all":
        assert list(run.rows.index) == sorted(analysed.index, key=lambda s: (
            list(run.participants.index).index(analysed.loc[s, "participant_id"]), s))
    else:
        assert list(run.rows.index) == list(run.participants.index)
    counts = cohort.table("taxa").loc[analysed.index]
    pid = analysed["participant_id"].value_counts().index[0]           # one with several samples
    mine = counts.loc[analysed.index[analysed["participant_id"] == pid]]
    if policy == "sum":
        profile = mine.sum()
    elif policy == "mean":
        profile = mine.div(mine.sum(axis=1), axis=0).mean()
    else:
        first = mine.index[0] if policy == "all" else first_samples(analysed).loc[pid]
        profile = counts.loc[first]
    row = pid if policy != "all" else mine.index[0]
    zero = 0.5 if policy in ("all", "first", "sum") else 0.5 * profile[profile > 0].min()
    logs = np.log2(np.where(profile > 0, profile, zero) if policy == "mean" else profile + 0.5)
    clr = pd.Series(logs - logs.mean(), index=profile.index)
    np.testing.assert_allclose(run.abundance.loc[row], clr[run.abundance.columns], rtol=1e-10)
    assert run.summary["abundance"]["repeated_samples"] == policy


def test_a_cohort_without_households_is_clustered_by_participant(tmp_path):
    """Issue 12 item 3: no household at all (an unpaired cohort) runs, each participant its own cluster."""
    synthetic = generate(n_households=100, n_unpaired=0, seed=7, n_variants=12, n_species=20)
    synthetic.participants["household_id"] = np.nan              # an unpaired cohort
    paths = write(synthetic, tmp_path / "inputs", abundance_format="tsv", genotype_format="bcf")
    run = run_stage(ingest_to(paths, tmp_path / "cohort"), tmp_path / "association")
    assert run.prepared["n_households"] == 0 and run.prepared["n_clusters"] == run.prepared["n_participants"]
    assert "by participant" in run.summary["errors"] and "by participant" in run.markdown
    assert run.sumstats["p_genotype"].notna().all() and run.summary["n_tests"]["genotype"] > 0
    rows = run.rows
    assert (rows.groupby("participant_id")["cluster"].nunique() == 1).all()


def test_the_hurdle_model_is_off_by_default(bundled, tmp_path):
    run = run_stage(bundled, tmp_path, hurdle=False)
    assert "p_presence" not in run.sumstats.columns and "p_carriers" not in run.sumstats.columns
    assert run.summary["n_tests"]["presence"] == 0 and "Hurdle" not in run.markdown
    assert AssociationSettings.from_config(covariates=COVARIATES).hurdle is False


def test_nothing_testable_gives_an_empty_table_and_says_why(bundled, tmp_path):
    run = run_stage(bundled, tmp_path, maf_min=0.5)
    assert run.summary["n_variants_tested"] == 0 and run.table.empty
    assert run.sumstats["p_genotype"].isna().all() if len(run.sumstats) else True


# --------------------------------------------------------------------------
# Genotype formats
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    """One planted cohort in every format; the stage's statistics of each."""
    root = tmp_path_factory.mktemp("formats")
    synthetic = generate(n_households=120, n_unpaired=4, seed=21, n_variants=30, n_species=15)
    runs = {}
    for fmt in ("vcf", "vcf.gz", "bcf", "bgen", "dosage", "plink"):
        paths = write(synthetic, root / fmt, abundance_format="tsv", genotype_format=fmt)
        runs[fmt] = run_stage(ingest_to(paths, root / fmt / "cohort"), root / fmt / "association", chunk_size=8)
    # PLINK holds hard calls: its reference is a dosage TSV of the same hard calls
    hard = write(synthetic, root / "hard", abundance_format="tsv", genotype_format="dosage")
    table = synthetic.genotypes.rename_axis("variant_id")
    table.to_csv(hard["genotypes"], sep="\t", float_format="%g")
    runs["hard"] = run_stage(ingest_to(hard, root / "hard" / "cohort"), root / "hard" / "association", chunk_size=8)
    return runs, synthetic


STATISTICS = ["n", "allele_frequency", "beta_genotype", "se_genotype", "p_genotype", "q_genotype",
              "beta_interaction", "p_interaction", "q_interaction", "beta_presence", "p_presence",
              "beta_carriers", "p_carriers"]


@pytest.mark.parametrize("fmt", ["vcf.gz", "bcf", "dosage"])
def test_every_dosage_format_gives_identical_statistics(formats, fmt):
    runs, _ = formats
    reference, other = runs["vcf"].sumstats, runs[fmt].sumstats
    pd.testing.assert_frame_equal(other[["variant_id", "feature", *STATISTICS]],
                                  reference[["variant_id", "feature", *STATISTICS]])


def test_bgen_equals_vcf_within_its_probability_precision(formats):
    runs, _ = formats
    reference, bgen = runs["vcf"].sumstats, runs["bgen"].sumstats
    assert list(bgen["variant_id"]) == list(reference["variant_id"])
    for column in STATISTICS:
        np.testing.assert_allclose(bgen[column], reference[column], rtol=1e-6, atol=1e-12, equal_nan=True)


def test_plink_equals_the_same_hard_calls(formats):
    runs, synthetic = formats
    pd.testing.assert_frame_equal(runs["plink"].sumstats[["variant_id", "feature", *STATISTICS]],
                                  runs["hard"].sumstats[["variant_id", "feature", *STATISTICS]])
    # and the planted effects are found from hard calls too
    truth = synthetic.truth_associations
    key = runs["plink"].table.set_index(["variant_id", "feature"])
    main = truth[truth["effect"] != "interaction"]
    found = [key.loc[(r.variant_id, r.feature), "q_genotype"] < 0.05 for r in main.itertuples()]
    assert sum(found) >= len(found) - 1


# --------------------------------------------------------------------------
# Chunks: what a job reads
# --------------------------------------------------------------------------


def test_plan_chunks_cover_every_variant_once_by_chromosome():
    rng = np.random.default_rng(3)
    chrom = np.repeat(["1", "2", "3", "4", "5"], [230, 7, 5, 9, 61])
    pos = np.concatenate([np.sort(rng.integers(1, 10_000, n)) for n in (230, 7, 5, 9, 61)])
    pos[10:14] = pos[10]                                       # several records at one position
    variants = pd.DataFrame({"index": np.arange(chrom.size) + np.arange(chrom.size) // 50, "chrom": chrom,
                             "pos": pos})
    plan = plan_chunks(variants, 50)
    assert plan["n_variants"].sum() == len(variants) and plan["n_variants"].max() <= 53
    assert plan.loc[plan["regions"] == "2;3;4", "n_variants"].tolist() == [21]   # small chromosomes merged
    assert (plan["chrom"] == "1").sum() == 5                                       # 230 in 5 near-equal parts
    seen = []
    for chunk in plan.itertuples():                   # the regions select exactly the chunk's variants
        for region in chunk.regions.split(";"):
            name, start, end = parse_region(region)
            rows = (chrom == name) & (pos >= (start or 0)) & (pos <= (end or np.inf))
            seen.extend(np.flatnonzero(rows))
        rows = (variants["index"] >= chunk.first_index) & (variants["index"] < chunk.stop_index)
        assert rows.sum() == chunk.n_variants
    assert sorted(seen) == list(range(len(variants)))
    ranges = plan_chunks(variants.assign(chrom="", pos=0), 50, region_reads=False)   # a dosage TSV
    assert len(ranges) == 7 and ranges["n_variants"].sum() == len(variants) and ranges["n_variants"].max() <= 50


def test_a_chunk_job_reads_only_its_chunk_in_bounded_blocks(wide):
    cohort_dir, _ = wide
    cohort = read_cohort(cohort_dir, with_variants=True)
    s = AssociationSettings.from_config(covariates=COVARIATES, chunk_size=15, hurdle=False)
    prepared = prepare(cohort, s)

    class Spy:
        def __init__(self, source):
            self.source, self.records, self.blocks, self.path = source, 0, [], source.path

        def __getattr__(self, name):
            method = getattr(self.source, name)

            def wrapped(*args, **kwargs):
                for variants, dosages in method(*args, **kwargs):
                    self.records += len(variants)
                    self.blocks.append(len(variants))
                    yield variants, dosages
            return wrapped if name in ("iter_region", "iter_range") else method

    inputs = ChunkInputs(prepared.participants, prepared.rows, prepared.abundance, prepared.relative,
                         prepared.covariate_columns)
    chunk = next(prepared.chunks.iloc[1:2].itertuples())
    with cohort.genotypes.open() as source:
        spy = Spy(source)
        results = list(run_chunk(spy, chunk, cohort.genotypes.region_reads, inputs, s, size=4))
    assert spy.records == chunk.n_variants and max(spy.blocks) <= 4
    assert sum(len(qc) for _, qc in results) == chunk.n_variants


def test_memory_estimates_do_not_grow_with_variants(tmp_path):
    path = tmp_path / "prepared.json"

    def mem(kind, variants, chunk_size=20_000, rows=5000, S=200):
        path.write_text(json.dumps({"n_participants": 4000, "n_rows": rows, "n_features": S, "chunk_size": chunk_size,
                                    "n_variants": variants, "covariate_columns": ["a"] * 12,
                                    "n_file_samples": 4000}))
        return kind(path, 2000, 1)

    for kind in (chunk_mem_mb, fdr_mem_mb, sumstats_mem_mb):
        assert mem(kind, 10_000) == mem(kind, 8_000_000)
    assert mem(chunk_mem_mb, 10_000, rows=5000) < 4096 < mem(chunk_mem_mb, 10_000, rows=20_000)
    assert chunk_mem_mb(path, 2000, 2) == 2 * chunk_mem_mb(path, 2000, 1)
    assert BLOCK_VARIANTS <= 2000


# --------------------------------------------------------------------------
# Command line, files, rules
# --------------------------------------------------------------------------


def test_command_line_files_end_to_end(bundled, tmp_path):
    run = run_stage(bundled, tmp_path / "a", chunk_size=10)
    assert run.prepared["n_chunks"] >= 3
    run.figures()
    again = run_stage(bundled, tmp_path / "b", chunk_size=10)
    for name in ("genotype_species.tsv", "variant_summary.tsv", "variant_qc.tsv", "ledger.tsv", "summary.md",
                 "lead_variants.tsv", "inflation.tsv", "sumstats.tsv", *[f"sumstats/{f.name}" for f in run.sumstats_files]):
        assert (run.out / name).read_bytes() == (again.out / name).read_bytes(), name
    # the sumstats directory is one dataset for any Parquet reader (here pyarrow's)
    table = ds.dataset(run.out / "sumstats", format="parquet").to_table().to_pandas()
    assert len(table) == len(run.sumstats) == run.summary["table"]["n_tests"]
    assert {"variant_id", "feature", "beta_genotype", "p_genotype", "q_genotype", "beta_interaction",
            "p_interaction", "q_interaction", "n", "chrom", "pos", "p_presence", "q_carriers"} <= set(table.columns)
    assert list(run.table.columns) == OUTPUT_COLUMNS and len(run.table) == len(table)
    text = run.markdown
    assert "**rs3135388** (HLA-DRB1*15:01 tag, HLA-DRB1)" in text and "cluster-robust by household" in text
    assert "every one of the" in text and "study-wide" in text
    assert {v["variant_id"] for v in run.summary["labelled_variants"]} == {"rs3135388", "rs4988235", "rs601338"}
    for name in ("manhattan_interaction.png", "manhattan_genotype.png", "heatmap_interaction.png", "qq.png"):
        assert (run.out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ledger = run.ledger
    assert list(ledger.columns) == LEDGER_COLUMNS and (ledger["entity"] == "participant").any()
    index = pd.read_csv(run.out / "sumstats.tsv", sep="\t")
    assert index["n_tests"].sum() == len(table) and index["file"].tolist() == [f.name for f in run.sumstats_files]


def test_a_dosage_outside_0_2_in_a_chunk_is_a_clear_error(tmp_path, capsys):
    """Ingest checks the first variants; a chunk job checks the ones it reads, and names them."""
    synthetic = generate(n_households=30, n_unpaired=0, seed=5, n_variants=12, n_species=12)
    paths = write(synthetic, tmp_path / "inputs", abundance_format="tsv", genotype_format="vcf")
    lines = Path(paths["genotypes"]).read_text().splitlines()
    last = lines[-1].split("\t")
    last[9] = last[9].rsplit(":", 1)[0] + ":2.7"
    lines[-1] = "\t".join(last)
    Path(paths["genotypes"]).write_text("\n".join(lines) + "\n")
    from workflow_scripts.io import genotypes as reader

    cohort_dir = tmp_path / "cohort"
    original = reader.CHECK_VARIANTS
    try:
        reader.CHECK_VARIANTS = 5
        cohort, _ = ingest(IngestSettings(
            participants=str(paths["participants"]), stool_manifest=str(paths["stool_manifest"]),
            abundance=str(paths["abundance"]), blood_manifest=str(paths["blood_manifest"]),
            taxonomy=str(paths["taxonomy"]), genotypes=str(paths["genotypes"]), variants=str(paths["variants"]),
            covariates=tuple(COVARIATES)))
    finally:
        reader.CHECK_VARIANTS = original
    write_cohort(cohort, cohort_dir)
    with pytest.raises(AssertionError):
        run_stage(cohort_dir, tmp_path / "association", chunk_size=100)
    message = capsys.readouterr().err
    assert "DS 2.7 is outside 0-2" in message and last[2] in message and "Nothing was written" in message


def _dry_run(tmp_path, config):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "1",
                             "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def test_rules_exist_only_with_genotypes_and_declare_companion_files(tmp_path):
    resources = REPO / "resources" / "synthetic"
    inputs = {k: str(resources / v) for k, v in {
        "participants": "participants.tsv", "stool_manifest": "stool_manifest.tsv",
        "abundance": "abundance.biom", "taxonomy": "taxonomy.tsv"}.items()}
    without = _dry_run(tmp_path / "without", {"inputs": inputs, "outdir": "out"})
    assert "association_" not in without and "out/association/" not in without  # (clinical/associations.tsv is another stage)
    inputs.update(blood_manifest=str(resources / "blood_manifest.tsv"),
                  genotypes=str(resources / "genotypes.vcf.gz"), variants=str(resources / "variants.tsv"))
    with_genotypes = _dry_run(tmp_path / "with", {"inputs": inputs, "outdir": "out",
                                                   "association": {"chunk_size": 5}})
    assert "association_prepare" in with_genotypes and "association_table" in with_genotypes
    synthetic = generate(n_households=10, n_unpaired=0, seed=2, n_variants=12, n_species=12)
    plink = write(synthetic, tmp_path / "plink", abundance_format="tsv", genotype_format="plink")
    bgen = write(synthetic, tmp_path / "bgen", abundance_format="tsv", genotype_format="bgen")
    assert companion_files(plink["genotypes"]) == [str(plink["genotypes"]), str(plink["genotypes_bim"]),
                                                   str(plink["genotypes_fam"])]
    assert companion_files(bgen["genotypes"]) == [str(bgen["genotypes_sample"])]
    # a PLINK fileset without its .bim stops the run before anything runs, naming it
    config = {"inputs": {k: str(plink[k]) for k in ("participants", "stool_manifest", "abundance",
                                                      "blood_manifest", "taxonomy", "genotypes")}, "outdir": "out"}
    Path(plink["genotypes_bim"]).rename(tmp_path / "away.bim")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "1",
                             "--directory", str(tmp_path / "run"), "--configfile",
                             str(tmp_path / "run" / "config.yaml")], capture_output=True, text=True)
    assert result.returncode != 0 and "genotypes.bim" in result.stdout + result.stderr
