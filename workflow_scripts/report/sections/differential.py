"""Differential abundance (``differential/*``): what each method found, the consensus, sites, therapy, zeros."""

from __future__ import annotations

import pandas as pd

from ..html import details, esc, figure, fmt, table
from . import Section, not_run

ANCHOR, TITLE = "differential", "Differential abundance"
METHOD_WORDS = {
    "linda": "LinDA (CLR, household random intercept, bias-corrected)",
    "ancombc": "ANCOM-BC (within-household log-ratios)",
    "imsms_lmm": "iMSMS mixed model (arcsine-square-root relative abundance)",
    "paired_wilcoxon": "paired Wilcoxon (untreated patients and their controls)",
    "maaslin": "MaAsLin-style log-TSS linear mixed model",
    "aldex": "ALDEx2-style Monte Carlo CLR",
}


def methods_run(results) -> list[str]:
    """Methods with a table, in the consensus table's column order when there is one."""
    found = [r.split("/")[-1][:-4] for r in results.glob("differential/*.tsv")]
    consensus = results.table("differential/consensus.tsv")
    order = [c[len("effect_"):] for c in consensus.columns if c.startswith("effect_")] if consensus is not None \
        else []
    return [m for m in order if m in found] + sorted(m for m in found if m not in order and m in METHOD_WORDS)


def _called(consensus: pd.DataFrame) -> pd.DataFrame:
    return consensus[consensus["call"].isin(["up", "down"])] if "call" in consensus.columns else consensus.head(0)


def section(results) -> Section:
    consensus = results.table("differential/consensus.tsv")
    if consensus is None:
        return not_run(ANCHOR, TITLE, "The differential-abundance stage did not run.")
    methods = methods_run(results)
    called = _called(consensus)
    n_up, n_down = int((called["call"] == "up").sum()), int((called["call"] == "down").sum())
    ledger = results.table("differential/ledger.tsv")
    untested = ledger[(ledger["entity"] == "feature") & (ledger["outcome"] == "dropped")] if ledger is not None \
        else pd.DataFrame()
    body = (f"<p>{len(consensus)} taxa were tested for a difference between patients and their household "
            f"controls with {len(methods)} method{'s' if len(methods) != 1 else ''}; {len(untested)} were not "
            "tested (too rare, or the unassigned bucket: <code>differential/ledger.tsv</code>). The consensus "
            f"calls <b>{n_up}</b> higher and <b>{n_down}</b> lower in MS.</p>")
    body += "<ul>" + "".join(f"<li><code>{esc(m)}</code>: {esc(METHOD_WORDS.get(m, m))}</li>" for m in methods)
    body += "</ul>"

    names = {"feature": "taxon", "call": "call", "n_significant": "methods significant", "n_methods": "of",
             "min_qvalue": "smallest q", "sign_agreement": "sign agreement", "meta_effect": "site-pooled effect",
             "i2": "I²", "site_driven": "site-driven", "pseudocount_robust": "zero-robust"}
    columns = [c for c in names if c in consensus.columns]
    if len(called):
        body += "<h3>Consensus calls</h3>" + table(
            called[columns].sort_values("min_qvalue").rename(columns=names), row_class="call")
    significant = consensus["n_significant"] > 0 if "n_significant" in consensus.columns else \
        pd.Series(False, index=consensus.index)
    others = consensus[significant & ~consensus.index.isin(called.index)]
    if len(others):
        body += details(f"{len(others)} taxa significant in some method but not called by the consensus",
                        table(others[columns].sort_values("min_qvalue").rename(columns=names)))
    figures = ""
    if results.has("differential/figures/agreement.png"):
        figures += figure(results.path("differential/figures/agreement.png"), "agreement between methods",
                          "Left: signed −log10 q of every taxon significant in some method (▲ consensus higher "
                          "in MS, ▼ lower). Right: how the methods' test statistics agree over all taxa.")
    volcanoes = results.glob("differential/figures/volcano_*.png")
    if volcanoes:
        first, rest = volcanoes[0], volcanoes[1:]
        figures += figure(results.path(first), "volcano plot", "Each method's effects on its own scale; "
                          "coloured taxa pass the method's q threshold.")
        if rest:
            figures += details(f"Volcano plots of the other {len(rest)} methods",
                               "".join(figure(results.path(r), r) for r in rest))
    body += figures

    caveats = ["Each method reports its effect on its own scale (log2 or natural-log fold change, a difference "
               "in transformed abundance); compare directions and q-values across methods, not sizes."]
    notes = []  # about called taxa: the summary has them from the classification section
    body += _sites(results, called, caveats, notes)
    body += _therapy(results, called, caveats, notes)
    body += _zeros(results, called, caveats)
    body += results.links("differential/*.tsv")
    case = (results.json("ingest/cohort/cohort.json") or {}).get("case_label", "MS")
    findings = [f"{len(consensus)} taxa tested with {len(methods)} methods; the consensus calls {n_up} higher and "
                f"{n_down} lower in {esc(case)}."]
    return Section(ANCHOR, TITLE, body, findings, caveats, notes)


def _sites(results, called, caveats, notes) -> str:
    sites = results.table("differential/site_effects.tsv")
    meta = results.table("differential/site_meta.tsv")
    if meta is None:
        return "<h3>Sites</h3><p class=\"skip\">No per-site meta-analysis in this run.</p>"
    body = ("<h3>Sites</h3><p>LinDA is refitted within each site with enough households and the site effects are "
            "pooled by random effects (DerSimonian–Laird); <i>I</i>² is the share of their spread beyond chance, "
            "and a call is <b>site-driven</b> when leaving one site out loses its significance.</p>")
    if sites is not None and len(sites):
        n = sites.groupby("site")["n_households"].max() if "n_households" in sites.columns else None
        if n is not None:
            body += f"<p>Sites with a model: {', '.join(f'{esc(s)} ({int(h)} households)' for s, h in n.items())}.</p>"
    rows = meta[meta["feature"].isin(called["feature"])]
    if len(rows):
        keep = [c for c in ("feature", "meta_effect", "meta_se", "meta_pvalue", "i2", "n_sites", "loo_site",
                            "loo_max_pvalue", "site_driven") if c in rows.columns]
        body += table(rows[keep])
        driven = rows.loc[rows.get("site_driven", pd.Series(False, index=rows.index)).astype(str) == "True"]
        if len(driven):
            notes.append("Site-driven calls (significance rests on one site): " + ", ".join(
                f"<i>{esc(f)}</i> ({esc(s)})" for f, s in zip(driven["feature"], driven["loo_site"])) + ".")
        heterogeneous = rows[rows["i2"] > 0.5] if "i2" in rows.columns else rows.head(0)
        if len(heterogeneous):
            caveats.append("Effects differ between sites (<i>I</i>² > 50%) for " + ", ".join(
                f"<i>{esc(f)}</i>" for f in heterogeneous["feature"]) + ".")
    return body


def _therapy(results, called, caveats, notes) -> str:
    treatment = results.table("differential/treatment_effects.tsv")
    if treatment is None:
        return ""
    body = ("<h3>Therapies</h3><p>Each disease-modifying therapy has its own indicator (zero for controls and "
            "untreated patients), so the MS effect is that of untreated patients; therapy effects are tested "
            "against the same model.</p>")
    significant = treatment[treatment["qvalue"] < 0.05]
    per_term = treatment.groupby("term").agg(taxa=("feature", "size"),
                                             significant=("qvalue", lambda q: int((q < 0.05).sum())))
    if "n_treated" in treatment.columns:
        per_term["patients"] = treatment.groupby("term")["n_treated"].max()
    body += table(per_term, index=True)
    if len(significant):
        keep = [c for c in ("feature", "term", "effect", "qvalue", "n_treated") if c in significant.columns]
        body += details(f"{len(significant)} therapy effects with q < 0.05", table(significant[keep]))
        both = sorted(set(significant["feature"]) & set(called["feature"]))
        if both:
            notes.append("Called taxa also changed by a therapy (their MS effect is estimated in untreated "
                           "patients, but check the direction): " + ", ".join(f"<i>{esc(f)}</i>" for f in both)
                           + ".")
    small = per_term[per_term.get("patients", pd.Series(99, index=per_term.index)) < 5]
    if len(small):
        caveats.append("Therapies with fewer than 5 patients have effects too noisy to interpret: "
                       + ", ".join(esc(t.removeprefix("dmt_")) for t in small.index) + ".")
    return body


def _zeros(results, called, caveats) -> str:
    sensitivity = results.table("differential/sensitivity.tsv")
    consensus = results.table("differential/consensus.tsv")
    if sensitivity is None or consensus is None:
        return ""
    pcs = sorted(sensitivity["pseudo_count"].unique())
    body = ("<h3>Zero replacement</h3><p>The compositional methods are refitted with pseudo-counts "
            f"{', '.join(fmt(float(p)) for p in pcs)}; a call that changes is not robust to how zeros are "
            "handled.</p>")
    if "pseudocount_robust" in consensus.columns:
        fragile = consensus[consensus["feature"].isin(called["feature"])
                            & (consensus["pseudocount_robust"].astype(str) == "False")]
        if len(fragile):
            caveats.append("Calls that change with the pseudo-count: " + ", ".join(
                f"<i>{esc(f)}</i>" for f in fragile["feature"]) + ".")
            body += f"<p>{len(fragile)} called taxa change with the pseudo-count.</p>"
        else:
            body += "<p>Every call holds at every pseudo-count.</p>"
    return body
