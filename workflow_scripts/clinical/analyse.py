"""The clinical analysis of a harmonised cohort, in memory: scores, markers, associations, calls.

:func:`analyse` is what the stage's entry point will call between reading the
cohort and writing its files; the calibration (benchmarks/calibrate_clinical.py)
and the tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pandas as pd

from workflow_scripts.ledger import COLUMNS as LEDGER_COLUMNS

from . import associations, biomarkers, progression, scores

STAGE = associations.STAGE


@dataclass(frozen=True)
class Settings:
    """The ``clinical`` settings plus the top-level ``covariates``."""

    covariates: tuple = ("sex", "age", "bmi")
    min_prevalence: float = 0.1
    pseudo_count: float = 0.5
    msss_table: str = "roxburgh2005"
    inference: str = "hc3"
    min_patients: int = 20
    min_group: int = 5
    min_controls_per_term: int = biomarkers.MIN_CONTROLS_PER_TERM
    progression: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> "Settings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown clinical settings {unknown}; known: {sorted(known)}")
        values = dict(values)
        if "covariates" in values:
            values["covariates"] = tuple(values["covariates"])
        return cls(**values)


@dataclass
class Result:
    """Everything the stage writes.

    Attributes
    ----------
    associations : DataFrame
        One row per taxon x axis (:data:`associations.COLUMNS`).
    progression : DataFrame
        One call per taxon (:func:`progression.progression_calls`).
    patients : DataFrame
        Per MS patient: EDSS, age, disease duration, ARMSS, MSSS, sNfL/GFAP
        (raw, Z, reference model) and the axes.
    markers : DataFrame
        Per participant (patients and controls): raw sNfL/GFAP, Z-scores and
        reference model, for the distributions by course.
    skipped : DataFrame
        Axis fits not made, with the reason.
    ledger : DataFrame
        Patients and taxa left out, and scores a patient has none of.
    """

    associations: pd.DataFrame
    progression: pd.DataFrame
    patients: pd.DataFrame
    markers: pd.DataFrame
    skipped: pd.DataFrame
    ledger: pd.DataFrame


def analyse(cohort, settings: Settings = Settings()) -> Result:
    """Scores, marker Z-scores, taxon x axis associations and progression calls of a cohort.

    Parameters
    ----------
    cohort : workflow_scripts.cohort.Cohort
    settings : Settings
    """
    pts = associations.patients(cohort, settings.covariates, settings.min_prevalence, settings.pseudo_count)
    ms = cohort.participants.loc[pts.clr.index]
    severity, missing = scores.severity_scores(ms, settings.msss_table)
    marker = biomarkers.marker_zscores(cohort.participants, cohort.control_label, settings.min_controls_per_term)
    axes = associations.axis_values(ms, severity, marker)
    table, skipped = associations.associate(pts.clr, axes, pts.covariates, pts.untreated, settings.inference,
                                            settings.min_patients, settings.min_group)
    calls = progression.progression_calls(table, progression.Rule.from_dict(settings.progression))

    marker_frame = cohort.participants[["status"]].copy()
    if "disease_course" in cohort.participants.columns:
        marker_frame["disease_course"] = cohort.participants["disease_course"]
    for name, frame in marker.items():
        marker_frame[name] = frame["value"]
        marker_frame[f"{name}_z"] = frame["z"]
        marker_frame[f"{name}_reference"] = frame["model"]
    patients_frame = severity.join(axes.drop(columns=["edss", "armss", "msss"]))

    # A patient without a score is left out of that axis only.
    rows = [("participant", pid, "", "dropped", f"no_{score}", f"{STAGE}: no {score.upper()} axis: {detail}")
            for pid, score, reason, detail in missing.itertuples(index=False)]
    for name, frame in marker.items():
        patient_z = frame["z"].reindex(ms.index)
        rows += [("participant", pid, "", "dropped", f"no_{name}_z",
                  f"{STAGE}: no {name} Z-score (no {name} value, or no reference model for the covariates)")
                 for pid in patient_z.index[patient_z.isna()]]
    ledger = pd.concat([pts.excluded, pd.DataFrame(rows, columns=LEDGER_COLUMNS)], ignore_index=True)
    return Result(table, calls, patients_frame, marker_frame, skipped, ledger[LEDGER_COLUMNS])
