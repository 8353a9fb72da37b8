"""The clinical analysis of whole cohorts: the bundled one, one without clinical data, and the real iMSMS."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.clinical import associations
from workflow_scripts.clinical.analyse import Settings, analyse
from workflow_scripts.ledger import COLUMNS as LEDGER_COLUMNS
from workflow_scripts.synthetic import BUNDLED

from test_clinical_progression import synthetic_cohort


@pytest.fixture(scope="module")
def bundled():
    """The bundled cohort's arguments (24 households, 3 sites, edge cases), ingested with its blood manifest."""
    return synthetic_cohort(**{**BUNDLED, "n_variants": 5})


def test_bundled_cohort_gives_every_table(bundled):
    truth, cohort = bundled
    result = analyse(cohort, Settings(min_patients=10))
    ms = cohort.participants.index[cohort.participants["status"] == "MS"]
    assert set(result.patients.index) == set(ms)
    assert {"edss", "armss", "msss", "disease_duration", "snfl_z", "gfap_z", "progressive"} <= set(
        result.patients.columns)
    # EDSS and course as generated; ARMSS is the table cell of every patient's age and EDSS
    np.testing.assert_array_equal(result.patients["edss"], cohort.participants.loc[ms, "edss"].astype(float))
    assert result.patients["armss"].notna().all()
    assert set(result.associations["axis"]) <= set(associations.AXES)
    assert list(result.associations.columns) == list(associations.COLUMNS)
    n_taxa = result.progression.shape[0]
    assert len(result.associations) == n_taxa * result.associations["axis"].nunique()
    assert list(result.ledger.columns) == LEDGER_COLUMNS
    # the markers of everyone (controls too), with the reference model used
    assert set(result.markers.index) == set(cohort.participants.index)
    assert set(result.markers["snfl_reference"]) <= {"age", "mean", ""}  # 27 controls: too few for age + BMI
    # the planted participant without blood, and the one whose only GFAP is missing, have no value
    edge = truth.notes["edge_cases"]
    no_blood = edge["participant_without_blood_sample"]
    blood = truth.blood_manifest.set_index("sample_id")["participant_id"]
    no_gfap = blood[edge["blood_sample_with_missing_gfap"]]
    assert set(result.markers.index[result.markers["snfl"].isna()]) == {no_blood}
    missing_gfap = {no_blood} | ({no_gfap} if truth.blood_manifest[blood.to_numpy() == no_gfap]["gfap"].isna().all()
                                 else set())
    assert set(result.markers.index[result.markers["gfap"].isna()]) == missing_gfap
    patients_without = set(ms) & {no_blood}
    assert set(result.ledger.loc[result.ledger["reason"] == "no_snfl_z", "id"]) == patients_without


def test_a_cohort_without_clinical_data_says_what_it_skipped(bundled):
    _, cohort = bundled
    cohort = replace(cohort, participants=cohort.participants.drop(
        columns=["edss", "disease_course", "disease_duration", "age_at_onset", "snfl", "gfap"]))
    result = analyse(cohort, Settings(min_patients=10))
    assert result.associations.empty and result.progression.empty
    assert set(result.skipped["axis"]) == set(associations.AXES)
    assert result.skipped["reason"].str.contains("0 patients with a value").all()
    no_edss = result.ledger[result.ledger["reason"] == "no_edss"]
    assert len(no_edss) == (cohort.participants["status"] == "MS").sum()


@pytest.mark.real_data
def test_real_imsms_cohort_runs_through(imsms_cohort):
    """576 patients at genus rank; no blood markers in the public data, so those axes are skipped."""
    cohort, _ = imsms_cohort
    from conftest import real_data

    meta = pd.read_csv(real_data("imsms_16s") / "metadata.tsv", sep="\t", dtype=str).set_index("sample_id")
    participants = cohort.participants.copy()
    participants["disease_duration"] = pd.to_numeric(meta["disease_duration"], errors="coerce") \
        .reindex(participants.index).where(participants["status"] == "MS")
    result = analyse(replace(cohort, participants=participants))
    n = result.associations.groupby("axis")["n"].first()
    assert n.to_dict() == {"edss": 576, "armss": 574, "msss": 560, "progressive": 576}
    assert set(result.skipped["axis"]) == {"snfl_z", "gfap_z"}
    assert (result.associations.groupby("axis")["n_untreated"].first() > 150).all()
    calls = result.progression["progression_class"].value_counts()
    assert set(calls.index) <= {"protective", "neutral", "high-risk"}
