"""The stage summary the report shows: counts, methods, hits, labelled variants by name."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .chunks import GatherResult

#: Below this many households, CR1 standard errors are known to be liberal.
FEW_HOUSEHOLDS = 50


def _num(value):
    """JSON-safe number: NaN -> None, NumPy scalars -> Python, floats to 6 significant digits."""
    if value is None:
        return None
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return value
    if math.isnan(value):
        return None
    return float(f"{value:.6g}")


def _pairs(frame: pd.DataFrame, limit: int) -> list[dict]:
    """The ``limit`` smallest-p rows of ``frame`` (variant_id, feature, p, q) with their betas."""
    if frame.empty:
        return []
    top = frame.sort_values(["p", "variant_id", "feature"], kind="stable").head(limit)
    return [{"variant_id": r.variant_id, "feature": r.feature, "p": _num(r.p), "q": _num(r.q)}
            for r in top.itertuples()]


def stage_summary(prepared: dict, result: GatherResult | None, variant_qc: pd.DataFrame,
                  fdr: float, report_top: int) -> dict:
    """Everything the report says about the stage, as a JSON-ready dict."""
    summary = dict(prepared)
    summary.pop("settings", None)
    summary["settings"] = prepared.get("settings", {})
    summary["fdr"] = fdr
    warnings = []
    if prepared.get("status") == "ok" and prepared.get("n_households", 0) < FEW_HOUSEHOLDS:
        warnings.append(f"only {prepared.get('n_households')} households: household cluster-robust (CR1) "
                        "standard errors are liberal with fewer than about 50 clusters; read p-values "
                        "as approximate")
    genetic = prepared.get("genetic_pcs", {})
    if genetic.get("requested") and not genetic.get("used"):
        warnings.append(f"genetic principal components not used: {genetic.get('reason')}")
    summary["warnings"] = warnings

    if result is not None:
        summary["n_tests"] = result.n_tests
        summary["n_significant"] = result.n_significant
        summary["threshold_p_interaction"] = _num(result.threshold_p_interaction)
        summary["top_interaction"] = _pairs(result.significant["interaction"], report_top)
        summary["top_genotype"] = _pairs(result.significant["genotype"], report_top)
        vs = result.variant_summary.set_index("variant_id")
    else:
        summary["n_tests"] = {"genotype": 0, "interaction": 0}
        summary["n_significant"] = {"genotype": 0, "interaction": 0}
        summary["threshold_p_interaction"] = None
        summary["top_interaction"] = summary["top_genotype"] = []
        vs = pd.DataFrame()

    labelled = []
    labels = variant_qc["label"].fillna("").astype(str) if "label" in variant_qc else pd.Series(dtype=str)
    for vid in labels.index[labels.ne("") & labels.ne("nan")]:
        row = variant_qc.loc[vid]
        entry = {"variant_id": vid, "label": row["label"], "gene_or_locus": row.get("gene_or_locus", ""),
                 "maf": _num(row["maf"]), "tested": bool(row["chunk"] >= 0), "qc_reason": row["reason"]}
        if entry["tested"] and vid in vs.index:
            v = vs.loc[vid]
            entry["interaction"] = {"feature": v["best_feature_interaction"], "beta": _num(v["beta_interaction"]),
                                    "p": _num(v["p_interaction"]), "q": _num(v["q_interaction"]),
                                    "n_significant": int(v["n_significant_interaction"])}
            entry["genotype"] = {"feature": v["best_feature_genotype"], "beta": _num(v["beta_genotype"]),
                                 "p": _num(v["p_genotype"]), "q": _num(v["q_genotype"]),
                                 "n_significant": int(v["n_significant_genotype"])}
            for kind in ("interaction", "genotype"):
                hits = result.significant[kind]
                entry[kind]["significant_features"] = _pairs(hits[hits["variant_id"] == vid], report_top)
        labelled.append(entry)
    summary["labelled_variants"] = labelled
    return summary


def _fmt(value, digits: int = 3) -> str:
    return "NA" if value is None else f"{value:.{digits}g}"


def markdown(summary: dict) -> str:
    """The summary as Markdown for the report."""
    s = summary
    settings = s.get("settings", {})
    case, control = s.get("case_label", "MS"), s.get("control_label", "HHC")
    lines = ["# Genotype x microbiota association", ""]
    if s.get("status") != "ok":
        lines += [f"**Nothing was tested:** {s.get('reason')}.", ""]
    lines += [
        f"- Participants: {s.get('n_participants', 0)} with a genotype and every covariate "
        f"({s.get('n_cases', 0)} {case}, {s.get('n_controls', 0)} {control}) in "
        f"{s.get('n_households', 0)} households, {s.get('n_paired_households', 0)} of them paired; "
        f"{s.get('n_participants_excluded', 0)} excluded (see `association/ledger.tsv`).",
        f"- Species: {s.get('n_features', 0)} at rank {s.get('rank')} with prevalence >= "
        f"{settings.get('min_prevalence')} ({s.get('n_features_filtered', 0)} filtered); abundance "
        f"{s.get('abundance', {}).get('transform')}, one profile per participant "
        f"(repeated stool samples: {s.get('abundance', {}).get('repeated_samples')}), as differential "
        f"abundance.",
        f"- Variants: {s.get('n_variants', 0)} in the cohort, {s.get('n_variants_failed_qc', 0)} failed QC "
        f"(MAF < {settings.get('maf_min')}, call rate < {settings.get('call_rate_min')}, Hardy-Weinberg "
        f"p in controls < {settings.get('hwe_p_min')}, fewer than {settings.get('min_carriers')} minor-allele "
        f"carriers), {s.get('n_variants_tested', 0)} tested in {s.get('n_chunks', 0)} chunk(s) of "
        f"{s.get('chunk_size')}; {s.get('n_variants_main_effect_only', 0)} of them for the main effect only "
        f"(fewer than {settings.get('min_carriers')} carriers among {case} or {control}).",
        f"- Covariates: {', '.join(s.get('covariate_columns', [])) or 'none'}; genetic PCs: "
        f"{s.get('genetic_pcs', {}).get('used', 0)} ({s.get('genetic_pcs', {}).get('reason')}).",
        f"- Models (OLS, every variant x species): abundance ~ G + status + covariates (genotype main "
        f"effect, mbQTL) and abundance ~ G + status + G:status + covariates (interaction); standard "
        f"errors cluster-robust by household (CR1, Student t with households - 1 df); "
        f"Benjamini-Hochberg FDR over all tests of each kind.",
        f"- Tests: {s['n_tests']['genotype']} genotype, {s['n_tests']['interaction']} interaction; "
        f"q < {s.get('fdr')}: {s['n_significant']['genotype']} genotype main effects, "
        f"{s['n_significant']['interaction']} genotype x {case} interactions.",
        "",
    ]
    for warning in s.get("warnings", []):
        lines.append(f"> Note: {warning}.")
    if s.get("warnings"):
        lines.append("")
    for kind, title in (("top_interaction", f"Genotype x {case} interactions (q < {s.get('fdr')})"),
                        ("top_genotype", f"Genotype main effects (q < {s.get('fdr')})")):
        rows = s.get(kind, [])
        if rows:
            lines += [f"## {title}", "", "| variant | species | p | q |", "|---|---|---|---|"]
            lines += [f"| {r['variant_id']} | {r['feature']} | {_fmt(r['p'])} | {_fmt(r['q'])} |" for r in rows]
            lines.append("")
    if s.get("labelled_variants"):
        lines += ["## Labelled variants", ""]
        for v in s["labelled_variants"]:
            name = f"**{v['variant_id']}** ({v['label']}, {v['gene_or_locus']})"
            if not v["tested"]:
                lines.append(f"- {name}: not tested ({v['qc_reason'] or 'no test possible'}).")
                continue
            parts = []
            for kind, what in (("interaction", f"genotype x {case}"), ("genotype", "genotype main effect")):
                e = v.get(kind)
                if e is None:
                    continue
                hits = ", ".join(h["feature"] for h in e.get("significant_features", []))
                parts.append(f"{what}: strongest with {e['feature']} (beta {_fmt(e['beta'])}, p {_fmt(e['p'])}, "
                             f"q {_fmt(e['q'])}); {e['n_significant']} species at q < {s.get('fdr')}"
                             + (f" ({hits})" if hits else ""))
            lines.append(f"- {name}, MAF {_fmt(v['maf'])}: " + "; ".join(parts) + ".")
        lines.append("")
    return "\n".join(lines)
