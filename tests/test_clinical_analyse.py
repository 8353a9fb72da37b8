"""The clinical analysis of whole cohorts: the bundled one, one without clinical data, and the real iMSMS."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.clinical import associations
from workflow_scripts.clinical.analyse import ClinicalSettings, analyse
from workflow_scripts.ledger import COLUMNS as LEDGER_COLUMNS
from workflow_scripts.synthetic import BUNDLED

from test_clinical_progression import synthetic_cohort

SMALL = ClinicalSettings.from_config(min_patients=10)


@pytest.fixture(scope="module")
def bundled():
    """The bundled cohort's arguments (24 households, 3 sites, edge cases), ingested with its blood manifest."""
    return synthetic_cohort(**{**BUNDLED, "n_variants": 5})


def test_bundled_cohort_gives_every_table(bundled):
    truth, cohort = bundled
    result = analyse(cohort, SMALL)
    part = cohort.participants
    ms = part.index[part["status"] == "MS"]
    assert set(result.scores.index) == set(part.index)  # everyone: controls carry their markers
    scores = result.scores.loc[ms]
    assert {"edss", "armss", "msss", "disease_duration", "snfl", "snfl_z", "gfap_z", "progressive"} <= set(
        result.scores.columns)
    # EDSS and course as generated; ARMSS is the table cell of every patient's age and EDSS
    np.testing.assert_array_equal(scores["edss"], part.loc[ms, "edss"].astype(float))
    assert scores["armss"].notna().all() and result.scores.loc[~part.index.isin(ms), "edss"].isna().all()
    assert set(result.associations["axis"]) <= set(associations.AXES)
    assert list(result.associations.columns) == list(associations.COLUMNS)
    n_taxa = result.progression.shape[0]
    assert len(result.associations) == n_taxa * result.associations["axis"].nunique()
    assert list(result.ledger.columns) == LEDGER_COLUMNS
    # every sample of a patient is a row (repeated_samples: all), the patients are the clusters
    n_samples = cohort.samples["participant_id"].isin(ms).sum()
    assert result.summary["rows"] == n_samples > result.summary["patients"] == len(ms)
    assert (result.associations["n_participants"] <= len(ms)).all()
    assert set(result.scores["snfl_reference"].dropna()) <= {"age", "mean", ""}  # 27 controls: too few for age+BMI
    # the planted participant without blood, and the one whose only GFAP is missing, have no value
    edge = truth.notes["edge_cases"]
    no_blood = edge["participant_without_blood_sample"]
    blood = truth.blood_manifest.set_index("sample_id")["participant_id"]
    no_gfap = blood[edge["blood_sample_with_missing_gfap"]]
    assert set(result.scores.index[result.scores["snfl"].isna()]) == {no_blood}
    only_missing = truth.blood_manifest[blood.to_numpy() == no_gfap]["gfap"].isna().all()
    assert set(result.scores.index[result.scores["gfap"].isna()]) == {no_blood} | ({no_gfap} if only_missing
                                                                                   else set())
    ledger = result.ledger
    assert set(ledger.loc[ledger["reason"] == "no_blood_sample", "id"]) == set(ms) & {no_blood}
    if no_gfap in ms and only_missing:
        assert set(ledger.loc[ledger["reason"] == "no_gfap_value", "id"]) == {no_gfap}
    # the summary names the reference models and the axes
    assert set(result.summary["reference_models"]) == {"snfl", "gfap"}
    assert result.summary["patients_per_axis"]["edss"] == len(ms)


def test_one_profile_per_patient_policies(bundled):
    _, cohort = bundled
    ms = (cohort.participants["status"] == "MS").sum()
    for policy in ("first", "sum", "mean"):
        result = analyse(cohort, ClinicalSettings.from_config(min_patients=10, repeated_samples=policy))
        assert result.summary["rows"] == result.summary["patients"] == ms
        assert result.summary["errors"] == "hc3"
        assert (result.associations["n"] == result.associations["n_participants"]).all()


def test_a_cohort_without_clinical_data_says_what_it_skipped(bundled):
    _, cohort = bundled
    cohort = replace(cohort, participants=cohort.participants.drop(
        columns=["edss", "disease_course", "disease_duration", "age_at_onset", "snfl", "gfap", "n_blood_samples"]))
    result = analyse(cohort, SMALL)
    assert result.associations.empty and result.progression.empty
    assert set(result.skipped["axis"]) == set(associations.AXES)
    assert result.skipped["reason"].str.contains("0 patients with a value").all()
    n_ms = (cohort.participants["status"] == "MS").sum()
    for reason in ("no_edss", "no_disease_course", "no_blood_sample"):
        assert (result.ledger["reason"] == reason).sum() == n_ms, reason
    assert result.summary["axes_tested"] == [] and result.summary["markers_measured"] == []


@pytest.mark.real_data
def test_real_imsms_cohort_runs_through(imsms_cohort):
    """576 patients at genus rank; the authors' disease_duration gives MSSS; no blood markers in the public data."""
    cohort, _ = imsms_cohort
    result = analyse(cohort, ClinicalSettings.from_config())
    n = result.associations.groupby("axis")["n"].first()
    assert n.to_dict() == {"edss": 576, "armss": 574, "msss": 560, "progressive": 576}
    assert set(result.skipped["axis"]) == {"snfl_z", "gfap_z"}
    assert (result.associations.groupby("axis")["n_untreated"].first() > 150).all()
    calls = result.progression["progression_class"].value_counts()
    assert set(calls.index) <= {"protective", "neutral", "high-risk"}
    assert (result.ledger["reason"] == "no_blood_sample").sum() == 576
    # the disease duration the converter passes scores MSSS for every patient past the first year
    scores = result.scores[result.scores["status"] == "MS"]
    assert scores["msss"].notna().sum() == 560 and scores["disease_duration"].notna().sum() == 575
