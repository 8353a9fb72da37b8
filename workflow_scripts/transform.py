"""The abundance every per-feature test starts from, shared by all stages.

One profile per participant (their first stool sample, see
:mod:`workflow_scripts.design`), features at the configured rank, filtered by
prevalence, then log-ratio transformed. Differential abundance and the
genotype association use exactly these functions, so "the same transformed
abundance" holds by construction.

Zero handling
    Counts get a pseudo-count (default 0.5, as LinDA). Relative abundances get
    half the smallest non-zero value of their sample, because a fixed
    pseudo-count means nothing on the proportion scale.

The unassigned bucket (``g__unassigned``...) is kept in the composition (it
is part of every sample's total) but is not a taxon, so it is never tested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .ingest.ledger import COLUMNS as LEDGER_COLUMNS


def is_unassigned(name: str) -> bool:
    return str(name).endswith("__unassigned")


def prevalence(profiles: pd.DataFrame) -> pd.Series:
    """Fraction of participants in whom each feature is non-zero."""
    return (profiles > 0).mean(axis=0)


def select_features(profiles: pd.DataFrame, min_prevalence: float, stage: str,
                      file: str = "") -> tuple[pd.Index, pd.DataFrame]:
    """Features that pass the prevalence filter, and ledger rows for the rest.

    Parameters
    ----------
    profiles : DataFrame, participants x features
    min_prevalence : float
        Minimum fraction of participants with the feature (e.g. 0.1).
    stage : str
        Named in the ledger rows' detail.
    """
    prev = prevalence(profiles)
    rows = []
    keep = []
    for feature, value in prev.items():
        if is_unassigned(feature):
            rows.append(("feature", feature, file, "dropped", "unassigned_bucket",
                         f"{stage}: the bucket of features without a name at this rank is not tested"))
        elif value < min_prevalence:
            rows.append(("feature", feature, file, "dropped", "below_min_prevalence",
                         f"{stage}: present in {value:.1%} of participants < {min_prevalence:.1%}"))
        else:
            keep.append(feature)
    return pd.Index(keep, name="feature"), pd.DataFrame(rows, columns=LEDGER_COLUMNS)


def replace_zeros(profiles: pd.DataFrame, kind: str, pseudo_count: float = 0.5) -> pd.DataFrame:
    """Positive abundances: counts + pseudo-count, or zeros of a relative profile -> half its minimum."""
    values = profiles.to_numpy(dtype=float)
    if kind == "counts":
        out = values + pseudo_count
    else:
        masked = np.where(values > 0, values, np.inf)
        half_min = masked.min(axis=1, keepdims=True) / 2
        out = np.where(values > 0, values, half_min)
    return pd.DataFrame(out, index=profiles.index, columns=profiles.columns)


def clr(positive: pd.DataFrame, base: float = 2.0) -> pd.DataFrame:
    """Centred log-ratio of each row (log base ``base``; 2 as LinDA reports log2 fold changes)."""
    logs = np.log(positive.to_numpy(dtype=float)) / np.log(base)
    return pd.DataFrame(logs - logs.mean(axis=1, keepdims=True), index=positive.index, columns=positive.columns)


def clr_abundance(profiles: pd.DataFrame, kind: str, pseudo_count: float = 0.5, base: float = 2.0) -> pd.DataFrame:
    """CLR over all features of the profiles (the composition), after zero replacement.

    Select the tested features *after* this call, so the log-ratio reference is
    the whole community and not just the prevalent features.
    """
    return clr(replace_zeros(profiles, kind, pseudo_count), base)
