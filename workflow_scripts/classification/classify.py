"""Classify every taxon as protective, neutral or high-risk, with the evidence.

The decision rule (parameters in ``config/schema/classification.schema.yaml``):

1. The differential-abundance consensus must call the taxon (``up`` or
   ``down``; the consensus rule itself is in
   ``workflow_scripts/differential/consensus.py``: q below the threshold in
   enough methods, all significant methods agreeing in sign, at least one
   compositional method, strong evidence in one).
2. The primary method's effect (LinDA's bias-corrected log2 fold change,
   untreated MS vs household control) is at least ``min_effect`` in size.
3. The taxon is present in at least ``min_prevalence`` of cases or of controls.
4. The sign is consistent across sites: at least ``min_site_agreement`` of
   the sites with an estimate show the call's sign. With
   ``exclude_site_driven`` the site meta-analysis must also keep its
   significance when any one site is left out; this is off by default because
   with few sites (the iMSMS has 7, many cohorts 2-3) leaving one out often
   costs significance for real effects, so ``site_driven`` is reported as
   evidence instead.
5. With ``require_pseudocount_robust``, the call survives other zero replacements.

``up`` then means **high-risk** (enriched in MS) and ``down`` **protective**;
anything else is **neutral**, with the first rule it failed as the reason.
A taxon not called for disease but changed by a therapy (a therapy indicator
significant in ``differential/treatment_effects.tsv``) is neutral "changed by
<therapy> only". Taxa that did not enter the tests (prevalence filter) get a
neutral row saying so, so every taxon of the cohort has exactly one row.

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

from ..settings import StageSettings

CLASSES = ("protective", "neutral", "high-risk")


@dataclass(frozen=True)
class ClassificationRule(StageSettings):
    """The ``classification`` config section (keys and defaults in its schema); build with :meth:`from_config`."""

    SECTION: ClassVar[str] = "classification"

    primary_method: str
    min_effect: float
    min_prevalence: float
    min_site_agreement: float
    exclude_site_driven: bool
    require_pseudocount_robust: bool
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


def classify(consensus: pd.DataFrame, primary: pd.DataFrame, site_effects: pd.DataFrame | None,
             rule: ClassificationRule, untested: pd.DataFrame | None = None,
             treatment: pd.DataFrame | None = None, associations: pd.DataFrame | None = None, variants: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per taxon with its class, the reason and the evidence (see the module docstring).

    Parameters
    ----------
    consensus : DataFrame
        ``differential/consensus.tsv``.
    primary : DataFrame
        The primary method's table (``differential/<primary_method>.tsv``), for
        prevalence and mean abundance in cases and controls.
    site_effects : DataFrame or None
        ``differential/site_effects.tsv`` (feature, site, effect, ...).
    untested : DataFrame or None
        Ledger rows of taxa that did not enter the tests (``differential/ledger.tsv``).
    treatment : DataFrame or None
        ``differential/treatment_effects.tsv`` (feature, term, effect, qvalue).
    associations, variants : DataFrame or None
        ``association/genotype_species.tsv`` and the cohort's variant annotation.
    """
    c = consensus.set_index("feature")
    p = primary.set_index("feature").reindex(c.index)
    direction = c["call"].map({"up": 1.0, "down": -1.0}).fillna(0.0)
    sites = site_agreement(site_effects, direction).reindex(c.index) if site_effects is not None and \
        len(site_effects) else pd.DataFrame(index=c.index, columns=["n_sites_estimated", "site_agreement"])
    effect = p["effect"]
    prevalence = p[["prevalence_case", "prevalence_control"]].max(axis=1)
    treated = _treatment_text(treatment, rule.q_threshold).reindex(c.index)

    classes, reasons = [], []
    for feature in c.index:
        row = c.loc[feature]
        call = row["call"]
        agree = sites.loc[feature, "site_agreement"]
        n_est = sites.loc[feature, "n_sites_estimated"]
        if call == "none":
            cls = "neutral"
            if isinstance(treated.get(feature), str):
                reason = f"changed by therapy only: {treated[feature]}"
            elif row["n_significant"] == 0:
                reason = f"no method significant (smallest q = {row['min_qvalue']:.2g})"
            elif row["direction"] == 0:
                reason = "significant methods disagree in direction"
            else:
                reason = (f"consensus rule not met ({int(row['n_significant'])} of {int(row['n_methods'])} "
                          f"methods significant)")
        elif abs(effect[feature]) < rule.min_effect:
            cls, reason = "neutral", f"effect {effect[feature]:+.2f} below the minimum {rule.min_effect:g}"
        elif prevalence[feature] < rule.min_prevalence:
            cls, reason = "neutral", f"prevalence {prevalence[feature]:.0%} below the minimum"
        elif pd.notna(agree) and n_est >= 2 and agree < rule.min_site_agreement:
            cls, reason = "neutral", f"sign inconsistent across sites ({agree:.0%} of {int(n_est)} sites agree)"
        elif rule.exclude_site_driven and bool(row.get("site_driven", False)):
            cls, reason = "neutral", f"driven by one site ({row.get('loo_site')})"
        elif rule.require_pseudocount_robust and not bool(row.get("pseudocount_robust", True)):
            cls, reason = "neutral", "call changes with the zero replacement"
        else:
            cls = "high-risk" if call == "up" else "protective"
            word = "enriched" if call == "up" else "depleted"
            reason = (f"{word} in MS: {int(row['n_significant'])} of {int(row['n_methods'])} methods "
                      f"significant, {rule.primary_method} {effect[feature]:+.2f}")
        classes.append(cls)
        reasons.append(reason)

    out = pd.DataFrame({"feature": c.index, "class": classes, "reason": reasons}).set_index("feature")
    evidence = c[[col for col in c.columns if col.startswith(("effect_", "q_"))] +
                 [col for col in ("call", "n_methods", "n_significant", "sign_agreement", "meta_effect",
                                  "meta_pvalue", "i2", "n_sites", "site_driven", "pseudocount_robust")
                  if col in c.columns]]
    out = out.join(evidence).join(sites).join(p[["prevalence_case", "prevalence_control",
                                                 "mean_abundance_case", "mean_abundance_control"]])
    out["treatment_effects"] = treated
    out = out.join(genotype_modifiers(associations, variants, c["call"], rule.q_threshold))
    out["n_genotype_modifiers"] = out["n_genotype_modifiers"].fillna(0).astype(int)
    if untested is not None and len(untested):
        extra = untested[~untested["id"].isin(out.index)]
        reasons = "not tested: " + extra["detail"].str.split(": ", n=1).str[-1]
        rows = pd.DataFrame({"class": "neutral", "reason": reasons.to_numpy()},
                            index=pd.Index(extra["id"], name="feature"))
        rows["n_genotype_modifiers"] = 0
        out = pd.concat([out, rows])
    out.index.name = "feature"
    return out.reset_index().sort_values("feature", kind="stable").reset_index(drop=True)
