"""Genotype x microbiota association (``association/summary.json``, ``genotype_species.tsv``, figures)."""

from __future__ import annotations

import pandas as pd

from ..html import esc, figure, fmt, table
from . import Section, not_run

ANCHOR, TITLE = "association", "Genotype × microbiota"


def section(results) -> Section:
    summary = results.json("association/summary.json")
    if summary is None:
        return not_run(ANCHOR, TITLE, "Skipped: the cohort has no genotypes (no blood manifest or genotype file was "
                                      "configured), so no genotype × microbiota test was run.")
    if summary.get("status", "ok") != "ok":
        return not_run(ANCHOR, TITLE, "Skipped: " + esc(summary.get("reason") or summary.get("status")))
    tests = summary.get("n_tests", {})
    significant = summary.get("n_significant", {})
    fdr = summary.get("fdr", 0.05)
    body = (f"<p>{summary.get('n_participants', '?')} participants with genotypes ({summary.get('n_cases', '?')} "
            f"{esc(summary.get('case_label', ''))}, {summary.get('n_controls', '?')} "
            f"{esc(summary.get('control_label', ''))}) in {summary.get('n_households', '?')} households; "
            f"{summary.get('n_variants_tested', '?')} variants passed QC and were tested against "
            f"{summary.get('n_features', '?')} taxa. Each variant × taxon pair has a genotype main effect "
            f"({fmt(tests.get('genotype'))} tests) and a genotype × MS interaction ({fmt(tests.get('interaction'))} "
            f"tests); at q &lt; {fmt(fdr)}: <b>{fmt(significant.get('genotype', 0))}</b> main effects and "
            f"<b>{fmt(significant.get('interaction', 0))}</b> interactions. Standard errors are cluster-robust by "
            f"household ({esc(summary.get('household_errors', 'CR1'))}).</p>")
    caveats = [esc(w[:1].upper() + w[1:]) + "." for w in summary.get("warnings", [])]
    labelled = summary.get("labelled_variants", [])
    if labelled:
        rows = []
        for v in labelled:
            for kind in ("genotype", "interaction"):
                best = v.get(kind) or {}
                rows.append({"variant": v.get("variant_id"), "label": v.get("label"),
                             "effect": "main" if kind == "genotype" else "× MS", "best taxon": best.get("feature"),
                             "beta": best.get("beta"), "p": best.get("p"), "q": best.get("q"),
                             "taxa at q<fdr": best.get("n_significant")})
        body += "<h3>Labelled variants</h3>" + table(pd.DataFrame(rows))
    results_table = results.table("association/genotype_species.tsv")
    if results_table is not None and len(results_table):
        for kind, title in (("genotype", "Strongest genotype main effects"),
                            ("interaction", "Strongest genotype × MS interactions")):
            p, q = f"p_{kind}", f"q_{kind}"
            if p not in results_table.columns:
                continue
            top = results_table.dropna(subset=[p]).sort_values([q, p]).head(15)
            keep = [c for c in ("variant_id", "feature", "n", "n_households", "allele_frequency", f"beta_{kind}", p, q)
                    if c in top.columns]
            if len(top):
                body += f"<h3>{title}</h3>" + table(top[keep])
    for rel in results.glob("association/figures/*"):
        if rel.lower().endswith((".png", ".svg")):
            body += figure(results.path(rel), rel)
    markdown = results.path("association/summary.md")
    if markdown:
        body += f'<p class="files">The stage\'s own summary: {results.link("association/summary.md")}.</p>'
    body += results.links("association/*.tsv")
    if results.glob("association/sumstats/*"):
        body += (f'<p class="files">Complete summary statistics: {len(results.glob("association/sumstats/*"))} '
                 f'parquet files under {results.link("association/sumstats/" , "association/sumstats/")}.</p>')
    findings = [f"Genotype × microbiota: {fmt(significant.get('genotype', 0))} genotype main effects and "
                f"{fmt(significant.get('interaction', 0))} genotype × MS interactions at q &lt; {fmt(fdr)}, "
                f"over {fmt(summary.get('n_variants_tested'))} variants."]
    return Section(ANCHOR, TITLE, body, findings, caveats)
