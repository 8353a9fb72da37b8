"""Diversity (``diversity/*``): alpha by status within households, PERMANOVA, dispersion, ordinations."""

from __future__ import annotations

from ..html import details, esc, figure, fmt, table
from . import Section, not_run

ANCHOR, TITLE = "diversity", "Diversity"


def section(results) -> Section:
    tests = results.table("diversity/alpha_tests.tsv")
    permanova = results.table("diversity/permanova.tsv")
    if tests is None and permanova is None:
        return not_run(ANCHOR, TITLE, "The diversity stage did not run.")
    findings, caveats, body = [], [], ""
    if tests is not None:
        body += ("<h3>Alpha diversity: patients vs household controls</h3><p>Paired Wilcoxon on within-household "
                 "differences, and a household random-intercept model with covariates, site and therapies.</p>")
        keep = [c for c in ("metric", "test", "effect", "se", "p_value", "n", "n_pairs") if c in tests.columns]
        body += table(tests[keep])
        low = tests[tests["p_value"] < 0.05]
        findings.append("Alpha diversity: " + ("no metric differs between patients and controls (p ≥ 0.05)."
                                               if low.empty else "p &lt; 0.05 for " + ", ".join(
                                                   f"{esc(m)} ({esc(t)}, effect {fmt(float(e))})"
                                                   for m, t, e in zip(low["metric"], low["test"], low["effect"]))
                                               + " (uncorrected for the number of metrics)."))
    if results.has("diversity/figures/alpha.png"):
        body += figure(results.path("diversity/figures/alpha.png"), "alpha diversity by status",
                       "Boxes by status; a grey line joins each household's patient and control.")
    if permanova is not None:
        terms = permanova[~permanova["term"].isin(["Residual", "Total"])]
        status = terms[(terms["term"] == "status")]
        body += ("<h3>Community composition (PERMANOVA)</h3><p>Model <code>status</code>: status alone, "
                 "permutations within households (the paired test). <code>adjusted</code>: status, covariates "
                 "and site, sequential sums of squares, free permutations.</p>")
        if len(status):
            keep = [c for c in ("metric", "model", "r2", "pseudo_f", "p_value", "strata") if c in status.columns]
            body += table(status[keep])
        site = terms[terms["term"] == "site"]
        if len(site) and len(status):
            by_metric = site.groupby("metric")["r2"].max()
            status_r2 = status.groupby("metric")["r2"].max()
            larger = [m for m in by_metric.index if m in status_r2.index and by_metric[m] > status_r2[m]]
            if larger:
                m = max(larger, key=lambda k: by_metric[k] - status_r2[k])
                caveats.append(f"Site explains more of the community variation than disease status for {len(larger)} of "
                               f"{len(by_metric)} metrics (e.g. {esc(m)}: site R² {fmt(float(by_metric[m]))}, status "
                               f"{fmt(float(status_r2[m]))}): findings pooled over sites can be site-driven.")
        significant = status[(status["p_value"] < 0.05)]
        findings.append("Community composition: " + (
            "status is not associated with any beta-diversity metric (PERMANOVA p ≥ 0.05)." if significant.empty
            else "status is associated with " + ", ".join(sorted(set(esc(m) for m in significant["metric"])))
            + f" (PERMANOVA p &lt; 0.05, R² at most {fmt(float(significant['r2'].max()))})."))
        body += details(f"All {len(terms)} PERMANOVA terms", table(terms))
    permdisp = results.table("diversity/permdisp.tsv")
    if permdisp is not None:
        body += ("<h3>Dispersion (PERMDISP)</h3><p>A PERMANOVA difference can come from a difference in spread "
                 "rather than in location; PERMDISP tests the spread.</p>" + table(permdisp))
        spread = permdisp[permdisp["p_value"] < 0.05]
        if len(spread):
            caveats.append("Dispersion differs by status for " + ", ".join(esc(m) for m in spread["metric"])
                           + ": the PERMANOVA result for these metrics may reflect spread, not location.")
    pcoa = results.glob("diversity/figures/pcoa_*.png")
    if pcoa:
        body += "<h3>Ordination</h3>" + figure(results.path(pcoa[0]), pcoa[0], "Principal coordinates by status "
                                                  "(status colours) and by site (site palette).")
        if len(pcoa) > 1:
            body += details(f"Ordinations of the other {len(pcoa) - 1} metrics",
                            "".join(figure(results.path(p), p) for p in pcoa[1:]))
    body += results.links("diversity/*.tsv") + results.links("diversity/*.txt")
    return Section(ANCHOR, TITLE, body, findings, caveats)
