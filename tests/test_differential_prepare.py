"""The differential stage's shared data: design, profiles, prevalence filter, pairs, ledger, CLI."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from workflow_scripts.cohort import Cohort, write_cohort
from workflow_scripts.differential import cli
from workflow_scripts.differential.prepare import (
    ALL_METHODS,
    DifferentialSettings,
    clr_features,
    describe,
    prepare,
)
from workflow_scripts.errors import InputError
from workflow_scripts.ingest.harmonise import Settings as IngestSettings
from workflow_scripts.ingest.harmonise import ingest
from workflow_scripts.ledger import COLUMNS as LEDGER_COLUMNS
from workflow_scripts.synthetic import generate, write

from conftest import REPO


# ---------------------------------------------------------------------------
# Helpers other differential tests import


def synthetic_cohort(rank: str = "species", **kwargs):
    """A generated cohort ingested in memory: (synthetic.Cohort with the truth, workflow Cohort)."""
    synthetic = generate(**{"n_variants": 5, **kwargs})
    with tempfile.TemporaryDirectory() as tmp:
        paths = write(synthetic, tmp, abundance_format="tsv", genotype_format="dosage")
        cohort, _ = ingest(IngestSettings(
            participants=str(paths["participants"]), stool_manifest=str(paths["stool_manifest"]),
            abundance=str(paths["abundance"]), taxonomy=str(paths["taxonomy"]), rank=rank,
            covariates=("sex", "age", "bmi"), min_depth=0))
    return synthetic, cohort


def cohort_from_frames(participants: pd.DataFrame, counts: pd.DataFrame, samples: pd.DataFrame | None = None,
                       kind: str = "counts") -> Cohort:
    """A Cohort from a participants table (index participant_id) and samples x taxa counts.

    Without ``samples``, every participant has one sample named like them.
    """
    if samples is None:
        samples = pd.DataFrame({"participant_id": participants.index}, index=pd.Index(participants.index,
                                                                                       name="sample_id"))
    table = biom.Table(counts.T.to_numpy(dtype=float), list(counts.columns), list(counts.index))
    taxonomy = pd.DataFrame({"lineage": list(counts.columns), "taxon": list(counts.columns)},
                            index=pd.Index(counts.columns, name="feature_id"))
    info = {"case_label": "MS", "control_label": "HHC", "abundance_kind": kind, "has_tree": False,
            "has_genotypes": False, "rank": "genus"}
    return Cohort(participants, samples, table, table, taxonomy, info)


def small_frames(seed: int = 0, n_households: int = 12, n_taxa: int = 8):
    """Hand-made participants (pairs in two sites, DMT) and counts with known zeros."""
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(n_households):
        for status in ("MS", "HHC"):
            rows.append({"participant_id": f"P{h:02d}{status[0]}", "household_id": f"H{h:02d}",
                         "site": "A" if h % 2 else "B", "status": status, "sex": "FM"[(h + len(status)) % 2],
                         "age": float(30 + h + (status == "MS")), "bmi": float(22 + (h * 7) % 9),
                         "dmt": (["untreated", "ocrelizumab", "untreated", "fingolimod"][h % 4]
                                 if status == "MS" else None)})
    part = pd.DataFrame(rows).set_index("participant_id")
    counts = pd.DataFrame(rng.poisson(40, size=(len(part), n_taxa)), index=part.index,
                          columns=[f"g__T{j}" for j in range(n_taxa)])
    counts.iloc[:, -1] = 0
    counts.iloc[:2, -1] = 5  # a rare taxon: prevalence 2 / 24
    return part, counts


# ---------------------------------------------------------------------------
# Settings and schema


def test_schema_defaults_equal_the_settings_defaults():
    config = {"differential": {}}
    validate(config, str(REPO / "config" / "schema" / "differential.schema.yaml"))
    filled = config["differential"]
    settings = DifferentialSettings.from_config(filled)
    assert settings == DifferentialSettings.from_config()
    assert tuple(filled["methods"]) == ALL_METHODS
    assert filled["min_prevalence"] == 0.1 and filled["consensus"]["min_significant"] == 2
    with pytest.raises(Exception):
        validate({"differential": {"methods": ["deseq2"]}}, str(REPO / "config" / "schema" / "differential.schema.yaml"))


def test_settings_merge_nested_sections_and_reject_unknown_keys():
    s = DifferentialSettings.from_config({"aldex": {"draws": 8}, "covariates": ["age"]})
    assert s.aldex == {"draws": 8, "pseudo_count": 0.5} and s.covariates == ("age",)
    with pytest.raises(InputError, match="unknown differential settings"):
        DifferentialSettings.from_config({"min_prevalance": 0.1})
    with pytest.raises(InputError, match="unknown differential methods"):
        DifferentialSettings.from_config({"methods": ["linda", "deseq2"]})


# ---------------------------------------------------------------------------
# prepare: design, filter, pairs, ledger


def test_prepare_ledger_pairs_and_filter():
    part, counts = small_frames()
    part.loc["P03M", "bmi"] = np.nan  # household H03 loses its case
    extra = pd.DataFrame([{"household_id": None, "site": "A", "status": "MS", "sex": "F", "age": 50.0,
                           "bmi": 25.0, "dmt": "untreated"}], index=pd.Index(["P99M"], name="participant_id"))
    part = pd.concat([part, extra])
    counts.loc["P99M"] = 30
    counts.loc["P99M", "g__T7"] = 0
    counts["g__unassigned"] = 7
    data = prepare(cohort_from_frames(part, counts), DifferentialSettings.from_config(min_prevalence=0.1))

    assert "P03M" not in data.design.frame.index
    assert list(data.features) == [f"g__T{j}" for j in range(7)]  # T7 rare, bucket never tested
    ledger = data.ledger.set_index("id")
    assert list(data.ledger.columns) == LEDGER_COLUMNS
    assert ledger.loc["P03M", "reason"] == "missing_covariate"
    assert ledger.loc["g__T7", "reason"] == "below_min_prevalence"
    assert ledger.loc["g__unassigned", "reason"] == "unassigned_bucket"
    # P03H lost its partner, P99M never had one: both unpaired
    assert ledger.loc["P03H", "reason"] == "unpaired" and ledger.loc["P99M", "reason"] == "unpaired"
    # households of treated patients (h % 4 in 1, 3) are flagged for paired_wilcoxon
    assert ledger.loc["P01M", "reason"] == "treated_case_household"
    assert ledger.loc["P01H", "reason"] == "treated_case_household"
    assert not data.ledger.duplicated(["entity", "id"]).any()

    pairs = data.pairs
    assert len(pairs.households) == 11 and "H03" not in set(pairs.households)
    np.testing.assert_array_equal(pairs.untreated, [h % 4 in (0, 2) for h in range(12) if h != 3])
    # contrast = case minus control, per household
    W = clr_features(data, 0.5)
    D = pairs.contrast(W.to_numpy())
    g = list(pairs.households).index("H05")
    np.testing.assert_allclose(D[g], W.loc["P05M"] - W.loc["P05H"], rtol=1e-12)


def test_clr_features_use_the_whole_composition():
    part, counts = small_frames()
    data = prepare(cohort_from_frames(part, counts), DifferentialSettings.from_config())
    W = clr_features(data, 0.5)
    logs = np.log2(counts.to_numpy() + 0.5)
    full = logs - logs.mean(axis=1, keepdims=True)  # the rare taxon is in the reference
    np.testing.assert_allclose(W.to_numpy(), full[:, :7], rtol=1e-12)


def test_describe_by_group():
    part, counts = small_frames()
    counts.iloc[0, 0] = 0  # P00M lacks T0
    data = prepare(cohort_from_frames(part, counts), DifferentialSettings.from_config())
    stats = describe(data.profiles, data.status, data.features)
    rel = counts.div(counts.sum(axis=1), axis=0)
    case = part["status"] == "MS"
    assert stats.loc["g__T0", "n"] == 24 and stats.loc["g__T0", "n_nonzero"] == 23
    assert stats.loc["g__T0", "prevalence_case"] == pytest.approx(11 / 12)
    assert stats.loc["g__T0", "prevalence_control"] == 1.0
    assert stats.loc["g__T2", "mean_abundance_case"] == pytest.approx(rel.loc[case, "g__T2"].mean())
    assert stats.loc["g__T2", "mean_abundance_control"] == pytest.approx(rel.loc[~case, "g__T2"].mean())


def test_repeated_samples_first_pooled_mean_or_all():
    part, counts = small_frames()
    # P00M has a second, later stool sample with other counts
    samples = pd.DataFrame({"participant_id": list(part.index) + ["P00M"],
                            "collection_date": ["2020-01-01"] * len(part) + ["2020-06-01"]},
                           index=pd.Index(list(part.index) + ["P00M_2"], name="sample_id"))
    second = pd.DataFrame([np.arange(counts.shape[1]) + 1.0], index=["P00M_2"], columns=counts.columns)
    table = pd.concat([counts, second])
    cohort = cohort_from_frames(part, table, samples)
    data = {policy: prepare(cohort, DifferentialSettings.from_config(repeated_samples=policy))
            for policy in ("first", "sum", "mean", "all")}
    assert DifferentialSettings.from_config().repeated_samples == "all"
    for d in data.values():
        assert len(d.profiles) == len(part)  # one profile per participant
    np.testing.assert_array_equal(data["first"].profiles.loc["P00M"], counts.loc["P00M"])
    np.testing.assert_array_equal(data["sum"].profiles.loc["P00M"], counts.loc["P00M"] + np.arange(8) + 1.0)
    closed = pd.concat([counts.loc[["P00M"]], second]).pipe(lambda t: t.div(t.sum(axis=1), axis=0))
    assert data["mean"].kind == "relative"
    np.testing.assert_allclose(data["mean"].profiles.loc["P00M"], closed.mean())
    # all: pooled profile, every sample kept, the log-ratio summary is the mean of the samples' CLRs
    every = data["all"]
    np.testing.assert_array_equal(every.profiles.loc["P00M"], data["sum"].profiles.loc["P00M"])
    assert every.samples.shape == (len(part) + 1, counts.shape[1])
    assert every.n_samples()["P00M"] == 2 and every.n_samples().drop("P00M").eq(1).all()
    logs = np.log2(pd.concat([counts.loc[["P00M"]], second]) + 0.5)
    clr_mean = logs.sub(logs.mean(axis=1), axis=0).mean()
    np.testing.assert_allclose(clr_features(every, 0.5).loc["P00M"], clr_mean[every.features])
    np.testing.assert_allclose(clr_features(every, 0.5).drop("P00M"),
                               clr_features(data["first"], 0.5).drop("P00M"))


# ---------------------------------------------------------------------------
# The CLI on the bundled cohort


@pytest.fixture(scope="module")
def bundled_cohort_dir(tmp_path_factory):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    inputs = {k: str(REPO / v) if k != "abundance_kind" else v for k, v in config["inputs"].items()}
    cohort, _ = ingest(IngestSettings(**inputs, covariates=("sex", "age", "bmi")))
    directory = tmp_path_factory.mktemp("bundled") / "cohort"
    write_cohort(cohort, directory)
    return directory


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_writes_deterministic_sorted_tables(bundled_cohort_dir, tmp_path):
    settings = '{"aldex": {"draws": 4}, "covariates": ["sex", "age", "bmi"], "seed": 1}'
    runs = []
    for run in ("a", "b"):
        out = tmp_path / run
        cli.main(["prepare", "--cohort", str(bundled_cohort_dir), "--settings", settings,
                  "--ledger", str(out / "ledger.tsv"), "--features", str(out / "features.tsv")])
        for method in ("linda", "aldex"):
            cli.main(["method", "--cohort", str(bundled_cohort_dir), "--settings", settings,
                      "--features", str(out / "features.tsv"), "--method", method,
                      "--output", str(out / f"{method}.tsv")])
        runs.append({p.name: _digest(p) for p in sorted(out.iterdir())})
    assert runs[0] == runs[1] and len(runs[0]) == 4
    table = pd.read_csv(tmp_path / "a" / "linda.tsv", sep="\t")
    assert list(table.columns[:7]) == ["feature", "method", "effect", "se", "stat", "pvalue", "qvalue"]
    assert list(table["feature"]) == sorted(table["feature"])
    features = pd.read_csv(tmp_path / "a" / "features.tsv", sep="\t")
    assert list(features["feature"]) == list(table["feature"])
    ledger = pd.read_csv(tmp_path / "a" / "ledger.tsv", sep="\t")
    assert list(ledger.columns) == LEDGER_COLUMNS and (ledger["reason"] == "unpaired").sum() >= 1


def test_cli_refuses_a_stale_feature_list(bundled_cohort_dir, tmp_path, capsys):
    pd.DataFrame({"feature": ["s__Nothing"]}).to_csv(tmp_path / "features.tsv", sep="\t", index=False)
    status = cli.main(["method", "--cohort", str(bundled_cohort_dir), "--settings", "{}", "--features",
                       str(tmp_path / "features.tsv"), "--method", "linda", "--output", str(tmp_path / "x.tsv"),
                       "--log", str(tmp_path / "method.log")])
    assert status == 1 and not (tmp_path / "x.tsv").exists()
    for text in (capsys.readouterr().err, (tmp_path / "method.log").read_text()):
        assert "features.tsv: lists other features" in text and "rerun the differential_prepare rule" in text
        assert "Traceback" not in text
