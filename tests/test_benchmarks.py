"""The benchmark harness (benchmarks/run.py) on a tiny cohort: the JSON it writes and its equality gates.

The workflow runs only its ingest (``--until ingest``) and R is not run, so this stays fast;
the harness's own figures are what is tested, not the speed of anything.
"""

from __future__ import annotations

import copy
import json
import sys

import pytest
import yaml

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import run as harness  # noqa: E402

from workflow_scripts.cohort import read_cohort  # noqa: E402

REQUIRED_RATIOS = ["permanova_vs_adonis2", "permanova_vs_skbio", "mixed_models_vs_mixedlm_loop",
                   "association_vs_ols_loop"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    work = out / "work"
    harness.run("tiny", out=out, no_r=True, keep=work, until=["ingest"])
    return json.loads((out / "tiny.json").read_text()), work


def test_result_has_every_required_figure(tiny):
    result, _ = tiny
    for key in ("scale", "cohort", "machine", "versions", "ratios", "ratio_reasons", "reference_seconds",
                "ours_seconds", "equality", "association_tests_per_s_per_core", "workflow", "stages"):
        assert key in result, key
    assert result["scale"] == "tiny"
    assert set(result["cohort"]) >= {"households", "participants", "samples", "species", "variants"}
    assert result["cohort"]["households"] == 20 and result["cohort"]["participants"] >= 40
    assert set(result["machine"]) >= {"cores", "cpu_model", "mem_gb"}
    assert set(result["versions"]) >= {"python", "numpy", "scipy", "pandas", "statsmodels", "scikit-bio",
                                       "snakemake"}
    assert set(result["workflow"]) >= {"wall_s", "cpu_s", "peak_rss_mb", "jobs", "other_cpu_s"}
    assert result["workflow"]["jobs"] == 1 and result["workflow"]["peak_rss_mb"] > 0
    ingest = result["stages"]["ingest"]
    assert set(ingest) >= {"wall_s", "cpu_s", "max_rss_mb"} and ingest["wall_s"] > 0
    assert result["association_tests_per_s_per_core"] > 0


def test_ratios_are_numbers_or_null_with_a_reason(tiny):
    result, _ = tiny
    assert set(result["ratios"]) >= set(REQUIRED_RATIOS)
    for name, ratio in result["ratios"].items():
        assert result["ours_seconds"][name] > 0
        if ratio is None:
            assert isinstance(result["ratio_reasons"][name], str) and result["ratio_reasons"][name]
        else:
            assert isinstance(ratio, float) and ratio > 0 and name not in result["ratio_reasons"]
            assert result["equality"][name]["equal"] is True
            assert ratio == pytest.approx(result["reference_seconds"][name] / result["ours_seconds"][name])
    assert result["ratios"]["permanova_vs_adonis2"] is None
    assert "--no-r" in result["ratio_reasons"]["permanova_vs_adonis2"]
    for name in REQUIRED_RATIOS[1:]:
        equality = result["equality"][name]
        assert {"tolerance", "equal"} <= set(equality) and len(equality) > 2, name


def test_a_reference_that_disagrees_gives_a_null_ratio(tiny, monkeypatch):
    _, work = tiny
    cohort = read_cohort(work / "results" / "ingest" / "cohort")
    config = harness.with_defaults(yaml.safe_load((work / "config.yaml").read_text()))
    skbio = harness.bench_permanova.time_skbio
    loop = harness.bench_association.statsmodels_loop

    def skbio_off(*args, **kwargs):
        seconds, pseudo_f, p = skbio(*args, **kwargs)
        return seconds, pseudo_f * (1 + 1e-6), p

    def loop_off(*args, **kwargs):
        wall, cpu, table = loop(*args, **kwargs)
        table[:, harness.bench_association.P_COLUMNS] += 1e-6
        return wall, cpu, table

    monkeypatch.setattr(harness.bench_permanova, "time_skbio", skbio_off)
    monkeypatch.setattr(harness.bench_association, "statsmodels_loop", loop_off)
    ratios = harness.Ratios()
    scale = harness.SCALES["tiny"]
    harness.permanova_references(cohort, scale, ratios, no_r=True)
    harness.association_reference(cohort, config, scale, ratios)
    for name in ("permanova_vs_skbio", "association_vs_ols_loop"):
        assert ratios.ratios[name] is None, name
        assert ratios.equality[name]["equal"] is False
        assert ratios.reasons[name].startswith("not equal to the reference")
        assert ratios.reference[name] > 0  # the reference ran; only equality failed


def test_growth_reports_the_exponent_against_participants(tiny):
    small, _ = tiny
    large = copy.deepcopy(small)
    large["scale"] = "large"
    large["cohort"]["participants"] *= 4
    large["stages"]["ingest"]["wall_s"] *= 16
    large["stages"]["ingest"]["cpu_s"] *= 16
    large["workflow"]["wall_s"] *= 4
    large["workflow"]["cpu_s"] *= 2
    text = harness.growth(small, large)
    ingest = next(line for line in text.splitlines() if line.startswith("| ingest"))
    assert ingest.startswith("| ingest |") and ingest.endswith("| 2.00 (faster than linear) |")
    assert "| 2.00 |" in ingest
    whole = next(line for line in text.splitlines() if line.startswith("| whole workflow"))
    assert "| 1.00 |" in whole and whole.endswith("| 0.50 |")
    table = harness.markdown(small)  # renders from the written JSON
    assert "| permanova_vs_skbio" in table and "| ingest | 1 |" in table
