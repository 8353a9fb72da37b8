"""The progression call in the species classification: read from clinical/progression.tsv, nothing else moved."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workflow_scripts.classification.progression import NO_RESULT, merge_progression


def classification():
    return pd.DataFrame({"feature": ["s__a", "s__b", "s__c"], "class": ["high-risk", "neutral", "protective"],
                         "evidence": ["", "inconclusive", ""], "effect_linda": [0.5, 0.0, -0.4]})


def progression():
    return pd.DataFrame({
        "feature": ["s__a", "s__b"], "progression_class": ["neutral", "protective"],
        "progression_reason": ["no evidence: ...", "lower abundance with more severe disease: ..."],
        "direction": [0, -1], "n_axes": [6, 6],
        "effect_edss": [0.01, -0.3], "direction_edss": [1, -1], "q_edss": [0.8, 1e-5],
        "effect_snfl_z": [0.02, -0.2], "direction_snfl_z": [1, -1], "q_snfl_z": [0.7, 1e-3],
    })


def test_calls_and_per_axis_evidence_are_carried_and_the_ms_risk_class_is_unchanged():
    table = classification()
    out = merge_progression(table, progression())
    pd.testing.assert_frame_equal(out[table.columns], table)  # rows and existing columns untouched
    assert out["progression_class"].tolist() == ["neutral", "protective", "neutral"]
    assert out.loc[1, "progression_reason"].startswith("lower abundance")
    assert out.loc[2, "progression_reason"].startswith("not tested")  # not among the clinical stage's taxa
    assert out.loc[1, "clinical_q_edss"] == 1e-5 and out.loc[1, "clinical_direction_snfl_z"] == -1
    assert out.loc[0, "clinical_effect_edss"] == 0.01 and np.isnan(out.loc[2, "clinical_q_snfl_z"])
    assert "direction" not in out.columns and "n_axes" not in out.columns


def test_without_a_clinical_result_every_taxon_is_neutral_and_says_why():
    out = merge_progression(classification(), None)
    assert (out["progression_class"] == "neutral").all() and (out["progression_reason"] == NO_RESULT).all()
    assert not [c for c in out.columns if c.startswith("clinical_")]
    # a clinical result that tested no taxon (no axis could be fitted)
    empty = merge_progression(classification(), progression().iloc[:0])
    assert empty["progression_reason"].str.startswith("not tested").all()


def test_the_command_line_takes_the_flag_with_or_without_a_file():
    """classification/cli.py: --progression FILE, or the flag alone (no clinical result)."""
    from workflow_scripts.classification import cli

    base = ["--consensus", "c", "--primary", "p", "--calibration", "k", "--site-effects", "s", "--treatment", "t", "--untested", "u",
            "--settings", "{}", "--out", "o"]
    assert cli.parser().parse_args([*base, "--progression"]).progression is None
    assert cli.parser().parse_args([*base, "--progression", "x.tsv"]).progression == "x.tsv"
