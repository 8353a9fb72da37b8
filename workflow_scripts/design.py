"""The study design every stage shares: one row per participant, coded once.

Repeated stool samples
    A participant with several stool samples is one observation. Count-based
    statistics use the participant's *first* sample (earliest
    ``collection_date``, then lowest ``visit``, then sample id), so sequencing depth is not inflated by
    pooling (:func:`workflow_scripts.transforms.participant_profiles` also
    pools or averages them). Every stage says which it uses.

Status, covariates, site, household, treatment
    ``status`` is 1 for the case label and 0 for the control label. Covariates
    are participant (or stool manifest) columns named in the config; numeric
    columns enter as they are, text columns as treatment-coded indicators with
    the first level (sorted) as reference. ``site`` is a categorical term of its
    own. Disease-modifying therapy enters as one indicator per therapy that is
    1 only for patients on it (0 for controls and untreated patients), so the
    status coefficient compares *untreated* patients with controls and a
    species moved only by a drug loads on the drug's indicator, not on status.
    Patients whose therapy is unknown get their own indicator (``dmt_unknown``)
    for the same reason.

Missing values
    Participants missing a covariate the model needs are excluded from that
    model, and each exclusion is returned as a ledger row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError, Problem
from .ledger import Ledger

UNTREATED = "untreated"


def first_samples(samples: pd.DataFrame) -> pd.Series:
    """Participant id -> their first stool sample id (earliest date, then lowest visit, then id).

    Parameters
    ----------
    samples : DataFrame
        The cohort's ``samples`` table (index sample_id, ``participant_id``,
        optional ``collection_date`` and ``visit``, a number: cohorts without
        dates, such as the Kiel cohort, number their time points).
    """
    frame = samples.reset_index()[["sample_id", "participant_id"]].copy()
    dates = samples["collection_date"] if "collection_date" in samples.columns else None
    frame["_date"] = pd.to_datetime(dates.to_numpy(), errors="coerce") if dates is not None else pd.NaT
    visits = samples["visit"] if "visit" in samples.columns else None
    frame["_visit"] = pd.to_numeric(visits.to_numpy(), errors="coerce") if visits is not None else np.nan
    frame = frame.sort_values(["participant_id", "_date", "_visit", "sample_id"], na_position="last",
                              kind="stable")
    return frame.drop_duplicates("participant_id").set_index("participant_id")["sample_id"]


def _indicator_name(prefix: str, level: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9]+', '_', str(level)).strip('_').lower()}"


def dmt_indicators(participants: pd.DataFrame, case_label: str) -> pd.DataFrame:
    """One 0/1 column per therapy (``dmt_<name>``), 1 only for cases on it.

    Untreated cases and controls are 0 everywhere; cases with no ``dmt`` value
    are 1 in ``dmt_unknown``. Returns an empty frame when there is no ``dmt``
    column or nobody is treated.
    """
    if "dmt" not in participants.columns:
        return pd.DataFrame(index=participants.index)
    case = participants["status"] == case_label
    dmt = participants["dmt"].where(case)
    level = dmt.where(dmt.notna() | ~case, "unknown")
    levels = sorted(set(level.dropna()) - {UNTREATED})
    return pd.DataFrame({_indicator_name("dmt", lv): (level == lv).astype(float) for lv in levels},
                        index=participants.index)


def encode(values: pd.Series, name: str) -> pd.DataFrame:
    """A covariate as model columns: numeric as is, text as treatment-coded indicators."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return pd.DataFrame({name: values.astype(float)})
    levels = sorted(values.dropna().astype(str).unique())
    return pd.DataFrame({f"{name}[T.{lv}]": (values.astype(str) == lv).astype(float).where(values.notna())
                         for lv in levels[1:]}, index=values.index)


@dataclass
class Design:
    """Participants with everything a model needs, complete cases only.

    Attributes
    ----------
    frame : DataFrame
        index participant_id; ``status`` (0/1), the covariates as given,
        ``site``, ``household`` (own id for unpaired participants), ``paired``.
    covariates : DataFrame
        Model columns of the covariates (numeric / indicators).
    site : DataFrame
        Site indicators (first site alphabetically is the reference).
    dmt : DataFrame
        Therapy indicators (see :func:`dmt_indicators`).
    excluded : DataFrame
        Ledger rows for participants left out (missing covariate).
    """

    frame: pd.DataFrame
    covariates: pd.DataFrame
    site: pd.DataFrame
    dmt: pd.DataFrame
    excluded: pd.DataFrame

    @property
    def status(self) -> np.ndarray:
        return self.frame["status"].to_numpy(dtype=float)

    @property
    def households(self) -> np.ndarray:
        return self.frame["household"].to_numpy()

    def matrix(self, site: bool = True, dmt: bool = True, intercept: bool = True) -> pd.DataFrame:
        """Fixed-effects matrix: intercept, status, covariates, site, DMT indicators.

        Columns aliased with earlier ones are dropped (see :func:`drop_aliased`);
        their names are in ``attrs["aliased"]``. Status comes right after the
        intercept, so it is kept unless every participant has the same status.
        """
        parts = [pd.DataFrame({"intercept": 1.0}, index=self.frame.index)] if intercept else []
        parts += [self.frame[["status"]].astype(float), self.covariates]
        parts += [self.site] if site else []
        parts += [self.dmt] if dmt else []
        x, aliased = drop_aliased(pd.concat(parts, axis=1))
        x.attrs["aliased"] = aliased
        return x


def drop_aliased(x: pd.DataFrame, tol: float = 1e-7) -> tuple[pd.DataFrame, list[str]]:
    """Drop columns that are linear combinations of earlier ones, as R's ``lm`` aliases them.

    Columns are taken in order; a column is kept when its residual after
    projection on the kept ones is more than ``tol`` of its own norm. Constant
    columns other than the first (the intercept) are aliased with it.

    Returns
    -------
    x : DataFrame
        The kept columns, in their original order.
    dropped : list of str
        Names of the dropped columns.
    """
    values = x.to_numpy(dtype=float)
    kept: list[int] = []
    dropped: list[str] = []
    for j in range(values.shape[1]):
        column = values[:, j]
        norm = np.linalg.norm(column)
        if kept and norm > 0:
            basis = values[:, kept]
            coef, *_ = np.linalg.lstsq(basis, column, rcond=None)
            residual = np.linalg.norm(column - basis @ coef)
        else:
            residual = norm
        if norm > 0 and residual > tol * norm:
            kept.append(j)
        else:
            dropped.append(str(x.columns[j]))
    return x.iloc[:, kept], dropped


def build_design(participants: pd.DataFrame, covariates: list[str], case_label: str,
                 stage: str = "design", samples: pd.DataFrame | None = None) -> Design:
    """Code the shared design for the cohort's participants.

    Parameters
    ----------
    participants : DataFrame
        The cohort's participants table (index participant_id).
    covariates : list of str
        Config ``covariates``; a name that is not a participant column is taken
        from the participant's first stool sample (e.g. ``sequencing_batch``).
    case_label : str
    stage : str
        Written into the ``detail`` of exclusion rows.
    samples : DataFrame, optional
        The cohort's samples table, for covariates that live there.
    """
    part = participants.copy()
    for name in covariates:
        if name not in part.columns:
            if samples is None or name not in samples.columns:
                raise InputError([Problem("config covariates", f"covariate {name!r} is neither a "
                                          "participant nor a sample column",
                                          "name a column of the participants table or the stool manifest",
                                          column=name)])
            first = first_samples(samples)
            part[name] = samples.loc[first.reindex(part.index).to_numpy(), name].to_numpy()
    frame = pd.DataFrame(index=part.index)
    frame["status"] = (part["status"] == case_label).astype(int)
    for name in covariates:
        frame[name] = part[name]
    frame["site"] = part["site"].astype(str)
    household = part["household_id"].astype(object)
    frame["household"] = household.where(household.notna(), "_unpaired_" + part.index.to_series())
    missing = part[covariates].isna() if covariates else pd.DataFrame(index=part.index)
    incomplete = missing.any(axis=1)
    excluded = Ledger()
    for pid in part.index[incomplete]:
        excluded.dropped("participant", [pid], reason="missing_covariate",
                         detail=f"{stage}: no value for {', '.join(missing.columns[missing.loc[pid]])}")
    keep = ~incomplete
    frame = frame[keep].copy()
    # Paired = the household still has both a case and a control after exclusions.
    kinds = frame.groupby("household")["status"].transform("nunique")
    frame["paired"] = kinds == 2
    cov = pd.concat([encode(frame[name], name) for name in covariates], axis=1) if covariates else \
        pd.DataFrame(index=frame.index)
    site = encode(frame["site"].astype(object), "site") if frame["site"].nunique() > 1 else \
        pd.DataFrame(index=frame.index)
    dmt = dmt_indicators(part[keep], case_label)
    return Design(frame, cov, site, dmt, excluded.frame())
