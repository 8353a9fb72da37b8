"""What every differential-abundance method starts from: settings, design, profiles, pairs.

The stage compares MS patients (``status`` 1) with household healthy controls
(``status`` 0) feature by feature. Every method gets the same
:class:`StageData`:

Participants and repeated stool samples (``repeated_samples``)
    Every method compares participants, never stool samples: a participant
    with four samples is one participant measured four times. With ``all``
    (default) every kept sample of a participant enters their summary:
    ``profiles`` are their pooled counts (relative abundances: their mean
    profile), so a taxon is present when any sample has it; the log-ratio
    summary (:func:`clr_features`, the primary test's components) is the mean
    over their samples of each sample's CLR; ``samples`` keeps the per-sample
    rows, and the primary test weights each household by the inverse
    variance of its summaries, which falls with its number of samples
    (:mod:`.primary`). The model-based methods (linda, ancombc, imsms_lmm,
    maaslin, aldex) fit these per-participant summaries, not every sample.
    ``first`` is the participant's first stool sample (earliest
    ``collection_date``, then sample id), ``sum`` their pooled counts and
    ``mean`` their mean relative profile
    (:func:`workflow_scripts.transforms.repeated_sample_profiles`), each as
    one sample. The household is modelled by every method (random
    intercept, paired contrast or strata).

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
    (:func:`workflow_scripts.transforms.clr_abundance`).

Site
    ``site_effect: fixed`` (default) adds site indicators to the fixed
    effects of the model-based methods; ``random`` makes site a random
    intercept with households nested in it
    (:mod:`workflow_scripts.models.nested_model`). The paired
    methods compare members of one household, who share a site, so site
    cancels; the iMSMS model always has ``(1 | site)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from ..design import Design, build_design
from ..errors import InputError, Problem
from ..ledger import Ledger
from ..models.mixed_model import fit_ols, fit_random_intercept
from ..models.nested_model import fit_nested_random_intercepts
from ..settings import StageSettings
from ..transforms import clr, repeated_sample_profiles, replace_zeros, sample_participants, select_features

#: Every method the stage knows, in the order of the output columns.
ALL_METHODS = ("linda", "ancombc", "imsms_lmm", "paired_wilcoxon", "maaslin", "aldex")

STAGE = "differential"


@dataclass(frozen=True)
class DifferentialSettings(StageSettings):
    """The ``differential`` config section plus the top-level ``covariates`` and ``seed``.

    Every key and default is in ``config/schema/differential.schema.yaml``;
    build with :meth:`from_config` (nested sections may be partial, e.g.
    ``{"aldex": {"draws": 16}}``: the schema fills the other keys).
    """

    SECTION: ClassVar[str] = "differential"
    TOP_LEVEL: ClassVar[tuple[str, ...]] = ("covariates", "seed")

    min_prevalence: float
    repeated_samples: str
    methods: tuple
    site_effect: str
    q_threshold: float
    fdr_level: float
    primary: dict
    calibration: dict
    consensus: dict
    linda: dict
    ancombc: dict
    paired_wilcoxon: dict
    maaslin: dict
    aldex: dict
    sensitivity: dict
    site_meta: dict
    covariates: tuple
    seed: int

    def __post_init__(self):
        for name in ("methods", "covariates"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def from_config(cls, values: dict | None = None, **overrides) -> "DifferentialSettings":
        values = {**(values or {}), **overrides}
        bad = sorted(set(values.get("methods", ())) - set(ALL_METHODS))
        if bad:
            raise InputError([Problem("config differential.methods", f"unknown differential methods {bad}",
                                      f"choose from {list(ALL_METHODS)}")])
        return super().from_config(values)


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
        Stage ledger rows (:mod:`workflow_scripts.ledger`).
    settings : DifferentialSettings
    samples : DataFrame or None
        ``repeated_samples: all``: every kept stool sample of the design's
        participants x all taxa, indexed by participant id (repeated, one row
        per sample, in the cohort's sample order); otherwise None.
    """

    design: Design
    profiles: pd.DataFrame
    kind: str
    features: pd.Index
    pairs: Pairs
    ledger: pd.DataFrame
    settings: DifferentialSettings
    samples: pd.DataFrame | None = None

    @property
    def status(self) -> np.ndarray:
        return self.design.status

    def n_samples(self) -> pd.Series:
        """Stool samples behind each participant's profile (all 1 unless ``repeated_samples: all``)."""
        index = self.profiles.index
        if self.samples is None:
            return pd.Series(1, index=index)
        return self.samples.index.value_counts().reindex(index).fillna(0).astype(int)

    def relative(self) -> pd.DataFrame:
        """Relative abundances (each participant's profile closed to 1 over all taxa)."""
        return self.profiles.div(self.profiles.sum(axis=1), axis=0)


def prepare(cohort, settings: DifferentialSettings) -> StageData:
    """Design, one profile per participant, prevalence filter, pairs and the ledger.

    Parameters
    ----------
    cohort : workflow_scripts.cohort.Cohort
    settings : DifferentialSettings
    """
    design = build_design(cohort.participants, list(settings.covariates), cohort.case_label,
                          stage=STAGE, samples=cohort.samples)
    kind = cohort.info["abundance_kind"]
    table = cohort.table("taxa")
    policy = settings.repeated_samples
    samples = None
    if policy == "all":
        owner = sample_participants(table.index, cohort.samples)
        keep = pd.Index(owner).isin(design.frame.index)
        samples = table[keep].copy()
        samples.index = pd.Index(owner[keep], name="participant_id")
    profiles = repeated_sample_profiles(table, cohort.samples, "sum" if policy == "all" else policy, kind)
    if policy == "mean":
        kind = "relative"  # mean of closed profiles, whatever the input was
    profiles = profiles.loc[design.frame.index]
    if design.frame["status"].nunique() < 2:
        raise InputError([Problem("participants (harmonised cohort)", "differential abundance needs cases "
                                  "and controls with complete covariates, and one status is left",
                                  "check the covariates named in the config (participants missing one "
                                  "are left out) and the case and control labels")])
    features, feature_rows = select_features(profiles, settings.min_prevalence, STAGE)
    pairs = make_pairs(design)
    ledger = Ledger()
    notes = _participant_notes(design, pairs, int(settings.primary["min_pairs"]))
    for rows in (design.excluded, notes, feature_rows):
        ledger.extend(rows)
    return StageData(design, profiles, kind, features, pairs, ledger.frame(), settings, samples)


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


def _participant_notes(design: Design, pairs: Pairs, min_pairs: int) -> Ledger:
    """Kept participants that some tests do not use (unpaired; treated-case households).

    With at least ``min_pairs`` households holding a case and a control the
    primary test compares households and leaves unpaired participants out;
    with fewer it compares all participants (its unpaired form).
    """
    frame = design.frame
    notes = Ledger()
    treated_members = set(pairs.members(frame.index, ~pairs.untreated))
    paired_form = len(pairs.households) >= min_pairs
    unpaired_detail = (f"{STAGE}: no household partner with the other status; in the model-based methods, "
                       "not in the primary test or the paired methods (ancombc, paired_wilcoxon)") if paired_form \
        else (f"{STAGE}: no household partner with the other status; fewer than {min_pairs} households hold a "
              "case and a control, so the primary test compares all participants (its unpaired form)")
    for pid, row in frame.iterrows():
        if not row["paired"]:
            notes.kept("participant", [pid], reason="unpaired", detail=unpaired_detail)
        elif pid in treated_members:
            notes.kept("participant", [pid], reason="treated_case_household",
                       detail=f"{STAGE}: household of a treated patient; in the primary test and every method "
                       "except paired_wilcoxon, which compares untreated patients with their controls")
    return notes


# ---------------------------------------------------------------------------
# Shared transforms and model fits


def clr_features(data: StageData, pseudo_count: float) -> pd.DataFrame:
    """CLR (log2) over all taxa after zero replacement, tested features only.

    :func:`workflow_scripts.transforms.replace_zeros`: counts get
    ``pseudo_count`` added; zeros of relative abundances become
    ``pseudo_count`` times the participant's smallest non-zero value. With
    ``repeated_samples: all`` each sample's CLR, averaged over the
    participant's samples.
    """
    if data.samples is None:
        return clr(replace_zeros(data.profiles, data.kind, pseudo_count))[data.features]
    per_sample = clr(replace_zeros(data.samples, data.kind, pseudo_count))[data.features]
    return per_sample.groupby(level=0, sort=False).mean().loc[data.profiles.index]


def status_design(design: Design, site_effect: str) -> pd.DataFrame:
    """Fixed effects: intercept, status, covariates, DMT indicators, and site when fixed.

    Columns without variation or aliased with earlier ones (e.g. a therapy no
    one in a site takes) are dropped.
    """
    X = design.matrix(site=site_effect == "fixed", dmt=True)  # aliased columns already dropped
    if "status" not in X.columns:
        raise InputError([Problem("config covariates", "status is aliased with the other model terms "
                                  "(a covariate, site or therapy indicator that equals it)",
                                  "drop the covariate that coincides with status")])
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
