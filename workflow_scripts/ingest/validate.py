"""Validation rules for the participant table and the two sample manifests.

Each ``check_*`` function takes the table as read (strings, ``_line`` column)
and returns the list of problems it finds plus the typed table; nothing stops
at the first problem, so an analyst sees everything wrong in one run.
"""

from __future__ import annotations

import datetime

import pandas as pd

from ..errors import Problem
from ..io.tables import check_ids

PARTICIPANT_REQUIRED = ("participant_id", "household_id", "site", "status", "sex", "age")
STOOL_REQUIRED = ("sample_id", "participant_id")
BLOOD_REQUIRED = ("sample_id", "participant_id")
DISEASE_COURSES = ("RRMS", "SPMS", "PPMS")
SEXES = ("F", "M")
# Plausible ranges: outside them the value is a unit or typing error.
RANGES = {"age": (0.0, 120.0), "bmi": (10.0, 80.0), "edss": (0.0, 10.0),
          "snfl": (0.0, float("inf")), "gfap": (0.0, float("inf"))}
CASE_ONLY = ("disease_course", "dmt", "edss")


def _missing_columns(frame, required, path) -> list[Problem]:
    return [Problem(str(path), f"missing required column {c!r}",
                    f"add a {c!r} column to the header row (required: {', '.join(required)})",
                    column=c) for c in required if c not in frame.columns]


def _numeric(frame, column, path, required=False) -> tuple[pd.Series, list[Problem]]:
    """Parse a numeric column, checking the plausible range; problems for bad cells."""
    problems, values = [], []
    low, high = RANGES.get(column, (-float("inf"), float("inf")))
    for raw, line, pid in zip(frame[column], frame["_line"], frame.iloc[:, 0]):
        if raw is None:
            if required:
                problems.append(Problem(str(path), f"{column} is missing", f"give every row a {column}",
                                        line=line, item=pid, column=column))
            values.append(float("nan"))
            continue
        try:
            value = float(raw)
        except ValueError:
            problems.append(Problem(str(path), f"{column} {raw!r} is not a number",
                                    f"give {column} as a number, or leave it empty/NA if unknown",
                                    line=line, item=pid, column=column))
            values.append(float("nan"))
            continue
        if not low <= value <= high:
            problems.append(Problem(str(path), f"{column} {raw} is outside the plausible range "
                                    f"{low:g}-{high:g}", f"check the value and its unit",
                                    line=line, item=pid, column=column))
        values.append(value)
    return pd.Series(values, index=frame.index, dtype=float), problems


def _choice(frame, column, allowed, path, required=True) -> list[Problem]:
    problems = []
    for value, line, pid in zip(frame[column], frame["_line"], frame.iloc[:, 0]):
        if value is None and not required:
            continue
        if value not in allowed:
            shown = "missing" if value is None else repr(value)
            problems.append(Problem(str(path), f"{column} is {shown}, not one of {', '.join(allowed)}",
                                    f"use exactly {' or '.join(allowed)}", line=line, item=pid,
                                    column=column))
    return problems


def check_participants(frame: pd.DataFrame, path, case: str, control: str):
    """Validate the participant table; return ``(problems, typed_table)``.

    Rules: required columns; ids valid and unique; site given; status one of the
    two configured labels; sex F/M; age, BMI and EDSS numbers within plausible
    ranges; disease course, DMT and EDSS only for cases; at least one case and
    one control.
    """
    problems = _missing_columns(frame, PARTICIPANT_REQUIRED, path)
    if problems:
        return problems, frame
    lines = frame["_line"].tolist()
    problems += check_ids(frame["participant_id"].tolist(), path, "participant_id", lines=lines,
                          what="participant id")
    households = frame["household_id"].tolist()
    problems += [p for p in check_ids(households, path, "household_id", lines=lines, unique=False,
                                      what="household id") if p.message != "empty household id"]
    for value, line, pid in zip(frame["site"], lines, frame["participant_id"]):
        if value is None:
            problems.append(Problem(str(path), "site is missing", "give every participant a site",
                                    line=line, item=pid, column="site"))
    problems += _choice(frame, "status", (case, control), path)
    problems += _choice(frame, "sex", SEXES, path)
    typed = frame.copy()
    for column in ("age", "bmi", "edss"):
        if column in frame.columns:
            typed[column], found = _numeric(frame, column, path, required=(column == "age"))
            problems += found
    if "disease_course" in frame.columns:
        cases = frame[frame["status"] == case]
        problems += _choice(cases, "disease_course", DISEASE_COURSES, path, required=False)
    for column in CASE_ONLY:
        if column not in frame.columns:
            continue
        given = frame[(frame["status"] == control) & frame[column].notna()]
        for value, line, pid in zip(given[column], given["_line"], given["participant_id"]):
            problems.append(Problem(str(path), f"{column} {value!r} is given for a {control} participant",
                                    f"{column} applies to {case} patients only: leave it empty for "
                                    f"{control}, or correct the status", line=line, item=pid,
                                    column=column))
    statuses = set(frame["status"].dropna())
    for label in (case, control):
        if label not in statuses:
            problems.append(Problem(str(path), f"the cohort has no {label} participants",
                                    f"a case-control analysis needs both {case} and {control}; check "
                                    "the status column or the case_label/control_label config keys",
                                    column="status"))
    return problems, typed


def _check_dates(frame, path) -> list[Problem]:
    problems = []
    if "collection_date" not in frame.columns:
        return problems
    for value, line, sid in zip(frame["collection_date"], frame["_line"], frame["sample_id"]):
        if value is None:
            continue
        try:
            datetime.date.fromisoformat(value[:10])
        except ValueError:
            problems.append(Problem(str(path), f"collection_date {value!r} is not an ISO 8601 date",
                                    "write dates as YYYY-MM-DD", line=line, item=sid,
                                    column="collection_date"))
    return problems


def check_manifest(frame: pd.DataFrame, path, participants: set[str], kind: str):
    """Validate a stool or blood manifest; return ``(problems, typed_table)``.

    Rules: required columns; sample ids valid and unique; every participant id
    known; ISO dates; for blood, sNfL and GFAP non-negative numbers.
    """
    required = STOOL_REQUIRED if kind == "stool" else BLOOD_REQUIRED
    problems = _missing_columns(frame, required, path)
    if problems:
        return problems, frame
    lines = frame["_line"].tolist()
    problems += check_ids(frame["sample_id"].tolist(), path, "sample_id", lines=lines,
                          what=f"{kind} sample id")
    for pid, line, sid in zip(frame["participant_id"], lines, frame["sample_id"]):
        if pid is None:
            problems.append(Problem(str(path), "participant_id is missing",
                                    "give the participant every sample belongs to", line=line,
                                    item=sid, column="participant_id"))
        elif pid not in participants:
            problems.append(Problem(str(path), f"participant {pid!r} is not in the participants table",
                                    "add the participant to the participants table or correct the id",
                                    line=line, item=sid, column="participant_id"))
    problems += _check_dates(frame, path)
    typed = frame.copy()
    if kind == "blood":
        for column in ("snfl", "gfap"):
            if column in frame.columns:
                typed[column], found = _numeric(frame, column, path)
                problems += found
    return problems, typed
