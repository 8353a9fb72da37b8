"""A cohort without households (issue 12 item 3) runs through differential and classification.

The primary test takes its unpaired form (regressions over participants), the
paired-only methods write empty p-values with a note, the calibration permutes
status within site, and every taxon is classified.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_scripts.classification.classify import ClassificationRule, classify
from workflow_scripts.differential import calibration, meta, primary
from workflow_scripts.differential.consensus import ConsensusRule, add_primary, add_site_meta, consensus
from workflow_scripts.differential.methods import run_method
from workflow_scripts.differential.prepare import DifferentialSettings, prepare
from workflow_scripts.ingest.harmonise import Settings, ingest
from workflow_scripts.synthetic import generate, write

from conftest import REPO, real_data


def unpaired_cohort():
    """A generated cohort of 80 households whose household_id is blanked: everyone unpaired."""
    synthetic = generate(n_households=80, n_species=60, n_variants=5, seed=4)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write(synthetic, tmp, abundance_format="tsv", genotype_format="dosage")
        participants = pd.read_csv(paths["participants"], sep="\t", dtype=str, keep_default_na=False, comment="#")
        participants["household_id"] = ""
        participants.to_csv(paths["participants"], sep="\t", index=False)
        cohort, _ = ingest(Settings(participants=str(paths["participants"]),
                                    stool_manifest=str(paths["stool_manifest"]), abundance=str(paths["abundance"]),
                                    taxonomy=str(paths["taxonomy"]), rank="species",
                                    covariates=("sex", "age", "bmi"), min_depth=0))
    return cohort


def run_stages(cohort, **settings):
    """Every differential step the rules run, then the classification, in memory."""
    data = prepare(cohort, DifferentialSettings.from_config({"aldex": {"draws": 8},
                                                              "calibration": {"null_replicates": 10,
                                                                              "implant_replicates": 3,
                                                                              "method_null_replicates": 2},
                                                              **settings}))
    tables = {m: run_method(m, data) for m in data.settings.methods}
    first = primary.run(data)
    nulls = {m: calibration.method_null_pvalues(m, data) for m in data.settings.calibration["methods"]}
    cal = calibration.calibrate(data, nulls)
    effects, _ = meta.per_site(data)
    table = add_site_meta(consensus(tables, ConsensusRule.from_settings(data.settings)),
                          meta.meta_analysis(effects, data.features))
    table = add_primary(table, first, calibration.level_in_force(cal, data.settings.fdr_level))
    classes = classify(table, first, effects, ClassificationRule.from_config(), calibration=cal)
    return data, tables, first, cal, classes


def test_a_cohort_without_households_is_tested_and_classified():
    data, tables, first, cal, classes = run_stages(unpaired_cohort())
    assert not data.design.frame["paired"].any() and len(data.pairs.households) == 0
    assert (first["design"] == "unpaired").all() and (first["n_units"] == len(data.design.frame)).all()
    assert first["pvalue"].notna().mean() > 0.9 and first["scale"].str.contains("regression").all()
    for method in ("ancombc", "paired_wilcoxon"):
        assert tables[method]["pvalue"].isna().all()
        assert tables[method]["note"].str.startswith("not run: no household pairs").all()
    for method in ("linda", "imsms_lmm", "maaslin", "aldex"):
        assert tables[method]["pvalue"].notna().all(), method
    type1 = cal[cal["metric"] == "type1_error_0.05"].set_index("scope")
    assert type1.loc[["A", "B", "C", "primary"], "value"].notna().all()
    assert type1.loc["paired_wilcoxon", "status"] == "not calibrated"  # no p-values on the swaps either
    assert set(classes["class"]) <= {"protective", "neutral", "high-risk"} and classes["feature"].is_unique
    ledger = data.ledger.set_index("id")
    assert ledger.loc[data.design.frame.index[0], "detail"].endswith("(its unpaired form)")


@pytest.mark.real_data
def test_the_kiel_cohort_runs_through_differential_and_classification(tmp_path):
    from workflow_scripts.examples import troci

    source = real_data("troci_ms_bcell") / "ms_vs_hc_stool"
    config = yaml.safe_load(troci.convert(source, tmp_path).read_text())
    cohort, _ = ingest(Settings.from_config(config))
    data, tables, first, cal, classes = run_stages(cohort, covariates=["sex", "age"])
    assert len(data.design.frame) == 90 and (first["design"] == "unpaired").all()
    assert classes["feature"].is_unique and (classes["class"] != "neutral").sum() >= 1
    assert set(classes.loc[classes["class"] == "neutral", "evidence"]) <= {"equivalent", "inconclusive",
                                                                          "not tested"}


@pytest.mark.workflow
def test_snakemake_classifies_an_unpaired_cohort(tmp_path):
    bundled = REPO / "resources" / "synthetic"
    inputs = tmp_path / "inputs"
    shutil.copytree(bundled, inputs)
    participants = pd.read_csv(inputs / "participants.tsv", sep="\t", dtype=str, keep_default_na=False,
                               comment="#")
    participants["household_id"] = ""
    participants.to_csv(inputs / "participants.tsv", sep="\t", index=False)
    config = {"inputs": {"participants": str(inputs / "participants.tsv"),
                         "stool_manifest": str(inputs / "stool_manifest.tsv"),
                         "abundance": str(inputs / "abundance.biom"), "taxonomy": str(inputs / "taxonomy.tsv")},
              "outdir": str(tmp_path / "results"), "differential": {"aldex": {"draws": 8}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = tmp_path / "results" / "classification" / "species_classification.tsv"
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), str(target),
                             "--cores", "2", "--directory", str(tmp_path), "--configfile",
                             str(tmp_path / "config.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = pd.read_csv(target, sep="\t", keep_default_na=False)
    assert out["feature"].is_unique and set(out["class"]) <= {"protective", "neutral", "high-risk"}
    assert (out.loc[out["evidence"] != "not tested", "design"] == "unpaired").all()
    calibration_table = pd.read_csv(tmp_path / "results" / "differential" / "calibration.tsv", sep="\t")
    assert list(calibration_table.columns) == calibration.TABLE
    assert np.isfinite(calibration_table.loc[calibration_table["scope"] == "primary", "value"]).all()
