"""The consensus rule, the pseudo-count sensitivity, and the whole stage against planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.differential import linda, sensitivity
from workflow_scripts.differential.consensus import ConsensusRule, add_site_meta, apply_robustness, consensus
from workflow_scripts.differential.methods import run_method
from workflow_scripts.differential.prepare import DifferentialSettings, prepare
from workflow_scripts.synthetic.taxa import DRUGS as TRUTH_DRUGS

from test_differential_prepare import synthetic_cohort


def table(method, rows):
    """A method table from (feature, effect, qvalue) rows (pvalue = qvalue / 2)."""
    frame = pd.DataFrame(rows, columns=["feature", "effect", "qvalue"])
    return frame.assign(method=method, pvalue=frame["qvalue"] / 2)


def test_rule_on_hand_made_tables():
    tables = {
        "linda": table("linda", [("up2", 1.0, 0.001), ("down2", -1.0, 0.02), ("clash", 1.0, 0.001),
                                 ("one", 1.0, 0.001), ("weak", 1.0, 0.04), ("relonly", -0.2, 0.5),
                                 ("nothing", 0.1, 0.9)]),
        "ancombc": table("ancombc", [("up2", 0.8, 0.03), ("down2", -0.7, 0.008), ("clash", -0.5, 0.01),
                                     ("one", 0.5, 0.2), ("weak", 0.9, 0.03), ("relonly", -0.1, 0.6),
                                     ("nothing", -0.1, 0.8)]),
        "imsms_lmm": table("imsms_lmm", [("up2", 0.1, 0.2), ("down2", -0.1, 0.3), ("clash", 0.1, 0.3),
                                         ("one", 0.1, 0.5), ("weak", 0.1, 0.5), ("relonly", -0.1, 0.001),
                                         ("nothing", 0.0, 0.9)]),
        "maaslin": table("maaslin", [("up2", 1.0, 0.2), ("down2", -1.0, 0.3), ("clash", 1.0, 0.3),
                                     ("one", 1.0, 0.5), ("weak", 1.0, 0.5), ("relonly", -0.5, 0.002),
                                     ("nothing", 0.0, 0.9)]),
    }
    out = consensus(tables, ConsensusRule.from_config()).set_index("feature")
    assert out.loc["up2", "call"] == "up" and out.loc["up2", "n_significant"] == 2
    assert out.loc["down2", "call"] == "down" and out.loc["down2", "direction"] == -1
    assert out.loc["down2", "min_qvalue"] == pytest.approx(0.008)
    # significant in opposite directions: no direction, no call
    assert out.loc["clash", "direction"] == 0 and out.loc["clash", "call"] == "none"
    # one method only
    assert out.loc["one", "direction"] == 1 and out.loc["one", "call"] == "none"
    # two methods, but no strong evidence (smallest q 0.03 >= strong_q 0.01)
    assert out.loc["weak", "n_significant"] == 2 and out.loc["weak", "call"] == "none"
    assert consensus(tables, ConsensusRule.from_config(strong_q=0.05)).set_index("feature").loc["weak", "call"] == "up"
    # only the relative-abundance methods: a dilution pattern, not called
    assert out.loc["relonly", "n_significant"] == 2 and out.loc["relonly", "n_significant_compositional"] == 0
    assert out.loc["relonly", "call"] == "none"
    assert consensus(tables, ConsensusRule.from_config(min_compositional=0)).set_index("feature").loc["relonly", "call"] == "down"
    assert out.loc["nothing", "call"] == "none" and out.loc["nothing", "n_methods"] == 4
    assert list(out.index) == sorted(out.index)
    assert out.loc["up2", "sign_agreement"] == 1.0 and out.loc["up2", "effect_maaslin"] == 1.0
    # sign agreement: the call needs half of the methods' estimates on its side
    strict = consensus(tables, ConsensusRule.from_config(min_sign_agreement=1.0)).set_index("feature")
    assert strict.loc["up2", "call"] == "up"
    tables["maaslin"].loc[tables["maaslin"]["feature"] == "up2", "effect"] = -1.0
    tables["imsms_lmm"].loc[tables["imsms_lmm"]["feature"] == "up2", "effect"] = -0.1
    assert consensus(tables, ConsensusRule.from_config(min_sign_agreement=0.75)).set_index("feature").loc["up2", "call"] == "none"


def test_methods_without_a_result_do_not_count():
    tables = {"linda": table("linda", [("a", 1.0, 0.001)]),
              "aldex": table("aldex", [("a", np.nan, np.nan)])}
    out = consensus(tables, ConsensusRule.from_config()).set_index("feature")
    assert out.loc["a", "n_methods"] == 1
    # asking for more methods than were run is capped at what was run
    assert consensus({"linda": tables["linda"]}, ConsensusRule.from_config()).set_index("feature").loc["a", "call"] == "up"


def test_pseudocount_robustness_flag():
    main = {"linda": table("linda", [("a", 1.0, 0.001), ("b", 1.0, 0.001)]),
            "ancombc": table("ancombc", [("a", 1.0, 0.001), ("b", 1.0, 0.04)])}
    alternatives = pd.concat([
        table("ancombc", [("a", 1.0, 0.001), ("b", 1.0, 0.2)]).assign(pseudo_count=0.1),
        table("ancombc", [("a", 1.0, 0.002), ("b", 1.0, 0.03)]).assign(pseudo_count=1.0),
    ])
    rule = ConsensusRule.from_config()
    calls = sensitivity.alternative_calls(main, alternatives, rule)
    assert list(calls.columns) == ["call_pc0.1", "call_pc1"]
    assert calls.loc["b", "call_pc0.1"] == "none" and calls.loc["b", "call_pc1"] == "up"
    out = apply_robustness(consensus(main, rule), calls, require=False).set_index("feature")
    assert out.loc["a", "pseudocount_robust"] and not out.loc["b", "pseudocount_robust"]
    assert out.loc["b", "call"] == "up"
    strict = apply_robustness(consensus(main, rule), calls, require=True).set_index("feature")
    assert strict.loc["b", "call"] == "none" and strict.loc["a", "call"] == "up"
    meta = pd.DataFrame({"feature": ["a", "b"], "meta_effect": [1.0, 2.0], "meta_se": 0.1, "meta_pvalue": 0.01,
                         "tau2": 0.0, "i2": 0.0, "n_sites": 3, "loo_max_pvalue": 0.02, "loo_site": "X",
                         "site_driven": False})
    joined = add_site_meta(out.reset_index(), meta)
    assert list(joined["meta_effect"]) == [1.0, 2.0]


# ---------------------------------------------------------------------------
# Planted truth: ~300 households, ln fold change 1


def _run_stage(cohort):
    settings = DifferentialSettings.from_config({"aldex": {"draws": 16}})
    data = prepare(cohort, settings)
    tables = {m: run_method(m, data) for m in settings.methods}
    return data, tables, consensus(tables, ConsensusRule.from_settings(settings)).set_index("feature")


@pytest.fixture(scope="module")
def planted():
    truth, cohort = synthetic_cohort(n_households=300, n_species=200, seed=1, effect_size=1.0)
    return truth, *_run_stage(cohort)


def test_planted_species_are_found_with_few_wrong_calls(planted):
    truth, data, tables, con = planted
    classes = truth.truth_species.set_index("feature")["class"]
    disease = classes.index[classes.isin(["high-risk", "protective"])]
    assert len(disease) == 20 and set(disease) <= set(con.index)
    expected = np.where(classes.reindex(con.index) == "high-risk", "up",
                        np.where(classes.reindex(con.index) == "protective", "down", "none"))
    right = (con["call"] != "none") & (con["call"] == expected)
    calls = con["call"] != "none"
    recall = right.sum() / len(disease)
    wrong = (calls & ~right).sum() / calls.sum()
    assert recall >= 0.90, recall
    assert wrong <= 0.05, con[calls & ~right]
    # treatment-only species: moved by a drug only, never called disease-associated
    treatment_only = classes.index[classes == "treatment-only"]
    assert len(treatment_only) == 10
    assert (con.loc[con.index.intersection(treatment_only), "call"] == "none").all()
    # they are not missed for lack of signal: the model puts them on their drug's term
    treatment = linda.treatment_effects(data).set_index(["feature", "term"])
    assert set(treatment.index.get_level_values("term")) == {f"dmt_{d}" for d in TRUTH_DRUGS}
    planted_drug = truth.truth_species.set_index("feature").loc[treatment_only]
    own = treatment.loc[[(f, f"dmt_{d}") for f, d in planted_drug["dmt"].items()]]
    assert (np.sign(own["effect"].to_numpy()) == np.sign(planted_drug["dmt_log_fold_change"])).all()
    assert (own["pvalue"] < 0.05).sum() >= 7  # one prespecified test per species
    others = treatment.drop(index=own.index)
    assert (others["qvalue"] < 0.05).mean() < 0.02


def test_site_meta_and_sensitivity_run_at_cohort_size(planted):
    from workflow_scripts.differential import meta

    truth, data, tables, con = planted
    effects, ledger = meta.per_site(data)
    assert set(effects["site"]) == set(data.design.frame["site"]) and ledger.empty
    out = meta.meta_analysis(effects, data.features).set_index("feature")
    called = con.index[con["call"] != "none"]
    # what the pooled models call, the per-site pool sees with the same sign
    assert (np.sign(out.loc[called, "meta_effect"]) == np.where(con.loc[called, "call"] == "up", 1, -1)).all()
    alternatives = sensitivity.rerun(data, methods=["linda"], pseudo_counts=[1.0])
    assert set(alternatives["method"]) == {"linda"} and len(alternatives) == len(data.features)
    calls = sensitivity.alternative_calls(tables, alternatives, ConsensusRule.from_config())
    assert (calls.loc[called, "call_pc1"] == con.loc[called, "call"]).mean() >= 0.9


def test_null_cohort_makes_at_most_one_call():
    truth, cohort = synthetic_cohort(n_households=300, n_species=200, seed=1, null=True)
    assert (truth.truth_species["class"] == "neutral").all()
    _, tables, con = _run_stage(cohort)
    assert (con["call"] != "none").sum() <= 1
    # the methods themselves stay quiet too (BH at 5% under the complete null)
    assert sum((t["qvalue"] < 0.05).sum() for t in tables.values()) <= 3


def _classes(truth, data, tables, con):
    """The classification stage's rule on the stage's outputs (primary test, calibration, site meta, therapy)."""
    from workflow_scripts.classification.classify import ClassificationRule, classify
    from workflow_scripts.differential import calibration, meta, primary
    from workflow_scripts.differential.consensus import add_primary

    effects, _ = meta.per_site(data)
    cal = calibration.calibrate(data)
    table = add_site_meta(con.reset_index(), meta.meta_analysis(effects, data.features))
    first = primary.run(data)
    table = add_primary(table, first, calibration.level_in_force(cal, data.settings.fdr_level))
    out = classify(table, first, effects, ClassificationRule.from_config(),
                   treatment=linda.treatment_effects(data), calibration=cal)
    return out.set_index("feature")["class"]


def test_classification_precision_and_recall_on_planted_truth(planted):
    """Per class: precision >= 0.95 and recall >= 0.90 on the planted cohort (seed 1).

    The calls come from the primary test (``tests/test_differential_primary.py`` checks
    its components and its error rates over seeds); here the whole classification rule,
    site agreement and prevalence included, on one cohort.
    """
    truth, data, tables, con = planted
    planted_class = truth.truth_species.set_index("feature")["class"]
    ours = _classes(truth, data, tables, con)
    for label in ("high-risk", "protective"):
        called = ours.index[ours == label]
        expected = planted_class.index[planted_class == label]
        precision = planted_class.reindex(called).eq(label).mean()
        recall = ours.reindex(expected).eq(label).mean()
        assert len(expected) == 10 and precision >= 0.95 and recall >= 0.90, (label, precision, recall)
    # Treatment-only species stay neutral.
    assert (ours.reindex(planted_class.index[planted_class == "treatment-only"]) == "neutral").all()


def test_classification_on_a_null_cohort_is_all_neutral():
    truth, cohort = synthetic_cohort(n_households=300, n_species=200, seed=1, null=True)
    data, tables, con = _run_stage(cohort)
    assert (_classes(truth, data, tables, con) != "neutral").sum() <= 1
