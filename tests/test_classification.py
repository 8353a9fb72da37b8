"""The classification rule, branch by branch, on hand-made stage outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.classification.classify import ClassificationRule, classify, modifier_text

FEATURES = ["s__A", "s__B", "s__C", "s__D", "s__E", "s__F", "s__G", "s__H", "s__I"]


@pytest.fixture
def stage_outputs():
    n = len(FEATURES)
    consensus = pd.DataFrame({
        "feature": FEATURES,
        "call": ["up", "down", "none", "none", "none", "up", "down", "none", "none"],
        "call_reason": ["", "", "", "abundance and presence disagree in direction",
                        "MS difference carried by ocrelizumab", "", "", "", ""],
        "primary_qvalue": [1e-5, 1e-4, 0.6, 0.01, 0.001, 1e-6, 1e-4, 0.3, 0.8],
        "q_threshold_used": 0.025,
        "methods_call": ["up", "down", "none", "none", "up", "up", "none", "none", "none"],
        "effect_linda": [1.2, -0.9, 0.1, 0.3, 0.8, 1.5, -1.0, 0.4, 0.0],
        "q_linda": [1e-5, 1e-4, 0.6, 0.2, 0.01, 1e-6, 1e-4, 0.3, 0.9],
        "n_methods": 6, "n_significant": [4, 3, 0, 1, 3, 4, 3, 1, 0],
        "site_driven": [False, False, False, False, False, True, False, False, False],
        "loo_site": ["", "", "", "", "", "Boston", "", "", ""],
    })
    primary = pd.DataFrame({
        "feature": FEATURES, "effect": consensus["effect_linda"],
        "effect_A": [1.2, -0.9, 0.1, 0.3, 0.8, 1.5, -1.0, 0.4, 0.02],
        "se_A": [0.2, 0.2, 0.5, 0.2, 0.2, 0.2, 0.2, 0.5, 0.1],
        "p_A": [1e-6, 1e-5, 0.8, 0.1, 1e-4, 1e-7, 1e-5, 0.4, 0.8],
        "effect_B": [1.3, -0.8, 0.0, 0.9, 0.9, 1.4, -1.1, 0.2, 0.01],
        "se_B": [0.3, 0.3, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.12],
        "p_B": [1e-5, 0.01, 0.99, 0.003, 0.002, 1e-5, 1e-4, 0.5, 0.9],
        "n_B": 100,
        "effect_C": [0.1, 0.2, 0.0, -1.0, 0.1, 0.2, -0.1, 0.1, 0.05],
        "se_C": [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.2],
        "p_C": [0.7, 0.5, 0.9, 0.001, 0.8, 0.6, np.nan, 0.8, 0.8],
        "n_C": 40, "direction": [1, -1, 1, 1, 1, 1, -1, 1, 1],
        "driver": ["B", "B", "B", "C", "B", "B", "B", "B", "B"],
        "carried_by": ["", "", "", "", "ocrelizumab", "", "", "", ""], "design": "paired",
        "n": 200, "n_nonzero": [180, 170, 100, 100, 120, 180, 12, 80, 190],
        "prevalence_case": [0.9, 0.8, 0.5, 0.5, 0.6, 0.9, 0.05, 0.4, 0.95],
        "prevalence_control": [0.8, 0.9, 0.5, 0.5, 0.6, 0.8, 0.06, 0.4, 0.95],
        "mean_abundance_case": 0.01, "mean_abundance_control": 0.01})
    calibration = pd.DataFrame({
        "scope": ["primary", "classification", "classification", "classification", "classification"],
        "metric": ["type1_error_0.05", "q_threshold_used", "power", "power", "power"],
        "prevalence_band": ["all", "all", "<30%", "30-60%", ">=60%"],
        "effect": ["null", "", "2x", "2x", "2x"],
        "value": [0.05, 0.025, 0.3, 0.6, 0.9], "status": ["ok", "ok", "", "", ""]})
    sites = pd.DataFrame({"feature": ["s__A"] * 3 + ["s__B"] * 3, "site": ["x", "y", "z"] * 2,
                          "effect": [1.0, 0.5, -0.2, 0.3, 0.2, -0.1]})
    treatment = pd.DataFrame({"feature": ["s__H", "s__H", "s__A"], "term": ["dmt_ocrelizumab", "dmt_fingolimod",
                                                                             "dmt_fingolimod"],
                              "effect": [2.1, 0.2, 0.3], "qvalue": [1e-4, 0.7, 0.5]})
    untested = pd.DataFrame({"entity": "feature", "id": ["s__rare", "s__unassigned"],
                             "reason": ["below_min_prevalence", "unassigned_bucket"],
                             "detail": ["differential: present in 3.0% of participants < 10.0%",
                                        "differential: the bucket of features without a name is not tested"]})
    assoc = pd.DataFrame({"variant_id": ["rs3135388", "rs1", "rs2"], "feature": ["s__A", "s__A", "s__C"],
                          "beta_interaction": [0.8, -0.3, 0.5], "q_interaction": [0.001, 0.2, 0.01]})
    variants = pd.DataFrame({"variant_id": ["rs3135388", "rs1", "rs2"],
                             "label": ["HLA-DRB1*15:01 tag", None, None]})
    assert len(consensus) == len(primary) == n
    return consensus, primary, sites, treatment, untested, assoc, variants, calibration


def run(stage_outputs, **rule):
    consensus, primary, sites, treatment, untested, assoc, variants, calibration = stage_outputs
    return classify(consensus, primary, sites, ClassificationRule.from_config(**rule), untested=untested,
                    treatment=treatment, calibration=calibration, associations=assoc,
                    variants=variants).set_index("feature")


def test_each_branch_of_the_rule(stage_outputs):
    out = run(stage_outputs, exclude_site_driven=True)
    assert out.loc["s__A", "class"] == "high-risk"
    assert out.loc["s__A", "reason"] == ("enriched in MS: primary q = 1e-05 < 0.025, all pairs +1.20 log2, where "
                                         "present +1.30 log2, presence ln OR +0.10 (driven by B)")
    assert out.loc["s__B", "class"] == "neutral" and "sign inconsistent across sites (33% of 3" in \
        out.loc["s__B", "reason"]
    assert out.loc["s__C", "reason"].startswith("no difference found (primary q = 0.6); 80% power only for")
    assert out.loc["s__D", "reason"] == "abundance and presence disagree in direction"
    assert out.loc["s__E", "reason"] == "MS difference carried by ocrelizumab"
    assert out.loc["s__F", "reason"] == "driven by one site (Boston)"
    assert out.loc["s__G", "reason"].startswith("prevalence 6% below")
    assert out.loc["s__H", "reason"] == "changed by therapy only: ocrelizumab (+2.10, q=0.0001)"
    assert out.loc["s__rare", "reason"] == "not tested: present in 3.0% of participants < 10.0%"
    assert set(out["class"]) <= {"protective", "neutral", "high-risk"}
    assert len(out) == 11 and out.index.is_unique  # every taxon exactly once
    assert list(out.columns[:3]) == ["class", "evidence", "reason"]
    # the methods are evidence beside the class, not votes
    assert out.loc["s__E", "methods_call"] == "up" and out.loc["s__E", "class"] == "neutral"
    # Genotype modifiers, named by their label and described relative to the MS effect.
    assert out.loc["s__A", "n_genotype_modifiers"] == 1
    assert out.loc["s__A", "genotype_modifiers"] == (
        "rs3135388 (HLA-DRB1*15:01 tag): stronger enrichment in MS among HLA-DRB1*15:01 tag carriers "
        "(beta_int=+0.80, q=0.001)")
    assert out.loc["s__C", "genotype_modifiers"].startswith("rs2: higher in MS than in controls among rs2")
    assert out.loc["s__A", "site_agreement"] == pytest.approx(2 / 3)


def test_evidence_says_what_neutral_means(stage_outputs):
    out = run(stage_outputs)
    # s__I: every 90% interval inside the margins -> equivalent
    assert out.loc["s__I", "evidence"] == "equivalent"
    assert out.loc["s__I", "reason"] == "no difference found (primary q = 0.8); equivalent within the margin"
    # s__C: se_A 0.5 -> interval +-0.82 around 0.1: not shown equivalent
    assert out.loc["s__C", "evidence"] == "inconclusive"
    assert out.loc["s__C", "mde_log2"] == pytest.approx(0.5 * 2.8016, rel=1e-4)
    assert out.loc["s__C", "calibration_power_2x"] == 0.6  # prevalence 0.5: the 30-60% band
    assert "detected in 60% of the calibration's implants" in out.loc["s__C", "reason"]
    assert out.loc["s__G", "calibration_power_2x"] == 0.3  # prevalence 6%: the <30% band
    assert out.loc["s__rare", "evidence"] == "not tested"
    called = out["class"] != "neutral"
    assert (out.loc[called, "evidence"] == "").all() and called.sum() == 2  # A and F; B, G vetoed
    # a narrower margin: nothing is equivalent
    assert (run(stage_outputs, equivalence_margin_log2=0.05)["evidence"] != "equivalent").all()
    # a presence interval outside its margin also prevents equivalence
    consensus, primary, *rest = stage_outputs
    primary = primary.assign(effect_C=np.where(primary["feature"] == "s__I", 0.6, primary["effect_C"]))
    assert run((consensus, primary, *rest)).loc["s__I", "evidence"] == "inconclusive"


def test_a_flagged_calibration_is_stated_in_every_call(stage_outputs):
    *rest, calibration = stage_outputs
    calibration = calibration.assign(status=["flagged", "ok", "", "", ""])
    out = run((*rest, calibration))
    calls = out[out["class"] != "neutral"]
    assert len(calls) == 2
    assert calls["reason"].str.endswith("calibration flagged: primary test miscalibrated on this cohort").all()


def test_protective_when_depleted_consistently(stage_outputs):
    consensus, primary, sites, *rest = stage_outputs
    sites = sites.assign(effect=[1.0, 0.5, 0.2, -0.3, -0.2, -0.1])
    strict = run((consensus, primary, sites, *rest), exclude_site_driven=True)
    assert strict.loc["s__B", "class"] == "protective" and "depleted in MS" in strict.loc["s__B", "reason"]
    assert strict.loc["s__F", "class"] == "neutral"  # site-driven
    default = run((consensus, primary, sites, *rest))
    assert default.loc["s__F", "class"] == "high-risk" and bool(default.loc["s__F", "site_driven"])


@pytest.mark.parametrize("beta, call, text", [
    (0.5, "up", "stronger enrichment in MS among X carriers"),
    (-0.5, "up", "weaker enrichment in MS among X carriers"),
    (-0.5, "down", "stronger depletion in MS among X carriers"),
    (0.5, "down", "weaker depletion in MS among X carriers"),
    (-0.5, "none", "lower in MS than in controls among X carriers"),
])
def test_modifier_words(beta, call, text):
    assert modifier_text(beta, call, "X") == text
