"""The stage's summary table: the primary test's call, and the six methods' agreement as evidence.

``call`` (``up``/``down``/``none``) is the primary test's call
(:mod:`.calls`, at the BH level the calibration chose; ``call_reason`` for a
significant taxon that a check turned down); the classification reads it.
The methods do not vote (issue 14: they share the data, so their agreement
adds little protection); their agreement is reported as ``methods_call``
and ``methods_direction`` by the rule below, with each method's effect and
q-value.

The methods' agreement rule (parameters ``differential.q_threshold`` and ``differential.consensus.*``):

1. A method is *significant* for a feature when its q-value is below
   ``q_threshold`` (default 0.05). ``n_methods`` counts the methods with a
   p-value for the feature, ``n_significant`` the significant ones.
2. Their direction (``methods_direction``) is +1 (higher in MS) when every significant method has a
   positive effect, -1 (lower in MS) when every one has a negative effect, and
   0 when none is significant or they disagree.
3. Their call (``methods_call``) is ``up``/``down`` (the direction) when all of these hold, else ``none``:

   - ``n_significant >= min_significant`` (default 2; capped at the number
     of methods run);
   - at least ``min_compositional`` (default 1) of the significant methods
     are compositional (:data:`COMPOSITIONAL`: linda, ancombc,
     paired_wilcoxon, aldex), so a species is not called only because an
     abundant species moved and diluted everyone's share (imsms_lmm and
     maaslin test relative abundance);
   - the smallest q-value over methods is below ``strong_q`` (default 0.01):
     at least one method sees strong evidence;
   - ``sign_agreement``, the fraction of methods with an estimate whose effect
     has the call's sign, is at least ``min_sign_agreement`` (default 0.5);
   - with ``require_pseudocount_robust`` (default false), every alternative
     zero replacement gives the same call (:mod:`.sensitivity`).

Why: the methods share the data, so a chance pattern in the data makes all of
them significant together; asking for several methods alone does not lower
the share of wrong calls below the per-method false discovery rate. The
compositional and strong-evidence conditions do. On 36 generated cohorts of
300 households and 200 species (20 planted at ln fold change +-1, 10
treatment-only; seeds 20-31 and 40-63), this rule found on average 94% of the
planted species (at least 90% in 29 cohorts) and on average 3% of its calls
were wrong (at most 5% in 28 cohorts); no null cohort got a call. With q < 0.05
in two methods alone, 8% of the calls were wrong on average, up to half in
cohorts where an abundant species was planted. The planted species missed
are those absent from many participants (mean planted prevalence 0.64 for the
44 missed, 0.89 for the 662 found): structural zeros blur every log-ratio
method. ``tests/test_differential_consensus.py``
checks one such cohort (seed 1) and a null cohort.

The table also carries every method's effect and q-value (``effect_<method>``,
``q_<method>``) and, from the other stage outputs, the site meta-analysis
(:mod:`.meta`) and the pseudo-count sensitivity (:mod:`.sensitivity`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CALLS = {1: "up", -1: "down", 0: "none"}

#: Methods that account for compositionality (a log-ratio reference) rather than
#: testing relative abundance itself: a shift of one abundant species dilutes every
#: other species' share, which relative-abundance methods (imsms_lmm, maaslin) see
#: as a change.
COMPOSITIONAL = ("linda", "ancombc", "paired_wilcoxon", "aldex")


@dataclass(frozen=True)
class ConsensusRule:
    """The consensus rule's parameters: ``differential.q_threshold`` and ``differential.consensus``.

    Their defaults are in ``config/schema/differential.schema.yaml``; build the
    rule from the stage settings (:meth:`from_settings`) or from partial
    values (:meth:`from_config`).
    """

    q_threshold: float
    min_significant: int
    min_compositional: int
    strong_q: float
    min_sign_agreement: float

    @classmethod
    def from_settings(cls, settings) -> "ConsensusRule":
        """From :class:`~workflow_scripts.differential.prepare.DifferentialSettings`."""
        c = settings.consensus
        return cls(q_threshold=settings.q_threshold, min_significant=int(c["min_significant"]),
                   min_compositional=int(c["min_compositional"]), strong_q=float(c["strong_q"]),
                   min_sign_agreement=float(c["min_sign_agreement"]))

    @classmethod
    def from_config(cls, q_threshold: float | None = None, **consensus) -> "ConsensusRule":
        """From ``q_threshold`` and keys of ``differential.consensus``; the schema fills the rest."""
        from .prepare import DifferentialSettings

        values = {"consensus": consensus} if q_threshold is None else \
            {"consensus": consensus, "q_threshold": q_threshold}
        return cls.from_settings(DifferentialSettings.from_config(values))


def consensus(tables: dict[str, pd.DataFrame], rule: ConsensusRule) -> pd.DataFrame:
    """Consensus call per feature (see the module docstring).

    Parameters
    ----------
    tables : dict of str to DataFrame
        Method name -> its result table with ``feature``, ``effect``,
        ``pvalue`` and ``qvalue`` columns.
    rule : ConsensusRule

    Returns
    -------
    DataFrame
        One row per feature (union over methods, sorted): ``feature``,
        ``n_methods``, ``n_significant``, ``n_significant_up``,
        ``n_significant_down``, ``n_significant_compositional``, ``min_qvalue``,
        ``sign_agreement``, ``direction``, ``call``, then ``effect_<method>``
        and ``q_<method>`` for every method.
    """
    names = list(tables)
    features = sorted(set().union(*(set(t["feature"]) for t in tables.values()))) if names else []
    index = pd.Index(features, name="feature")

    def column(name):
        return pd.DataFrame({m: tables[m].set_index("feature")[name].reindex(index) for m in names},
                            index=index, columns=names, dtype=float)

    effect, qvalue, pvalue = column("effect"), column("qvalue"), column("pvalue")
    E, Q = effect.to_numpy(), qvalue.to_numpy()
    sig = np.where(np.isnan(Q), False, Q < rule.q_threshold) & np.isfinite(E)
    up = (sig & (E > 0)).sum(axis=1)
    down = (sig & (E < 0)).sum(axis=1)
    compositional = np.array([m in COMPOSITIONAL for m in names], dtype=bool)
    n_comp = (sig & compositional[None, :]).sum(axis=1) if names else np.zeros(len(index), int)
    direction = np.where((up > 0) & (down == 0), 1, np.where((down > 0) & (up == 0), -1, 0))
    with_estimate = np.isfinite(E)
    agreeing = (with_estimate & (np.sign(np.nan_to_num(E)) == direction[:, None])).sum(axis=1)
    n_est = with_estimate.sum(axis=1)
    agreement = np.where((direction != 0) & (n_est > 0), agreeing / np.maximum(n_est, 1), 0.0)
    with np.errstate(invalid="ignore"):
        min_q = np.where(np.isfinite(Q).any(axis=1), np.nanmin(np.where(np.isfinite(Q), Q, np.inf), axis=1),
                         np.nan) if names else np.full(len(index), np.nan)
    n_sig = up + down
    # Rules asking for more methods than were run are capped at what was run.
    needed = min(rule.min_significant, max(len(names), 1))
    needed_comp = min(rule.min_compositional, int(compositional.sum()))
    called = ((direction != 0) & (n_sig >= needed) & (n_comp >= needed_comp)
              & (np.nan_to_num(min_q, nan=np.inf) < rule.strong_q)
              & (agreement >= rule.min_sign_agreement))
    out = pd.DataFrame({
        "feature": features,
        "n_methods": np.isfinite(pvalue.to_numpy()).sum(axis=1),
        "n_significant": n_sig,
        "n_significant_up": up,
        "n_significant_down": down,
        "n_significant_compositional": n_comp,
        "min_qvalue": min_q,
        "sign_agreement": agreement,
        "direction": direction,
        "call": [CALLS[d] for d in np.where(called, direction, 0)],
    })
    for m in names:
        out[f"effect_{m}"] = effect[m].to_numpy()
        out[f"q_{m}"] = qvalue[m].to_numpy()
    return out


def apply_robustness(table: pd.DataFrame, alternative_calls: pd.DataFrame, require: bool) -> pd.DataFrame:
    """Add the pseudo-count sensitivity to a consensus table.

    Parameters
    ----------
    table : DataFrame
        From :func:`consensus`.
    alternative_calls : DataFrame
        Index feature, one column ``call_pc<value>`` per alternative zero
        replacement (from :func:`workflow_scripts.differential.sensitivity.alternative_calls`).
    require : bool
        ``require_pseudocount_robust``: a call that changes under any
        alternative becomes ``none``.

    Returns
    -------
    DataFrame
        ``table`` with the alternative calls and ``pseudocount_robust``
        (every alternative gives the same call); ``call`` updated if required.
    """
    out = table.copy()
    alt = alternative_calls.reindex(out["feature"])
    for column in alt.columns:
        out[column] = alt[column].fillna("none").to_numpy()
    same = np.ones(len(out), bool)
    for column in alt.columns:
        same &= out[column].to_numpy() == out["call"].to_numpy()
    out["pseudocount_robust"] = same
    if require:
        out.loc[~same, "call"] = "none"
    return out


def add_primary(table: pd.DataFrame, primary: pd.DataFrame, level: float) -> pd.DataFrame:
    """The primary test's call in front of the methods' agreement (see the module docstring).

    Parameters
    ----------
    table : DataFrame
        From :func:`consensus` (and :func:`apply_robustness`, :func:`add_site_meta`).
    primary : DataFrame
        ``differential/primary.tsv``.
    level : float
        The BH level in force (:func:`workflow_scripts.differential.calibration.level_in_force`).

    Returns
    -------
    DataFrame
        ``feature``, ``call``, ``call_reason``, ``primary_effect``,
        ``primary_qvalue``, ``q_threshold_used``, then ``table``'s columns
        with its ``call`` and ``direction`` renamed ``methods_call`` and
        ``methods_direction``.
    """
    from .calls import CALLS, decide

    p = primary.set_index("feature")
    decided = decide(p, level)
    front = pd.DataFrame({"call": [CALLS[c] for c in decided["call"]], "call_reason": decided["call_reason"],
                          "primary_effect": p["effect"], "primary_qvalue": p["qvalue"],
                          "q_threshold_used": level}, index=p.index)
    rest = table.rename(columns={"call": "methods_call", "direction": "methods_direction"}).set_index("feature")
    out = front.join(rest, how="outer")
    out["call"] = out["call"].fillna("none")
    out.index.name = "feature"
    return out.reset_index().sort_values("feature", kind="stable", ignore_index=True)


def add_site_meta(table: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Join the site meta-analysis columns (see :mod:`.meta`) onto a consensus table."""
    columns = ["meta_effect", "meta_se", "meta_pvalue", "tau2", "i2", "n_sites", "loo_max_pvalue",
               "loo_site", "site_driven"]
    joined = meta.set_index("feature")[columns].reindex(table["feature"])
    out = table.copy()
    for column in columns:
        out[column] = joined[column].to_numpy()
    return out
