"""Taxa against clinical axes within MS patients: one set of models per axis, all taxa at once.

Axes
    :data:`AXES`, each oriented so that a higher value is worse: EDSS, ARMSS,
    MSSS (:mod:`~workflow_scripts.clinical.scores`), sNfL and GFAP Z-scores
    (:mod:`~workflow_scripts.clinical.biomarkers`), and ``progressive`` (1 for
    SPMS or PPMS, 0 for RRMS).

Rows
    ``repeated_samples: all`` (default): every kept stool sample of an
    analysed patient is a row, with its patient's axis values and covariates;
    the errors are cluster-robust by participant, so a patient with four samples
    does not count as four independent patients. ``first``, ``sum``,
    ``mean``: one profile per patient (:func:`workflow_scripts.transforms.participant_profiles`),
    heteroskedasticity-consistent errors.

Components (``components``), for every axis ``a`` and taxon ``j``, each adjusted
for the covariates :math:`z` (the configured ones, by default age, sex and BMI;
site indicators; one indicator per therapy, 1 for the patients on it,
:func:`workflow_scripts.design.dmt_indicators`; terms aliased with earlier ones
dropped, :func:`workflow_scripts.design.drop_aliased`)

    - ``clr``: :math:`\\mathrm{clr}_{ij} = \\beta_{0j} + \\beta_{aj} a_i + \\gamma_j^\\top z_i + \\varepsilon_{ij}`
      on every row, the CLR (log2) over the whole composition after the
      pseudo-count. :math:`\\hat\\beta_{aj}` is the table's ``effect``: the
      change in log2 CLR abundance per unit of the axis (per EDSS point, per
      score point, per SD of the marker; progressive minus relapsing), on the
      scale of the differential-abundance effects.
    - ``abundance``: the same model for :math:`\\log_2 x_{ij} - r_i` on the rows
      where the taxon is present (:math:`r_i` the CLR reference, the mean log2
      abundance of the row after the pseudo-count), no pseudo-count in the
      response: an abundance change where the taxon lives.
    - ``presence``: :math:`\\mathrm{logit}\\,P(x_{ij} > 0) = \\beta_{0j} + \\beta_{aj} a_i
      + \\gamma_j^\\top z_i + \\delta_j r_i`, a score test of :math:`\\beta_{aj}`
      (:func:`workflow_scripts.models.logistic_score.score_test`, robust
      variance with the HC2-type leverage correction, by participant with
      repeated samples; :math:`r_i` absorbs depth and dilution by other taxa).

    ``pvalue`` combines the available components by the Cauchy combination
    (:func:`workflow_scripts.models.multiple_testing.cauchy_combination`); ``direction`` is the
    sign of the component with the smallest p-value (``driver``), 0 when the
    abundance and presence components are both below 0.05 with opposite signs
    (ambiguous). A pseudo-count CLR alone dilutes a change of a zero-inflated
    taxon: an abundance shift among the carriers moves the CLR of the zero rows
    not at all, so the clr effect and its t shrink with the share of zeros (see
    README "Clinical" for the measured loss).

Why the taxon is the outcome
    One design per axis serves every taxon (matrix products, not a loop), the
    effect is on the scale of the differential-abundance effects, and the
    binary course axis needs no logistic model. The t statistic of a slope is
    the same whichever of the two variables is the outcome (both are the partial
    correlation), so the direction of the model changes the effect's unit, not
    the evidence.

Inference that stays valid for heavy-tailed taxa
    Zero-heavy taxa have a two-point CLR (absent at the pseudo-count floor,
    present far above), so residuals are skewed and their variance depends on
    the design. The linear components use sandwich errors
    (:func:`workflow_scripts.models.robust_ols.ols_term`): ``inference`` (HC3
    by default; ``hc2``, ``classical``) with one row per patient, with
    Student t on ``n - k`` degrees of freedom; ``cluster_inference``
    (CR3 by default; ``cr1``, ``cr2``) with every sample, Student t on
    ``G - 1`` (``G`` patients). Chosen on measured type-I error
    (benchmarks/calibrate_clinical.py ``typei``; README "Clinical").

Abundance
    The differential stage's scale and zero handling: CLR (log2) over the whole
    composition after a pseudo-count of 0.5 (counts) or half the row's
    smallest non-zero value (relative abundances), then the taxa present in at
    least ``min_prevalence`` of the patients analysed (prevalence among the
    analysed patients, not among all participants;
    :func:`workflow_scripts.transforms.clr_abundance`,
    :func:`~workflow_scripts.transforms.select_features`).

Multiple testing
    ``qvalue`` is Benjamini-Hochberg over the taxa of one axis. The
    ``*_untreated`` columns refit the same models in untreated patients only (no
    therapy terms): a sensitivity check that a drug does not carry the
    association.

References
----------
.. [1] MacKinnon JG, White H (1985). Some heteroskedasticity-consistent
   covariance matrix estimators with improved finite sample properties.
   J Econometrics 29:305-325.
.. [2] Long JS, Ervin LH (2000). Using heteroscedasticity consistent standard
   errors in the linear regression model. Am Stat 54:217-224.
.. [3] Liu Y, Xie J (2020). Cauchy combination test. J Am Stat Assoc 115:393-402.
.. [4] iMSMS Consortium (2022). Gut microbiome of multiple sclerosis patients
   and paired household healthy controls reveal associations with disease
   risk and course. Cell 185:3467-3486.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workflow_scripts.design import build_design, drop_aliased
from workflow_scripts.ledger import Ledger
from workflow_scripts.models.logistic_score import score_test
from workflow_scripts.models.multiple_testing import bh, cauchy_combination
from workflow_scripts.models.robust_ols import ols_term
from workflow_scripts.transforms import participant_profiles, replace_zeros, select_features

STAGE = "clinical"
#: The axes, in output order; every one is "higher = more severe / more damage".
AXES = ("edss", "armss", "msss", "snfl_z", "gfap_z", "progressive")
#: Courses on each side of the ``progressive`` axis.
PROGRESSIVE = ("SPMS", "PPMS")
RELAPSING = ("RRMS",)
COMPONENTS = ("clr", "abundance", "presence")
#: Output columns of :func:`associate`.
COLUMNS = ("feature", "axis", "effect", "se", "pvalue", "qvalue", "n", "n_participants", "effect_untreated",
           "se_untreated", "pvalue_untreated", "n_untreated", "direction", "direction_untreated", "driver",
           "pvalue_clr", "effect_abundance", "se_abundance", "pvalue_abundance", "n_present", "effect_presence",
           "se_presence", "pvalue_presence", "n_absent")
#: Residual degrees of freedom a linear fit needs.
MIN_DF = 10
#: Variance of the presence score test: robust, each row's score scaled by 1 / sqrt(1 - h) (h the null
#: fit's hat value). Measured on shuffled axes (README "Clinical"): the plain robust (HC0) variance
#: rejected 5.6-7.7 % at 5 % (80-150 patients), the 1 / (1 - h) scaling 3.5-4.7 %, this one 5.0-5.7 %.
PRESENCE_VARIANCE = "hc2"


def axis_values(participants: pd.DataFrame, scores: pd.DataFrame, markers: dict[str, pd.DataFrame]
                ) -> pd.DataFrame:
    """The axes of every patient: participants (MS only) x :data:`AXES`, NaN where unknown.

    Parameters
    ----------
    participants : DataFrame
        The patients; optional ``disease_course``.
    scores : DataFrame
        :func:`workflow_scripts.clinical.scores.severity_scores` (same index).
    markers : dict
        :func:`workflow_scripts.clinical.biomarkers.marker_zscores` (any index
        that includes the patients).
    """
    index = participants.index
    out = pd.DataFrame(index=index, columns=list(AXES), dtype=float)
    for name in ("edss", "armss", "msss"):
        out[name] = scores[name].reindex(index)
    for marker in ("snfl", "gfap"):
        if marker in markers:
            out[f"{marker}_z"] = markers[marker]["z"].reindex(index)
    if "disease_course" in participants.columns:
        course = participants["disease_course"]
        out["progressive"] = np.where(course.isin(PROGRESSIVE), 1.0, np.where(course.isin(RELAPSING), 0.0, np.nan))
    return out


@dataclass
class Rows:
    """The rows the models fit (one per patient, or one per stool sample) with what they need.

    Attributes
    ----------
    clr : DataFrame
        Rows x tested taxa, log2 CLR over the whole composition.
    log_present : DataFrame
        Rows x tested taxa: log2 abundance minus the CLR reference where the
        taxon is present, NaN where absent.
    reference : Series
        The CLR reference of every row (mean log2 abundance after the pseudo-count).
    participant : Series
        Participant id of every row (the clusters with repeated samples).
    covariates : DataFrame
        Rows x model columns: the configured covariates, site and therapy indicators.
    untreated : Series of bool or None
        Rows of untreated patients (None when the cohort records no therapy).
    clustered : bool
        True with ``repeated_samples: all`` (cluster-robust errors by participant).
    excluded : DataFrame
        Ledger rows: patients without a covariate, taxa not tested.
    """

    clr: pd.DataFrame
    log_present: pd.DataFrame
    reference: pd.Series
    participant: pd.Series
    covariates: pd.DataFrame
    untreated: pd.Series | None
    clustered: bool
    excluded: pd.DataFrame

    @property
    def n_participants(self) -> int:
        return int(self.participant.nunique())


def analysis_rows(cohort, covariates, min_prevalence: float, pseudo_count: float, repeated_samples: str) -> Rows:
    """The model rows of every MS patient with complete covariates.

    Parameters
    ----------
    cohort : workflow_scripts.cohort.Cohort
    covariates : sequence of str
        Config ``covariates``; site and therapy are added by the design.
    min_prevalence : float
        Fraction of the analysed patients a taxon must be present in (in any
        of their samples with ``all``).
    pseudo_count : float
        Added to counts before the log (the differential stage's 0.5).
    repeated_samples : {"all", "first", "sum", "mean"}
    """
    part = cohort.participants[cohort.participants["status"] == cohort.case_label]
    design = build_design(part, list(covariates), cohort.case_label, stage=STAGE, samples=cohort.samples)
    ids = design.frame.index
    samples = cohort.samples[cohort.samples["participant_id"].isin(ids)]
    table = cohort.table("taxa").loc[samples.index]
    kind = cohort.info["abundance_kind"]
    if repeated_samples == "all":
        abundance = table
        owner = samples["participant_id"].rename("participant_id")
    else:
        how = "mean" if repeated_samples == "mean" or (repeated_samples == "sum" and kind != "counts") \
            else repeated_samples
        abundance = participant_profiles(table, samples, how=how).loc[ids]
        kind = "relative" if how == "mean" else kind
        owner = pd.Series(abundance.index, index=abundance.index, name="participant_id")
    positive = replace_zeros(abundance, kind, pseudo_count)
    logs = np.log2(positive)
    reference = logs.mean(axis=1).rename("reference")
    clr = logs.sub(reference, axis=0)
    patient_any = (abundance > 0).groupby(owner.to_numpy()).any().astype(float)
    features, feature_rows = select_features(patient_any, min_prevalence, STAGE)
    present = abundance[features] > 0
    with np.errstate(divide="ignore"):
        log_present = np.log2(abundance[features].where(present)).sub(reference, axis=0)
    model = pd.concat([design.covariates, design.site, design.dmt], axis=1).loc[owner.to_numpy()]
    model.index = abundance.index
    untreated = None
    if "dmt" in part.columns:
        treated = design.dmt.sum(axis=1) > 0 if design.dmt.shape[1] else pd.Series(False, index=ids)
        untreated = pd.Series(~treated.loc[owner.to_numpy()].to_numpy(), index=abundance.index)
    excluded = Ledger()
    excluded.extend(design.excluded)
    excluded.extend(feature_rows)
    return Rows(clr[features], log_present, reference, owner, model, untreated, repeated_samples == "all",
                excluded.frame())


def _usable(axis: pd.Series, min_n: int, min_group: int) -> str:
    """Why an axis cannot be fitted on these per-patient values ('' when it can)."""
    values = axis.dropna()
    if len(values) < min_n:
        return f"{len(values)} patients with a value (< {min_n})"
    levels = values.value_counts()
    if len(levels) < 2:
        return "no variation"
    if len(levels) == 2 and levels.min() < min_group:
        return f"only {levels.min()} patients in one group (< {min_group})"
    return ""


def component_tests(rows: Rows, select: np.ndarray, axis: np.ndarray, settings) -> dict[str, dict]:
    """Every configured component for the rows ``select`` (bool) against ``axis`` (per row).

    Returns
    -------
    dict
        Component name -> :func:`~workflow_scripts.models.robust_ols.ols_term`
        or :func:`~workflow_scripts.models.logistic_score.score_test` output
        (arrays over the taxa); a component that cannot be fitted (the axis
        aliased, too few rows) is absent.

    Raises
    ------
    ValueError
        When the axis is aliased with the covariates.
    """
    n = int(select.sum())
    X = pd.DataFrame(np.column_stack([np.ones(n), axis[select], rows.covariates.to_numpy(dtype=float)[select]]))
    X, _ = drop_aliased(X)
    if 1 not in X.columns:
        raise ValueError("the axis is aliased with the covariates")
    X = X.to_numpy()
    clusters = rows.participant.to_numpy()[select] if rows.clustered else None
    errors = settings.cluster_inference if rows.clustered else settings.inference
    weights = None
    if rows.clustered and settings.sample_weights == "participant":
        codes = pd.factorize(clusters)[0]
        weights = 1.0 / np.bincount(codes)[codes]
    out = {}
    k = X.shape[1]
    if "clr" in settings.components:
        fit = ols_term(rows.clr.to_numpy()[select], X, 1, errors, clusters, weights=weights)
        if np.nanmin(fit["df"]) >= MIN_DF:
            out["clr"] = fit
    present = rows.log_present.notna().to_numpy()[select]
    n_present = present.sum(axis=0)
    if "abundance" in settings.components:
        fit = ols_term(rows.log_present.to_numpy()[select], X, 1, errors, clusters, mask=present, weights=weights)
        usable = (n_present >= k + settings.min_present) & (fit["df"] >= MIN_DF)
        for key in ("effect", "se", "stat", "pvalue"):
            fit[key] = np.where(usable, fit[key], np.nan)
        out["abundance"] = fit
    if "presence" in settings.components:
        Z = np.column_stack([np.delete(X, 1, axis=1), rows.reference.to_numpy()[select]])
        Z, _ = drop_aliased(pd.DataFrame(Z))
        fit = score_test(present.astype(float), X[:, 1], Z.to_numpy(), clusters=clusters, weights=weights,
                         variance=PRESENCE_VARIANCE)
        usable = (n_present >= settings.min_present) & (n - n_present >= settings.min_present)
        for key in ("effect", "se", "stat", "pvalue"):
            fit[key] = np.where(usable, fit[key], np.nan)
        out["presence"] = fit
    return out


def combine(fits: dict[str, dict], p: int) -> dict[str, np.ndarray]:
    """The combined p-value, direction and driver of every taxon from :func:`component_tests`."""
    names = [c for c in COMPONENTS if c in fits]
    P = np.column_stack([fits[c]["pvalue"] for c in names]) if names else np.full((p, 1), np.nan)
    S = np.column_stack([np.sign(fits[c]["effect"]) for c in names]) if names else np.zeros((p, 1))
    pvalue = cauchy_combination(P)
    best = np.argmin(np.where(np.isfinite(P), P, np.inf), axis=1)
    any_finite = np.isfinite(P).any(axis=1)
    direction = np.where(any_finite, np.nan_to_num(S[np.arange(p), best]), 0.0)
    driver = np.where(any_finite, np.array(names or [""], dtype=object)[best], "")
    if "abundance" in fits and "presence" in fits:
        a, c = fits["abundance"], fits["presence"]
        ambiguous = (a["pvalue"] < 0.05) & (c["pvalue"] < 0.05) & (np.sign(a["effect"]) != np.sign(c["effect"]))
        direction = np.where(ambiguous, 0.0, direction)
        driver = np.where(ambiguous, "ambiguous", driver)
    return {"pvalue": pvalue, "direction": direction.astype(int), "driver": driver}


def associate(rows: Rows, axes: pd.DataFrame, settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every taxon against every axis (see the module docstring).

    Parameters
    ----------
    rows : Rows
        From :func:`analysis_rows`.
    axes : DataFrame
        Patients x axes (NaN = unknown); columns tested in their order.
    settings : workflow_scripts.clinical.analyse.ClinicalSettings
        ``components``, ``inference``, ``cluster_inference``,
        ``min_patients``, ``min_group``, ``min_present``.

    Returns
    -------
    table : DataFrame
        :data:`COLUMNS`, one row per taxon and fitted axis, taxa in ``clr``
        order within each axis.
    skipped : DataFrame
        ``axis``, ``subset`` (``all`` or ``untreated``), ``reason`` for fits
        that were not made.
    """
    per_row = axes.reindex(rows.participant.to_numpy())
    per_row.index = rows.clr.index
    untreated = rows.untreated.to_numpy(dtype=bool) if rows.untreated is not None else None
    tables, skipped = [], []
    p = rows.clr.shape[1]

    def fit(select: np.ndarray, name: str, subset: str):
        patients = axes[name].reindex(pd.unique(rows.participant.to_numpy()[select]))
        why = _usable(patients, settings.min_patients, settings.min_group)
        if not why:
            try:
                fits = component_tests(rows, select, per_row[name].to_numpy(dtype=float), settings)
            except (ValueError, np.linalg.LinAlgError) as err:
                why = str(err)
            else:
                if fits:
                    return fits
                why = f"fewer than {MIN_DF} residual degrees of freedom"
        skipped.append((name, subset, why))
        return None

    for name in axes.columns:
        has = per_row[name].notna().to_numpy()
        main = fit(has, name, "all")
        if main is None:
            continue
        combined = combine(main, p)
        frame = pd.DataFrame({"feature": rows.clr.columns, "axis": name, "pvalue": combined["pvalue"],
                              "qvalue": bh(combined["pvalue"]), "n": int(has.sum()),
                              "n_participants": int(rows.participant[has].nunique()),
                              "direction": combined["direction"], "driver": combined["driver"]})
        clr = main.get("clr")
        frame["effect"] = clr["effect"] if clr else np.nan
        frame["se"] = clr["se"] if clr else np.nan
        frame["pvalue_clr"] = clr["pvalue"] if clr else np.nan
        for component in ("abundance", "presence"):
            fitted = main.get(component)
            for column in ("effect", "se", "pvalue"):
                frame[f"{column}_{component}"] = fitted[column] if fitted else np.nan
        present = rows.log_present.notna().to_numpy()[has].sum(axis=0)
        frame["n_present"] = present
        frame["n_absent"] = int(has.sum()) - present
        sens = None
        if untreated is not None:
            sens = fit(has & untreated, name, "untreated")
        if sens is not None:
            frame["effect_untreated"] = sens["clr"]["effect"] if "clr" in sens else np.nan
            frame["se_untreated"] = sens["clr"]["se"] if "clr" in sens else np.nan
            sens_combined = combine(sens, p)
            frame["pvalue_untreated"] = sens_combined["pvalue"]
            frame["direction_untreated"] = sens_combined["direction"]
            frame["n_untreated"] = int((has & untreated).sum())
        else:
            frame["effect_untreated"] = frame["se_untreated"] = frame["pvalue_untreated"] = np.nan
            frame["direction_untreated"] = 0
            frame["n_untreated"] = 0
        tables.append(frame)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(COLUMNS))
    return table[list(COLUMNS)], pd.DataFrame(skipped, columns=["axis", "subset", "reason"])
