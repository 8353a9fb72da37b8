"""Severity scores of MS patients: EDSS as given, ARMSS and MSSS from the published global tables.

EDSS
    Kurtzke's Expanded Disability Status Scale, 0-10 in the steps 0, 1.0, 1.5,
    ..., 9.5, 10. The scores below are looked up per step. 0.5 is not a step of
    the scale but some registries record it; it is scored as 0, as the R
    package ms.sev (the tables' authors' implementation) does. Any other value
    off the 0.5 grid, and EDSS 10 (death, outside the tables), gets no score.

ARMSS (age-related MS severity score)
    The patient's EDSS ranked among patients of the same age at assessment:
    row ``floor(age)`` (18-75) of the global ARMSS table of Manouchehrinia et
    al. (2017), the column of the EDSS step. Outside ages 18-75 there is no
    score. The contract's ``age`` is the age at the stool sample; the workflow
    takes it as the age at the EDSS assessment (the contract records EDSS at
    sampling).

MSSS (MS severity score)
    The EDSS ranked among patients with the same disease duration: row
    ``min(floor(duration), 30)`` of the Global MSSS table, i.e. completed years
    since onset, as in ms.sev; durations under one year get no score (the table
    starts at year 1: a first-year EDSS says little about severity, Roxburgh et
    al. 2005). Default table: Roxburgh et al. (2005); ``"manouchehrinia2017"``
    is the updated Global MSSS of Manouchehrinia et al. (2017).

Both scores are deciles on 0-10 (higher = more severe for one's age or
duration). No data are needed beyond the two tables in
:mod:`workflow_scripts.clinical.reference_tables`.

References
----------
.. [1] Kurtzke JF (1983). Rating neurologic impairment in multiple sclerosis:
   an expanded disability status scale (EDSS). Neurology 33:1444-1452.
.. [2] Roxburgh RHSR et al. (2005). Multiple Sclerosis Severity Score: using
   disability and disease duration to rate disease severity. Neurology
   64:1144-1151.
.. [3] Manouchehrinia A et al. (2017). Age Related Multiple Sclerosis Severity
   Score: disability ranked by age. Mult Scler 23:1938-1946.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from . import reference_tables

#: The EDSS steps of the tables' columns.
EDSS_STEPS = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5)

TABLES = {
    "armss": {"manouchehrinia2017": "ARMSS_MANOUCHEHRINIA_2017"},
    "msss": {"roxburgh2005": "MSSS_ROXBURGH_2005", "manouchehrinia2017": "MSSS_MANOUCHEHRINIA_2017"},
}

#: Reasons a patient gets no score (the ``reason`` column of :func:`severity_scores`' exclusions).
REASONS = {
    "no_edss": "no EDSS value",
    "edss_off_scale": "EDSS is not a step of the scale (0, 1.0, 1.5, ..., 9.5)",
    "edss_10": "EDSS 10 is outside the reference tables",
    "age_outside_table": "age outside 18-75 years, the ARMSS table's range",
    "no_disease_duration": "no disease_duration, nor age_at_onset with age",
    "duration_below_1_year": "disease duration under 1 year: the MSSS table starts at year 1",
}


@cache
def reference_table(score: str, table: str) -> pd.DataFrame:
    """A published table as a frame: rows = age or duration years, columns = :data:`EDSS_STEPS`.

    Parameters
    ----------
    score : {"armss", "msss"}
    table : str
        ``"manouchehrinia2017"`` (both scores) or ``"roxburgh2005"`` (MSSS).
    """
    try:
        name = TABLES[score][table]
    except KeyError:
        known = {s: sorted(t) for s, t in TABLES.items()}
        raise ValueError(f"no {score!r} table {table!r}; known tables: {known}") from None
    lines = getattr(reference_tables, name).strip().splitlines()
    header = lines[0].split()
    values = np.array([line.split() for line in lines[1:]], dtype=float)
    frame = pd.DataFrame(values[:, 1:], index=pd.Index(values[:, 0].astype(int), name=header[0]),
                         columns=[float(c) for c in header[1:]])
    if tuple(frame.columns) != EDSS_STEPS:
        raise AssertionError(f"{name}: columns {list(frame.columns)} are not the EDSS steps")
    return frame


def edss_column(edss) -> tuple[np.ndarray, np.ndarray]:
    """Column index in :data:`EDSS_STEPS` of every EDSS value (-1 = none) and the reason codes.

    0.5 takes the column of 0 (see the module docstring).
    """
    e = np.asarray(edss, dtype=float)
    column = np.full(e.shape, -1)
    reason = np.full(e.shape, "", dtype=object)
    steps = np.array(EDSS_STEPS)
    on_grid = np.isclose(e * 2, np.round(e * 2)) & (e >= 0) & (e <= 9.5)
    match = np.isclose(e[..., None], steps)
    column[on_grid] = np.where(match[on_grid].any(-1), match[on_grid].argmax(-1), 0)  # 0.5 -> column of 0
    reason[np.isnan(e)] = "no_edss"
    reason[~np.isnan(e) & ~on_grid] = "edss_off_scale"
    reason[np.isclose(e, 10)] = "edss_10"
    return column, reason


def _lookup(frame: pd.DataFrame, row: np.ndarray, column: np.ndarray) -> np.ndarray:
    ok = (row >= 0) & (column >= 0)
    out = np.full(row.shape, np.nan)
    out[ok] = frame.to_numpy()[row[ok], column[ok]]
    return out


def armss(edss, age, table: str = "manouchehrinia2017") -> np.ndarray:
    """Age-related MS severity score of every patient (NaN where there is none).

    Parameters
    ----------
    edss, age : array_like
        EDSS and age in years at the assessment, same shape.
    table : str
        The global ARMSS table (only ``"manouchehrinia2017"``).

    Returns
    -------
    numpy.ndarray
        The table cell at row ``floor(age)`` and the EDSS step's column.

    Notes
    -----
    ARMSS is the mean rank of the EDSS among patients of the same age (within
    +-2 years) in the reference population, scaled to 0-10 (Manouchehrinia et
    al. 2017); the global table tabulates it for ages 18-75.
    """
    frame = reference_table("armss", table)
    a = np.floor(np.asarray(age, dtype=float))
    inside = (a >= frame.index.min()) & (a <= frame.index.max())
    row = np.where(inside, np.nan_to_num(a) - frame.index.min(), -1).astype(int)
    return _lookup(frame, row, edss_column(edss)[0])


def msss(edss, duration, table: str = "roxburgh2005") -> np.ndarray:
    """MS severity score of every patient (NaN where there is none).

    Parameters
    ----------
    edss, duration : array_like
        EDSS and years since MS onset at the assessment, same shape.
    table : {"roxburgh2005", "manouchehrinia2017"}
        The original Global MSSS or its 2017 update.

    Returns
    -------
    numpy.ndarray
        The table cell at row ``min(floor(duration), 30)`` (completed years;
        none under 1 year) and the EDSS step's column.

    Notes
    -----
    MSSS is the mean rank of the EDSS among patients with the same disease
    duration (within +-2 years) in the reference population, divided by the
    number of patients + 1 and scaled to 0-10 (Roxburgh et al. 2005).
    """
    frame = reference_table("msss", table)
    d = np.minimum(np.floor(np.asarray(duration, dtype=float)), frame.index.max())
    inside = d >= frame.index.min()
    row = np.where(inside, np.nan_to_num(d) - frame.index.min(), -1).astype(int)
    return _lookup(frame, row, edss_column(edss)[0])


def disease_duration(participants: pd.DataFrame) -> pd.Series:
    """Years since onset: ``disease_duration`` where given, else ``age - age_at_onset``."""
    index = participants.index
    given = pd.to_numeric(participants["disease_duration"], errors="coerce") \
        if "disease_duration" in participants.columns else pd.Series(np.nan, index=index)
    if "age_at_onset" in participants.columns:
        derived = pd.to_numeric(participants["age"], errors="coerce") \
            - pd.to_numeric(participants["age_at_onset"], errors="coerce")
        given = given.fillna(derived)
    return given.astype(float).rename("disease_duration")


def severity_scores(participants: pd.DataFrame, msss_table: str = "roxburgh2005"
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """EDSS, ARMSS and MSSS of every participant given (pass the MS patients).

    Parameters
    ----------
    participants : DataFrame
        Index participant_id; ``age``, optional ``edss``, ``disease_duration``,
        ``age_at_onset``.
    msss_table : {"roxburgh2005", "manouchehrinia2017"}

    Returns
    -------
    scores : DataFrame
        Index participant_id; ``edss``, ``age``, ``disease_duration``,
        ``armss``, ``msss`` (NaN where there is no score).
    missing : DataFrame
        One row per participant and score without a value: ``participant_id``,
        ``score``, ``reason`` (a key of :data:`REASONS`), ``detail``.
    """
    index = participants.index
    edss = pd.to_numeric(participants["edss"], errors="coerce") if "edss" in participants.columns \
        else pd.Series(np.nan, index=index)
    age = pd.to_numeric(participants["age"], errors="coerce")
    duration = disease_duration(participants)
    scores = pd.DataFrame({"edss": edss.astype(float), "age": age.astype(float), "disease_duration": duration,
                           "armss": armss(edss, age), "msss": msss(edss, duration, msss_table)}, index=index)
    _, edss_reason = edss_column(edss)
    rows = []
    for pid, e_reason, a, d, has_armss, has_msss in zip(index, edss_reason, age, duration,
                                                         scores["armss"].notna(), scores["msss"].notna()):
        if e_reason:
            # Without EDSS nothing is scored; an off-scale EDSS stays an EDSS but gets no table score.
            scored = ("edss", "armss", "msss") if e_reason == "no_edss" else ("armss", "msss")
            rows += [(pid, score, e_reason) for score in scored]
            continue
        if not has_armss:
            rows.append((pid, "armss", "age_outside_table"))
        if not has_msss:
            rows.append((pid, "msss", "no_disease_duration" if np.isnan(d) else "duration_below_1_year"))
    missing = pd.DataFrame(rows, columns=["participant_id", "score", "reason"])
    missing["detail"] = missing["reason"].map(REASONS)
    return scores, missing
