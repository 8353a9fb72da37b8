"""The classification rule, branch by branch, on hand-made stage outputs."""

from __future__ import annotations

import pandas as pd
import pytest

from workflow_scripts.classification.classify import ClassificationRule, classify, modifier_text

FEATURES = ["s__A", "s__B", "s__C", "s__D", "s__E", "s__F", "s__G", "s__H"]


@pytest.fixture
def stage_outputs():
    consensus = pd.DataFrame({
        "feature": FEATURES,
        "n_methods": 6, "n_significant": [4, 3, 0, 2, 3, 4, 3, 1],
        "min_qvalue": [1e-5, 1e-4, 0.6, 0.01, 1e-4, 1e-6, 1e-4, 0.03],
        "direction": [1, -1, 0, 0, 1, 1, -1, 1],
        "call": ["up", "down", "none", "none", "up", "up", "down", "none"],
        "effect_linda": [1.2, -0.9, 0.1, 0.3, 0.1, 1.5, -1.0, 0.4], "q_linda": [1e-5, 1e-4, 0.6, 0.2, 0.01, 1e-6, 1e-4, 0.3],
        "site_driven": [False, False, False, False, False, True, False, False],
        "loo_site": ["", "", "", "", "", "Boston", "", ""],
        "pseudocount_robust": True,
    })
    primary = pd.DataFrame({"feature": FEATURES, "effect": consensus["effect_linda"],
                            "prevalence_case": [0.9, 0.8, 0.5, 0.5, 0.6, 0.9, 0.05, 0.4],
                            "prevalence_control": [0.8, 0.9, 0.5, 0.5, 0.6, 0.8, 0.06, 0.4],
                            "mean_abundance_case": 0.01, "mean_abundance_control": 0.01})
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
    return consensus, primary, sites, treatment, untested, assoc, variants


def test_each_branch_of_the_rule(stage_outputs):
    consensus, primary, sites, treatment, untested, assoc, variants = stage_outputs
    out = classify(consensus, primary, sites, ClassificationRule.from_config(min_effect=0.5, exclude_site_driven=True), untested=untested,
                   treatment=treatment,
                   associations=assoc, variants=variants).set_index("feature")
    assert out.loc["s__A", "class"] == "high-risk" and "enriched in MS: 4 of 6" in out.loc["s__A", "reason"]
    assert out.loc["s__B", "class"] == "neutral" and "sign inconsistent across sites (33% of 3" in \
        out.loc["s__B", "reason"]
    assert out.loc["s__C", "reason"] == "no method significant (smallest q = 0.6)"
    assert out.loc["s__D", "reason"] == "significant methods disagree in direction"
    assert out.loc["s__E", "reason"] == "effect +0.10 below the minimum 0.5"
    assert out.loc["s__F", "reason"] == "driven by one site (Boston)"
    assert out.loc["s__G", "reason"].startswith("prevalence 6% below")
    assert out.loc["s__H", "reason"] == "changed by therapy only: ocrelizumab (+2.10, q=0.0001)"
    assert out.loc["s__rare", "reason"] == "not tested: present in 3.0% of participants < 10.0%"
    assert set(out["class"]) <= {"protective", "neutral", "high-risk"}
    assert len(out) == 10 and out.index.is_unique  # every taxon exactly once
    # Genotype modifiers, named by their label and described relative to the MS effect.
    assert out.loc["s__A", "n_genotype_modifiers"] == 1
    assert out.loc["s__A", "genotype_modifiers"] == (
        "rs3135388 (HLA-DRB1*15:01 tag): stronger enrichment in MS among HLA-DRB1*15:01 tag carriers "
        "(beta_int=+0.80, q=0.001)")
    assert out.loc["s__C", "genotype_modifiers"].startswith("rs2: higher in MS than in controls among rs2")
    assert out.loc["s__A", "site_agreement"] == pytest.approx(2 / 3)


def test_protective_when_depleted_consistently(stage_outputs):
    consensus, primary, sites, *_ = stage_outputs
    sites = sites.assign(effect=[1.0, 0.5, 0.2, -0.3, -0.2, -0.1])
    strict = classify(consensus, primary, sites, ClassificationRule.from_config(exclude_site_driven=True)).set_index("feature")
    assert strict.loc["s__B", "class"] == "protective" and "depleted in MS" in strict.loc["s__B", "reason"]
    assert strict.loc["s__F", "class"] == "neutral"  # site-driven
    default = classify(consensus, primary, sites, ClassificationRule.from_config()).set_index("feature")
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
