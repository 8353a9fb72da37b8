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
          "disease_duration": (0.0, 90.0), "age_at_onset": (0.0, 120.0),
          "snfl": (0.0, float("inf")), "gfap": (0.0, float("inf"))}
NUMERIC = ("age", "bmi", "edss", "disease_duration", "age_at_onset")
CASE_ONLY_TEXT = ("disease_course", "dmt")
CASE_ONLY_NUMBERS = ("edss", "disease_duration", "age_at_onset")
UNTREATED = "untreated"
# How real studies fill patient-only fields for controls (the iMSMS authors write
# disease_course = treatments = "Control" and edss = 0). Compared case-insensitively,
# together with the configured control label. Anything else for a control signals a
# swapped status and stays an error.
CONTROL_WORDS = ("control", "healthy", "healthy control", "hc", "hhc", "none", "not applicable", "n/a")
NOTE_COLUMN = "_note"  # kept-with-note ledger text for a participant (dropped before the cohort)


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
    two configured labels; sex F/M; age, BMI, EDSS, disease duration and age at
    onset numbers within plausible ranges (onset and duration not after the
    current age); disease course, DMT, EDSS, duration and onset only for cases
    (with the control conventions of :func:`_control_fields`); at least one
    case and one control.

    The typed table has the numeric columns as floats, the control conventions
    cleared to missing, and a ``_note`` column with the ledger note for each
    participant whose values were read that way.
    """
    problems = _missing_columns(frame, PARTICIPANT_REQUIRED, path)
    if problems:
        return problems, frame
    if frame.empty:
        return [Problem(str(path), "has a header but no participant rows",
                        "give one row per participant under the header")], frame
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
    problems += _household_sites(frame, path)
    problems += _choice(frame, "status", (case, control), path)
    problems += _choice(frame, "sex", SEXES, path)
    typed = frame.copy()
    for column in NUMERIC:
        if column in frame.columns:
            typed[column], found = _numeric(frame, column, path, required=(column == "age"))
            problems += found
    if "disease_course" in frame.columns:
        cases = frame[frame["status"] == case]
        problems += _choice(cases, "disease_course", DISEASE_COURSES, path, required=False)
    found, typed = _control_fields(typed, path, case, control)
    problems += found
    problems += _onset_before_age(typed, path)
    statuses = set(frame["status"].dropna())
    for label in (case, control):
        if label not in statuses:
            problems.append(Problem(str(path), f"the cohort has no {label} participants",
                                    f"a case-control analysis needs both {case} and {control}; check "
                                    "the status column or the case_label/control_label config keys",
                                    column="status"))
    return problems, typed


def _household_sites(frame: pd.DataFrame, path) -> list[Problem]:
    """A household lives at one recruitment site (household-within-site models rely on it)."""
    problems = []
    given = frame.dropna(subset=["household_id", "site"])
    for household, rows in given.groupby("household_id", sort=False):
        sites = list(dict.fromkeys(rows["site"]))
        if len(sites) > 1:
            where = ", ".join(f"{pid} ({site}, line {line})" for pid, site, line in
                              zip(rows["participant_id"], rows["site"], rows["_line"]))
            problems.append(Problem(str(path), f"household {household!r} spans {len(sites)} sites: {where}",
                                    "give every member of a household the same site, or correct the "
                                    "household_id", line=int(rows["_line"].iloc[-1]), item=household,
                                    column="site"))
    return problems


def _control_fields(typed: pd.DataFrame, path, case: str, control: str):
    """Patient-only fields given for controls: accept the conventions, reject a swapped status.

    Accepted (cleared to missing, with a ledger note): ``disease_course`` or
    ``dmt`` equal to the control label or a word such as ``Control``,
    ``Healthy`` or ``none`` (see ``CONTROL_WORDS``); ``dmt`` ``untreated``;
    ``edss``, ``disease_duration`` and ``age_at_onset`` of 0. Rejected: a
    disease course (RRMS...), a therapy, or a positive score for a control,
    which is what a case recorded as a control looks like.
    """
    problems: list[Problem] = []
    typed = typed.copy()
    notes = pd.Series("", index=typed.index, dtype=object)
    is_control = typed["status"] == control
    conventions = {w.lower() for w in CONTROL_WORDS} | {control.lower()}
    for column in CASE_ONLY_TEXT:
        if column not in typed.columns:
            continue
        accepted = conventions | ({UNTREATED} if column == "dmt" else set())
        for idx in typed.index[is_control & typed[column].notna()]:
            value, line, pid = typed.at[idx, column], typed.at[idx, "_line"], typed.at[idx, "participant_id"]
            if str(value).strip().lower() in accepted:
                notes[idx] += f"{column} {value!r}, "
                typed.at[idx, column] = None
                continue
            signal = "a disease course" if column == "disease_course" else "a therapy"
            problems.append(Problem(
                str(path), f"{column} {value!r} is given for a {control} participant ({signal} marks a "
                f"case, status {case})", f"correct the status if the participant is a case; for a control "
                f"leave {column} empty (or write {control!r})", line=line, item=pid, column=column))
    for column in CASE_ONLY_NUMBERS:
        if column not in typed.columns:
            continue
        for idx in typed.index[is_control & typed[column].notna()]:
            value, line, pid = typed.at[idx, column], typed.at[idx, "_line"], typed.at[idx, "participant_id"]
            if value == 0:
                notes[idx] += f"{column} 0, "
                typed.at[idx, column] = float("nan")
                continue
            problems.append(Problem(
                str(path), f"{column} {value:g} is given for a {control} participant (a value above 0 "
                f"marks a case, status {case})", f"correct the status if the participant is a case; for a "
                f"control leave {column} empty (or 0)", line=line, item=pid, column=column))
    typed[NOTE_COLUMN] = [f"{n.rstrip(', ')} recorded for a {control}: read as not applicable" if n else ""
                          for n in notes]
    return problems, typed


def _onset_before_age(typed: pd.DataFrame, path) -> list[Problem]:
    """Age at onset and disease duration cannot exceed the current age."""
    problems = []
    for column in ("age_at_onset", "disease_duration"):
        if column not in typed.columns:
            continue
        late = typed[column] > typed["age"]
        for idx in typed.index[late.fillna(False)]:
            problems.append(Problem(
                str(path), f"{column} {typed.at[idx, column]:g} is more than the age "
                f"{typed.at[idx, 'age']:g}", f"{column} is in years and cannot exceed age: check both "
                "values and their units", line=typed.at[idx, "_line"], item=typed.at[idx, "participant_id"],
                column=column))
    return problems


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


def check_manifest(frame: pd.DataFrame, path, participants: set[str] | None, kind: str,
                   participants_file=None):
    """Validate a stool or blood manifest; return ``(problems, typed_table)``.

    Rules: required columns; sample ids valid and unique; every participant id
    known; ISO dates; for blood, sNfL and GFAP non-negative numbers.

    ``participants`` is None when the participants table could not be read: the
    samples' participants are then not checked one by one (each would repeat
    that one root cause) but summarised in a single problem.
    """
    required = STOOL_REQUIRED if kind == "stool" else BLOOD_REQUIRED
    problems = _missing_columns(frame, required, path)
    if problems:
        return problems, frame
    if frame.empty:
        return [Problem(str(path), f"has a header but no {kind} sample rows",
                        f"give one row per {kind} sample under the header")], frame
    lines = frame["_line"].tolist()
    problems += check_ids(frame["sample_id"].tolist(), path, "sample_id", lines=lines,
                          what=f"{kind} sample id")
    if participants is None:
        given = int(frame["participant_id"].notna().sum())
        problems.append(Problem(str(path), f"the participants of its {given} {kind} sample(s) could not be "
                                f"checked, because {participants_file or 'the participants table'} could "
                                "not be used", "fix the participants table first (see the problem above)"))
    for pid, line, sid in zip(frame["participant_id"], lines, frame["sample_id"]):
        if pid is None:
            problems.append(Problem(str(path), "participant_id is missing",
                                    "give the participant every sample belongs to", line=line,
                                    item=sid, column="participant_id"))
        elif participants is not None and pid not in participants:
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
