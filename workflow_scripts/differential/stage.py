"""What every differential-abundance method starts from: settings, design, profiles, pairs.

The stage compares MS patients (``status`` 1) with household healthy controls
(``status`` 0) feature by feature. Every method gets the same
:class:`StageData`:

Participants and repeated stool samples
    One abundance profile per participant, never one per stool sample: with
    ``repeated_samples: first`` (default) the participant's first stool sample
    (earliest ``collection_date``, then sample id; the shared policy of
    :func:`workflow_scripts.design.participant_profiles`), with ``sum`` the
    counts of all the participant's samples pooled (relative abundances:
    their mean profile). Participants are therefore never counted as
    independent samples more than once, and the household is modelled by
    every method (random intercept, paired contrast or strata).

Design
    :func:`workflow_scripts.design.build_design`: status, the configured
    covariates (default sex, age, BMI), site, and one indicator per
    disease-modifying therapy that is 1 only for patients on it, so the status
    effect is *untreated* MS vs household control and a species moved only by
    a drug loads on the drug's term. Participants missing a covariate are left
    out (ledger ``missing_covariate``).

Features
    Taxa at the cohort's rank, prevalence (fraction of participants with a
    non-zero value) at least ``min_prevalence``; the ``__unassigned`` bucket
    stays in the composition but is never tested. Exclusions go to the stage
    ledger. Log-ratio methods take the centred log-ratio over the *whole*
    composition, then keep the tested features
    (:func:`workflow_scripts.transform.clr_abundance`).

Site
    ``site_effect: fixed`` (default) adds site indicators to the fixed
    effects of the model-based methods; ``random`` makes site a random
    intercept with households nested in it
    (:mod:`workflow_scripts.differential.variance_components`). The paired
    methods compare members of one household, who share a site, so site
    cancels; the iMSMS model always has ``(1 | site)``.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

import numpy as np
import pandas as pd

from workflow_scripts.design import Design, build_design, participant_profiles
from workflow_scripts.differential.mixed_model import fit_ols, fit_random_intercept
from workflow_scripts.differential.variance_components import fit_nested_random_intercepts
from workflow_scripts.ingest.ledger import COLUMNS as LEDGER_COLUMNS
from workflow_scripts.transform import select_features

#: Every method the stage knows, in the order of the output columns.
ALL_METHODS = ("linda", "ancombc", "imsms_lmm", "paired_wilcoxon", "maaslin", "aldex")

STAGE = "differential"


@dataclass(frozen=True)
class Settings:
    """The ``differential`` config section plus the top-level keys the stage uses.

    Defaults equal ``config/schema/differential.schema.yaml``.
    """

    min_prevalence: float = 0.1
    repeated_samples: str = "first"
    methods: tuple = ALL_METHODS
    site_effect: str = "fixed"
    q_threshold: float = 0.05
    consensus: dict = field(default_factory=lambda: {
        "min_significant": 2, "min_compositional": 1, "strong_q": 0.01, "min_sign_agreement": 0.5,
        "require_pseudocount_robust": False})
    linda: dict = field(default_factory=lambda: {
        "zero_handling": "adaptive", "pseudo_count": 0.5, "corr_cut": 0.1})
    ancombc: dict = field(default_factory=lambda: {"pseudo_count": 1.0})
    paired_wilcoxon: dict = field(default_factory=lambda: {"pseudo_count": 0.5, "untreated_only": True})
    maaslin: dict = field(default_factory=lambda: {"zero_fraction": 0.5})
    aldex: dict = field(default_factory=lambda: {"draws": 128, "pseudo_count": 0.5})
    sensitivity: dict = field(default_factory=lambda: {
        "pseudo_counts": [0.1, 1.0], "methods": ["linda", "ancombc", "paired_wilcoxon"]})
    site_meta: dict = field(default_factory=lambda: {"min_households": 5})
    covariates: tuple = ("sex", "age", "bmi")
    seed: int = 1

    def __post_init__(self):
        # A partial nested section keeps the defaults of the keys it does not set.
        defaults = {f.name: f.default_factory() for f in fields(self) if f.default_factory is not MISSING}
        for name, default in defaults.items():
            value = getattr(self, name)
            if isinstance(default, dict):
                object.__setattr__(self, name, {**default, **(value or {})})
        for name in ("methods", "covariates"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def from_dict(cls, values: dict) -> "Settings":
        """Settings from the rule's JSON (config section + ``covariates`` and ``seed``).

        Nested sections are merged over their defaults, so a partial section
        (e.g. ``{"aldex": {"draws": 16}}``) keeps the other keys.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown differential settings {unknown}; known: {sorted(known)}")
        base = cls()
        merged = {}
        for name, value in values.items():
            default = getattr(base, name)
            if isinstance(default, dict):
                merged[name] = {**default, **(value or {})}
            elif isinstance(default, tuple):
                merged[name] = tuple(value)
            else:
                merged[name] = value
        settings = cls(**merged)
        bad = sorted(set(settings.methods) - set(ALL_METHODS))
        if bad:
            raise ValueError(f"unknown differential methods {bad}; choose from {list(ALL_METHODS)}")
        if settings.site_effect not in ("fixed", "random"):
            raise ValueError(f"site_effect must be 'fixed' or 'random', not {settings.site_effect!r}")
        if settings.repeated_samples not in ("first", "sum"):
            raise ValueError(f"repeated_samples must be 'first' or 'sum', not {settings.repeated_samples!r}")
        return settings


@dataclass(frozen=True)
class Pairs:
    """Households with at least one case and one control, as contrast weights.

    ``case @ M - control @ M`` is, for every household, the mean of its cases'
    rows of ``M`` (participants x anything) minus the mean of its controls'.

    Attributes
    ----------
    households : ndarray (G,)
    case, control : ndarray (G, n)
        Weights over the design's participants (rows sum to 1).
    untreated : ndarray of bool (G,)
        Every case of the household is untreated (no DMT indicator set).
    """

    households: np.ndarray
    case: np.ndarray
    control: np.ndarray
    untreated: np.ndarray

    def contrast(self, values) -> np.ndarray:
        """Case mean minus control mean per household of ``values`` (n, ...)."""
        values = np.asarray(values, dtype=float)
        return self.case @ values - self.control @ values

    def members(self, index: pd.Index, which=None) -> pd.Index:
        """Participants of the households (all, or those selected by the boolean ``which``)."""
        keep = np.ones(len(self.households), bool) if which is None else np.asarray(which)
        used = ((self.case[keep] > 0) | (self.control[keep] > 0)).any(axis=0)
        return index[used]


@dataclass
class StageData:
    """Everything the methods share (see the module docstring).

    Attributes
    ----------
    design : Design
        Complete-case participants.
    profiles : DataFrame
        Participants (the design's rows) x all taxa, counts or relative abundances.
    kind : {"counts", "relative"}
    features : Index
        The tested features, in table order.
    pairs : Pairs
    ledger : DataFrame
        Stage ledger rows (``workflow_scripts.ingest.ledger.COLUMNS``).
    settings : Settings
    """

    design: Design
    profiles: pd.DataFrame
    kind: str
    features: pd.Index
    pairs: Pairs
    ledger: pd.DataFrame
    settings: Settings

    @property
    def status(self) -> np.ndarray:
        return self.design.status

    def relative(self) -> pd.DataFrame:
        """Relative abundances (each participant's profile closed to 1 over all taxa)."""
        return self.profiles.div(self.profiles.sum(axis=1), axis=0)


def prepare(cohort, settings: Settings) -> StageData:
    """Design, one profile per participant, prevalence filter, pairs and the ledger.

    Parameters
    ----------
    cohort : workflow_scripts.cohort.Cohort
    settings : Settings
    """
    design = build_design(cohort.participants, list(settings.covariates), cohort.case_label,
                          stage=STAGE, samples=cohort.samples)
    kind = cohort.info["abundance_kind"]
    table = cohort.table("taxa")
    if settings.repeated_samples == "first":
        profiles = participant_profiles(table, cohort.samples, how="first")
    elif kind == "counts":
        owner = cohort.samples.loc[table.index, "participant_id"].to_numpy()
        profiles = table.groupby(owner, sort=False).sum()
    else:
        profiles = participant_profiles(table, cohort.samples, how="mean")
    profiles = profiles.loc[design.frame.index]
    if design.frame["status"].nunique() < 2:
        raise ValueError("differential abundance needs cases and controls with complete covariates; "
                         "check the covariates named in the config")
    features, feature_rows = select_features(profiles, settings.min_prevalence, STAGE)
    pairs = make_pairs(design)
    ledger = pd.concat([design.excluded, _participant_notes(design, pairs), feature_rows],
                       ignore_index=True)
    return StageData(design, profiles, kind, features, pairs, ledger[LEDGER_COLUMNS], settings)


def make_pairs(design: Design) -> Pairs:
    """Contrast weights for the households that have a case and a control."""
    frame = design.frame
    paired = frame[frame["paired"]]
    households = pd.unique(paired["household"])
    n = len(frame)
    position = {pid: i for i, pid in enumerate(frame.index)}
    case = np.zeros((len(households), n))
    control = np.zeros((len(households), n))
    treated = design.dmt.sum(axis=1) > 0 if design.dmt.shape[1] else pd.Series(False, index=frame.index)
    untreated = np.ones(len(households), bool)
    for g, (household, members) in enumerate(paired.groupby("household", sort=False)):
        cases = members.index[members["status"] == 1]
        controls = members.index[members["status"] == 0]
        case[g, [position[p] for p in cases]] = 1.0 / len(cases)
        control[g, [position[p] for p in controls]] = 1.0 / len(controls)
        untreated[g] = not treated.loc[cases].any()
    return Pairs(np.asarray(households, dtype=object), case, control, untreated)


def _participant_notes(design: Design, pairs: Pairs) -> pd.DataFrame:
    """Kept participants that some methods do not use (unpaired; treated-case households)."""
    frame = design.frame
    rows = []
    treated_members = set(pairs.members(frame.index, ~pairs.untreated))
    for pid, row in frame.iterrows():
        if not row["paired"]:
            rows.append(("participant", pid, "", "kept", "unpaired",
                         f"{STAGE}: no household partner with the other status; in the model-based "
                         "methods, not in the paired methods (ancombc, paired_wilcoxon)"))
        elif pid in treated_members:
            rows.append(("participant", pid, "", "kept", "treated_case_household",
                         f"{STAGE}: household of a treated patient; in every method except "
                         "paired_wilcoxon, which compares untreated patients with their controls"))
    return pd.DataFrame(rows, columns=LEDGER_COLUMNS)


# ---------------------------------------------------------------------------
# Shared transforms and model fits


def positive(profiles: pd.DataFrame, kind: str, pseudo_count: float) -> np.ndarray:
    """Strictly positive abundances for logs.

    Counts get ``pseudo_count`` added; zeros of relative abundances become
    ``pseudo_count`` times the smallest non-zero value of the participant's
    profile (0.5 gives :func:`workflow_scripts.transform.replace_zeros`' half minimum).
    """
    values = profiles.to_numpy(dtype=float)
    if kind == "counts":
        return values + pseudo_count
    smallest = np.where(values > 0, values, np.inf).min(axis=1, keepdims=True)
    return np.where(values > 0, values, pseudo_count * smallest)


def clr_log2(positive_values) -> np.ndarray:
    """Centred log2-ratio of every row (the whole composition)."""
    logs = np.log2(np.asarray(positive_values, dtype=float))
    return logs - logs.mean(axis=1, keepdims=True)


def clr_features(data: StageData, pseudo_count: float) -> pd.DataFrame:
    """CLR (log2) over all taxa after zero replacement, tested features only."""
    values = clr_log2(positive(data.profiles, data.kind, pseudo_count))
    frame = pd.DataFrame(values, index=data.profiles.index, columns=data.profiles.columns)
    return frame[data.features]


def status_design(design: Design, site_effect: str) -> pd.DataFrame:
    """Fixed effects: intercept, status, covariates, DMT indicators, and site when fixed.

    Columns without variation or aliased with earlier ones (e.g. a therapy no
    one in a site takes) are dropped.
    """
    X = design.matrix(site=site_effect == "fixed", dmt=True)  # aliased columns already dropped
    if "status" not in X.columns:
        raise ValueError("status is aliased with the other terms; nothing to test")
    return X


def fit_status_model(Y, design: Design, site_effect: str, X: pd.DataFrame | None = None):
    """The household model every model-based method uses, for all features at once.

    Household random intercept (:func:`fit_random_intercept`), plus a site
    random intercept with households nested in it when ``site_effect`` is
    ``"random"`` and there are two or more sites
    (:func:`fit_nested_random_intercepts`). Without any household of two
    members the household term is dropped (site random intercept or OLS).
    ``X`` (from :func:`status_design`) saves rebuilding the design when the
    same model is fitted many times.

    Returns
    -------
    result : MixedModelResult
    X : DataFrame
        The fixed effects used.
    random : tuple of str
        The random intercepts fitted: ``("household", "site")``,
        ``("household",)``, ``("site",)`` or ``()``.
    """
    X = status_design(design, site_effect) if X is None else X
    households = design.households
    sites = design.frame["site"].to_numpy()
    multi = pd.Series(households).duplicated().any()
    random_site = site_effect == "random" and len(set(sites)) >= 2
    if random_site and multi:
        return fit_nested_random_intercepts(Y, X, households, sites), X, ("household", "site")
    if random_site:
        return fit_random_intercept(Y, X, sites), X, ("site",)
    if multi:
        return fit_random_intercept(Y, X, households), X, ("household",)
    return fit_ols(Y, X), X, ()


def describe(profiles: pd.DataFrame, status: np.ndarray, features) -> pd.DataFrame:
    """Sample size, non-zero count, and prevalence / mean relative abundance by group.

    Parameters
    ----------
    profiles : DataFrame
        The participants a method used x all taxa (counts or relative).
    status : ndarray
        1 for cases, 0 for controls, aligned with ``profiles``.
    features : list-like
        Features to describe.
    """
    totals = profiles.sum(axis=1).to_numpy(dtype=float)
    rel = profiles[list(features)].to_numpy(dtype=float) / totals[:, None]
    nonzero = rel > 0
    case = np.asarray(status) == 1
    with np.errstate(invalid="ignore"):
        out = pd.DataFrame({
            "n": len(profiles),
            "n_nonzero": nonzero.sum(axis=0),
            "prevalence_case": nonzero[case].mean(axis=0) if case.any() else np.nan,
            "prevalence_control": nonzero[~case].mean(axis=0) if (~case).any() else np.nan,
            "mean_abundance_case": rel[case].mean(axis=0) if case.any() else np.nan,
            "mean_abundance_control": rel[~case].mean(axis=0) if (~case).any() else np.nan,
        }, index=pd.Index(list(features), name="feature"))
    return out
