"""The clinical analysis of a harmonised cohort, in memory: scores, markers, associations, calls.

:func:`analyse` is what the stage's entry point (:mod:`workflow_scripts.clinical.cli`)
calls between reading the cohort and writing its files; the calibration
(benchmarks/calibrate_clinical.py) and the tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from workflow_scripts.ledger import Ledger
from workflow_scripts.settings import StageSettings

from . import associations, biomarkers, progression, scores

STAGE = associations.STAGE
RELAPSING_AND_PROGRESSIVE = (*associations.RELAPSING, *associations.PROGRESSIVE)


@dataclass(frozen=True)
class ClinicalSettings(StageSettings):
    """The ``clinical`` config section plus the top-level ``covariates``.

    Every key and default is in ``config/schema/clinical.schema.yaml``; build
    with :meth:`from_config` (``progression`` may be partial).
    """

    SECTION: ClassVar[str] = "clinical"
    TOP_LEVEL: ClassVar[tuple[str, ...]] = ("covariates",)

    repeated_samples: str
    sample_weights: str
    min_prevalence: float
    pseudo_count: float
    components: tuple
    inference: str
    cluster_inference: str
    msss_table: str
    min_patients: int
    min_group: int
    min_present: int
    min_controls_per_term: int
    figure_taxa: int
    progression: dict
    covariates: tuple

    def __post_init__(self):
        for name in ("components", "covariates"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass
class Result:
    """Everything the stage writes.

    Attributes
    ----------
    associations : DataFrame
        One row per taxon x axis (:data:`associations.COLUMNS`).
    progression : DataFrame
        One call per tested taxon (:func:`progression.progression_calls`).
    scores : DataFrame
        Per participant (patients and controls): status, course, EDSS, age,
        disease duration, ARMSS, MSSS, sNfL/GFAP raw, Z and reference model,
        the ``progressive`` axis; severity scores are empty for controls.
    skipped : DataFrame
        Axis fits not made: ``axis``, ``subset``, ``reason``.
    ledger : DataFrame
        Patients and taxa left out, and axes a patient has no value for.
    summary : dict
        Counts, settings, the reference models of the markers, skipped axes.
    """

    associations: pd.DataFrame
    progression: pd.DataFrame
    scores: pd.DataFrame
    skipped: pd.DataFrame
    ledger: pd.DataFrame
    summary: dict


#: Why a participant has no marker Z-score (ledger reason -> sentence).
MARKER_REASONS = {
    "no_blood_sample": "no blood sample (no sNfL or GFAP)",
    "no_{m}_value": "a blood sample without a {M} value",
    "no_{m}_reference": "no {M} reference model for this participant's covariates (too few controls with a "
                        "value, or a missing age or BMI)",
}


def _marker_ledger(ledger: Ledger, participants: pd.DataFrame, marker: dict, ids: pd.Index) -> None:
    """Ledger rows for the patients ``ids`` without a marker Z-score, with the cause."""
    blood = participants["n_blood_samples"].reindex(ids).fillna(0) if "n_blood_samples" in participants.columns \
        else pd.Series(0, index=ids)
    ledger.dropped("participant", ids[blood.to_numpy() == 0], reason="no_blood_sample",
                   detail=f"{STAGE}: left out of the sNfL and GFAP axes: {MARKER_REASONS['no_blood_sample']}")
    with_blood = ids[blood.to_numpy() > 0]
    for name, label in (("snfl", "sNfL"), ("gfap", "GFAP")):
        frame = marker.get(name)
        value = frame["value"].reindex(with_blood) if frame is not None else pd.Series(np.nan, index=with_blood)
        z = frame["z"].reindex(with_blood) if frame is not None else pd.Series(np.nan, index=with_blood)
        for code, rows in ((f"no_{name}_value", value.isna()), (f"no_{name}_reference", value.notna() & z.isna())):
            template = MARKER_REASONS[code.replace(name, "{m}")]
            ledger.dropped("participant", with_blood[rows.to_numpy()], reason=code,
                           detail=f"{STAGE}: left out of the {name}_z axis: {template.format(M=label)}")


def analyse(cohort, settings: ClinicalSettings) -> Result:
    """Scores, marker Z-scores, taxon x axis associations and progression calls of a cohort.

    Parameters
    ----------
    cohort : workflow_scripts.cohort.Cohort
    settings : ClinicalSettings
    """
    rows = associations.analysis_rows(cohort, settings.covariates, settings.min_prevalence,
                                      settings.pseudo_count, settings.repeated_samples)
    participants = cohort.participants
    patients = pd.Index(pd.unique(rows.participant.to_numpy()), name="participant_id")
    ms = participants.loc[patients]
    severity, missing = scores.severity_scores(ms, settings.msss_table)
    marker = biomarkers.marker_zscores(participants, cohort.control_label, settings.min_controls_per_term)
    axes = associations.axis_values(ms, severity, marker)
    table, skipped = associations.associate(rows, axes, settings)
    calls = progression.progression_calls(table, progression.Rule.from_settings(settings))

    ledger = Ledger()
    ledger.extend(rows.excluded)
    for (score, reason), group in missing.groupby(["score", "reason"], sort=False):
        ledger.dropped("participant", group["participant_id"], reason=f"no_{score}",
                       detail=f"{STAGE}: left out of the {score} axis: {scores.REASONS[reason]}")
    no_course = axes.index[axes["progressive"].isna()]
    course = ms["disease_course"].reindex(no_course) if "disease_course" in ms.columns \
        else pd.Series(np.nan, index=no_course)
    ledger.dropped("participant", no_course[course.isna().to_numpy()], reason="no_disease_course",
                   detail=f"{STAGE}: left out of the progressive axis: no disease_course")
    ledger.dropped("participant", no_course[course.notna().to_numpy()], reason="unknown_disease_course",
                   detail=f"{STAGE}: left out of the progressive axis: disease_course is not one of "
                          f"{', '.join(RELAPSING_AND_PROGRESSIVE)}")
    _marker_ledger(ledger, participants, marker, patients)

    score_table = participants[[c for c in ("status", "disease_course") if c in participants.columns]].copy()
    score_table = score_table.join(severity.drop(columns=["age"]))
    for name, frame in marker.items():
        score_table[name] = frame["value"]
        score_table[f"{name}_z"] = frame["z"]
        score_table[f"{name}_reference"] = frame["model"]
    score_table["progressive"] = axes["progressive"]
    summary = {
        "control_label": cohort.control_label, "patients": int(len(patients)), "rows": int(len(rows.clr)), "taxa_tested": int(rows.clr.shape[1]),
        "repeated_samples": settings.repeated_samples, "components": list(settings.components),
        "errors": settings.cluster_inference if rows.clustered else settings.inference,
        "axes_tested": list(pd.unique(table["axis"])) if len(table) else [],
        "skipped": skipped.to_dict(orient="records"),
        "patients_per_axis": {a: int(axes[a].notna().sum()) for a in axes.columns},
        "reference_models": {name: frame.attrs.get("models", {}) for name, frame in marker.items()},
        "markers_measured": sorted(marker),
        "untreated_patients": int(rows.untreated.groupby(rows.participant.to_numpy()).first().sum())
        if rows.untreated is not None else None,
        "progression_classes": calls["progression_class"].value_counts().sort_index().to_dict()
        if len(calls) else {},
    }
    return Result(table, calls, score_table, skipped, ledger.frame(), summary)

