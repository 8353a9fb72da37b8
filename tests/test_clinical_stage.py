"""The clinical stage's command line: files, figures, determinism, cohorts without EDSS or blood markers."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from workflow_scripts import runner, synthetic
from workflow_scripts.clinical import associations, cli
from workflow_scripts.cohort import write_cohort
from workflow_scripts.ingest.harmonise import Settings as IngestSettings
from workflow_scripts.ingest.harmonise import ingest

AXES = associations.AXES


def ingested(tmp_path, blood=True, drop=()):
    """The bundled cohort written as the ingest stage would, optionally without blood or some columns."""
    files = synthetic.write(synthetic.generate(**synthetic.BUNDLED), tmp_path / "inputs")
    if drop:
        part = pd.read_csv(files["participants"], sep="\t", dtype=str, keep_default_na=False, comment="#")
        part.drop(columns=list(drop)).to_csv(files["participants"], sep="\t", index=False)
    cohort, _ = ingest(IngestSettings(
        participants=str(files["participants"]), stool_manifest=str(files["stool_manifest"]),
        abundance=str(files["abundance"]), taxonomy=str(files["taxonomy"]),
        blood_manifest=str(files["blood_manifest"]) if blood else None, rank="species"))
    write_cohort(cohort, tmp_path / "cohort")
    return tmp_path / "cohort"


def run_stage(cohort_dir, out, settings=None) -> dict:
    settings = json.dumps({"covariates": ["sex", "age", "bmi"], "min_patients": 10, **(settings or {})})
    paths = {name: out / f"{name}.tsv" for name in ("associations", "scores", "progression", "ledger")}
    paths.update(summary=out / "summary.json", markdown=out / "summary.md")
    args = ["analyse", "--cohort", str(cohort_dir), "--settings", settings]
    for name, path in paths.items():
        args += [f"--{name}", str(path)]
    assert cli.main(args) == 0
    effects = [out / "figures" / f"effects_{axis}.png" for axis in AXES]
    markers = out / "figures" / "markers_by_course.png"
    assert cli.main(["figures", "--settings", settings, "--associations", str(paths["associations"]),
                     "--progression", str(paths["progression"]), "--scores", str(paths["scores"]),
                     "--summary", str(paths["summary"]), "--effect-figures", *map(str, effects),
                     "--marker-figure", str(markers)]) == 0
    return {**paths, "effects": effects, "markers": markers}


def test_every_file_and_figure_and_the_same_bytes_twice(tmp_path):
    cohort = ingested(tmp_path)
    first = run_stage(cohort, tmp_path / "one")
    second = run_stage(cohort, tmp_path / "two")
    for name in ("associations", "scores", "progression", "ledger", "summary", "markdown"):
        assert first[name].read_bytes() == second[name].read_bytes(), name
    for a, b in zip([*first["effects"], first["markers"]], [*second["effects"], second["markers"]]):
        assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() == b.read_bytes()
    table = runner.read_table(first["associations"])
    assert list(table.columns) == list(associations.COLUMNS)
    assert set(table["axis"]) == set(AXES) - {"progressive"}  # 2 progressive patients in the bundled cohort
    scores = runner.read_table(first["scores"], index_col="participant_id")
    assert {"status", "edss", "armss", "msss", "snfl", "snfl_z", "gfap", "gfap_z"} <= set(scores.columns)
    ledger = runner.read_table(first["ledger"])
    assert list(ledger.columns) == ["entity", "id", "file", "outcome", "reason", "detail"]
    summary = json.loads(first["summary"].read_text())
    assert summary["repeated_samples"] == "all" and summary["errors"] == "cr3"
    assert "## Axes" in first["markdown"].read_text()


def test_without_blood_markers_or_edss_the_stage_says_what_it_skipped(tmp_path):
    cohort = ingested(tmp_path, blood=False, drop=("edss",))
    paths = run_stage(cohort, tmp_path / "out")
    summary = json.loads(paths["summary"].read_text())
    skipped = {row["axis"] for row in summary["skipped"] if row["subset"] == "all"}
    assert skipped == set(AXES)  # the course axis too: the bundled cohort has 2 progressive patients
    assert summary["axes_tested"] == [] and summary["markers_measured"] == []
    text = paths["markdown"].read_text()
    assert "No sNfL or GFAP values in this cohort" in text and "0 patients with a value" in text
    ledger = runner.read_table(paths["ledger"])
    n_ms = summary["patients"]
    assert (ledger["reason"] == "no_edss").sum() == n_ms and (ledger["reason"] == "no_blood_sample").sum() == n_ms
    for path in [*paths["effects"], paths["markers"]]:
        assert path.stat().st_size > 1000
    calls = runner.read_table(paths["progression"])
    assert set(calls["progression_class"]) <= {"protective", "neutral", "high-risk"}


def test_bad_settings_are_one_line_without_a_traceback(tmp_path, capsys):
    cohort = ingested(tmp_path)
    out = tmp_path / "out"
    code = cli.main(["analyse", "--cohort", str(cohort), "--settings", json.dumps({"repeated_samples": "every"}),
                     *[arg for name in ("associations", "scores", "progression", "ledger", "summary", "markdown")
                       for arg in (f"--{name}", str(out / name))]])
    err = capsys.readouterr().err
    assert code == 1 and "clinical.repeated_samples" in err and "Traceback" not in err
    assert not out.exists()
    shutil.rmtree(cohort)


@pytest.mark.workflow
def test_snakemake_runs_the_stage_without_edss_or_blood_manifest(tmp_path):
    """The clinical rules in a workflow run of a cohort with neither EDSS nor a blood manifest."""
    import subprocess
    import sys

    import yaml

    from conftest import REPO

    files = synthetic.write(synthetic.generate(**synthetic.BUNDLED), tmp_path / "inputs")
    part = pd.read_csv(files["participants"], sep="\t", dtype=str, keep_default_na=False, comment="#")
    part.drop(columns=["edss"]).to_csv(files["participants"], sep="\t", index=False)
    config = {"inputs": {k: str(files[k]) for k in ("participants", "stool_manifest", "abundance", "taxonomy")},
              "outdir": str(tmp_path / "results"), "clinical": {"min_patients": 10}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "results" / "clinical"
    targets = [str(out / name) for name in ("summary.json", "figures/markers_by_course.png",
                                            "figures/effects_edss.png")]
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1",
                             "--directory", str(tmp_path), *targets, "--configfile", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["axes_tested"] == [] and {r["axis"] for r in summary["skipped"]} == set(AXES)
    assert "| EDSS | 0 | no (all: 0 patients with a value" in (out / "summary.md").read_text()


@pytest.mark.real_data
def test_the_real_imsms_cohort_through_the_stage(imsms_cohort, tmp_path):
    """576 MS patients at genus rank through the command line: MSSS from the authors' disease_duration,
    the blood-marker axes skipped (the public data have none), every output written."""
    cohort, _ = imsms_cohort
    write_cohort(cohort, tmp_path / "cohort")
    paths = run_stage(tmp_path / "cohort", tmp_path / "out", {"min_patients": 20})
    summary = json.loads(paths["summary"].read_text())
    assert summary["patients"] == 576 and summary["rows"] == 576 and summary["taxa_tested"] > 60
    assert summary["axes_tested"] == ["edss", "armss", "msss", "progressive"]
    assert {r["axis"] for r in summary["skipped"]} == {"snfl_z", "gfap_z"}
    table = runner.read_table(paths["associations"])
    assert table.groupby("axis")["n"].first().to_dict() == {"armss": 574, "edss": 576, "msss": 560,
                                                            "progressive": 576}
    calls = runner.read_table(paths["progression"])
    assert len(calls) == summary["taxa_tested"]
    assert calls["progression_reason"][calls["progression_class"] != "neutral"].str.contains(
        "damage not measured").all()
    for path in [*paths["effects"], paths["markers"]]:
        assert path.stat().st_size > 1000


def test_schema_defaults_are_the_settings_and_the_bundled_config():
    """Snakemake's validation fills the same defaults the stage fills by itself; config.yaml restates them."""
    import yaml
    from snakemake.utils import validate

    from conftest import REPO
    from workflow_scripts.clinical.analyse import ClinicalSettings
    from workflow_scripts.clinical.progression import Rule
    from workflow_scripts.errors import InputError

    config = {"clinical": {}}
    validate(config, str(REPO / "config" / "schema" / "clinical.schema.yaml"))
    assert ClinicalSettings.from_config(config["clinical"]) == ClinicalSettings.from_config()
    bundled = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["clinical"]
    assert bundled == config["clinical"]
    settings = ClinicalSettings.from_config({"progression": {"q": 0.05}})
    assert Rule.from_settings(settings) == Rule.from_config(q=0.05) and Rule.from_config().q == 0.01
    with pytest.raises(InputError, match="clinical"):
        ClinicalSettings.from_config({"components": ["clr", "deseq"]})
