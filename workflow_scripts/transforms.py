"""The abundance every per-feature test starts from: the one home of the transforms.

Repeated stool samples (``repeated_samples: all | first | sum | mean``, default ``all``)
    The one policy every stage applies, :func:`repeated_sample_profiles`:

    - ``all``: every kept stool sample is a row; the models then carry a
      participant random intercept (nested in household;
      :func:`workflow_scripts.models.repeated_model.fit_repeated`), so a
      participant with four samples is one participant with four measurements,
      never four participants. :func:`sample_participants` gives each row's
      participant and :func:`sample_design` the design's rows for them.
    - ``first``: the participant's first stool sample (earliest
      ``collection_date``, then lowest ``visit``, then sample id;
      :func:`workflow_scripts.design.first_samples`), values unchanged.
    - ``sum``: the counts of all their samples added up (relative abundances:
      their mean profile).
    - ``mean``: the mean of their relative-abundance profiles, each sample
      closed to 1 first, so a deep sample does not outweigh a shallow one.

    Where a method needs one row per participant (a permutation test, an
    ordination, a paired difference), ``all`` means the first sample
    (:func:`one_row_per_participant`). :func:`participant_profiles` is the
    building block.

Prevalence
    :func:`select_features` keeps the features present in at least
    ``min_prevalence`` of the participants and writes ledger rows for the rest.
    The unassigned bucket (``g__unassigned``...) is kept in the composition (it
    is part of every sample's total) but is not a taxon, so it is never tested.

Zero handling
    :func:`replace_zeros`: counts get a pseudo-count (0.5 by default, as
    LinDA); zeros of relative abundances become the pseudo-count times the
    participant's smallest non-zero value (0.5: half of it), because a fixed
    pseudo-count means nothing on the proportion scale. :func:`impute_zeros`
    is LinDA's depth-aware imputation of zero counts.

Log-ratios
    :func:`clr` centres log2 abundances within each row; take it over the
    whole composition (:func:`clr_abundance`) and select the tested features
    afterwards, so the reference is the community and not the prevalent
    features only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import Design, first_samples
from .ledger import Ledger


def is_unassigned(name: str) -> bool:
    return str(name).endswith("__unassigned")


def participant_profiles(table: pd.DataFrame, samples: pd.DataFrame, how: str = "first") -> pd.DataFrame:
    """One abundance row per participant from a samples x features table.

    Parameters
    ----------
    table : DataFrame, samples x features (counts or relative abundances)
    samples : DataFrame, the cohort's samples table
    how : {"first", "sum", "mean"}
        ``first``: the participant's first sample, values unchanged (counts stay
        counts). ``sum``: the participant's samples added up (pooled counts).
        ``mean``: the mean of the participant's relative-abundance profiles
        (each sample closed to 1 first, so deep samples do not dominate).

    Returns
    -------
    DataFrame, participants x features, participants in first-appearance order.
    """
    order = pd.Index(pd.unique(samples["participant_id"]), name="participant_id")
    if how == "first":
        chosen = first_samples(samples).reindex(order)
        out = table.loc[chosen.to_numpy()]
        out.index = order
        return out
    owner = samples.loc[table.index, "participant_id"].to_numpy()
    if how == "sum":
        return table.groupby(owner, sort=False).sum()
    if how == "mean":
        totals = table.sum(axis=1).replace(0, np.nan)
        closed = table.div(totals, axis=0).fillna(0.0)
        return closed.groupby(owner).mean().reindex(order)
    raise ValueError(f"how must be 'first', 'sum' or 'mean', not {how!r}")


#: The choices of ``repeated_samples``; the first is the default.
REPEATED_SAMPLES = ("all", "first", "sum", "mean")


def repeated_sample_profiles(table: pd.DataFrame, samples: pd.DataFrame, repeated_samples: str,
                             kind: str) -> pd.DataFrame:
    """The configured policy for repeated stool samples (``repeated_samples``; see the module docstring).

    Parameters
    ----------
    table : DataFrame, samples x features
    samples : DataFrame, the cohort's samples table
    repeated_samples : {"all", "first", "sum", "mean"}
    kind : {"counts", "relative"}
        ``sum`` pools counts but averages relative profiles.

    Returns
    -------
    DataFrame
        ``all``: ``table`` itself (one row per sample, index sample_id); otherwise
        one row per participant (index participant_id).
    """
    if repeated_samples not in REPEATED_SAMPLES:
        raise ValueError(f"repeated_samples must be one of {', '.join(REPEATED_SAMPLES)}, "
                         f"not {repeated_samples!r}")
    if repeated_samples == "all":
        return table
    if repeated_samples == "sum" and kind != "counts":
        return participant_profiles(table, samples, "mean")
    return participant_profiles(table, samples, repeated_samples)


def one_row_per_participant(repeated_samples: str) -> str:
    """The policy where a method needs one row per participant: ``all`` becomes ``first``."""
    return "first" if repeated_samples == "all" else repeated_samples


def sample_participants(index, samples: pd.DataFrame) -> np.ndarray:
    """The participant of each sample id in ``index`` (rows of an ``all`` profile table)."""
    return samples.loc[pd.Index(index), "participant_id"].to_numpy()


def sample_design(design: Design, participants) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    """What :func:`~workflow_scripts.models.repeated_model.fit_repeated` needs for rows of samples.

    Parameters
    ----------
    design : Design
        The participants' design (one row per participant).
    participants : array_like
        The participant of every row (sample) to fit.

    Returns
    -------
    keep : ndarray of bool
        Rows whose participant the design keeps (the others miss a covariate).
    X : DataFrame
        ``design.matrix()`` repeated for each kept row (aliased columns dropped,
        their names in ``X.attrs["aliased"]``).
    participants, households : ndarray
        Labels of the kept rows (unpaired participants: a household of their own).

    Example::

        keep, X, part, house = sample_design(design, sample_participants(clr.index, samples))
        fit = fit_repeated(clr[keep], X, part, house)
    """
    owners = pd.Index(np.asarray(participants, dtype=object))
    keep = owners.isin(design.frame.index)
    matrix = design.matrix()
    x = matrix.loc[owners[keep]]
    x.attrs["aliased"] = matrix.attrs["aliased"]
    return (np.asarray(keep), x, owners[keep].to_numpy(),
            design.frame.loc[owners[keep], "household"].to_numpy())


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
    ledger = Ledger()
    keep = []
    for feature, value in prevalence(profiles).items():
        if is_unassigned(feature):
            ledger.dropped("feature", [feature], file, "unassigned_bucket",
                           f"{stage}: the bucket of features without a name at this rank is not tested")
        elif value < min_prevalence:
            ledger.dropped("feature", [feature], file, "below_min_prevalence",
                           f"{stage}: present in {value:.1%} of participants < {min_prevalence:.1%}")
        else:
            keep.append(feature)
    return pd.Index(keep, name="feature"), ledger.frame()


def replace_zeros(profiles, kind: str, pseudo_count: float = 0.5):
    """Strictly positive abundances for logs.

    Counts get ``pseudo_count`` added; zeros of relative abundances become
    ``pseudo_count`` times the smallest non-zero value of their row (0.5: half
    the row's minimum). Returns the type it is given (DataFrame or array).
    """
    values = np.asarray(profiles, dtype=float)
    if kind == "counts":
        out = values + pseudo_count
    else:
        smallest = np.where(values > 0, values, np.inf).min(axis=1, keepdims=True)
        out = np.where(values > 0, values, pseudo_count * smallest)
    if isinstance(profiles, pd.DataFrame):
        return pd.DataFrame(out, index=profiles.index, columns=profiles.columns)
    return out


def impute_zeros(counts, method: str = "pseudo-count", pseudo_count: float = 0.5) -> np.ndarray:
    """Make counts strictly positive before taking logs, as LinDA does.

    Parameters
    ----------
    counts : array_like, shape (n samples, p features)
        Non-negative counts.
    method : {"pseudo-count", "imputation"}
        ``"pseudo-count"`` adds ``pseudo_count`` to every count.
        ``"imputation"`` replaces each zero by the sample's depth relative to
        the deepest sample in which that feature is zero (LinDA's imputation).
    pseudo_count : float, default 0.5

    Returns
    -------
    ndarray, shape (n, p)

    Notes
    -----
    Imputation: with depth :math:`N_i = \\sum_j y_{ij}`, a zero :math:`y_{ij}`
    becomes :math:`N_i / \\max\\{N_{i'} : y_{i'j} = 0\\}`, a value in (0, 1]
    that is larger in deeper samples, so a zero in a deep sample counts as
    more evidence of absence than a zero in a shallow one [1]_.

    References
    ----------
    .. [1] Zhou, H., He, K., Chen, J. & Zhang, X. (2022). LinDA. *Genome
       Biology* 23, 95 (Methods, "zero handling").
    """
    Y = np.asarray(counts, dtype=float)
    if method == "pseudo-count":
        return Y + pseudo_count
    if method != "imputation":
        raise ValueError(f"method must be 'pseudo-count' or 'imputation', got {method!r}")
    depth = Y.sum(axis=1)
    zero = Y == 0
    deepest_zero = np.where(zero, depth[:, None], 0.0).max(axis=0)  # per feature
    with np.errstate(divide="ignore", invalid="ignore"):
        fill = depth[:, None] / deepest_zero[None, :]
    return np.where(zero, fill, Y)


def clr(positive, base: float = 2.0):
    """Centred log-ratio of each row of strictly positive abundances.

    Notes
    -----
    :math:`\\operatorname{clr}(y_i)_j = \\log_b y_{ij} - \\frac1p\\sum_{l} \\log_b y_{il}`;
    base 2 (the default) makes model coefficients log2 fold changes, as LinDA
    reports them. Returns the type it is given (DataFrame or array).

    References
    ----------
    .. [1] Aitchison, J. (1986). *The Statistical Analysis of Compositional
       Data*. Chapman & Hall.
    """
    values = np.asarray(positive, dtype=float)
    logs = np.log2(values) if base == 2 else np.log(values) / np.log(base)
    out = logs - logs.mean(axis=1, keepdims=True)
    if isinstance(positive, pd.DataFrame):
        return pd.DataFrame(out, index=positive.index, columns=positive.columns)
    return out


def clr_abundance(profiles: pd.DataFrame, kind: str, pseudo_count: float = 0.5, base: float = 2.0) -> pd.DataFrame:
    """CLR over all features of the profiles (the composition), after :func:`replace_zeros`.

    Select the tested features *after* this call, so the log-ratio reference is
    the whole community and not just the prevalent features.
    """
    return clr(replace_zeros(profiles, kind, pseudo_count), base)
