"""The calls' self-calibration on this cohort (``differential/calibration.tsv``, long format).

Rows: ``scope`` (A, B, C, primary, classification or a method), ``metric``
(type1_error_0.05, calls_per_null_swap, fdr, fdr_at_q, q_threshold_used,
power), ``prevalence_band``, ``effect``, ``value`` with ``lower``/``upper``,
``n_replicates``, ``n_tests``, ``status`` (ok, flagged, tightened), ``note``.
"""

from __future__ import annotations

import pandas as pd

from ..html import esc, fmt, pct, table
from . import Section, not_run

ANCHOR, TITLE = "calibration", "Calibration on this cohort"


def _interval(row) -> str:
    """A rate with its Wilson interval, as percentages."""
    if pd.isna(row.get("lower")) or pd.isna(row.get("upper")):
        return pct(row["value"])
    return f"{pct(row['value'])} ({pct(row['lower'])}–{pct(row['upper'])})"


def section(results) -> Section:
    cal = results.table("differential/calibration.tsv")
    if cal is None:
        return not_run(ANCHOR, TITLE, "No self-calibration in this run (<code>differential/calibration.tsv</code> "
                                      "is absent): the false-discovery rate of the calls on this cohort was not "
                                      "measured.")
    for column in ("value", "lower", "upper"):
        cal[column] = pd.to_numeric(cal[column], errors="coerce")
    status = cal.get("status", pd.Series("", index=cal.index)).fillna("")
    body = ("<p>The differential stage measured its own error rates on this cohort: status labels swapped within "
            "households (null swaps: nothing is real, so every call is false), and known effects implanted into "
            "the real data (the false-discovery rate of the calls and the power to find an effect). Intervals are "
            "Wilson 95%.</p>")
    findings, caveats = [], []

    type1 = cal[cal["metric"] == "type1_error_0.05"]
    if len(type1):
        shown = type1.assign(**{"type-I error at 0.05": type1.apply(_interval, axis=1)})
        keep = [c for c in ("scope", "type-I error at 0.05", "n_replicates", "n_tests", "status", "note")
                if c in shown.columns]
        body += "<h3>Type-I error on null swaps (nominal 0.05)</h3>" + table(shown[keep], row_class="status")
        primary = type1[type1["scope"] == "primary"]
        if len(primary):
            row = primary.iloc[0]
            findings.append(f"The primary test rejected {pct(row['value'])} of true nulls at α 0.05 "
                            f"(95% CI {pct(row['lower'])}–{pct(row['upper'])}).")
    swaps = cal[cal["metric"] == "calls_per_null_swap"]
    if len(swaps):
        row = swaps.iloc[0]
        body += (f"<p>Calls per null swap (every one false): mean {fmt(row['value'])}, at most "
                 f"{fmt(row['upper'])}, over {fmt(row.get('n_replicates'))} swaps.</p>")
    fdr = cal[(cal["metric"] == "fdr") & (cal["scope"] == "classification")]
    if len(fdr):
        row = fdr.iloc[0]
        used = cal[cal["metric"] == "q_threshold_used"]
        level = f" at the q threshold {fmt(used['value'].iloc[0])}" if len(used) else ""
        body += (f"<h3>False-discovery rate of the calls</h3><p>Over {fmt(row.get('n_replicates'))} implant "
                 f"replicates, {pct(row['value'])} of the calls were false (95% CI {pct(row['lower'])}–"
                 f"{pct(row['upper'])}; {fmt(row.get('n_tests'))} calls){level}.</p>")
        findings.append(f"On this cohort's own data, {pct(row['value'])} of the calls on implanted effects were false "
                        f"(95% CI {pct(row['lower'])}–{pct(row['upper'])}).")
    at_q = cal[cal["metric"] == "fdr_at_q"]
    if len(at_q):
        body += table(at_q[[c for c in ("effect", "value", "n_replicates", "n_tests") if c in at_q.columns]]
                      .rename(columns={"effect": "level", "value": "FDR"}))
    power = cal[cal["metric"] == "power"]
    if len(power):
        grid = power.assign(cell=power.apply(_interval, axis=1)).pivot_table(
            index="prevalence_band", columns="effect", values="cell", aggfunc="first")
        body += ("<h3>Power</h3><p>Share of implanted taxa called, by the taxon's prevalence and the size of the "
                 "implanted effect.</p>" + table(grid, index=True))
        weak = power[power["value"] < 0.5]
        if len(weak):
            caveats.append("Low power (under 50%) for " + ", ".join(
                f"{esc(e)} effects at prevalence {esc(b)}" for b, e in zip(weak["prevalence_band"], weak["effect"]))
                + ": a taxon not called there is not evidence of no effect.")
    flagged = cal[status == "flagged"]
    for _, row in flagged.iterrows():
        caveats.append(f"Calibration flag: {esc(row['scope'])} {esc(row['metric'])} = {fmt(row['value'])}"
                       + (f" ({esc(row['note'])})" if isinstance(row.get("note"), str) and row["note"] else "")
                       + ".")
    tightened = cal[status == "tightened"]
    if len(tightened):
        caveats.append("The q threshold was tightened by the calibration to "
                       f"{fmt(tightened['value'].iloc[0])} to keep the measured FDR at its level.")
    body += results.links("differential/calibration.tsv")
    return Section(ANCHOR, TITLE, body, findings, caveats)
