"""The real iMSMS 16S cohort at genus rank: the published directions (skipped without ../shared)."""

from __future__ import annotations

import numpy as np
import pytest

from workflow_scripts.differential.consensus import ConsensusRule, consensus
from workflow_scripts.differential.methods import run_method
from workflow_scripts.differential.prepare import DifferentialSettings, prepare
pytestmark = pytest.mark.real_data

# iMSMS Consortium, Cell 2022 (and the shotgun LMM in the source README):
# Akkermansia higher in MS; Faecalibacterium and Blautia lower.
PUBLISHED = {"g__Akkermansia": "up", "g__Faecalibacterium": "down", "g__Blautia": "down"}


@pytest.fixture(scope="module")
def imsms_stage(imsms_cohort):
    cohort, _ = imsms_cohort
    settings = DifferentialSettings.from_config({"aldex": {"draws": 16}})
    data = prepare(cohort, settings)
    tables = {m: run_method(m, data) for m in settings.methods}
    return data, tables, consensus(tables, ConsensusRule.from_settings(settings)).set_index("feature")


def test_design_of_the_real_cohort(imsms_stage):
    data, tables, con = imsms_stage
    assert len(data.design.frame) == 1152 and len(data.pairs.households) == 576
    assert data.pairs.untreated.sum() == 209  # households of untreated patients
    assert data.design.dmt.shape[1] == 6  # one indicator per therapy
    assert 60 <= len(data.features) <= 120 and "g__unassigned" not in data.features
    assert (tables["paired_wilcoxon"]["n_pairs"] == 209).all()
    assert (tables["ancombc"]["n_pairs"] == 576).all()


def test_published_genera_are_called_in_their_direction(imsms_stage):
    """The methods (evidence) agree with the published directions, and so does the primary test."""
    from workflow_scripts.differential import primary
    from workflow_scripts.differential.calls import decide

    data, tables, con = imsms_stage
    first = primary.run(data).set_index("feature")
    calls = decide(first, data.settings.fdr_level / 2)["call"]
    for genus, call in PUBLISHED.items():
        assert con.loc[genus, "call"] == call, con.loc[genus]
        sign = 1 if call == "up" else -1
        # every method estimates the published direction
        effects = np.array([t.set_index("feature").loc[genus, "effect"] for t in tables.values()])
        assert (np.sign(effects) == sign).all(), (genus, effects)
        assert con.loc[genus, "n_significant"] >= 2 and con.loc[genus, "min_qvalue"] < 0.01
        assert calls[genus] == sign and first.loc[genus, "effect"] * sign > 0, first.loc[genus]


def test_published_genera_are_classified_in_their_direction(imsms_stage):
    from workflow_scripts.classification.classify import ClassificationRule
    from workflow_scripts.classification.classify import classify
    from workflow_scripts.differential import linda, meta
    from workflow_scripts.differential.consensus import add_site_meta

    from workflow_scripts.differential import calibration, primary
    from workflow_scripts.differential.consensus import add_primary

    data, tables, con = imsms_stage
    effects, _ = meta.per_site(data)
    cal = calibration.calibrate(data)
    first = primary.run(data)
    table = add_site_meta(con.reset_index(), meta.meta_analysis(effects, data.features))
    table = add_primary(table, first, calibration.level_in_force(cal, data.settings.fdr_level))
    out = classify(table, first, effects, ClassificationRule.from_config(),
                   treatment=linda.treatment_effects(data), calibration=cal).set_index("feature")
    assert out.loc["g__Akkermansia", "class"] == "high-risk", out.loc["g__Akkermansia", "reason"]
    assert out.loc["g__Faecalibacterium", "class"] == "protective", out.loc["g__Faecalibacterium", "reason"]
    assert out.loc["g__Blautia", "class"] == "protective", out.loc["g__Blautia", "reason"]
    assert out.index.is_unique and set(out["class"]) <= {"protective", "neutral", "high-risk"}
