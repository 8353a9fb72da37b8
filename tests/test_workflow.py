"""Snakemake end to end on the bundled synthetic cohort."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from workflow_scripts.io.genotypes import read_genotypes
from workflow_scripts.io.abundance import read_abundance
from workflow_scripts.io.tables import read_table

from conftest import REPO

pytestmark = pytest.mark.workflow
BUNDLED = REPO / "resources" / "synthetic"


def snakemake(workdir, *args):
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2",
                           "--directory", str(workdir), *args], capture_output=True, text=True)


def digest(directory):
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and not {"logs", "benchmarks"} & set(p.parts)}


@pytest.fixture(scope="module")
def bundled_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("run1")
    result = snakemake(work, "--config", f"outdir={work / 'results'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "results"


def test_ledger_accounts_for_every_input(bundled_run):
    ledger = pd.read_csv(bundled_run / "ingest" / "ledger.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert not ledger.duplicated(["entity", "id"]).any()
    read = lambda name: read_table(BUNDLED / name)
    abundance = read_abundance(BUNDLED / "abundance.biom")
    genotypes = read_genotypes(BUNDLED / "genotypes.vcf.gz")
    expected = {
        "participant": set(read("participants.tsv")["participant_id"]),
        "stool_sample": set(read("stool_manifest.tsv")["sample_id"]),
        "blood_sample": set(read("blood_manifest.tsv")["sample_id"]),
        "table_column": set(abundance.sample_ids),
        "feature": set(abundance.feature_ids),
        "genotype_column": set(genotypes.sample_ids),
        "variant": set(genotypes.variant_ids),
    }
    for entity, ids in expected.items():
        assert set(ledger.loc[ledger["entity"] == entity, "id"]) == ids, entity
    # The exclusions the generator planted are there, each with its reason.
    truth = read("truth_ledger.tsv")
    assert len(truth) >= 7
    merged = truth.drop(columns="_line").merge(ledger, on=["entity", "id"], how="left",
                                               suffixes=("_planted", ""))
    assert (merged["reason"] == merged["reason_planted"]).all(), merged
    assert (merged["outcome"] == "dropped").all()


def test_cohort_matches_ledger(bundled_run):
    from workflow_scripts.cohort import read_cohort

    cohort = read_cohort(bundled_run / "ingest" / "cohort", with_variants=True)
    ledger = pd.read_csv(bundled_run / "ingest" / "ledger.tsv", sep="\t", dtype=str, keep_default_na=False)
    kept = ledger[ledger["outcome"] == "kept"]
    assert set(cohort.samples.index) == set(kept.loc[kept["entity"] == "stool_sample", "id"])
    assert set(cohort.participants.index) == set(kept.loc[kept["entity"] == "participant", "id"])
    assert cohort.info["has_tree"] and cohort.info["has_genotypes"] and cohort.info["rank"] == "species"
    # the genotype source, read in place: every variant of the file, each typed participant's column(s)
    assert cohort.genotypes.source["n_variants"] == len(cohort.variants) == 40
    typed = cohort.genotypes.samples
    assert set(typed["participant_id"]) == set(cohort.participants.index[cohort.participants["has_genotype"]])
    labels = cohort.variants.set_index("variant_id")["label"]
    assert labels["rs3135388"] == "HLA-DRB1*15:01 tag"


def test_same_inputs_give_byte_identical_outputs(bundled_run, tmp_path):
    result = snakemake(tmp_path, "--config", f"outdir={tmp_path / 'results'}")
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = digest(bundled_run), digest(tmp_path / "results")
    assert first == second and len(first) >= 10


def _copy_inputs(tmp_path):
    inputs = tmp_path / "my inputs"  # a space in every input path
    shutil.copytree(BUNDLED, inputs)
    return {"participants": str(inputs / "participants.tsv"),
            "stool_manifest": str(inputs / "stool_manifest.tsv"),
            "abundance": str(inputs / "abundance.biom"), "taxonomy": str(inputs / "taxonomy.tsv")}


def test_config_with_only_inputs_and_outdir_runs_with_defaults(tmp_path):
    """Also: spaces in the input paths and in outdir work (every path is quoted in the rules)."""
    config = {"inputs": _copy_inputs(tmp_path), "outdir": "my results"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "my results" / "report" / "report.html").is_file()
    info = yaml.safe_load((tmp_path / "my results" / "ingest" / "cohort" / "cohort.json").read_text())
    assert info["rank"] == "species" and info["case_label"] == "MS" and info["settings"]["min_depth"] == 1000
    # Nothing of the bundled config leaked in: no tree, no genotypes.
    assert not info["has_tree"] and not info["has_genotypes"]


def test_bad_input_stops_the_run_with_a_clear_message(tmp_path):
    inputs = _copy_inputs(tmp_path)
    table = pd.read_csv(inputs["participants"], sep="\t", dtype=str, keep_default_na=False, comment="#")
    table.loc[3, "sex"] = "unknown"
    table.to_csv(inputs["participants"], sep="\t", index=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"inputs": inputs, "outdir": "out"}))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    assert result.returncode != 0
    assert f"participants.tsv, line 5, id '{table.loc[3, 'participant_id']}', column 'sex'" in result.stderr
    assert "Nothing was written" in result.stderr
    assert not (tmp_path / "out" / "ingest").exists()


def test_missing_input_file_is_named_before_anything_runs(tmp_path):
    inputs = _copy_inputs(tmp_path)
    inputs["taxonomy"] = str(tmp_path / "no_such_taxonomy.tsv")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"inputs": inputs, "outdir": "out"}))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    assert result.returncode != 0
    assert "inputs.taxonomy" in result.stderr and "no_such_taxonomy.tsv" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_config_key_is_rejected(tmp_path):
    config = {"inputs": _copy_inputs(tmp_path), "outdir": "out", "rnak": "genus"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    assert result.returncode != 0 and "rnak" in result.stderr


def test_report_is_self_contained_and_complete(bundled_run):
    text = (bundled_run / "report" / "report.html").read_text()
    for heading in ("Summary", "Called taxa", "Cohort", "Diversity", "Differential abundance",
                    "Genotype × microbiota", "Exports for other tools", "Methods"):
        assert f"<h2>{heading}</h2>" in text
    # Opens offline: no external scripts, styles or images (the small sorting script is inline).
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", text)
    assert text.count('src="data:image/png;base64,') >= 10
    # Findings and numbers from the run are in it, and the caveats of the association stage.
    assert "What was called" in text and "<h3>s__Akkermansia_muciniphila</h3>" in text
    assert re.search(r"Only \d+ clusters: cluster-robust \(CR1\) standard errors are liberal", text)
    assert "What was dropped, and why" in text and "not_<wbr>in_<wbr>stool_<wbr>manifest" in text
    assert "<b>1</b>" in text and "permutations" in text


def test_results_readme_logs_and_last_line(bundled_run):
    """results/README.md describes every file; no log is empty; the run's last line names the report."""
    readme = (bundled_run / "README.md").read_text()
    assert "no description yet" not in readme and "[`report/report.html`](report/report.html)" in readme
    empty = [p.name for p in (bundled_run / "logs").glob("*.log") if p.stat().st_size == 0]
    assert empty == []
    result = snakemake(bundled_run.parent, "--config", f"outdir={bundled_run}", "-R", "report")
    assert result.returncode == 0, result.stderr[-3000:]
    last = (result.stdout + result.stderr).strip().splitlines()[-1]
    assert last == f"Report: {(bundled_run / 'report' / 'report.html').resolve()}"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(bundled_run, tmp_path):
    from test_report import layout

    for width in (1280, 500):
        facts = layout(bundled_run / "report" / "report.html", width, tmp_path)
        assert facts["scroll"] <= facts["width"] and facts["bad"] == [], facts
