#!/usr/bin/env python
"""Held-out evaluation of the MS-risk calls: the independent generator of benchmarks/heldout, scored.

    python benchmarks/heldout_calls.py --work /tmp/heldout [--runs realistic:1,2,3 hard:1,2,3 null:1,2,3
        implant:1,2,3] [--out benchmarks/results/heldout_calls.json]

For every run: ``benchmarks/heldout/generate.py`` writes a cohort and its truth (``implant``
= the real iMSMS 16S counts with implanted genera, from ``../shared/data/real/imsms_16s``),
``snakemake`` runs the workflow up to ``classification/species_classification.tsv`` (defaults,
except ``differential.aldex.draws: 16``: ALDEx is evidence and does not change a call), and
``benchmarks/heldout/score.py`` scores it. The summary gives, per scenario, the pooled
precision, the recall (median, min, max over seeds), calls on null taxa and on null cohorts,
recall per effect kind and per prevalence band, and true effects called ``equivalent``.

This is for judging the rule on data it was not tuned on, once, at the end: do not change the
rule's settings after looking at these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
HELDOUT = REPO / "benchmarks" / "heldout"
SHARED = REPO.parent / "shared" / "data" / "real"
if not SHARED.is_dir():
    SHARED = Path(os.environ.get("IMSMS_SHARED", "/work/shared")) / "data" / "real"
DEFAULT_RUNS = ["realistic:1,2,3", "hard:1,2,3", "null:1,2,3", "implant:1,2,3"]


def run_one(kind: str, seed: int, work: Path) -> dict:
    out = work / f"{kind}_{seed}"
    score_path = out / "score.json"
    if score_path.exists():
        return json.loads(score_path.read_text())
    if not (out / "config.yaml").exists():
        command = [sys.executable, str(HELDOUT / "generate.py"), "--seed", str(seed), "--out", str(out)]
        command += ["--implant", str(SHARED / "imsms_16s")] if kind == "implant" else ["--scenario", kind]
        subprocess.run(command, check=True, capture_output=True, text=True)
    config = yaml.safe_load((out / "config.yaml").read_text())
    config.setdefault("differential", {})["aldex"] = {"draws": 16}
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    results = Path(config["outdir"])
    results = results if results.is_absolute() else out / results
    target = results / "classification" / "species_classification.tsv"
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), str(target),
                           "--cores", "2", "--directory", str(out), "--configfile", str(out / "config.yaml")],
                          capture_output=True, text=True)
    (out / "snakemake.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"{kind} {seed}: snakemake failed, see {out / 'snakemake.log'}")
    subprocess.run([sys.executable, str(HELDOUT / "score.py"), str(results), str(out / "truth.tsv"),
                    "--json", str(score_path)], check=True, capture_output=True, text=True)
    score = json.loads(score_path.read_text())
    score["wall_s"] = time.time() - started
    score_path.write_text(json.dumps(score, indent=2))
    return score


def spread(values) -> dict:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}


def summarise(scores: list[dict]) -> dict:
    risk = [s["ms_risk"] for s in scores]
    calls = sum(r["overall"]["calls"] for r in risk)
    right = sum(r["overall"]["correct_calls"] for r in risk)
    kinds = sorted({k for r in risk for k in r["by_effect_kind"]})
    bands = sorted({b for r in risk for b in r["by_prevalence_band"]})

    def pooled(blocks):
        eff = sum(b["true_effects"] for b in blocks)
        return {"recall": sum(b["correct_calls"] for b in blocks) / eff if eff else None, "effects": eff,
                "calls_on_nulls": sum(b["calls_on_nulls"] for b in blocks)}

    return {
        "runs": len(scores), "calls": calls, "correct_calls": right,
        "pooled_precision": right / calls if calls else None,
        "precision": spread([r["overall"]["precision"] for r in risk]),
        "recall": spread([r["overall"]["recall"] for r in risk]),
        "calls_on_nulls": spread([r["overall"]["calls_on_nulls"] for r in risk]),
        "wrong_direction": sum(r["overall"]["wrong_direction"] for r in risk),
        "by_effect_kind": {k: pooled([r["by_effect_kind"][k] for r in risk if k in r["by_effect_kind"]])
                           for k in kinds},
        "by_prevalence_band": {b: pooled([r["by_prevalence_band"][b] for r in risk if b in r["by_prevalence_band"]])
                               for b in bands},
        "nulls_by_trap": {t: sum(r["nulls_by_trap"][t]["calls_on_nulls"] for r in risk if t in r["nulls_by_trap"])
                          for t in sorted({t for r in risk for t in r["nulls_by_trap"]})},
        "true_effects_called_equivalent": sum(r.get("true_effects_called_equivalent", 0) for r in risk),
        "nulls_called_equivalent": sum(r.get("nulls_called_equivalent", 0) for r in risk),
        "wall_s": spread([s.get("wall_s") for s in scores]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="where the cohorts and results go (kept; reruns reuse them)")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="kind:seed,seed,... (kind: easy, "
                        "realistic, hard, null, implant)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "heldout_calls.json"))
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    summary = {}
    for spec in args.runs:
        kind, seeds = spec.split(":")
        scores = []
        for seed in map(int, seeds.split(",")):
            print(f"{kind} {seed} ...", file=sys.stderr, flush=True)
            scores.append(run_one(kind, seed, work))
        summary[kind] = summarise(scores)
        summary[kind]["seeds"] = [int(s) for s in seeds.split(",")]
        summary[kind]["per_seed"] = [{"precision": s["ms_risk"]["overall"]["precision"],
                                      "recall": s["ms_risk"]["overall"]["recall"],
                                      "calls": s["ms_risk"]["overall"]["calls"],
                                      "calls_on_nulls": s["ms_risk"]["overall"]["calls_on_nulls"]} for s in scores]
    summary["load"] = {"start": load_start, "end": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
