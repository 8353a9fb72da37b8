"""Classify every taxon as protective, neutral or high-risk, with the evidence.

The MS-risk class comes from the differential stage's primary test (files
only: ``consensus.tsv``, ``primary.tsv``, ``calibration.tsv``; the test and
its call rule are documented in ``workflow_scripts/differential/primary.py``
and ``calls.py``). The rule (parameters in
``config/schema/classification.schema.yaml``):

1. The primary test calls the taxon (``consensus.tsv`` ``call`` ``up`` or
   ``down``): every household pair, abundance (A, B) and presence (C), q below
   the level the cohort's calibration chose (``q_threshold_used``), no
   direction conflict between components, at least the minimum effect, and
   no single therapy carrying the difference. A taxon that was significant but
   failed one of these says which (``call_reason``).
2. The taxon is present in at least ``min_prevalence`` of cases or of controls.
3. The sign is consistent across sites: at least ``min_site_agreement`` of
   the sites with an estimate (per-site LinDA, ``site_effects.tsv``) show the
   call's sign. With ``exclude_site_driven`` the site meta-analysis must also
   keep its significance when any one site is left out; this is off by
   default because with few sites leaving one out often costs significance
   for real effects, so ``site_driven`` is reported as evidence instead.

``up`` then means **high-risk** (enriched in MS) and ``down`` **protective**;
anything else is **neutral**, with the reason. If the calibration flagged the
primary test's type-I error on this cohort, every call says so.

``evidence`` says what a neutral class means (empty for called taxa):

- ``equivalent``: the 90% confidence intervals (two one-sided tests at 5%)
  of the all-pairs log2 effect (A) and, where available, of the abundance
  where present (B) lie within +-``equivalence_margin_log2``, and that of
  the presence log odds ratio (C) within +-``equivalence_margin_lnor``:
  the cohort shows the taxon does not differ by more than that;
- ``inconclusive``: neither called nor shown equivalent; ``mde_log2`` is the
  smallest |log2 fold change| the A test detects with 80% power at a
  two-sided 0.05 (``2.80 x se_A``; the multiple-testing adjustment raises
  it), and ``calibration_power_2x`` the share of 2-fold changes the
  calibration detected among taxa of the same prevalence band;
- ``not tested``: below the prevalence filter (and the unassigned bucket).

A taxon not called but changed by a therapy (a therapy indicator significant
in ``differential/treatment_effects.tsv``) is neutral "changed by therapy
only"; one whose difference a therapy carries (the primary test's therapy
check) is neutral "MS difference carried by <therapy>". Untested taxa get a
neutral row, so every taxon of the cohort has exactly one row. The six
methods' effects and q-values, and their agreement (``methods_call``), are
evidence beside the class; they do not vote.

Genotype modifiers: every variant with a significant genotype x MS
interaction for the taxon (``association/genotype_species.tsv``), described
relative to the taxon's MS effect, e.g. "rs3135388 (HLA-DRB1*15:01 tag):
stronger enrichment in MS among carriers".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from ..settings import StageSettings

CLASSES = ("protective", "neutral", "high-risk")


@dataclass(frozen=True)
class ClassificationRule(StageSettings):
    """The ``classification`` config section (keys and defaults in its schema); build with :meth:`from_config`."""

    SECTION: ClassVar[str] = "classification"

    min_prevalence: float
    min_site_agreement: float
    exclude_site_driven: bool
    equivalence_margin_log2: float
    equivalence_margin_lnor: float
    q_threshold: float


def site_agreement(site_effects: pd.DataFrame, direction: pd.Series) -> pd.DataFrame:
    """Per taxon: sites with an estimate, and the fraction whose effect has ``direction``'s sign."""
    frame = site_effects.dropna(subset=["effect"])
    sign = np.sign(frame["effect"]) == frame["feature"].map(direction).fillna(0)
    grouped = sign.groupby(frame["feature"])
    return pd.DataFrame({"n_sites_estimated": grouped.size(), "site_agreement": grouped.mean()})


def _treatment_text(treatment: pd.DataFrame | None, q: float) -> pd.Series:
    """Per taxon: the therapies that change it significantly, in words."""
    if treatment is None or treatment.empty:
        return pd.Series(dtype=object)
    hits = treatment[treatment["qvalue"] < q].sort_values(["feature", "qvalue", "term"])
    text = {feature: "; ".join(f"{t.removeprefix('dmt_')} ({e:+.2f}, q={qv:.2g})"
                               for t, e, qv in zip(g["term"], g["effect"], g["qvalue"]))
            for feature, g in hits.groupby("feature")}
    return pd.Series(text, dtype=object)


def modifier_text(beta: float, call: str, name: str) -> str:
    """How a genotype x MS interaction changes the taxon's MS effect, in words."""
    carriers = f"{name} carriers"
    if call == "up":
        return f"stronger enrichment in MS among {carriers}" if beta > 0 else \
            f"weaker enrichment in MS among {carriers}"
    if call == "down":
        return f"stronger depletion in MS among {carriers}" if beta < 0 else \
            f"weaker depletion in MS among {carriers}"
    return f"higher in MS than in controls among {carriers}" if beta > 0 else \
        f"lower in MS than in controls among {carriers}"


def genotype_modifiers(associations: pd.DataFrame | None, variants: pd.DataFrame | None,
                       calls: pd.Series, q: float) -> pd.DataFrame:
    """Per taxon: the number of significant genotype x MS interactions and their description."""
    if associations is None or associations.empty:
        return pd.DataFrame(columns=["n_genotype_modifiers", "genotype_modifiers"])
    labels = {}
    if variants is not None:
        labels = {v: lab for v, lab in zip(variants["variant_id"], variants["label"]) if isinstance(lab, str) and lab}
    hits = associations[associations["q_interaction"] < q].sort_values(["feature", "q_interaction", "variant_id"])
    rows = {}
    for feature, group in hits.groupby("feature"):
        parts = []
        for vid, beta, qv in zip(group["variant_id"], group["beta_interaction"], group["q_interaction"]):
            label = labels.get(vid)
            shown = f"{vid} ({label})" if label else vid
            words = modifier_text(beta, calls.get(feature, "none"), label or vid)
            parts.append(f"{shown}: {words} (beta_int={beta:+.2f}, q={qv:.2g})")
        rows[feature] = (len(group), "; ".join(parts))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["n_genotype_modifiers", "genotype_modifiers"])


#: Two-sided 5% and 80% power: the minimum detectable effect is (z_0.975 + z_0.8) x SE.
MDE_FACTOR = float(stats.norm.isf(0.025) + stats.norm.isf(0.2))
#: One-sided 5% for the two one-sided tests of equivalence (a 90% interval).
TOST_Z = float(stats.norm.isf(0.05))


def calibration_summary(calibration: pd.DataFrame | None) -> tuple[pd.Series, bool, float | None]:
    """From ``calibration.tsv``: power for 2-fold changes by prevalence band, whether the primary
    test's type-I error was flagged, and the BH level in force."""
    if calibration is None or calibration.empty:
        return pd.Series(dtype=float), False, None
    c = calibration.fillna({"effect": "", "prevalence_band": ""})
    power = c[(c["scope"] == "classification") & (c["metric"] == "power") & (c["effect"] == "2x")]
    power = power.set_index("prevalence_band")["value"].astype(float)
    primary = c[(c["scope"] == "primary") & (c["metric"] == "type1_error_0.05")]
    flagged = bool((primary["status"] == "flagged").any())
    used = c[(c["scope"] == "classification") & (c["metric"] == "q_threshold_used")]["value"]
    return power, flagged, float(used.iloc[0]) if len(used) else None


def prevalence_band(prevalence: pd.Series) -> pd.Series:
    """The calibration's prevalence bands (<30%, 30-60%, >=60%)."""
    bands = pd.cut(prevalence, [-np.inf, 0.3, 0.6, np.inf], right=False, labels=["<30%", "30-60%", ">=60%"])
    return bands.astype(object)


def evidence(primary: pd.DataFrame, called: pd.Series, rule: ClassificationRule) -> pd.DataFrame:
    """``evidence`` (``equivalent``/``inconclusive``; empty for called taxa) and ``mde_log2`` per tested taxon.

    Parameters
    ----------
    primary : DataFrame
        ``primary.tsv`` indexed by feature (``effect_A``, ``se_A``, ``effect_B``,
        ``se_B``, ``p_B``, ``effect_C``, ``se_C``, ``p_C``).
    called : Series of bool
    rule : ClassificationRule
    """
    def within(effect, se, margin, available):
        inside = (effect - TOST_Z * se > -margin) & (effect + TOST_Z * se < margin)
        return inside.fillna(False) | ~available

    a = within(primary["effect_A"], primary["se_A"], rule.equivalence_margin_log2,
               pd.Series(True, index=primary.index))
    b = within(primary["effect_B"], primary["se_B"], rule.equivalence_margin_log2, primary["p_B"].notna())
    c = within(primary["effect_C"], primary["se_C"], rule.equivalence_margin_lnor, primary["p_C"].notna())
    equivalent = a & b & c & primary["se_A"].notna()
    text = np.where(called, "", np.where(equivalent, "equivalent", "inconclusive"))
    return pd.DataFrame({"evidence": text, "mde_log2": MDE_FACTOR * primary["se_A"]}, index=primary.index)


def _call_words(row, level) -> str:
    word = "enriched" if row["call"] == "up" else "depleted"
    parts = [f"{word} in MS: primary q = {row['primary_qvalue']:.3g} < {level:g}",
             f"all pairs {row['effect_A']:+.2f} log2"]
    if pd.notna(row.get("p_B")):
        parts.append(f"where present {row['effect_B']:+.2f} log2")
    if pd.notna(row.get("p_C")):
        parts.append(f"presence ln OR {row['effect_C']:+.2f}")
    return ", ".join(parts) + f" (driven by {row['driver']})"


def _neutral_words(row, treated, power) -> str:
    if isinstance(row["call_reason"], str) and row["call_reason"]:
        return row["call_reason"]
    if isinstance(treated, str):
        return f"changed by therapy only: {treated}"
    text = f"no difference found (primary q = {row['primary_qvalue']:.3g})"
    if row["evidence"] == "equivalent":
        return text + "; equivalent within the margin"
    words = f"; 80% power only for |log2 FC| >= {row['mde_log2']:.2g}"
    if pd.notna(power):
        words += f" (2-fold changes at this prevalence detected in {power:.0%} of the calibration's implants)"
    return text + words


def classify(consensus: pd.DataFrame, primary: pd.DataFrame, site_effects: pd.DataFrame | None,
             rule: ClassificationRule, untested: pd.DataFrame | None = None,
             treatment: pd.DataFrame | None = None, calibration: pd.DataFrame | None = None,
             associations: pd.DataFrame | None = None, variants: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per taxon with its class, the evidence and the reason (see the module docstring).

    Parameters
    ----------
    consensus : DataFrame
        ``differential/consensus.tsv`` (``call``, ``call_reason``,
        ``primary_qvalue``, the methods' columns, the site meta-analysis).
    primary : DataFrame
        ``differential/primary.tsv`` (the components, prevalence and mean
        abundance in cases and controls).
    site_effects : DataFrame or None
        ``differential/site_effects.tsv`` (feature, site, effect, ...).
    untested : DataFrame or None
        Ledger rows of taxa that did not enter the tests (``differential/ledger.tsv``).
    treatment : DataFrame or None
        ``differential/treatment_effects.tsv`` (feature, term, effect, qvalue).
    calibration : DataFrame or None
        ``differential/calibration.tsv``.
    associations, variants : DataFrame or None
        ``association/genotype_species.tsv`` and the cohort's variant annotation.
    """
    c = consensus.set_index("feature")
    p = primary.set_index("feature").reindex(c.index)
    power, flagged, level = calibration_summary(calibration)
    level = level if level is not None else float(c["q_threshold_used"].iloc[0]) if len(c) else np.nan
    direction = c["call"].map({"up": 1.0, "down": -1.0}).fillna(0.0)
    sites = site_agreement(site_effects, direction).reindex(c.index) if site_effects is not None and \
        len(site_effects) else pd.DataFrame(index=c.index, columns=["n_sites_estimated", "site_agreement"])
    prevalence = p[["prevalence_case", "prevalence_control"]].max(axis=1)
    treated = _treatment_text(treatment, rule.q_threshold).reindex(c.index)
    overall = (p["n_nonzero"] / p["n"]).astype(float)
    band_power = prevalence_band(overall).map(power).astype(float)

    classes, reasons = [], []
    for feature in c.index:
        row = c.loc[feature]
        agree = sites.loc[feature, "site_agreement"]
        n_est = sites.loc[feature, "n_sites_estimated"]
        if row["call"] == "none":
            cls, reason = "neutral", None
        elif prevalence[feature] < rule.min_prevalence:
            cls, reason = "neutral", f"prevalence {prevalence[feature]:.0%} below the minimum"
        elif pd.notna(agree) and n_est >= 2 and agree < rule.min_site_agreement:
            cls, reason = "neutral", f"sign inconsistent across sites ({agree:.0%} of {int(n_est)} sites agree)"
        elif rule.exclude_site_driven and bool(row.get("site_driven", False)):
            cls, reason = "neutral", f"driven by one site ({row.get('loo_site')})"
        else:
            cls = "high-risk" if row["call"] == "up" else "protective"
            reason = _call_words(pd.concat([row, p.loc[feature]]), level)
            if flagged:
                reason += "; calibration flagged: primary test miscalibrated on this cohort"
        classes.append(cls)
        reasons.append(reason)

    out = pd.DataFrame({"feature": c.index, "class": classes}).set_index("feature")
    out = out.join(evidence(p, out["class"] != "neutral", rule))
    out["calibration_power_2x"] = band_power
    merged = c[["call_reason", "primary_qvalue"]].join(out[["evidence", "mde_log2"]])
    out["reason"] = [r if r is not None else _neutral_words(merged.loc[f], treated.get(f), band_power.get(f))
                     for f, r in zip(c.index, reasons)]
    components = ["effect_A", "se_A", "p_A", "effect_B", "se_B", "p_B", "n_B", "effect_C", "se_C", "p_C", "n_C",
                  "direction", "driver", "carried_by", "design"]
    out = out.join(c[["call", "primary_qvalue", "q_threshold_used"]]).join(
        p[[col for col in components if col in p.columns]])
    evidence_columns = [col for col in c.columns if col.startswith(("effect_", "q_")) and col != "q_threshold_used"]
    evidence_columns += [col for col in ("methods_call", "n_methods", "n_significant", "sign_agreement",
                                         "meta_effect", "meta_pvalue", "i2", "n_sites", "site_driven",
                                         "pseudocount_robust") if col in c.columns]
    out = out.join(c[evidence_columns]).join(sites).join(
        p[["prevalence_case", "prevalence_control", "mean_abundance_case", "mean_abundance_control"]])
    out["treatment_effects"] = treated
    out = out.join(genotype_modifiers(associations, variants, c["call"], rule.q_threshold))
    out["n_genotype_modifiers"] = out["n_genotype_modifiers"].fillna(0).astype(int)
    if untested is not None and len(untested):
        extra = untested[~untested["id"].isin(out.index)]
        reasons = "not tested: " + extra["detail"].str.split(": ", n=1).str[-1]
        rows = pd.DataFrame({"class": "neutral", "evidence": "not tested", "reason": reasons.to_numpy()},
                            index=pd.Index(extra["id"], name="feature"))
        rows["n_genotype_modifiers"] = 0
        out = pd.concat([out, rows])
    out.index.name = "feature"
    front = ["class", "evidence", "reason"]
    out = out[front + [col for col in out.columns if col not in front]]
    return out.reset_index().sort_values("feature", kind="stable").reset_index(drop=True)
