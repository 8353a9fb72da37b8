"""The association stage from the harmonised cohort: QC, ledger, scatter/gather, FDR, planted truth.

Cohorts come from the synthetic generator through ingest, as in a run of the
workflow; the chunk jobs and the gather run in-process
(:func:`run_stage`), the command line in :func:`test_command_line_end_to_end`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from scipy import stats

from conftest import REPO
from workflow_scripts.association import cli
from workflow_scripts.models.association import genetic_pcs
from workflow_scripts.association.resources import chunk_mem_mb, gather_mem_mb
from workflow_scripts.association.prepare import AssociationSettings, GenotypeView, prepare
from workflow_scripts.association.chunks import OUTPUT_COLUMNS, dosage_blocks, gather, run_chunk
from workflow_scripts.cohort import write_cohort
from workflow_scripts.ingest.harmonise import Settings as IngestSettings
from workflow_scripts.ingest.harmonise import ingest
from workflow_scripts.ledger import COLUMNS as LEDGER_COLUMNS
from workflow_scripts.models.multiple_testing import bh
from workflow_scripts.synthetic import generate, write

COVARIATES = ["sex", "age", "bmi"]


def make_cohort(root, **kwargs):
    """Generate, write and ingest a synthetic cohort; returns (cohort, truth)."""
    synthetic = generate(**kwargs)
    paths = write(synthetic, root, abundance_format="tsv", genotype_format="dosage")
    cohort, _ = ingest(IngestSettings(
        participants=str(paths["participants"]), stool_manifest=str(paths["stool_manifest"]),
        abundance=str(paths["abundance"]), blood_manifest=str(paths["blood_manifest"]),
        taxonomy=str(paths["taxonomy"]), genotypes=str(paths["genotypes"]),
        variants=str(paths["variants"]), covariates=tuple(COVARIATES)))
    return cohort, synthetic.truth_associations


def run_stage(cohort, prepared=None, **settings):
    """prepare -> every chunk -> gather, in-process; returns (prepared, table, result)."""
    if prepared is None:
        prepared = prepare(cohort, AssociationSettings.from_config(covariates=COVARIATES, **settings))
    qc = prepared.variant_qc
    tested = qc[qc["chunk"] >= 0].sort_index()

    def load(i):
        return run_chunk(cohort.genotypes, prepared.participants, prepared.abundance,
                         prepared.covariate_columns, tested[tested["chunk"] == i])

    s = prepared.summary["settings"]
    pieces, finish = gather(load, prepared.n_chunks, tested, prepared.abundance.columns,
                            fdr=s["fdr"], heatmap_pairs=s["heatmap_pairs"])
    table = pd.concat(list(pieces), ignore_index=True) if prepared.n_chunks else \
        pd.DataFrame(columns=OUTPUT_COLUMNS)
    return prepared, table, finish()


PLANTED_SEEDS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module", params=PLANTED_SEEDS, ids=lambda seed: f"seed{seed}")
def planted(request, tmp_path_factory):
    """About 300 households, 12 variants, 20 species: three planted main effects and three
    genotype x MS interactions; one cohort per seed in PLANTED_SEEDS."""
    return make_cohort(tmp_path_factory.mktemp("planted"), n_households=300, n_unpaired=0, seed=request.param,
                       n_variants=12, n_species=20)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """300 households, 40 variants x 60 species, repeat stool samples and unpaired participants."""
    return make_cohort(tmp_path_factory.mktemp("wide"), n_households=300, n_unpaired=10, seed=11,
                       n_variants=40, n_species=60)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """The workflow's bundled cohort (24 households, edge cases) written as ingest writes it."""
    resources = REPO / "resources" / "synthetic"
    cohort, _ = ingest(IngestSettings(
        participants=str(resources / "participants.tsv"), stool_manifest=str(resources / "stool_manifest.tsv"),
        abundance=str(resources / "abundance.biom"), blood_manifest=str(resources / "blood_manifest.tsv"),
        taxonomy=str(resources / "taxonomy.tsv"), genotypes=str(resources / "genotypes.vcf.gz"),
        variants=str(resources / "variants.tsv"), covariates=tuple(COVARIATES)))
    directory = tmp_path_factory.mktemp("bundled") / "cohort"
    write_cohort(cohort, directory)
    return cohort, directory


# --------------------------------------------------------------------------
# Planted truth, calibration, exactness
# --------------------------------------------------------------------------


def test_planted_effects_are_found_with_the_right_sign(planted):
    """Every planted main effect and genotype x MS interaction at q < 0.05, right sign,
    and at most one false interaction, in every cohort of PLANTED_SEEDS (not chosen:
    the first five).

    The generator plants +-0.8 (main) and +-1.0 (interaction, MS only) natural log
    per allele on core species with common variants: z about 13 for main effects
    and 8 for interactions, 6.0 for the HLA-DRB1*15:01 tag (frequency 0.12 in
    controls); over seeds 1-20 all six were found in every cohort, the smallest
    interaction z was 3.7, and no cohort had more than one false interaction.
    """
    cohort, truth = planted
    prepared, table, result = run_stage(cohort)
    assert prepared.summary["n_participants"] == 600 and prepared.summary["n_paired_households"] == 300
    key = table.set_index(["variant_id", "feature"])
    for row in truth.itertuples():
        kind = "interaction" if row.effect == "interaction" else "genotype"
        hit = key.loc[(row.variant_id, row.feature)]
        assert hit[f"q_{kind}"] < 0.05, (row, hit[f"q_{kind}"])
        assert np.sign(hit[f"beta_{kind}"]) == np.sign(row.beta), row
    planted_interactions = set(zip(truth.loc[truth["effect"] == "interaction", "variant_id"],
                                   truth.loc[truth["effect"] == "interaction", "feature"]))
    found = set(zip(table.loc[table["q_interaction"] < 0.05, "variant_id"],
                    table.loc[table["q_interaction"] < 0.05, "feature"]))
    assert len(found - planted_interactions) <= 1
    assert result.n_significant["interaction"] == len(found)
    # The HLA-DRB1*15:01 tag is reported by name.
    assert "rs3135388" in set(result.variant_summary["variant_id"])
    labelled = result.variant_summary.set_index("variant_id").loc["rs3135388"]
    assert labelled["label"] == "HLA-DRB1*15:01 tag"
    assert labelled["best_feature_interaction"] == "s__Akkermansia_muciniphila"


def test_permuted_genotypes_give_uniform_interaction_p_values(wide):
    cohort, _ = wide
    prepared = prepare(cohort, AssociationSettings.from_config(covariates=COVARIATES))
    rng = np.random.default_rng(2024)
    columns = prepared.participants["genotype_column"].to_numpy()
    prepared.participants["genotype_column"] = columns[rng.permutation(columns.size)]
    _, table, _ = run_stage(cohort, prepared)
    p_int = table["p_interaction"].dropna().to_numpy()
    p_main = table["p_genotype"].dropna().to_numpy()
    assert p_int.size > 1500 and p_main.size == len(table)
    assert stats.kstest(p_int, "uniform").pvalue > 0.01
    assert stats.kstest(p_main, "uniform").pvalue > 0.01
    assert 0.03 < np.mean(p_int < 0.05) < 0.07


def test_stage_results_equal_statsmodels_on_a_random_subset(wide):
    cohort, _ = wide
    prepared, table, _ = run_stage(cohort)
    P, A = prepared.participants, prepared.abundance
    cov = P[prepared.covariate_columns].to_numpy(dtype=float)
    status = P["status"].to_numpy(dtype=float)
    groups = pd.factorize(P["household"])[0]
    qc = prepared.variant_qc
    rng = np.random.default_rng(5)
    rows = rng.choice(len(table), 40, replace=False)
    worst = 0.0
    for i in rows:
        row = table.iloc[i]
        g = np.asarray(cohort.genotypes[qc.loc[row["variant_id"], "row"]], dtype=float)[P["genotype_column"]]
        y = A[row["feature"]].to_numpy()
        X = np.column_stack([np.ones(len(g)), status, cov, g])
        kw = dict(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        fa = sm.OLS(y, X).fit(**kw)
        np.testing.assert_allclose([row["beta_genotype"], row["se_genotype"], row["p_genotype"]],
                                   [fa.params[-1], fa.bse[-1], fa.pvalues[-1]], rtol=1e-8)
        worst = max(worst, abs(row["p_genotype"] - fa.pvalues[-1]))
        if qc.loc[row["variant_id"], "test_interaction"]:
            fb = sm.OLS(y, np.column_stack([X, g * status])).fit(**kw)
            np.testing.assert_allclose([row["beta_interaction"], row["se_interaction"], row["p_interaction"]],
                                       [fb.params[-1], fb.bse[-1], fb.pvalues[-1]], rtol=1e-8)
            worst = max(worst, abs(row["p_interaction"] - fb.pvalues[-1]))
    assert worst < 1e-10


def test_q_values_are_bh_over_every_chunk_and_rows_are_sorted(wide):
    cohort, _ = wide
    _, one, _ = run_stage(cohort, chunk_size=1000)
    prepared, many, result = run_stage(cohort, chunk_size=7)
    assert prepared.n_chunks == -(-prepared.summary["n_variants_tested"] // 7) > 1
    pd.testing.assert_frame_equal(one, many)
    np.testing.assert_allclose(many["q_genotype"], bh(many["p_genotype"]), rtol=1e-12)
    np.testing.assert_allclose(many["q_interaction"], bh(many["p_interaction"]), rtol=1e-12, equal_nan=True)
    keys = list(zip(many["variant_id"], many["feature"]))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert list(many.columns) == OUTPUT_COLUMNS
    assert result.n_tests["genotype"] == len(many)


# --------------------------------------------------------------------------
# Participants, species, variants: QC and ledger
# --------------------------------------------------------------------------


def test_ledger_lists_every_exclusion_with_its_reason(wide):
    cohort, _ = wide
    cohort = _copy(cohort)
    pids = cohort.participants.index
    cohort.participants.loc[pids[0], "has_genotype"] = False
    cohort.genotypes[:, 0] = np.nan
    cohort.participants.loc[pids[1], "bmi"] = np.nan
    cohort.genotypes[3, 5:60] = np.nan                         # call rate 0.9
    prepared = prepare(cohort, AssociationSettings.from_config(covariates=COVARIATES, maf_min=0.15))
    ledger = prepared.ledger
    assert list(ledger.columns) == LEDGER_COLUMNS
    rows = ledger.set_index(["entity", "id"])
    assert rows.loc[("participant", pids[0]), "reason"] == "no_genotype"
    assert rows.loc[("participant", pids[1]), "reason"] == "missing_covariate"
    assert pids[0] not in prepared.participants.index and pids[1] not in prepared.participants.index
    qc = prepared.variant_qc
    failed = qc[~qc["keep"]]
    assert {"low_maf", "low_call_rate"} <= set(";".join(failed["reason"]).split(";"))
    assert "low_call_rate" in qc.loc[cohort.variants["variant_id"].iloc[3], "reason"].split(";")
    for vid, row in failed.iterrows():
        assert rows.loc[("variant", vid), "outcome"] == "dropped"
        assert rows.loc[("variant", vid), "reason"] == row["reason"]
    assert (qc.loc[qc["keep"], "maf"] >= 0.15).all()
    # species under the prevalence filter, repeat stool samples
    features = set(ledger.loc[ledger["entity"] == "feature", "id"])
    assert features and not features & set(prepared.abundance.columns)
    repeats = cohort.samples[cohort.samples["participant_id"].isin(prepared.participants.index)]
    n_repeat = len(repeats) - repeats["participant_id"].nunique()
    assert n_repeat > 0
    assert (ledger["reason"] == "repeat_sample_not_used").sum() == n_repeat
    assert prepared.summary["n_variants_failed_qc"] == len(failed)


def test_interaction_needs_carriers_among_cases_and_controls(wide):
    cohort, _ = wide
    cohort = _copy(cohort)
    cases = (cohort.participants["status"] == cohort.case_label).to_numpy()
    row = 6
    g = np.asarray(cohort.genotypes[row], dtype=float)
    g[cases] = 0.0
    g[np.flatnonzero(cases)[:2]] = 1.0                         # two carriers among cases
    cohort.genotypes[row] = g
    vid = cohort.variants["variant_id"].iloc[row]
    prepared, table, _ = run_stage(cohort)
    qc = prepared.variant_qc.loc[vid]
    assert qc["keep"] and not qc["test_interaction"] and qc["carriers_cases"] == 2
    rows = table[table["variant_id"] == vid]
    assert rows["p_genotype"].notna().all()
    assert rows[["beta_interaction", "se_interaction", "p_interaction", "q_interaction"]].isna().all().all()
    note = prepared.ledger.set_index(["entity", "id"]).loc[("variant", vid)]
    assert note["outcome"] == "kept" and note["reason"] == "interaction_not_tested"


def test_genetic_pcs_are_covariates_when_there_are_enough_variants(wide):
    cohort, _ = wide
    none = prepare(cohort, AssociationSettings.from_config(covariates=COVARIATES))
    assert none.summary["genetic_pcs"]["used"] == 0 and "pcs_min_variants" in none.summary["genetic_pcs"]["reason"]
    prepared = prepare(cohort, AssociationSettings.from_config(covariates=COVARIATES, genetic_pcs=2, pcs_min_variants=10))
    assert prepared.covariate_columns[-2:] == ["PC1", "PC2"]
    tested = prepared.variant_qc[prepared.variant_qc["keep"]]
    view = GenotypeView(cohort.genotypes, np.sort(tested["row"].to_numpy()),
                        prepared.participants["genotype_column"].to_numpy())
    expected = genetic_pcs(view, k=2)
    np.testing.assert_allclose(prepared.participants[["PC1", "PC2"]].to_numpy(), expected, atol=1e-10)


def test_pooled_profile_uses_every_stool_sample(wide):
    cohort, _ = wide
    first = prepare(cohort, AssociationSettings.from_config(covariates=COVARIATES))
    pooled = prepare(cohort, AssociationSettings.from_config(covariates=COVARIATES, repeated_samples="sum"))
    assert (pooled.ledger["reason"] == "repeat_sample_not_used").sum() == 0
    assert pooled.summary["abundance"]["kind"] == "counts"
    repeated = cohort.samples.groupby("participant_id").size()
    two = repeated.index[repeated > 1].intersection(first.participants.index)
    one = repeated.index[repeated == 1].intersection(first.participants.index)
    assert len(two) > 10 and len(one) > 10
    shared = first.abundance.columns.intersection(pooled.abundance.columns)
    differs = ~np.isclose(first.abundance.loc[two, shared], pooled.abundance.loc[two, shared]).all(axis=1)
    assert differs.all()
    # one sample: the pooled counts are that sample's counts, so the CLR is the same
    np.testing.assert_allclose(first.abundance.loc[one, shared], pooled.abundance.loc[one, shared], rtol=1e-12)
    # and it is the shared transform of the counts of the pooled samples
    counts = cohort.table("taxa")
    pid = two[0]
    total = counts.loc[cohort.samples.index[cohort.samples["participant_id"] == pid]].sum()
    logs = np.log2(total + 0.5)
    np.testing.assert_allclose(pooled.abundance.loc[pid], (logs - logs.mean())[pooled.abundance.columns],
                               rtol=1e-12)


def test_nothing_testable_gives_an_empty_table_and_says_why(bundled):
    cohort, _ = bundled
    prepared, table, result = run_stage(cohort, maf_min=0.5)
    assert prepared.summary["status"] == "nothing_tested" and "QC" in prepared.summary["reason"]
    assert prepared.n_chunks == 0 and table.empty and result.variant_summary.empty


# --------------------------------------------------------------------------
# Command line, files, resources
# --------------------------------------------------------------------------


def _cli(*args):
    assert cli.main([str(a) for a in args]) == 0


def test_command_line_end_to_end(bundled, tmp_path):
    _, cohort_dir = bundled
    out = tmp_path / "association"
    settings = json.dumps({"covariates": COVARIATES, "chunk_size": 10})
    prepared = ["--variant-qc", out / "variant_qc.tsv", "--abundance", out / "prepared" / "abundance.tsv",
                "--prepared", out / "prepared" / "summary.json"]
    participants = ["--participants", out / "prepared" / "participants.tsv"]
    _cli("prepare", "--cohort", cohort_dir, "--settings", settings, "--ledger", out / "ledger.tsv",
         *prepared, *participants)
    summary = json.loads((out / "prepared" / "summary.json").read_text())
    assert summary["n_chunks"] == 4
    chunks = [out / "chunks" / f"chunk_{i}.npy" for i in range(summary["n_chunks"])]
    for i, chunk in enumerate(chunks):
        _cli("chunk", "--cohort", cohort_dir, *prepared, *participants, "--chunk", i, "--output", chunk)
    results = ["--variant-summary", out / "variant_summary.tsv", "--heatmap", out / "heatmap.tsv",
               "--summary", out / "summary.json"]
    gather = ["gather", *prepared, "--chunks", *chunks, "--table", out / "genotype_species.tsv",
              "--markdown", out / "summary.md", *results]
    _cli(*gather)
    first = (out / "genotype_species.tsv").read_bytes()
    _cli(*gather)
    assert (out / "genotype_species.tsv").read_bytes() == first
    _cli("figures", *results, "--manhattan", out / "figures" / "manhattan_interaction.png",
         "--heatmap-figure", out / "figures" / "heatmap_interaction.png")
    table = pd.read_csv(out / "genotype_species.tsv", sep="\t")
    assert list(table.columns) == OUTPUT_COLUMNS
    assert len(table) == summary["n_variants_tested"] * summary["n_features"]
    text = (out / "summary.md").read_text()
    assert "**rs3135388** (HLA-DRB1*15:01 tag, HLA-DRB1)" in text
    assert "cluster-robust by household" in text and "only 27 households" in text
    report = json.loads((out / "summary.json").read_text())
    assert {v["variant_id"] for v in report["labelled_variants"]} == {"rs3135388", "rs4988235", "rs601338"}
    for name in ("manhattan_interaction.png", "heatmap_interaction.png"):
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ledger = pd.read_csv(out / "ledger.tsv", sep="\t", keep_default_na=False)
    assert list(ledger.columns) == LEDGER_COLUMNS and (ledger["entity"] == "participant").any()
    # the prepared inputs round-trip exactly
    prepared = pd.read_csv(out / "prepared" / "abundance.tsv", sep="\t", index_col=0)
    cohort, _ = bundled
    again = prepare(cohort, AssociationSettings.from_config(covariates=COVARIATES))
    np.testing.assert_array_equal(prepared.to_numpy(), again.abundance.to_numpy())


def test_chunk_jobs_read_only_their_variants_in_bounded_blocks():
    class Spy:
        def __init__(self, array):
            self.array, self.rows = array, []
            self.shape = array.shape

        def __getitem__(self, key):
            block = self.array[key]
            self.rows.append(block.shape[0])
            return block

    genotypes = Spy(np.zeros((5000, 30), dtype=np.float32))
    rows = np.sort(np.random.default_rng(1).choice(5000, 1500, replace=False))
    blocks = list(dosage_blocks(GenotypeView(genotypes, rows, np.arange(0, 30, 2))))
    assert sum(b.shape[0] for b in blocks) == 1500 and all(b.shape[1] == 15 for b in blocks)
    assert max(genotypes.rows) <= 512 and sum(genotypes.rows) == 1500


def test_memory_estimates_grow_with_chunk_size_and_cohort(tmp_path):
    path = tmp_path / "summary.json"

    def mem(chunk, n, S, V, kind=chunk_mem_mb):
        path.write_text(json.dumps({"n_participants": n, "n_features": S, "chunk_size": chunk,
                                    "n_variants_tested": V}))
        return kind(path, 2000, 1)

    assert mem(1000, 1150, 200, 10_000) < mem(10_000, 1150, 200, 10_000) < mem(10_000, 5000, 200, 10_000)
    assert mem(1000, 1150, 200, 10_000, gather_mem_mb) < mem(1000, 1150, 200, 1_000_000, gather_mem_mb)
    path.write_text(json.dumps({"n_participants": 10, "n_features": 5, "chunk_size": 10, "n_variants_tested": 0}))
    assert chunk_mem_mb(path, 2000, 2) == 2 * chunk_mem_mb(path, 2000, 1)


def _dry_run(tmp_path, config):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "1",
                             "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def test_rules_exist_only_with_genotypes(tmp_path):
    resources = REPO / "resources" / "synthetic"
    inputs = {k: str(resources / v) for k, v in {
        "participants": "participants.tsv", "stool_manifest": "stool_manifest.tsv",
        "abundance": "abundance.biom", "taxonomy": "taxonomy.tsv"}.items()}
    without = _dry_run(tmp_path / "without", {"inputs": inputs, "outdir": "out"})
    assert "association" not in without
    inputs.update(blood_manifest=str(resources / "blood_manifest.tsv"),
                  genotypes=str(resources / "genotypes.vcf.gz"), variants=str(resources / "variants.tsv"))
    with_genotypes = _dry_run(tmp_path / "with", {"inputs": inputs, "outdir": "out",
                                                   "association": {"chunk_size": 5}})
    assert "association_prepare" in with_genotypes and "association_gather" in with_genotypes


def _copy(cohort):
    from dataclasses import replace

    return replace(cohort, participants=cohort.participants.copy(), samples=cohort.samples.copy(),
                   genotypes=np.array(cohort.genotypes, dtype=np.float32, copy=True))
