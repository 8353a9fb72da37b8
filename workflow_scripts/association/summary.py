"""The stage summary the report shows: counts, methods, thresholds, hits, lead variants, labelled variants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Below this many clusters, CR1 standard errors are known to be liberal.
FEW_HOUSEHOLDS = 50

KIND_NAMES = {"genotype": "genotype main effect", "interaction": "genotype x status interaction",
              "presence": "hurdle: presence", "carriers": "hurdle: abundance among carriers"}


def num(value):
    """JSON-safe number: NaN -> None, NumPy scalars -> Python, floats to 6 significant digits."""
    if value is None:
        return None
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return value
    if math.isnan(value):
        return None
    return float(f"{value:.6g}")


def _pairs(frame: pd.DataFrame, limit: int, kind: str) -> list[dict]:
    """The ``limit`` smallest-p tests of ``frame`` (a genotype_species / sumstats slice)."""
    p, q = f"p_{kind}", f"q_{kind}"
    rows = frame[frame[q] < frame.attrs.get("fdr", 0.05)] if q in frame else frame.iloc[:0]
    top = rows.sort_values([p, "variant_id", "feature"], kind="stable").head(limit)
    return [{"variant_id": r["variant_id"], "feature": r["feature"], "beta": num(r.get(f"beta_{kind}")),
             "p": num(r[p]), "q": num(r[q])} for _, r in top.iterrows()]


def stage_summary(prepared: dict, testing: dict, table_info: dict, significant: pd.DataFrame,
                  leads: pd.DataFrame, inflation: pd.DataFrame, labelled: list[dict], fdr: float,
                  report_top: int) -> dict:
    """Everything the report says about the stage, as a JSON-ready dict.

    Parameters
    ----------
    prepared : dict
        The preparation's summary.
    testing : dict
        :func:`~workflow_scripts.association.cli.cmd_fdr`'s counts and thresholds.
    table_info : dict
        ``mode`` (``all`` or ``selected``), ``n_rows`` of genotype_species.tsv.
    significant : DataFrame
        The tests with q < ``fdr`` of the genotype or the interaction term
        (columns of genotype_species.tsv).
    leads, inflation : DataFrame
        Lead variants and lambda GC per species and kind.
    labelled : list of dict
        Per labelled variant: its QC and strongest results.
    """
    summary = dict(prepared)
    summary["fdr"] = fdr
    summary.update({k: testing[k] for k in ("n_tests", "n_significant", "genome_wide_p", "study_wide_p",
                                            "n_genome_wide", "n_study_wide", "threshold_p")})
    summary["table"] = table_info
    warnings = []
    if prepared.get("status") == "ok" and prepared.get("n_clusters", 0) < FEW_HOUSEHOLDS:
        warnings.append(f"only {prepared.get('n_clusters')} clusters: cluster-robust (CR1) standard errors "
                        "are liberal with fewer than about 50 clusters; read p-values as approximate")
    genetic = prepared.get("genetic_pcs", {})
    if genetic.get("requested") and not genetic.get("used"):
        warnings.append(f"genetic principal components not used: {genetic.get('reason')}")
    lam = {}
    for kind, rows in inflation.groupby("kind", sort=False):
        values = rows["lambda_gc"].to_numpy(dtype=float)
        lam[kind] = {"median": num(np.nanmedian(values)), "max": num(np.nanmax(values)),
                     "max_feature": rows["feature"].iloc[int(np.nanargmax(values))],
                     "n_above_1.1": int((values > 1.1).sum())}
    summary["lambda_gc"] = lam
    high = [f"{KIND_NAMES[k]}: median lambda GC {v['median']}" for k, v in lam.items()
            if v["median"] is not None and v["median"] > 1.1]
    if high:
        warnings.append("genomic inflation: " + "; ".join(high))
    summary["warnings"] = warnings
    significant = significant.copy()
    significant.attrs["fdr"] = fdr
    summary["top_interaction"] = _pairs(significant, report_top, "interaction")
    summary["top_genotype"] = _pairs(significant, report_top, "genotype")
    summary["n_lead_variants"] = {kind: int((leads["kind"] == kind).sum()) for kind in KIND_NAMES}
    summary["lead_variants"] = [{k: num(v) if k not in ("kind", "feature", "variant_id", "chrom") else v
                                 for k, v in row.items()}
                                for row in leads.sort_values("p", kind="stable").head(report_top)
                                .to_dict(orient="records")]
    summary["labelled_variants"] = labelled
    return summary


def _fmt(value, digits: int = 3) -> str:
    return "NA" if value is None else f"{value:.{digits}g}"


def markdown(summary: dict) -> str:
    """The summary as Markdown for the report."""
    s = summary
    settings = s.get("settings", {})
    case, control = s.get("case_label", "MS"), s.get("control_label", "HHC")
    abundance = s.get("abundance", {})
    policy = abundance.get("repeated_samples")
    rows = ("every kept stool sample is a row (a participant's genotype and covariates on each of their "
            f"samples; {s.get('n_rows', 0)} rows)" if policy == "all" else
            f"one profile per participant (repeated stool samples: {policy})")
    table = s.get("table", {})
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
        f"{abundance.get('transform')}; {rows}.",
        f"- Genotypes: {s.get('genotype_format')} ({s.get('dosage_field')}), {s.get('n_variants', 0)} biallelic "
        f"variants read in place in {s.get('n_chunks', 0)} chunk job(s) of at most {s.get('chunk_size')}; "
        f"{s.get('n_variants_failed_qc', 0)} failed QC (MAF < {settings.get('maf_min')}, call rate < "
        f"{settings.get('call_rate_min')}, Hardy-Weinberg p in controls < {settings.get('hwe_p_min')}, "
        f"imputation quality < {settings.get('imputation_quality_min')} where the file states it, fewer than "
        f"{settings.get('min_carriers')} minor-allele carriers), {s.get('n_variants_tested', 0)} tested, "
        f"{s.get('n_variants_main_effect_only', 0)} of them for the main effect only (fewer than "
        f"{settings.get('min_carriers')} carriers among {case} or {control}).",
        f"- Covariates: {', '.join(s.get('covariate_columns', [])) or 'none'}; genetic PCs: "
        f"{s.get('genetic_pcs', {}).get('used', 0)} ({s.get('genetic_pcs', {}).get('reason')}).",
        f"- Models (every variant x species): abundance ~ G + status + covariates (genotype main effect, "
        f"mbQTL) and abundance ~ G + status + G:status + covariates (interaction), OLS; standard errors "
        f"{s.get('errors')}, Student t with clusters - 1 df.",
    ]
    if settings.get("hurdle"):
        low, high = settings.get("presence_range", [0.1, 0.9])
        lines.append(
            f"- Hurdle model (MiBioGen): presence/absence of species present in {low:g}-{high:g} of the rows "
            f"(logistic score test with cluster-robust variance) and log relative abundance among the rows "
            f"carrying the species (at least {settings.get('hurdle_min_carriers')}; OLS, CR1), both adjusted for "
            "status and the covariates; in `association/sumstats/`.")
    n_tests, n_sig = s.get("n_tests", {}), s.get("n_significant", {})
    lines += [
        f"- Multiple testing: Benjamini-Hochberg over all tests of each kind (exact, computed over the chunk "
        f"files without holding them); genome-wide p < {_fmt(s.get('genome_wide_p'))}, study-wide p < "
        f"{_fmt(s.get('study_wide_p'))} (genome-wide / {s.get('n_features', 0)} species).",
        "",
        "| test | tests | q < " + str(s.get("fdr")) + " | genome-wide | study-wide | lead variants | median lambda GC |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, name in KIND_NAMES.items():
        if kind not in n_tests or (kind in ("presence", "carriers") and not settings.get("hurdle")):
            continue
        lam = s.get("lambda_gc", {}).get(kind, {})
        lines.append(f"| {name} | {n_tests[kind]} | {n_sig.get(kind, 0)} | {s.get('n_genome_wide', {}).get(kind, 0)} "
                     f"| {s.get('n_study_wide', {}).get(kind, 0)} | {s.get('n_lead_variants', {}).get(kind, 0)} "
                     f"| {_fmt(lam.get('median'))} |")
    lines.append("")
    if table.get("mode") == "all":
        lines.append(f"`association/genotype_species.tsv` holds every one of the {table.get('n_tests', 0)} "
                     f"variant x species tests (at most {settings.get('max_table_tests')}).")
    elif table:
        lines.append(f"`association/genotype_species.tsv` holds the {table.get('n_rows', 0)} of "
                     f"{table.get('n_tests', 0)} variant x species tests with q < {s.get('fdr')} or p < "
                     f"{settings.get('table_p_max')} for the genotype main effect or the interaction: there are "
                     f"more than `association.max_table_tests` ({settings.get('max_table_tests')}). Every "
                     "test is in `association/sumstats/` (Parquet, one file per chunk).")
    lines.append("")
    for warning in s.get("warnings", []):
        lines.append(f"> Note: {warning}.")
    if s.get("warnings"):
        lines.append("")
    for kind, title in (("top_interaction", f"Genotype x {case} interactions (q < {s.get('fdr')})"),
                        ("top_genotype", f"Genotype main effects (q < {s.get('fdr')})")):
        rows_ = s.get(kind, [])
        if rows_:
            lines += [f"## {title}", "", "| variant | species | beta | p | q |", "|---|---|---|---|---|"]
            lines += [f"| {r['variant_id']} | {r['feature']} | {_fmt(r['beta'])} | {_fmt(r['p'])} | {_fmt(r['q'])} |"
                      for r in rows_]
            lines.append("")
    if s.get("lead_variants"):
        lines += ["## Lead variants (genome-wide significant, distance-clumped per species)", "",
                  "| test | species | variant | position | p | variants in clump | study-wide |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {KIND_NAMES[r['kind']]} | {r['feature']} | {r['variant_id']} | {r['chrom']}:{r['pos']} | "
                  f"{_fmt(r['p'])} | {r['n_in_clump']} | {'yes' if r['study_wide'] else 'no'} |"
                  for r in s["lead_variants"]]
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
                if not e or e.get("feature") is None:
                    continue
                hits = ", ".join(h["feature"] for h in e.get("significant_features", []))
                parts.append(f"{what}: strongest with {e['feature']} (beta {_fmt(e['beta'])}, p {_fmt(e['p'])}, "
                             f"q {_fmt(e['q'])}); {e['n_significant']} species at q < {s.get('fdr')}"
                             + (f" ({hits})" if hits else ""))
            lines.append(f"- {name}, MAF {_fmt(v['maf'])}: " + ("; ".join(parts) or "no result") + ".")
        lines.append("")
    return "\n".join(lines)
