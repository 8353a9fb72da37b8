"""The clinical stage's summary in words (``clinical/summary.md``), from its summary dict and tables."""

from __future__ import annotations

import pandas as pd

from .associations import AXES

SCORES = {"edss": "EDSS", "armss": "ARMSS", "msss": "MSSS", "snfl_z": "sNfL Z", "gfap_z": "GFAP Z",
          "progressive": "progressive course"}


def _model_text(name: str, model: dict) -> str:
    terms = " + ".join(model["terms"]) or "mean only"
    coef = ", ".join(f"{c:.4g}" for c in model["coef"])
    return f"{name}: log(value) ~ {terms} in {model['n']} controls; coefficients {coef}; residual SD {model['sd']:.4g}"


def markdown(summary: dict, calls: pd.DataFrame) -> str:
    """The summary as Markdown: data, models, axes tested and skipped, reference models, calls."""
    lines = ["# Clinical stage", "",
             f"- MS patients analysed: {summary['patients']} ({summary['rows']} model rows; repeated samples: "
             f"`{summary['repeated_samples']}`), untreated: {summary['untreated_patients']}",
             f"- taxa tested: {summary['taxa_tested']}",
             f"- tests per taxon x axis: {', '.join(summary['components'])} (Cauchy combination); "
             f"standard errors: {summary['errors']}", "",
             "## Axes", "", "| axis | patients with a value | tested |", "|---|---|---|"]
    skipped = {}
    for row in summary["skipped"]:
        skipped.setdefault(row["axis"], []).append(f"{row['subset']}: {row['reason']}")
    for axis in AXES:
        tested = "yes" if axis in summary["axes_tested"] else "no"
        note = "; ".join(skipped.get(axis, []))
        lines.append(f"| {SCORES[axis]} | {summary['patients_per_axis'].get(axis, 0)} | {tested}"
                     f"{' (' + note + ')' if note else ''} |")
    lines += ["", "## Blood-marker reference models", ""]
    models = summary["reference_models"]
    if not summary["markers_measured"]:
        lines.append("No sNfL or GFAP values in this cohort: the marker axes were skipped.")
    for marker in summary["markers_measured"]:
        fitted = models.get(marker, {})
        if not fitted:
            lines.append(f"- {marker}: no reference model (too few controls with a value)")
        for name, model in fitted.items():
            lines.append(f"- {marker}, {_model_text(name, model)}")
    lines += ["", "## Progression calls", ""]
    counts = summary["progression_classes"]
    lines.append(", ".join(f"{k}: {v}" for k, v in counts.items()) or "no taxa tested")
    called = calls[calls["progression_class"] != "neutral"] if len(calls) else calls
    if len(called):
        lines += ["", "| taxon | class | reason |", "|---|---|---|"]
        lines += [f"| {r.feature} | {r.progression_class} | {r.progression_reason} |"
                  for r in called.itertuples(index=False)]
    return "\n".join(lines) + "\n"
