"""The primary test of every taxon's MS effect: all household pairs, abundance and presence.

This is the test whose calls the classification uses (the six methods of
:mod:`.methods` are reported beside it as evidence; they do not vote). Every
household with a case and a control counts, whatever the patient's therapy:
therapy is a check on the calls (:func:`therapy_check`), not a filter on the
pairs.

Components (per taxon; "case side" is the mean over a household's cases, the
same for controls)

A  *all pairs, log-ratio.* The case-minus-control difference of the centred
   log2-ratio (pseudo-count 0.5, reference = the mean log of the whole
   composition, :func:`workflow_scripts.transforms.replace_zeros`).
B  *abundance where present.* The difference of log2 abundance minus the same
   reference, without pseudo-count, on the households where both sides have
   the taxon (at least ``primary.min_both_present`` of them). A
   pseudo-count dilutes the change of a taxon absent from many samples; B
   measures it where it is measured.
C  *presence.* The discordant households (exactly one side has the taxon):
   the 1:1 conditional logistic model with household strata, i.e. the
   logistic regression of "the case side has it" on the covariate
   differences and the difference of the CLR reference (the sample's scale:
   a presence change caused by another taxon's dilution is not a presence
   effect); its intercept is the MS log odds ratio of presence, tested by a
   score test (McNemar's test without covariates;
   :func:`workflow_scripts.models.logistic_score.score_test`, model variance).
   With fewer than ``primary.exact_below`` discordant households, the exact
   McNemar (binomial) test instead.

A and B regress the household differences on an intercept (the MS effect)
and the covariate differences, with HC3 sandwich standard errors
(:func:`workflow_scripts.models.robust_ols.ols_term`) and Student t on the
residual degrees of freedom (none with fewer than two). Site and household cancel within a household.

Compositional bias
    A and B are log-ratios against the community, so a change in a few taxa
    shifts all of them. As LinDA, the shift is the mode of the estimates
    across taxa, but taken among taxa of similar abundance
    (:func:`workflow_scripts.differential.bias.local_mode`, with at least
    ``primary.local_bias_min_taxa`` taxa; the global mode below). The mode is
    itself an estimate: its variance over the label swaps of
    :func:`null_distribution` (within every household the case and control
    labels swapped with probability 1/2, the first
    ``calibration.null_replicates`` swaps of the run's seed) is added to each
    squared standard error.

Combination and direction
    ``pvalue`` is the Cauchy combination (ACAT) of the available component
    p-values (:func:`workflow_scripts.models.multiple_testing.cauchy_combination`;
    B and C use disjoint households, A overlaps both, which ACAT tolerates;
    component p-values above 0.99 enter as 0.99, so that an exact test's
    p = 1 does not cancel the others),
    ``qvalue`` its Benjamini-Hochberg q-value. ``direction`` is the sign of
    the component with the smallest p-value; ``ambiguous`` when two
    components are significant at 0.05 with opposite signs. The minimum
    effect applies to the stronger of B and C (A when neither is available):
    ``primary.min_effect_log2`` for abundance, ``primary.min_effect_presence_lnor``
    for presence (``below_min_effect``).

Repeated stool samples (``repeated_samples: all``, the default)
    A participant with several samples is still one participant: the
    components use per-participant summaries of every kept sample (A: the
    mean over the samples of each sample's CLR; B: the mean over the samples
    that have the taxon of its log2 abundance minus the sample's reference;
    C: present when any sample has it, because the conditional logistic and
    McNemar tests need a binary response) and A and B are weighted least
    squares, each household weighted by the inverse variance of its
    difference (:func:`summary_variance`; ``primary.weight_by_samples``),
    so a household whose members gave more samples counts more when
    within-person variation is large. The weights do not depend on the
    labels, so the label swaps keep them. ``first``, ``sum`` and ``mean``
    give one profile per participant and every weight 1.

Unpaired designs
    With fewer than ``primary.min_pairs`` households holding a case and a
    control (e.g. a cohort without households), the same three components
    are regressions over participants: A and B on status, covariates and
    site (B on the participants with the taxon, at least half of
    ``min_both_present`` in each group), C the logistic regression of
    presence on status, covariates, site and the CLR reference, score test
    of status. Label swaps become permutations of status within site. In a
    paired cohort, participants without a household partner are left out of
    this test (stage ledger).

References
----------
.. [1] Zhou, H., He, K., Chen, J. & Zhang, X. (2022). LinDA: linear models for
   differential abundance analysis of microbiome compositional data.
   *Genome Biology* 23, 95.
.. [2] Nickols, W. A. et al. (2024). MaAsLin 3: refining and extending
   generalized multivariable linear models for meta-omic association
   discovery. *bioRxiv* 2024.12.13.628459 (abundance and prevalence
   components; strata for matched sets).
.. [3] Liu, Y. & Xie, J. (2020). Cauchy combination test. *JASA* 115, 393-402.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sparse
from scipy import stats

from ..design import Design, drop_aliased
from ..models.logistic_score import score_test
from ..models.multiple_testing import bh, cauchy_combination
from ..models.robust_ols import ols_term
from ..transforms import replace_zeros
from .bias import local_mode
from .prepare import StageData, describe

PSEUDO_COUNT = 0.5
#: Per-component level of the direction-conflict and therapy checks.
ALPHA = 0.05
#: Component p-values above this enter the combination as this (one p of exactly 1 would veto the rest).
MAX_COMPONENT_P = 0.99
#: Seed streams (with the run's seed) of the label swaps and the implants.
SWAP_STREAM, IMPLANT_STREAM = 1401, 1402
COMPONENTS = ("A", "B", "C")


# ---------------------------------------------------------------------------
# Who is compared


@dataclass(frozen=True)
class Units:
    """The units the test compares: households (paired form) or participants (unpaired form).

    Attributes
    ----------
    paired : bool
    names : ndarray (N,)
        Household ids, or participant ids.
    case, control : sparse matrix (N, n) or None
        Paired form: weights over the design's participants (each row sums
        to 1 over the household's cases, resp. controls).
    rows : ndarray of int (N,)
        Unpaired form: the design rows of the participants (paired: empty).
    status : ndarray (N,)
        Unpaired form: 1 for cases, 0 for controls (paired: all 1).
    W : ndarray (N, k)
        The columns besides the tested one: covariate differences (paired),
        or intercept, covariates and site indicators (unpaired).
    W_names : list of str
    therapy : ndarray of str (N,)
        The therapy of the unit's case(s) ("untreated"), "" for a unit
        without a case (an unpaired control).
    weight : ndarray (N,)
        Weights of components A and B (all 1 unless weighted by the number of
        samples, :func:`sample_weights`).
    """

    paired: bool
    names: np.ndarray
    case: sparse.csr_matrix | None
    control: sparse.csr_matrix | None
    rows: np.ndarray
    status: np.ndarray
    W: np.ndarray
    W_names: list
    therapy: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def participants(self, index: pd.Index) -> pd.Index:
        if not self.paired:
            return index[self.rows]
        used = np.asarray((abs(self.case).sum(axis=0) + abs(self.control).sum(axis=0))).ravel() > 0
        return index[used]

    def subset(self, keep) -> "Units":
        """The units selected by the boolean ``keep``."""
        keep = np.asarray(keep, bool)
        return replace(self, names=self.names[keep], W=self.W[keep], therapy=self.therapy[keep],
                       weight=self.weight[keep],
                       status=self.status[keep], rows=self.rows[keep] if len(self.rows) else self.rows,
                       case=self.case[keep] if self.case is not None else None,
                       control=self.control[keep] if self.control is not None else None)


def participant_therapy(design: Design) -> np.ndarray:
    """Each participant's therapy: the DMT indicator's name, ``untreated`` for other cases, "" for controls."""
    status = design.frame["status"].to_numpy()
    names = np.array([c.removeprefix("dmt_") for c in design.dmt.columns], dtype=object)
    therapy = np.full(len(status), "untreated", dtype=object)
    if len(names):
        D = design.dmt.to_numpy(dtype=float)
        on = D.sum(axis=1) > 0
        therapy[on] = names[D.argmax(axis=1)[on]]
    return np.where(status == 1, therapy, "")


def is_paired_form(design: Design, min_pairs: int) -> bool:
    """Whether the test compares households (enough households hold a case and a control)."""
    frame = design.frame
    return frame.loc[frame["paired"], "household"].nunique() >= min_pairs


def make_units(design: Design, min_pairs: int, status=None, therapy=None, variance=None) -> Units:
    """The units of the test for the design's (or the given, e.g. swapped) labels.

    Parameters
    ----------
    design : Design
    min_pairs : int
        ``primary.min_pairs``: the paired form needs this many households with
        a case and a control.
    status, therapy : ndarray, optional
        Per design row: labels and therapies other than the design's (a
        label swap; the therapy travels with the label).
    variance : ndarray, optional
        Per design row: the relative variance of the participant's summary
        (:func:`summary_variance`); given, the units are weighted by its
        inverse (:func:`sample_weights`), otherwise all weigh 1.
    """
    frame = design.frame
    status = frame["status"].to_numpy() if status is None else np.asarray(status)
    therapy = participant_therapy(design) if therapy is None else np.asarray(therapy, dtype=object)
    covariates = design.covariates.to_numpy(dtype=float)
    n = len(frame)
    if is_paired_form(design, min_pairs):
        idx = np.flatnonzero(frame["paired"].to_numpy())
        names, g = np.unique(frame["household"].to_numpy()[idx].astype(str), return_inverse=True)
        G = len(names)
        is_case = status[idx] == 1
        weights = []
        for side in (is_case, ~is_case):
            count = np.bincount(g[side], minlength=G)
            weights.append(sparse.csr_matrix((1.0 / count[g[side]], (g[side], idx[side])), shape=(G, n)))
        case, control = weights
        unit_therapy = np.full(G, "", dtype=object)
        unit_therapy[g[is_case][::-1]] = therapy[idx[is_case]][::-1]  # the household's first case
        dz = np.asarray(case @ covariates - control @ covariates)
        columns = pd.DataFrame(dz, columns=list(design.covariates.columns))
        kept = drop_aliased(pd.concat([pd.DataFrame({"_tested": np.ones(G)}), columns], axis=1))[0]
        W = kept.drop(columns="_tested")
        units = Units(True, names.astype(object), case, control, np.array([], int), np.ones(G), W.to_numpy(),
                      list(W.columns), unit_therapy, np.ones(G))
        return units if variance is None else replace(units, weight=sample_weights(units, variance))
    parts = [pd.DataFrame({"_tested": status.astype(float), "intercept": 1.0}, index=frame.index),
             design.covariates, design.site]
    kept = drop_aliased(pd.concat(parts, axis=1))[0]
    W = kept.drop(columns="_tested")
    units = Units(False, frame.index.to_numpy(dtype=object), None, None, np.arange(n), status.astype(float),
                  W.to_numpy(dtype=float), list(W.columns), np.asarray(therapy, dtype=object), np.ones(n))
    return units if variance is None else replace(units, weight=sample_weights(units, variance))


def sample_weights(units: Units, variance) -> np.ndarray:
    """Inverse-variance weights of the units from their participants' summary variances (per design row).

    A participant weighs ``1 / variance``; a household ``1 / (mean variance
    of its cases + mean variance of its controls)``, the variance of its
    case-minus-control difference (up to a constant) for one case and one
    control.
    """
    v = np.asarray(variance, dtype=float)
    if not units.paired:
        return 1.0 / v[units.rows]
    return 1.0 / np.asarray(units.case @ v + units.control @ v).ravel()


def summary_variance(values: np.ndarray, kind: str, feature_columns: np.ndarray, owner: np.ndarray,
                     n: int) -> np.ndarray:
    """Relative variance ``1 + lambda / k`` of each participant's mean CLR over their ``k`` samples.

    Parameters
    ----------
    values : ndarray (S, T)
        Every sample's abundances of every taxon.
    kind : {"counts", "relative"}
    feature_columns : ndarray of int
        The tested taxa.
    owner : ndarray of int (S,)
        Each sample's design row.
    n : int
        Design rows.

    Notes
    -----
    The mean over :math:`k` samples of a participant's CLR has variance
    :math:`\\sigma_b^2 + \\sigma_w^2 / k` (between- and within-person
    variance), proportional to :math:`1 + \\lambda / k` with
    :math:`\\lambda = \\sigma_w^2 / \\sigma_b^2`. Per tested taxon,
    :math:`\\sigma_w^2` is the pooled within-participant variance of the
    samples' CLR and :math:`\\sigma_b^2` the variance of the participant
    means minus the mean of :math:`\\sigma_w^2 / k` (method of moments,
    floored at 1% of :math:`\\sigma_w^2`); :math:`\\lambda` is the median
    ratio over the taxa. The participant means include the MS and household
    effects, so :math:`\\sigma_b^2` errs high and the weights err towards
    equal. The weights depend on the samples only, not on the labels, so
    every label swap keeps them, and the HC3 errors are valid whatever the
    weights (wrong weights cost efficiency, not the level). Weighting by
    :math:`k` alone (:math:`\\lambda \\to \\infty`) lost recall on
    generated cohorts with 1-3 samples per participant
    (``benchmarks/calibrate_repeated.py --primary``).
    """
    owner = np.asarray(owner, dtype=int)
    k = np.bincount(owner, minlength=n).astype(float)
    logs = np.log2(replace_zeros(values, kind, PSEUDO_COUNT))
    clr = logs[:, feature_columns] - logs.mean(axis=1, keepdims=True)
    S = sparse.csr_matrix((np.ones(len(owner)), (owner, np.arange(len(owner)))), shape=(n, len(owner)))
    has = k > 0
    means = np.asarray(S @ clr) / np.maximum(k, 1.0)[:, None]
    within_df = (k[has] - 1).sum()
    if within_df == 0 or has.sum() < 3 or clr.shape[1] == 0:
        return np.ones(n)
    within = ((clr - means[owner]) ** 2).sum(axis=0) / within_df
    between = means[has].var(axis=0, ddof=1) - within * np.mean(1.0 / k[has])
    between = np.maximum(between, 0.01 * within)
    ok = within > 0
    ratio = float(np.median(within[ok] / between[ok])) if ok.any() else 0.0
    return 1.0 + ratio / np.maximum(k, 1.0)


# ---------------------------------------------------------------------------
# What is compared


@dataclass(frozen=True)
class Responses:
    """The per-unit values of the three components (N units x p tested taxa).

    ``B_mask`` / ``C_mask`` mark the units each B / C column uses; ``U`` is
    presence (unpaired) or "the case side has it" (paired); ``scale`` the CLR
    reference (paired: its difference). ``abundance`` (log mean relative
    abundance) orders the windows of the local bias; ``present`` is the
    participants x taxa presence of the units' participants (unpaired form:
    the group counts of B).
    """

    A: np.ndarray
    B: np.ndarray
    B_mask: np.ndarray
    U: np.ndarray
    C_mask: np.ndarray
    scale: np.ndarray
    abundance: np.ndarray

    def columns(self, keep) -> "Responses":
        """Only the taxa selected by the boolean or integer index ``keep``."""
        return replace(self, A=self.A[:, keep], B=self.B[:, keep], B_mask=self.B_mask[:, keep],
                       U=self.U[:, keep], C_mask=self.C_mask[:, keep], abundance=self.abundance[keep])

    def rows(self, keep) -> "Responses":
        """Only the units selected by the boolean ``keep``."""
        return replace(self, A=self.A[keep], B=self.B[keep], B_mask=self.B_mask[keep], U=self.U[keep],
                       C_mask=self.C_mask[keep], scale=self.scale[keep])


def responses(values: np.ndarray, kind: str, feature_columns: np.ndarray, units: Units,
              owner: np.ndarray | None = None) -> Responses:
    """The components' responses from participants (or samples) x all taxa abundances.

    Parameters
    ----------
    values : ndarray (n, T) or (S, T)
        Counts or relative abundances of every taxon (the reference is the
        whole composition), one row per design row, or one per stool sample
        with ``owner``.
    kind : {"counts", "relative"}
    feature_columns : ndarray of int (p,)
        The columns of the tested taxa.
    units : Units
    owner : ndarray of int (S,), optional
        The design row of every sample (``repeated_samples: all``). Each
        participant's values are then the means over their samples of the
        samples' CLR, reference and log abundance where present (over the
        samples that have the taxon), and the taxon is present when any
        sample has it.
    """
    logs = np.log2(replace_zeros(values, kind, PSEUDO_COUNT))
    ref = logs.mean(axis=1)
    tested = values[:, feature_columns]
    present = tested > 0
    clr = logs[:, feature_columns] - ref[:, None]
    with np.errstate(divide="ignore"):
        where_present = np.where(present, np.log2(np.where(present, tested, 1.0)) - ref[:, None], 0.0)
    total = values.sum()
    abundance = np.log(tested.sum(axis=0) / total + 1e-12)
    if owner is not None:
        n = units.case.shape[1] if units.paired else int(units.rows.max(initial=-1)) + 1
        clr, ref, where_present, present = participant_means(owner, n, clr, ref, where_present, present)
    if not units.paired:
        r = units.rows
        return Responses(clr[r], where_present[r], present[r], present[r].astype(float),
                         np.ones_like(present[r]), ref[r] * np.log(2), abundance)
    case, control = units.case, units.control
    A = np.asarray(case @ clr - control @ clr)
    fc = np.asarray(case @ present.astype(float))
    fk = np.asarray(control @ present.astype(float))
    both = (fc > 0) & (fk > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        B = np.asarray(case @ where_present) / fc - np.asarray(control @ where_present) / fk
    B = np.where(both, B, 0.0)
    U = (fc > 0).astype(float)
    C_mask = (fc > 0) ^ (fk > 0)
    scale = np.asarray(case @ ref - control @ ref) * np.log(2)
    return Responses(A, B, both, U, C_mask, scale, abundance)


def participant_means(owner: np.ndarray, n: int, clr, ref, where_present, present):
    """Per design row (participant), the sample-level arrays averaged over their samples.

    ``clr`` and ``ref``: plain means; ``where_present``: the mean over the
    samples with the taxon (0 where none has it); ``present``: any sample.
    Rows without samples (not expected) get zeros and absence.
    """
    owner = np.asarray(owner, dtype=int)
    n = max(n, int(owner.max(initial=-1)) + 1)
    k = np.bincount(owner, minlength=n).astype(float)
    S = sparse.csr_matrix((np.ones(len(owner)), (owner, np.arange(len(owner)))), shape=(n, len(owner)))
    inv = 1.0 / np.maximum(k, 1.0)
    count_present = np.asarray(S @ present.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_present = np.where(count_present > 0, np.asarray(S @ where_present) / count_present, 0.0)
    return (np.asarray(S @ clr) * inv[:, None], (S @ ref) * inv, mean_present, count_present > 0)


# ---------------------------------------------------------------------------
# The components


def components(units: Units, resp: Responses, tested, options: dict) -> dict:
    """Raw (not bias-corrected) components for the tested column(s).

    Parameters
    ----------
    units : Units
    resp : Responses
    tested : ndarray (N,) or (R, N)
        The tested column: all ones for the observed labels of the paired form
        (the intercept of the household differences), +1/-1 for households
        whose labels a swap keeps/exchanges; status for the unpaired form.
    options : dict
        The ``primary`` settings.

    Returns
    -------
    dict of ndarray, each (p,) or (R, p)
        ``effect_A``, ``se_A``, ``df_A``, ``effect_B``, ``se_B``, ``df_B``,
        ``n_B``, ``eligible_B``, ``z_C``, ``p_C``, ``sign_C``, ``effect_C``,
        ``se_C``, ``n_C``.
    """
    t = np.asarray(tested, dtype=float)
    single = t.ndim == 1
    T = t[None] if single else t
    R, N = T.shape
    X = np.concatenate([T[..., None], np.broadcast_to(units.W, (R,) + units.W.shape)], axis=2)
    # weighted least squares as OLS on rows scaled by the root weights (HC3 of the scaled rows)
    root = np.sqrt(units.weight)
    X = X * root[None, :, None]
    fit_A = ols_fit(resp.A * root[:, None], X)
    fit_B = ols_fit(resp.B * root[:, None], X, resp.B_mask)
    minimum = int(options["min_both_present"])
    if units.paired:
        eligible_B = np.broadcast_to(resp.B_mask.sum(axis=0) >= minimum, fit_B["n"].shape)
    else:
        present_case = (T == 1).astype(float) @ resp.B_mask
        present_control = (T == 0).astype(float) @ resp.B_mask
        eligible_B = (present_case >= minimum / 2) & (present_control >= minimum / 2)
    W_C = np.column_stack([units.W, resp.scale])
    fit_C = score_test(resp.U, T, W_C, mask=resp.C_mask, variance="model")  # one null fit for every swap
    z, p_score = fit_C["stat"], fit_C["pvalue"]
    Cm = resp.C_mask.astype(float)
    if units.paired:
        # discordant households in which the (labelled) case side has the taxon
        b = (T > 0).astype(float) @ (Cm * resp.U) + (T < 0).astype(float) @ (Cm * (1 - resp.U))
        nd = np.broadcast_to(Cm.sum(axis=0), b.shape)
        c = nd - b
        exact = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(b, c), np.maximum(nd, 1), 0.5))
        small = nd < int(options["exact_below"])
        p_C = np.where(nd == 0, np.nan, np.where(small, exact, p_score))
        sign_C = np.where(small, np.sign(b - c), np.sign(z))
        effect_C = np.log((b + 0.5) / (c + 0.5))
        se_C = np.sqrt(1 / (b + 0.5) + 1 / (c + 0.5))
        n_C = nd
    else:
        cases = (T == 1).astype(float)
        with_case = cases @ resp.U
        with_control = (1 - cases) @ resp.U
        n1, n0 = cases.sum(axis=1, keepdims=True), (1 - cases).sum(axis=1, keepdims=True)
        a, b_, c_, d = with_case + 0.5, n1 - with_case + 0.5, with_control + 0.5, n0 - with_control + 0.5
        effect_C = np.log(a * d / (b_ * c_))
        se_C = np.sqrt(1 / a + 1 / b_ + 1 / c_ + 1 / d)
        constant = (resp.U.sum(axis=0) == 0) | (resp.U.sum(axis=0) == N)
        p_C = np.where(constant, np.nan, p_score)
        sign_C = np.sign(z)
        n_C = np.broadcast_to(float(N), p_C.shape)
    out = {"effect_A": fit_A["effect"], "se_A": fit_A["se"], "df_A": fit_A["df"],
           "effect_B": fit_B["effect"], "se_B": fit_B["se"], "df_B": fit_B["df"], "n_B": fit_B["n"],
           "eligible_B": eligible_B, "z_C": z, "p_C": p_C, "sign_C": sign_C, "effect_C": effect_C,
           "se_C": se_C, "n_C": n_C}
    out = {k: np.broadcast_to(np.asarray(v, dtype=float), (R, resp.A.shape[1])) for k, v in out.items()}
    return {k: v[0] for k, v in out.items()} if single else out


def ols_fit(Y, X, mask=None) -> dict:
    """HC3 fit of the tested column (the first of ``X``); no estimate with fewer than ``k + 2`` rows."""
    fit = ols_term(Y, X, 0, "hc3", mask=mask)
    ok = fit["n"] >= X.shape[-1] + 2
    fit["effect"] = np.where(ok, fit["effect"], np.nan)
    fit["se"] = np.where(ok, fit["se"], np.nan)
    return fit


def bias_estimates(raw: dict, resp: Responses, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """The compositional bias of A and B (local modes) for raw components (one or many replicates)."""
    minimum = int(options["local_bias_min_taxa"])
    eA, eB = np.atleast_2d(raw["effect_A"]), np.atleast_2d(raw["effect_B"])
    use_A = np.isfinite(eA).all(axis=0)
    use_B = np.isfinite(eB).all(axis=0) & (np.atleast_2d(raw["eligible_B"]) > 0).all(axis=0)
    bias_A = local_mode(np.where(use_A, eA, 0.0), resp.abundance, use_A, minimum)
    bias_B = local_mode(np.where(use_B, eB, 0.0), resp.abundance, use_B, minimum)
    shape = np.shape(raw["effect_A"])
    return bias_A.reshape(shape), bias_B.reshape(shape)


def combine(raw: dict, bias: tuple, bias_var: tuple, options: dict) -> dict:
    """Bias-corrected components, their combination, direction and the checks on the call.

    Parameters
    ----------
    raw : dict
        From :func:`components`.
    bias, bias_var : pair of arrays
        The A and B biases and the variances of their estimates.
    options : dict
        The ``primary`` settings.

    Returns
    -------
    dict of ndarray
        The raw entries plus ``effect_A``/``effect_B`` corrected, ``se_A``/
        ``se_B`` with the bias variance, ``p_A``, ``p_B``, ``pvalue``
        (ACAT), ``direction``, ``driver``, ``ambiguous``, ``below_min_effect``,
        ``bias_A``, ``bias_B``, ``bias_var_A``, ``bias_var_B``.
    """
    out = dict(raw)
    for name, b, v in (("A", bias[0], bias_var[0]), ("B", bias[1], bias_var[1])):
        out[f"effect_{name}"] = raw[f"effect_{name}"] - b
        out[f"se_{name}"] = np.sqrt(raw[f"se_{name}"] ** 2 + v)
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = out[f"effect_{name}"] / out[f"se_{name}"]
        out[f"p_{name}"] = 2 * stats.t.sf(np.abs(stat), np.maximum(raw[f"df_{name}"], 1))
        out[f"bias_{name}"] = np.broadcast_to(b, np.shape(stat))
        out[f"bias_var_{name}"] = np.broadcast_to(v, np.shape(stat))
    out["p_B"] = np.where(raw["eligible_B"] > 0, out["p_B"], np.nan)
    P = np.stack([out["p_A"], out["p_B"], out["p_C"]], axis=-1)
    S = np.stack([np.sign(out["effect_A"]), np.sign(out["effect_B"]), raw["sign_C"]], axis=-1)
    S = np.where(np.isfinite(P), np.nan_to_num(S), 0.0)
    out["pvalue"] = cauchy_combination(P, max_pvalue=MAX_COMPONENT_P)
    filled = np.where(np.isfinite(P), P, 2.0)
    out["direction"] = np.take_along_axis(S, filled.argmin(axis=-1)[..., None], axis=-1)[..., 0]
    significant = filled < ALPHA
    up = (significant & (S > 0)).any(axis=-1)
    down = (significant & (S < 0)).any(axis=-1)
    out["ambiguous"] = up & down
    # the minimum effect applies to the stronger of B and C (A when neither has a p-value)
    pB, pC = filled[..., 1], filled[..., 2]
    driver = np.where((pB == 2.0) & (pC == 2.0), 0, np.where(pB <= pC, 1, 2))
    size = np.choose(driver, [np.abs(out["effect_A"]), np.abs(out["effect_B"]), np.abs(raw["effect_C"])])
    floor = np.where(driver == 2, float(options["min_effect_presence_lnor"]), float(options["min_effect_log2"]))
    out["driver"] = np.array(COMPONENTS, dtype=object)[driver]
    out["below_min_effect"] = ~(np.nan_to_num(size) >= floor)
    return out


# ---------------------------------------------------------------------------
# Label swaps and the bias variance


@dataclass(frozen=True)
class Swaps:
    """Label swaps of the design: participant labels and therapies per replicate, (R, n)."""

    status: np.ndarray
    therapy: np.ndarray


def swap_labels(design: Design, n: int, seed: int, stream: int = SWAP_STREAM) -> Swaps:
    """``n`` label swaps: within households with prob. 1/2, permutations within site for the unpaired.

    Parameters
    ----------
    design : Design
    n : int
    seed : int
        The run's seed; with ``stream`` it seeds the swaps, so the first
        ``k`` swaps are the same whatever ``n`` is (every user of the swaps
        sees the same ones).

    Notes
    -----
    In a household with a case and a control the labels of all its members
    are exchanged with probability 1/2 (the case's therapy goes to the new
    labelled case); participants without a partner get the status and
    therapy of a random permutation within their site. Under the null of no
    MS effect (within-household exchangeability) each swap is a draw from
    the same distribution as the data.
    """
    frame = design.frame
    status = frame["status"].to_numpy().astype(int)
    therapy = participant_therapy(design)
    paired = frame["paired"].to_numpy()
    households = frame["household"].to_numpy().astype(str)
    idx = np.flatnonzero(paired)
    codes, g = np.unique(households[idx], return_inverse=True)
    first_case = {}
    for i in idx[status[idx] == 1]:
        first_case.setdefault(households[i], therapy[i])
    own = np.array([first_case[h] for h in households[idx]], dtype=object) if len(idx) else np.array([], object)
    unpaired = np.flatnonzero(~paired)
    sites = frame["site"].to_numpy().astype(str)
    groups = [unpaired[sites[unpaired] == s] for s in sorted(set(sites[unpaired]))]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), stream]))
    S = np.repeat(status[None], n, axis=0)
    T = np.repeat(therapy[None], n, axis=0)
    for r in range(n):
        flip = rng.random(len(codes)) < 0.5
        new = np.where(flip[g], 1 - status[idx], status[idx])
        S[r, idx] = new
        T[r, idx] = np.where(new == 1, own, "")
        for members in groups:
            perm = rng.permutation(members)
            S[r, members] = status[perm]
            T[r, members] = therapy[perm]
    return Swaps(S, T)


def tested_column(units: Units, design: Design, status: np.ndarray) -> np.ndarray:
    """The tested column for swapped labels ``status`` (R, n): +1/-1 per household, or the status."""
    if not units.paired:
        return np.asarray(status, dtype=float)[:, units.rows]
    original = design.frame["status"].to_numpy().astype(float)
    first = np.asarray(units.case.argmax(axis=1)).ravel()  # a case of each household
    return np.where(np.asarray(status)[:, first] == original[first], 1.0, -1.0)


@dataclass
class Prepared:
    """Everything the primary test and its calibration reuse for one cohort.

    ``values`` are the rows the responses start from: participants (the
    design's rows), or with ``repeated_samples: all`` stool samples, ``owner``
    then giving each sample's design row (else None) and ``variance`` the
    participants' summary variances behind the weights
    (:func:`summary_variance`; None: unweighted).
    """

    data: StageData
    options: dict
    units: Units
    values: np.ndarray
    owner: np.ndarray | None
    variance: np.ndarray | None
    feature_columns: np.ndarray
    resp: Responses
    swaps: Swaps
    raw_null: dict
    bias_null: tuple
    bias_var: tuple

    def units_for(self, status, therapy) -> Units:
        """The units for other (swapped) labels, weighted as the observed ones."""
        return make_units(self.data.design, int(self.options["min_pairs"]), status, therapy,
                          variance=self.variance)

    def sample_status(self, status) -> np.ndarray:
        """Per row of ``values``, the participant's label in ``status`` (per design row)."""
        status = np.asarray(status)
        return status if self.owner is None else status[self.owner]

    def responses(self, units: Units, values: np.ndarray | None = None) -> Responses:
        """The responses of ``values`` (default the cohort's) for ``units``."""
        values = self.values if values is None else values
        return responses(values, self.data.kind, self.feature_columns, units, self.owner)


def sample_rows(data: StageData) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows the responses start from and each row's design row (see :class:`Prepared`)."""
    if data.samples is None:
        return data.profiles.to_numpy(dtype=float), None
    owner = data.design.frame.index.get_indexer(data.samples.index)
    keep = owner >= 0
    return data.samples.to_numpy(dtype=float)[keep], owner[keep]


def prepare_primary(data: StageData) -> Prepared:
    """Units, responses, the null swaps' raw components and the bias variance of a cohort."""
    options = data.settings.primary
    n_swaps = int(data.settings.calibration["null_replicates"])
    values, owner = sample_rows(data)
    feature_columns = np.array([data.profiles.columns.get_loc(f) for f in data.features], dtype=int)
    variance = None
    if owner is not None and options.get("weight_by_samples", True):
        variance = summary_variance(values, data.kind, feature_columns, owner, len(data.design.frame))
    prep = Prepared(data, options, None, values, owner, variance, feature_columns, None, None, None, None, None)
    prep.units = make_units(data.design, int(options["min_pairs"]), variance=variance)
    prep.resp = prep.responses(prep.units)
    prep.swaps = swap_labels(data.design, n_swaps, data.settings.seed)
    prep.raw_null = components(prep.units, prep.resp, tested_column(prep.units, data.design, prep.swaps.status),
                               options)
    prep.bias_null = bias_estimates(prep.raw_null, prep.resp, options)
    prep.bias_var = tuple(np.var(b, axis=0, ddof=1) if len(b) > 1 else np.zeros(b.shape[1])
                          for b in prep.bias_null)
    return prep


def observed_tested(units: Units) -> np.ndarray:
    """The tested column of the observed labels."""
    return np.ones(len(units)) if units.paired else units.status


def test_taxa(units: Units, resp: Responses, options: dict, bias_var: tuple) -> dict:
    """The primary test of every taxon for one labelling (bias from these data, its variance given)."""
    raw = components(units, resp, observed_tested(units), options)
    bias = bias_estimates(raw, resp, options)
    result = combine(raw, bias, bias_var, options)
    result["qvalue"] = bh(result["pvalue"])
    return result


# ---------------------------------------------------------------------------
# The therapy check


def therapy_check(units: Units, resp: Responses, result: dict, candidates, options: dict) -> np.ndarray:
    """Per taxon, the therapy that carries its MS difference ("" if none or not checked).

    Parameters
    ----------
    units, resp : the test's units and responses
    result : dict
        :func:`test_taxa`'s result for them (bias, its variance, direction).
    candidates : array_like of bool (p,)
        The taxa to check (those that may be called).
    options : dict
        The ``primary`` settings.

    Notes
    -----
    For every therapy (not ``untreated``) of at least
    ``primary.therapy_min_households`` units, with as many units without it,
    the test (bias held at the cohort's) is repeated on the units without
    that therapy ("rest") and on the units with it (plus, unpaired, the
    controls: "own"). A taxon is carried by the therapy when the rest shows
    no difference in the taxon's direction (p >= 0.05 or the other sign)
    while its own units do (p < 0.05, same sign): a drug effect that the
    all-pairs test would otherwise read as disease. The first therapy found,
    in alphabetical order, is reported.
    """
    carried = np.full(resp.A.shape[1], "", dtype=object)
    columns = np.flatnonzero(np.asarray(candidates, bool))
    if not len(columns):
        return carried
    minimum = int(options["therapy_min_households"])
    sub = resp.columns(columns)
    bias = (result["bias_A"][columns], result["bias_B"][columns])
    variance = (result["bias_var_A"][columns], result["bias_var_B"][columns])
    direction = result["direction"][columns]
    no_case = units.therapy == ""
    for name in sorted(set(units.therapy) - {"", "untreated"}):
        on = units.therapy == name
        if on.sum() < minimum or (~on & ~no_case).sum() < minimum:
            continue
        found = {}
        for part, keep in (("rest", ~on), ("own", on | no_case)):
            u = units.subset(keep)
            raw = components(u, sub.rows(keep), observed_tested(u), options)
            test = combine(raw, bias, variance, options)
            found[part] = (np.nan_to_num(test["pvalue"], nan=1.0) < ALPHA) & (test["direction"] == direction)
        hit = ~found["rest"] & found["own"] & (carried[columns] == "")
        carried[columns[hit]] = name
    return carried


# ---------------------------------------------------------------------------
# The stage's table

COLUMNS = ["effect_A", "se_A", "p_A", "effect_B", "se_B", "p_B", "n_B", "effect_C", "se_C", "p_C", "n_C",
           "bias_A", "bias_var_A", "bias_B", "bias_var_B", "direction", "driver", "ambiguous",
           "below_min_effect", "carried_by"]


def scale_text(units: Units) -> str:
    return ("log2 fold change (all-pairs paired CLR difference, bias-corrected)" if units.paired else
            "log2 fold change (CLR regression on status, bias-corrected)")


def run(data: StageData) -> pd.DataFrame:
    """The primary test of every tested taxon: ``differential/primary.tsv``.

    Returns
    -------
    DataFrame
        One row per tested feature, sorted: the method contract
        (:mod:`.methods`: ``feature``, ``method`` = ``primary``, ``effect`` =
        A's bias-corrected log2 effect, ``se`` with the bias variance,
        ``stat``, ``pvalue`` = the combination, ``qvalue``, ``n``,
        ``n_nonzero``, prevalence and mean abundance by group, ``scale``),
        then ``design`` (``paired``/``unpaired``), ``n_units``,
        ``repeated_samples`` (the policy), ``n_samples`` (stool samples behind
        the compared participants' profiles) and :data:`COLUMNS` (``n_B``: households with it on both sides, or
        participants with it; ``n_C``: discordant households, or
        participants; ``carried_by``: only for taxa with q below half the
        FDR level, the largest level a call can use).
    """
    prep = prepare_primary(data)
    options = prep.options
    result = test_taxa(prep.units, prep.resp, options, prep.bias_var)
    candidates = np.nan_to_num(result["qvalue"], nan=1.0) < float(data.settings.fdr_level) / 2
    result["carried_by"] = therapy_check(prep.units, prep.resp, result, candidates, options)
    return primary_table(data, prep.units, result)


def primary_table(data: StageData, units: Units, result: dict) -> pd.DataFrame:
    """:func:`run`'s table from a test result."""
    index = pd.Index(data.features, name="feature")
    table = pd.DataFrame({"effect": result["effect_A"], "se": result["se_A"]}, index=index)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["stat"] = table["effect"] / table["se"]
    table["pvalue"] = result["pvalue"]
    table["qvalue"] = result["qvalue"]
    used = units.participants(data.design.frame.index)
    stats_ = describe(data.profiles.loc[used], data.design.frame.loc[used, "status"].to_numpy(), data.features)
    table = table.join(stats_)
    table["method"] = "primary"
    table["scale"] = scale_text(units)
    table["design"] = "paired" if units.paired else "unpaired"
    table["n_units"] = len(units)
    table["repeated_samples"] = data.settings.repeated_samples
    table["n_samples"] = int(data.n_samples().loc[used].sum())
    for column in COLUMNS:
        table[column] = result[column]
    table["direction"] = table["direction"].astype(int)
    table["ambiguous"] = table["ambiguous"].astype(bool)
    table["below_min_effect"] = table["below_min_effect"].astype(bool)
    front = ["feature", "method", "effect", "se", "stat", "pvalue", "qvalue", "n", "n_nonzero",
             "prevalence_case", "prevalence_control", "mean_abundance_case", "mean_abundance_control", "scale",
             "design", "n_units", "repeated_samples", "n_samples"]
    table = table.reset_index()
    return table[front + COLUMNS].sort_values("feature", kind="stable", ignore_index=True)
