"""The per-taxon progression call: protective, neutral or high-risk for severity and damage within MS.

Rule (:class:`Rule`; keys ``clinical.progression``, defaults in
``config/schema/clinical.schema.yaml``, in brackets), applied to the table of
:func:`workflow_scripts.clinical.associations.associate`, whose axes are all
"higher = more severe / more damage". An axis's p-value is the Cauchy
combination of its component tests and its direction that of the strongest
component (0 when abundance and presence disagree: ``ambiguous``):

1. *One family.* Benjamini-Hochberg over every taxon x axis test at once
   (``q_<axis>`` in the output), so the false-discovery rate is controlled
   over all the calls the stage could make, not axis by axis.
2. *Evidence.* An axis counts when its family q-value is below ``q`` [0.01]
   and it has a direction. A taxon needs ``min_axes`` such axes [2], or one
   with q below ``strong_q`` [0.001].
3. *Direction.* The counted axes all go the same way (else ``discordant``),
   and at least ``min_sign_agreement`` [2/3] of every fitted axis's direction
   agrees with it.
4. *Corroboration* (``corroborate`` [on]). The axes form two families of
   evidence (:data:`FAMILIES`): disability (EDSS, ARMSS, MSSS, course: all
   read off the same EDSS examination, so they share its noise and agree
   with each other by construction) and damage (sNfL, GFAP: measured apart in
   blood). Every family the cohort measured must show the direction on at
   least one axis at p < ``corroboration_p`` [0.05]. A chance finding on the
   EDSS carries over to ARMSS and MSSS, but not to the blood; a taxon truly
   tied to severity shows in both. A cohort without blood markers (or without
   EDSS) is judged on the family it has, and the reason says so.
5. *Not carried by therapy.* Refitted in untreated patients only, the
   directions of the counted axes stay the same on at least
   ``min_untreated_agreement`` [1/2] of those with an untreated fit. Without
   any untreated fit (too few untreated patients) the check cannot be made and
   the reason says so.

``high-risk``: higher abundance goes with more severe disease or more damage;
``protective``: the opposite; ``neutral``: anything else, with the reason
(``no evidence``, ``ambiguous``, ``one axis, not strong``, ``discordant``,
``inconsistent``, ``not corroborated``, ``not seen in untreated patients``).

Calibration (benchmarks/calibrate_clinical.py; figures in README "Clinical"):
on generated cohorts of 200 species with 20 severity-linked ones (20 seeds per
size, each with its null twin) precision 0.996-1.000 at every size, recall 1.00
from 150 households, 0.92 at 100 and 0.67 at 80; 0.94 at 300 households when
the severity-linked species have natural zeros (30-80 % prevalence); no call on
any null twin; an MS-risk-only species called in 1 of 120 planted cohorts. The
looser q = 0.05 / strong 0.01 (the MS-risk call's thresholds) had recall 0.89
at 80 households but 1-4 % of the calls wrong and an MS-risk-only species called
in 11 of 300 cohorts (earlier CLR-only calibration): with 20 true taxa
Benjamini-Hochberg lets about one false taxon in per cohort, and one in ten
species is an MS-risk one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workflow_scripts.models.multiple_testing import bh

CLASSES = ("protective", "neutral", "high-risk")


#: Independent lines of evidence: the disability scores share the EDSS (and its noise); the blood
#: markers are measured apart. An axis outside these is a family of its own.
FAMILIES = {"disability": ("edss", "armss", "msss", "progressive"), "damage": ("snfl_z", "gfap_z")}


@dataclass(frozen=True)
class Rule:
    """Thresholds of the progression call: ``clinical.progression`` (keys and defaults in its schema)."""

    q: float
    strong_q: float
    min_axes: int
    min_sign_agreement: float
    min_untreated_agreement: float
    corroborate: bool
    corroboration_p: float

    @classmethod
    def from_settings(cls, settings) -> "Rule":
        """From :class:`~workflow_scripts.clinical.analyse.ClinicalSettings`."""
        return cls(**settings.progression)

    @classmethod
    def from_config(cls, **values) -> "Rule":
        """From keys of ``clinical.progression`` (any subset); the schema fills the rest."""
        from workflow_scripts.settings import fill_defaults

        return cls(**fill_defaults("clinical", {"progression": values})["progression"])


def _fmt(q: float) -> str:
    return f"{q:.1e}" if q < 0.001 else f"{q:.3f}"


def family_of(axis: str) -> str:
    return next((name for name, members in FAMILIES.items() if axis in members), axis)


def progression_calls(table: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """One call per taxon from the association table.

    Parameters
    ----------
    table : DataFrame
        :func:`~workflow_scripts.clinical.associations.associate` output
        (``feature``, ``axis``, ``effect``, ``pvalue``, ``direction``,
        ``pvalue_untreated``, ``direction_untreated``, ``driver``).
    rule : Rule

    Returns
    -------
    DataFrame
        One row per feature (sorted): ``progression_class``,
        ``progression_reason``, ``direction`` (+1, -1, 0), ``n_axes``,
        ``n_axes_significant``, ``min_qvalue``, ``sign_agreement``,
        ``untreated_agreement``, ``corroborated_by`` (the evidence families
        with an axis at p < ``corroboration_p`` in the call's direction), then
        ``effect_<axis>`` (the CLR effect), ``direction_<axis>`` and
        ``q_<axis>`` (family q-value) for every axis in the table.

    Notes
    -----
    An axis's direction is that of its strongest component
    (:func:`workflow_scripts.clinical.associations.combine`), which for a
    zero-inflated taxon may be the abundance-where-present or the presence
    test rather than the CLR effect.
    """
    if table.empty:
        return pd.DataFrame(columns=["feature", "progression_class", "progression_reason"])
    t = table.copy()
    t["q_family"] = bh(t["pvalue"].to_numpy(dtype=float))
    axes = list(pd.unique(t["axis"]))

    def wide(column):
        return t.pivot(index="feature", columns="axis", values=column).reindex(columns=axes)

    features = wide("effect").index
    e, p, q, d, pu, du = (wide(c).to_numpy(dtype=float) for c in
                          ("effect", "pvalue", "q_family", "direction", "pvalue_untreated", "direction_untreated"))
    driver = wide("driver").to_numpy(dtype=object)
    sig = (q < rule.q) & (d != 0)
    fitted = np.isfinite(p)
    up = (sig & (d > 0)).sum(axis=1)
    down = (sig & (d < 0)).sum(axis=1)
    n_sig = up + down
    direction = np.where((up > 0) & (down == 0), 1, np.where((down > 0) & (up == 0), -1, 0))
    n_fitted = fitted.sum(axis=1)
    same_sign = d == direction[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        agree = (fitted & same_sign).sum(axis=1) / n_fitted
        checkable = sig & np.isfinite(pu)
        u_agree = (checkable & (du == direction[:, None])).sum(axis=1) / checkable.sum(axis=1)
    min_q = np.min(np.where(np.isfinite(q), q, np.inf), axis=1)
    family = np.array([family_of(a) for a in axes])
    names = list(dict.fromkeys([*FAMILIES, *family]))  # a family without any axis counts as not measured
    support = (p < rule.corroboration_p) & same_sign
    measured = np.column_stack([fitted[:, family == f].any(axis=1) for f in names])
    backed = np.column_stack([support[:, family == f].any(axis=1) for f in names])

    classes, reasons, corroborated = [], [], []
    for i in range(len(features)):
        cls, reason = _decide(rule, axes, e[i], q[i], d[i], driver[i], sig[i], n_sig[i], direction[i], agree[i],
                              u_agree[i], checkable[i].sum(), names, measured[i], backed[i])
        classes.append(cls)
        reasons.append(reason)
        corroborated.append(", ".join(f for f, b in zip(names, backed[i]) if b) if direction[i] else "")
    out = pd.DataFrame({
        "feature": features, "progression_class": classes, "progression_reason": reasons,
        "direction": direction, "n_axes": n_fitted, "n_axes_significant": n_sig,
        "min_qvalue": np.where(np.isfinite(min_q), min_q, np.nan), "sign_agreement": agree,
        "untreated_agreement": u_agree, "corroborated_by": corroborated,
    })
    for j, axis in enumerate(axes):
        out[f"effect_{axis}"] = e[:, j]
        out[f"direction_{axis}"] = d[:, j]
        out[f"q_{axis}"] = q[:, j]
    return out.sort_values("feature", ignore_index=True)


def _decide(rule, axes, e, q, d, driver, sig, n_sig, direction, agree, u_agree, n_checkable, families, measured,
            backed) -> tuple[str, str]:
    """Class and reason of one taxon (see the module docstring)."""
    counted = ", ".join(f"{axes[j]} {'+' if d[j] > 0 else '-'} (q {_fmt(q[j])}, {driver[j]}; CLR effect {e[j]:+.2f})"
                        for j in np.flatnonzero(sig))
    if n_sig == 0:
        best = np.argmin(np.where(np.isfinite(q), q, np.inf)) if np.isfinite(q).any() else None
        ambiguous = [axes[j] for j in np.flatnonzero((q < rule.q) & (d == 0))]
        if ambiguous:
            return "neutral", (f"ambiguous: q < {rule.q:g} on {', '.join(ambiguous)}, but abundance and presence "
                               "disagree in direction")
        detail = f"; smallest q {_fmt(q[best])} ({axes[best]})" if best is not None else ""
        return "neutral", f"no evidence: no axis with q < {rule.q:g}{detail}"
    if direction == 0:
        return "neutral", f"discordant: axes with q < {rule.q:g} disagree in sign: {counted}"
    if n_sig < rule.min_axes and not (np.nanmin(q[sig]) < rule.strong_q):
        return "neutral", (f"one axis, not strong: {counted}; needs {rule.min_axes} axes "
                           f"or q < {rule.strong_q:g}")
    if agree < rule.min_sign_agreement:
        return "neutral", (f"inconsistent: only {agree:.0%} of the axes' estimates share the sign of {counted} "
                           f"(needs {rule.min_sign_agreement:.0%})")
    lacking = [f for f, m, b in zip(families, measured, backed) if m and not b]
    if rule.corroborate and lacking:
        return "neutral", (f"not corroborated: {counted}, but no {' or '.join(lacking)} axis with "
                           f"p < {rule.corroboration_p:g} in that direction")
    word = "high-risk" if direction > 0 else "protective"
    trend = "higher" if direction > 0 else "lower"
    missing = [f for f, m in zip(families, measured) if not m]
    notes = [f"{' and '.join(missing)} not measured: no corroboration from it"] if missing and rule.corroborate \
        else []
    if n_checkable == 0:
        notes.append("no untreated refit (too few untreated patients): therapy not checked")
    elif u_agree < rule.min_untreated_agreement:
        return "neutral", (f"not seen in untreated patients: {counted}, but the untreated-only estimates agree "
                           f"on {u_agree:.0%} of these axes (needs {rule.min_untreated_agreement:.0%}); "
                           "a therapy may carry it")
    else:
        notes.append(f"same sign in untreated patients on {u_agree:.0%} of these axes")
    return word, f"{trend} abundance with more severe disease: {counted}; " + "; ".join(notes)
