#!/usr/bin/env python
"""Score a workflow run's classification against a held-out truth.

    python benchmarks/heldout/score.py RESULTS_DIR TRUTH_TSV [--rank species] [--json score.json]

RESULTS_DIR is the run's ``outdir`` (or the classification TSV itself). The classification's
``class`` (MS risk) and, when present, ``progression_class`` are compared with the truth at the
rank the run used (detected from the feature prefixes: ``s__`` species, ``g__`` genus, else feature).

Definitions (per axis):
- a *call* is a non-neutral class; a *true effect* is a truth row that is high-risk or protective;
  truth rows marked ``ambiguous`` (a planted effect diluted by aggregation) are left out;
- precision = calls with the true class / all calls on scored rows (wrong-direction calls and
  calls on nulls count against it); recall = true effects called with the true class / true
  effects (taxa the run did not test count as missed);
- calls on nulls = calls on truth-neutral taxa, with their rate among the nulls the run tested,
  and broken down by the trap the null carries (therapy_only, sex, severity, ...);
- every figure is also given per effect kind and per prevalence band.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

CALLS = ("high-risk", "protective")


def read_classification(path: Path) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / "classification" / "species_classification.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give the run's outdir or its species_classification.tsv")
    df = pd.read_csv(path, sep="\t", comment="#", dtype=str, keep_default_na=False)
    for col in ("feature", "class"):
        if col not in df.columns:
            raise ValueError(f"{path}: no '{col}' column (columns: {', '.join(df.columns)})")
    return df


def detect_rank(features: pd.Series) -> str:
    prefix = features.str[:3].value_counts()
    if prefix.get("s__", 0) >= len(features) / 2:
        return "species"
    if prefix.get("g__", 0) >= len(features) / 2:
        return "genus"
    return "feature"


def _norm(name: str) -> str:
    # names may differ in Greengenes brackets and case only
    return re.sub(r"[\[\]]", "", name).lower()


def match(called: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Truth rows with the run's columns joined by name.

    Exact names first; then a run's homonym-qualified name ``name (parent)`` against the truth's
    name and ``parent``; then names equal up to brackets and case, when that is unique.
    """
    called = called.drop_duplicates("feature").set_index("feature")
    if "evidence" not in called.columns and "reason" in called.columns:
        # before the contract's `evidence` column existed, `reason` said "not tested: ..."
        called["evidence"] = called["reason"].where(called["reason"].str.startswith("not tested"), "")
        called["evidence"] = called["evidence"].str.slice(0, 10)
    qualified = {}
    plain = {}
    for f in called.index:
        m = re.fullmatch(r"(.*) \((.*)\)", f)
        if m:
            qualified[(_norm(m.group(1)), m.group(2))] = f
        plain.setdefault(_norm(f), []).append(f)
    parent = truth["parent"] if "parent" in truth.columns else pd.Series("", index=truth.index)
    keys = []
    for f, up in zip(truth["feature"], parent):
        if f in called.index:
            keys.append(f)
        elif (_norm(f), up) in qualified:
            keys.append(qualified[(_norm(f), up)])
        elif len(plain.get(_norm(f), [])) == 1:
            keys.append(plain[_norm(f)][0])
        else:
            keys.append(None)
    key = pd.Series(keys, index=truth.index)
    joined = truth.copy()
    for col in ("class", "progression_class", "evidence"):
        if col in called.columns:
            joined[f"called_{col}"] = key.map(called[col]).fillna("not tested")
            if col != "evidence":
                joined[f"called_{col}"] = joined[f"called_{col}"].replace("", "not tested")
    unmatched = sorted(set(called.index) - set(key.dropna()))
    return joined, unmatched


def score_axis(df: pd.DataFrame, truth_col: str, called_col: str, kind_col: str) -> dict:
    """Precision, recall and calls on nulls for one axis, overall and per kind, trap and band."""
    scored = df[df[truth_col] != "ambiguous"]
    call = scored[called_col].isin(CALLS)
    effect = scored[truth_col].isin(CALLS)
    right = call & (scored[called_col] == scored[truth_col])
    tested = scored[called_col] != "not tested"
    if "called_evidence" in scored.columns:
        tested &= scored["called_evidence"] != "not tested"

    def block(mask) -> dict:
        m = mask
        n_eff = int((effect & m).sum())
        n_null = int((~effect & m).sum())
        n_calls = int((call & m).sum())
        tp = int((right & m).sum())
        null_tested = int((~effect & m & tested).sum())
        null_calls = int((~effect & m & call).sum())
        return {"true_effects": n_eff, "true_effects_tested": int((effect & m & tested).sum()),
                "calls": n_calls, "correct_calls": tp,
                "wrong_direction": int((effect & m & call & ~right).sum()),
                "precision": tp / n_calls if n_calls else None,
                "recall": tp / n_eff if n_eff else None,
                "nulls": n_null, "nulls_tested": null_tested, "calls_on_nulls": null_calls,
                "null_call_rate": null_calls / null_tested if null_tested else None}

    ambiguous = df[truth_col] == "ambiguous"
    out = {"overall": block(pd.Series(True, index=scored.index)),
           "ambiguous_rows": int(ambiguous.sum()),
           "calls_on_ambiguous": int(df.loc[ambiguous, called_col].isin(CALLS).sum())}
    out["by_effect_kind"] = {k: block(effect & (scored[kind_col] == k))
                             for k in sorted(scored.loc[effect, kind_col].unique())}
    traps = scored["trap"].fillna("").replace("", "none").str.split(";")
    out["nulls_by_trap"] = {}
    for t in sorted(set(x for lst in traps[~effect] for x in lst)):
        out["nulls_by_trap"][t] = block(~effect & traps.map(lambda lst, t=t: t in lst))
    out["by_prevalence_band"] = {b: block(scored["prevalence_band"] == b)
                                 for b in ["<10%", "10-30%", "30-60%", "60-90%", ">=90%"]
                                 if (scored["prevalence_band"] == b).any()}
    ev = "called_evidence"
    if ev in scored.columns and scored[ev].isin(["equivalent", "inconclusive"]).any():
        out["true_effects_called_equivalent"] = int((effect & (scored[ev] == "equivalent")).sum())
        out["nulls_called_equivalent"] = int((~effect & (scored[ev] == "equivalent")).sum())
    return out


def score(results: Path, truth_path: Path, rank: str | None = None) -> dict:
    called = read_classification(results)
    truth = pd.read_csv(truth_path, sep="\t", dtype={"feature": str}, keep_default_na=False)
    rank = rank or detect_rank(called["feature"])
    truth = truth[truth["rank"] == rank]
    if truth.empty:
        raise ValueError(f"{truth_path} has no rows at rank {rank!r}")
    joined, unmatched = match(called, truth)
    out = {"rank": rank, "taxa_in_truth": len(truth), "taxa_in_results": int(called["feature"].nunique()),
           "results_not_in_truth": unmatched}
    out["ms_risk"] = score_axis(joined, "class", "called_class", "effect_kind")
    if "called_progression_class" in joined.columns:
        joined["progression_kind"] = joined["progression_class"].where(
            ~joined["progression_class"].isin(CALLS), "severity")
        out["progression"] = score_axis(joined, "progression_class", "called_progression_class",
                                        "progression_kind")
    return out


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def render(res: dict) -> str:
    cols = ["true_effects", "true_effects_tested", "correct_calls", "wrong_direction", "recall",
            "calls", "precision", "nulls_tested", "calls_on_nulls", "null_call_rate"]
    short = ["effects", "tested", "correct", "wrongdir", "recall", "calls", "precision", "nulls(t)", "nullcalls",
             "nullrate"]
    lines = [f"rank {res['rank']}: {res['taxa_in_truth']} taxa in truth, {res['taxa_in_results']} in results"]
    if res["results_not_in_truth"]:
        lines.append(f"  results not in truth ({len(res['results_not_in_truth'])}): "
                     + ", ".join(res["results_not_in_truth"][:10]))
    for axis in ("ms_risk", "progression"):
        if axis not in res:
            continue
        a = res[axis]
        lines.append(f"\n== {axis} (ambiguous rows left out: {a['ambiguous_rows']}, calls on them: "
                     f"{a['calls_on_ambiguous']})")
        lines.append(f"{'':28s}" + "".join(f"{s:>10s}" for s in short))
        groups = [("overall", {"": a["overall"]})] + [(g, a[g]) for g in
                                                      ("by_effect_kind", "nulls_by_trap", "by_prevalence_band")]
        for title, blocks in groups:
            for name, b in blocks.items():
                label = "overall" if title == "overall" else f"{title.split('_')[-1]}: {name}"
                lines.append(f"{label:28s}" + "".join(f"{_fmt(b[c]):>10s}" for c in cols))
        if "nulls_called_equivalent" in a:
            lines.append(f"neutral 'equivalent': {a['nulls_called_equivalent']} true nulls, "
                         f"{a['true_effects_called_equivalent']} true effects (should be 0)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="the run's outdir or its species_classification.tsv")
    ap.add_argument("truth", type=Path, help="truth.tsv written by generate.py")
    ap.add_argument("--rank", choices=["feature", "species", "genus"])
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    try:
        res = score(args.results, args.truth, args.rank)
    except (ValueError, FileNotFoundError) as err:
        print(f"score.py: {err}", file=sys.stderr)
        return 2
    print(render(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
