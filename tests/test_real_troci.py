"""The Kiel MS cohort (troci_ms_bcell, ms_vs_hc_stool) converted to the contract ingests completely.

36 MS patients with 1-4 stool samples each (95 samples), 54 unrelated healthy
controls with one each, no households: an unpaired design. The whole workflow
runs to the report (the diversity stage uses every sample with a participant
intercept; see README). Skipped when ../shared is absent.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from workflow_scripts.examples import troci
from workflow_scripts.ingest.harmonise import Settings, ingest

from conftest import REPO, real_data

pytestmark = pytest.mark.real_data


def source():
    return real_data("troci_ms_bcell") / "ms_vs_hc_stool"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("troci")
    config = yaml.safe_load(troci.convert(source(), out).read_text())
    return out, config


@pytest.fixture(scope="module")
def troci_cohort(converted):
    _, config = converted
    return ingest(Settings.from_config(config))


def test_converter_maps_subjects_visits_and_therapy(converted):
    out, _ = converted
    part = pd.read_csv(out / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    stool = pd.read_csv(out / "stool_manifest.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert part["status"].value_counts().to_dict() == {"HC": 54, "MS": 36}
    assert (part["household_id"] == "").all() and set(part["site"]) == {"Kiel"}
    assert set(part["sex"]) == {"F", "M"}
    patients = part[part["status"] == "MS"]
    assert patients["dmt"].value_counts().to_dict() == {"ocrelizumab": 22, "": 14}  # README: 22 yes, 14 no
    assert (part.loc[part["status"] == "HC", ["dmt", "disease_course", "edss"]] == "").all().all()
    # Repeated samples: TP1 28, TP2 29, TP3 25, TP4 13 (README); P01 has all four, in visit order.
    assert stool["visit"].value_counts().to_dict() == {"": 54, "2": 29, "1": 28, "3": 25, "4": 13}
    p01 = stool[stool["participant_id"] == "P01"]
    assert p01["visit"].tolist() == ["1", "2", "3", "4"]
    assert p01["sample_id"].tolist() == ["I02272", "I02256", "I02290", "J03106"]
    assert (stool.loc[stool["participant_id"].str.startswith("ITM"), "sequencing_batch"] == "").all()
    taxonomy = pd.read_csv(out / "taxonomy.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert len(taxonomy) == 3584 and not taxonomy["taxonomy"].str.contains(r"\(unc\.\)").any()


def test_ingest_keeps_everything_with_a_complete_ledger(troci_cohort):
    cohort, ledger = troci_cohort
    info = cohort.info
    assert (info["n_participants"], info["n_samples"], info["n_features"]) == (90, 149, 3584)
    assert info["n_households_paired"] == 0 and not cohort.participants["paired"].any()
    assert cohort.participants["household_id"].isna().all()
    # Patients by number of time points in metadata.tsv: 6 with one, 10 with two, 11 with three, 9 with
    # four (36 patients, 6 + 20 + 33 + 36 = 95 samples); each control has one.
    assert cohort.participants["n_stool_samples"].value_counts().sort_index().to_dict() == \
        {1: 54 + 6, 2: 10, 3: 11, 4: 9}
    assert ledger.groupby("entity").size().to_dict() == {"participant": 90, "stool_sample": 149,
                                                         "table_column": 149, "feature": 3584}
    assert (ledger["outcome"] == "kept").all()
    assert not ledger.duplicated(["entity", "id"]).any()
    depth = cohort.table("features").sum(axis=1)
    assert depth.min() == 9579 and depth.max() == 53701  # the README's depth range
    taxa = cohort.table("taxa")
    assert taxa.to_numpy().sum() == depth.sum()
    for genus in ("g__Akkermansia", "g__Faecalibacterium", "g__Bacteroides", "g__unassigned"):
        assert genus in taxa.columns


def test_example_config_is_valid():
    from workflow_scripts.config_check import validate_config

    config = yaml.safe_load((REPO / "config" / "examples" / "troci.yaml").read_text())
    validate_config(config, REPO / "config" / "schema" / "config.schema.yaml")
    assert config["control_label"] == "HC" and config["inputs"]["taxonomy"].startswith("results/troci_example")


def test_diversity_uses_every_sample_without_households(troci_cohort):
    """Issue 12 item 3 (diversity) and issue 16: no KeyError; the rank-sum test replaces the paired one,
    the mixed model takes all 149 samples with a participant intercept, and 30 patients with 2-4
    samples give the stability report."""
    from workflow_scripts.design import build_design
    from workflow_scripts.diversity.analysis import DiversitySettings, run
    from workflow_scripts.diversity.stability import stability

    cohort, _ = troci_cohort
    res = run(cohort, DiversitySettings.from_config(covariates=["sex", "age"], metrics=["braycurtis"],
                                                  permutations=99, seed=1))
    tests = res.alpha_tests.set_index(["test", "metric"])
    assert set(res.alpha_tests["test"]) == {"rank_sum", "mixed_model"}
    model = tests.loc[("mixed_model", "shannon")]
    assert model["n"] == 149 and model["n_participants"] == 90 and "(1 | participant)" in model["model"]
    assert tests.loc[("rank_sum", "shannon"), "n"] == 90
    assert (res.permanova["strata"] == "none").all() and res.distances["braycurtis"].shape == (90, 90)
    design = build_design(cohort.participants, ["sex", "age"], "MS", samples=cohort.samples)
    table, summary = stability(cohort.table("taxa").loc[cohort.samples.index], cohort.samples, design, "counts")
    assert summary["n_participants_repeated"] == 30 and summary["levels"] == ["participant"]
    assert len(table) > 50 and 0.2 < summary["median_icc"] < 0.8


@pytest.mark.workflow
def test_whole_workflow_runs_to_the_report(converted, tmp_path):
    _, config = converted
    config = dict(config, outdir=str(tmp_path / "results"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2",
                             "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "results" / "report" / "report.html").is_file()
