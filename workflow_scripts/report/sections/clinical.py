"""Clinical axes within patients (``clinical/associations.tsv``, ``clinical/scores.tsv``, ``clinical/figures``)."""

from __future__ import annotations

import pandas as pd

from ..html import details, figure, table
from . import Section, not_run

ANCHOR, TITLE = "clinical", "Clinical severity and damage"
AXIS_WORDS = {"edss": "EDSS", "armss": "ARMSS (age-related severity)", "msss": "MSSS (severity for duration)",
              "snfl_z": "serum neurofilament light, Z", "gfap_z": "GFAP, Z", "progressive": "progressive course"}
#: Below this many patients HC3 errors are conservative (benchmarks/calibrate_clinical.py).
FEW_PATIENTS = 100


def section(results) -> Section:
    table_ = results.table("clinical/associations.tsv")
    if table_ is None:
        return not_run(ANCHOR, TITLE, "The clinical stage did not run in this workflow (no "
                                      "<code>clinical/associations.tsv</code>).")
    body = ("<p>Within patients only, each taxon's abundance (CLR, as in the differential stage) is regressed on "
            "one clinical axis at a time, adjusted for the covariates, site and therapies, with HC3 "
            "heteroskedasticity-consistent errors; each axis is oriented so that higher is worse. The "
            "<code>*_untreated</code> columns refit the model in untreated patients.</p>")
    per_axis = table_.groupby("axis").agg(taxa=("feature", "size"), patients=("n", "max"),
                                          significant=("qvalue", lambda q: int((q < 0.05).sum())))
    per_axis.index = pd.Index([AXIS_WORDS.get(a, a) for a in per_axis.index], name="axis")
    body += "<h3>Axes</h3>" + table(per_axis, index=True)
    top = table_.dropna(subset=["pvalue"]).sort_values(["qvalue", "pvalue"]).head(20)
    keep = [c for c in ("feature", "axis", "effect", "se", "pvalue", "qvalue", "n", "effect_untreated",
                        "pvalue_untreated") if c in top.columns]
    body += "<h3>Strongest associations</h3>" + table(top[keep])
    scores = results.table("clinical/scores.tsv")
    if scores is not None and len(scores):
        numeric = scores.select_dtypes("number")
        described = pd.DataFrame({"patients with a value": numeric.notna().sum(), "median": numeric.median(),
                                  "min": numeric.min(), "max": numeric.max()})
        body += details("Severity scores of the patients", table(described, index=True))
    for rel in results.glob("clinical/figures/*"):
        if rel.lower().endswith((".png", ".svg")):
            body += figure(results.path(rel), rel)
    body += results.links("clinical/*.tsv")
    n_sig = int((table_["qvalue"] < 0.05).sum())
    n_patients = int(table_["n"].max()) if len(table_) else 0
    findings = [f"Clinical axes (within {n_patients} patients): {n_sig} taxon × axis associations at q &lt; 0.05 "
                f"over {table_['axis'].nunique()} axes."]
    caveats = []
    axes = set(table_["axis"])
    if not axes & {"snfl_z", "gfap_z"}:
        caveats.append("No blood markers (sNfL, GFAP): severity calls rest on the disability scores alone, "
                       "which all come from one EDSS examination.")
    if 0 < n_patients < FEW_PATIENTS:
        caveats.append(f"Only {n_patients} patients with clinical data: the HC3 errors are conservative at this "
                       "size, so real severity-linked taxa are likely missed.")
    return Section(ANCHOR, TITLE, body, findings, caveats)
