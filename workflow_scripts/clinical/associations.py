"""Taxa against clinical axes within MS patients: one linear model per axis, all taxa at once.

Axes
    :data:`AXES`, each oriented so that a higher value is worse: EDSS, ARMSS,
    MSSS (:mod:`~workflow_scripts.clinical.scores`), sNfL and GFAP Z-scores
    (:mod:`~workflow_scripts.clinical.biomarkers`), and ``progressive`` (1 for
    SPMS or PPMS, 0 for RRMS).

Model
    For every axis ``a`` and taxon ``j``, in the MS patients with a value of
    the axis and of every covariate,

    .. math::  \\mathrm{clr}_{ij} = \\beta_{0j} + \\beta_{aj}\\, a_i + \\gamma_j^\\top z_i + \\varepsilon_{ij},

    with :math:`z` the covariates (by default age, sex, BMI), site indicators
    and one indicator per therapy (1 for the patients on it, untreated = 0:
    :func:`workflow_scripts.design.dmt_indicators`); terms aliased with earlier
    ones are dropped (:func:`workflow_scripts.design.drop_aliased`). ``effect``
    is :math:`\\hat\\beta_{aj}`: the change in log2 CLR abundance per unit of the
    axis (per EDSS point, per score point, per SD of the marker; progressive
    minus relapsing). Patients come from one household each, so there is no
    household term.

Why the taxon is the outcome
    One design matrix per axis serves every taxon (a matrix product, not a
    loop), the effect is on the scale of the differential-abundance effects,
    and the binary course axis needs no logistic model. The t statistic of a
    slope is the same whichever of the two variables is the outcome (both are
    the partial correlation), so the direction of the model changes the effect's
    unit, not the evidence.

Inference that stays valid for heavy-tailed taxa
    Zero-heavy taxa have a two-point CLR (absent at the pseudo-count floor,
    present far above), so residuals are skewed and their variance can depend
    on the design. ``inference="hc3"`` (default) uses the HC3 sandwich standard
    error (MacKinnon & White 1985; Long & Ervin 2000) with a Student t on
    ``n - k`` degrees of freedom; ``"classical"`` the usual OLS error,
    ``"hc2"`` the HC2 sandwich. Chosen on measured type-I error
    (benchmarks/calibrate_clinical.py ``typei``, 400 shuffles of the axis):
    on the real iMSMS 16S cohort (576 patients, 82 genera, 48 of them zero in
    half the patients or more) all are within Monte Carlo error of 5 % / 1 %;
    where the axis keeps its link to therapy (shuffled within therapy groups)
    the classical error reaches 5.4 % / 1.2 % on the course axis, HC3 5.1 % /
    1.15 %; HC2 exceeds nominal in most settings (up to 5.6 % / 1.3 %). In
    small cohorts (60 patients, 17 model columns) HC3 is conservative (2.2-2.7
    % at 5 %), which costs power there; on generated null cohorts (10 x 150
    patients, 12,000 tests) HC3 gives 4.4 % / 0.9 % / 0.10 % at 5 % / 1 % /
    0.1 %. HC3 never exceeded nominal beyond Monte Carlo error, so it is the
    default.

Abundance
    The differential stage's scale and zero handling: one profile per
    participant (first stool sample), CLR (log2) over the whole composition
    after a pseudo-count of 0.5 (counts) or half the sample's smallest
    non-zero value (relative abundances), then the taxa present in at least
    ``min_prevalence`` of the patients analysed
    (:func:`workflow_scripts.transform.clr_abundance`, :func:`~workflow_scripts.transform.select_features`).

Multiple testing
    ``qvalue`` is Benjamini-Hochberg over the taxa of one axis. The
    ``*_untreated`` columns refit the same model in untreated patients only (no
    therapy terms): a sensitivity check that a drug does not carry the
    association.

References
----------
.. [1] MacKinnon JG, White H (1985). Some heteroskedasticity-consistent
   covariance matrix estimators with improved finite sample properties.
   J Econometrics 29:305-325.
.. [2] Long JS, Ervin LH (2000). Using heteroscedasticity consistent standard
   errors in the linear regression model. Am Stat 54:217-224.
.. [3] iMSMS Consortium (2022). Gut microbiome of multiple sclerosis patients
   and paired household healthy controls reveal associations with disease
   risk and course. Cell 185:3467-3486.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from workflow_scripts.design import build_design, drop_aliased
from workflow_scripts.ledger import COLUMNS as LEDGER_COLUMNS
from workflow_scripts.models.multiple_testing import bh
from workflow_scripts.transforms import clr_abundance, participant_profiles, select_features

STAGE = "clinical"
#: The axes, in output order; every one is "higher = more severe / more damage".
AXES = ("edss", "armss", "msss", "snfl_z", "gfap_z", "progressive")
#: Courses on each side of the ``progressive`` axis.
PROGRESSIVE = ("SPMS", "PPMS")
RELAPSING = ("RRMS",)
INFERENCE = ("hc2", "hc3", "classical")
#: Output columns of :func:`associate`.
COLUMNS = ("feature", "axis", "effect", "se", "pvalue", "qvalue", "n", "effect_untreated", "se_untreated",
           "pvalue_untreated", "n_untreated")


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
class Patients:
    """The MS patients of a cohort with what the models need.

    Attributes
    ----------
    clr : DataFrame
        Patients x tested taxa, log2 CLR over the whole composition.
    covariates : DataFrame
        Patients x model columns: the configured covariates, site and therapy indicators.
    untreated : Series of bool or None
        Untreated patients (None when the cohort records no therapy).
    excluded : DataFrame
        Ledger rows: patients without a covariate, taxa not tested.
    """

    clr: pd.DataFrame
    covariates: pd.DataFrame
    untreated: pd.Series | None
    excluded: pd.DataFrame


def patients(cohort, covariates=("sex", "age", "bmi"), min_prevalence: float = 0.1,
             pseudo_count: float = 0.5) -> Patients:
    """One abundance profile and the covariates of every MS patient with complete covariates.

    Parameters
    ----------
    cohort : workflow_scripts.cohort.Cohort
    covariates : sequence of str
        Config ``covariates``; site and therapy are added by the design.
    min_prevalence : float
        Fraction of the analysed patients a taxon must be present in.
    pseudo_count : float
        Added to counts before the log (the differential stage's default 0.5).
    """
    part = cohort.participants[cohort.participants["status"] == cohort.case_label]
    design = build_design(part, list(covariates), cohort.case_label, stage=STAGE, samples=cohort.samples)
    ids = design.frame.index
    samples = cohort.samples[cohort.samples["participant_id"].isin(ids)]
    profiles = participant_profiles(cohort.table("taxa").loc[samples.index], samples, how="first").loc[ids]
    kind = cohort.info["abundance_kind"]
    clr = clr_abundance(profiles, kind, pseudo_count)
    features, feature_rows = select_features(profiles, min_prevalence, STAGE)
    model = pd.concat([design.covariates, design.site, design.dmt], axis=1)
    untreated = None
    if "dmt" in part.columns:
        untreated = (design.dmt.sum(axis=1) == 0) if design.dmt.shape[1] else pd.Series(True, index=ids)
    excluded = pd.concat([design.excluded, feature_rows], ignore_index=True)[LEDGER_COLUMNS]
    return Patients(clr[features], model, untreated, excluded)


def fit_axis(Y: np.ndarray, axis: np.ndarray, Z: np.ndarray, inference: str = "hc3") -> dict[str, np.ndarray]:
    """Slope of ``axis`` in ``Y[:, j] ~ 1 + axis + Z`` for every column ``j`` of ``Y``.

    Parameters
    ----------
    Y : ndarray (n, p)
    axis : ndarray (n,)
    Z : ndarray (n, q)
        Further covariates; columns aliased with the intercept, the axis or
        each other are dropped. The axis must not be aliased.
    inference : {"hc3", "hc2", "classical"}

    Returns
    -------
    dict
        ``effect``, ``se``, ``pvalue`` (arrays of length p), ``df`` and ``k``
        (columns kept).

    Notes
    -----
    With :math:`a` the axis row of :math:`(X^\\top X)^{-1}X^\\top`, residuals
    :math:`e_{ij}` and leverages :math:`h_i`, the HC3 variance of the slope is
    :math:`\\sum_i a_i^2 e_{ij}^2 / (1 - h_i)^2` (HC2: power 1 instead of
    2); the classical one
    :math:`\\hat\\sigma_j^2 [(X^\\top X)^{-1}]_{aa}`. A patient with
    :math:`h_i = 1` (alone in a level of a factor) is fitted exactly and has
    :math:`a_i = 0`, so adds nothing. Two-sided p-values from Student t on
    :math:`n - k` degrees of freedom.
    """
    if inference not in INFERENCE:
        raise ValueError(f"inference must be one of {INFERENCE}, not {inference!r}")
    n = len(axis)
    X = pd.DataFrame(np.column_stack([np.ones(n), axis, Z]))
    X, dropped = drop_aliased(X)
    if 1 not in X.columns:
        raise ValueError("the axis is aliased with the covariates")
    X = X.to_numpy()
    k = X.shape[1]
    xtx_inv = np.linalg.inv(X.T @ X)
    A = xtx_inv @ X.T  # (k, n)
    beta = A @ Y
    resid = Y - X @ beta
    df = n - k
    a = A[1]
    if inference in ("hc2", "hc3"):
        h = np.einsum("ij,ji->i", X, A)
        inside = h < 1 - 1e-10
        power = 2 if inference == "hc3" else 1
        weight = np.where(inside, a ** 2 / np.where(inside, 1 - h, 1.0) ** power, 0.0)
        var = weight @ resid ** 2
    else:
        var = xtx_inv[1, 1] * np.einsum("ij,ij->j", resid, resid) / df
    se = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta[1] / se
    return {"effect": beta[1], "se": se, "pvalue": 2 * stats.t.sf(np.abs(t), df), "df": df, "k": k}


def _usable(axis: pd.Series, min_n: int, min_group: int) -> str:
    """Why an axis cannot be fitted on these values ('' when it can)."""
    values = axis.dropna()
    if len(values) < min_n:
        return f"{len(values)} patients with a value (< {min_n})"
    levels = values.value_counts()
    if len(levels) < 2:
        return "no variation"
    if len(levels) == 2 and levels.min() < min_group:
        return f"only {levels.min()} patients in one group (< {min_group})"
    return ""


def associate(clr: pd.DataFrame, axes: pd.DataFrame, covariates: pd.DataFrame, untreated: pd.Series | None = None,
              inference: str = "hc3", min_n: int = 20, min_group: int = 5, min_df: int = 10
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every taxon against every axis (see the module docstring).

    Parameters
    ----------
    clr : DataFrame
        Patients x taxa (log2 CLR), no missing values.
    axes : DataFrame
        Patients x axes (NaN = unknown); columns tested in their order.
    covariates : DataFrame
        Patients x model columns, complete (see :func:`patients`).
    untreated : Series of bool, optional
        Untreated patients, for the sensitivity columns.
    inference : {"hc3", "hc2", "classical"}
    min_n : int
        Patients with a value an axis needs (for the untreated refit too).
    min_group : int
        Patients a binary axis needs on each side.
    min_df : int
        Residual degrees of freedom a fit needs.

    Returns
    -------
    table : DataFrame
        :data:`COLUMNS`, one row per taxon and fitted axis, taxa in ``clr``
        order within each axis.
    skipped : DataFrame
        ``axis``, ``subset`` (``all`` or ``untreated``), ``reason`` for fits
        that were not made.
    """
    covariates = covariates.reindex(clr.index)
    axes = axes.reindex(clr.index)
    tables, skipped = [], []

    def fit(rows: pd.Series, name: str, subset: str):
        values = axes.loc[rows, name]
        why = _usable(values, min_n, min_group)
        if not why:
            Z = covariates.loc[rows].to_numpy(dtype=float)
            try:
                out = fit_axis(clr.loc[rows].to_numpy(dtype=float), values.to_numpy(dtype=float), Z, inference)
            except (ValueError, np.linalg.LinAlgError) as err:
                why = str(err)
            else:
                if out["df"] >= min_df:
                    return out, int(rows.sum())
                why = f"{out['df']} residual degrees of freedom (< {min_df})"
        skipped.append((name, subset, why))
        return None, int(rows.sum())

    for name in axes.columns:
        has = axes[name].notna()
        main, n = fit(has, name, "all")
        if main is None:
            continue
        frame = pd.DataFrame({"feature": clr.columns, "axis": name, "effect": main["effect"], "se": main["se"],
                              "pvalue": main["pvalue"], "qvalue": bh(main["pvalue"]), "n": n})
        sens, n_u = (None, 0)
        if untreated is not None:
            sens, n_u = fit(has & untreated.reindex(clr.index).fillna(False).astype(bool), name, "untreated")
        for column in ("effect", "se", "pvalue"):
            frame[f"{column}_untreated"] = sens[column] if sens is not None else np.nan
        frame["n_untreated"] = n_u if sens is not None else 0
        tables.append(frame)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(COLUMNS))
    return table[list(COLUMNS)], pd.DataFrame(skipped, columns=["axis", "subset", "reason"])
