#!/usr/bin/env python
"""Error rates of the MS-risk calls (issue 14) on our own generator and on the real cohorts.

    python benchmarks/calibrate_calls.py [--sections type1 planted implants large] [--out benchmarks/results]
        [--swaps 200] [--seeds 10] [--replicates 20] [--cache /tmp/calls_cache]

Sections (each writes its part of ``<out>/calls.json`` and prints Markdown tables):

``type1``
    Null label swaps (within households; unpaired: within site) of a generator null cohort
    (300 households, 6 sites, 300 species, seed 101), the real iMSMS 16S cohort (genus) and the
    Kiel cohort (genus, unpaired): the type-I error of components A, B, C and the combination at
    0.05 and 0.01 (pooled over swaps x taxa; the per-swap spread), the largest per-taxon
    rejection rate, and the calls per swap at q < 0.025.
``planted``
    Generator cohorts with planted effects (300 households, 6 sites, 300 species, ln fold
    change 1, seeds 101-110) and null cohorts (seeds 101-105): the whole rule as a run applies
    it (primary test, self-calibration, the level in force, the call rule): precision, recall,
    treatment-only species called, calls on null cohorts.
``implants``
    Wirbel-style implants into the real iMSMS and Kiel cohorts and a generator null cohort:
    labels swapped, then 12 taxa scaled 2-3x and 4 prevalence shifts in the labelled cases
    (:func:`workflow_scripts.differential.calibration.implant`, a seed stream of its own), then
    the whole rule with the cohort's own calibration: precision, recall, recall of 2-3x
    changes at >= 30% prevalence, per replicate.
``large``
    One planted cohort of 2,000 households and 1,000 species (the benchmark's ``large``):
    precision and recall.

The data for the real cohorts are read from ``../shared/data/real`` (or ``$IMSMS_SHARED``);
those sources are skipped when absent. Only the generator and our own implants are used here;
the held-out generator (``benchmarks/heldout``) is for the final evaluation, not for this.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workflow_scripts.differential import calibration, primary  # noqa: E402
from workflow_scripts.differential.calls import decide  # noqa: E402
from workflow_scripts.differential.prepare import DifferentialSettings, make_pairs, prepare  # noqa: E402
from workflow_scripts.ingest.harmonise import Settings, ingest  # noqa: E402
from workflow_scripts.models.multiple_testing import bh  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "real"
if not SHARED.is_dir():
    SHARED = Path(os.environ.get("IMSMS_SHARED", "/work/shared")) / "data" / "real"
EVALUATION_STREAM = 9014  # implants of this benchmark (not the calibration's streams)


# ---------------------------------------------------------------------------
# Sources


def generated(seed: int, null: bool = False, households: int = 300, species: int = 300, sites: int = 6):
    """(cohort, truth_species) from the project's generator, ingested at species rank."""
    from workflow_scripts.synthetic import generate, write

    synthetic = generate(n_households=households, n_sites=sites, n_species=species, n_variants=5, seed=seed,
                         null=null, effect_size=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write(synthetic, tmp, abundance_format="tsv", genotype_format="dosage")
        cohort, _ = ingest(Settings(participants=str(paths["participants"]),
                                    stool_manifest=str(paths["stool_manifest"]), abundance=str(paths["abundance"]),
                                    taxonomy=str(paths["taxonomy"]), rank="species",
                                    covariates=("sex", "age", "bmi"), min_depth=0))
    return cohort, synthetic.truth_species


def real(name: str):
    """The iMSMS (genus) or Kiel (genus, unpaired) cohort, or None when the data are absent."""
    from workflow_scripts.examples import imsms, troci

    tmp = Path(tempfile.mkdtemp())
    if name == "imsms":
        if not (SHARED / "imsms_16s").is_dir():
            return None
        config = yaml.safe_load(imsms.convert(SHARED / "imsms_16s", tmp).read_text())
        config.update(case_label="MS", control_label="HHC")
    else:
        if not (SHARED / "troci_ms_bcell").is_dir():
            return None
        config = yaml.safe_load(troci.convert(SHARED / "troci_ms_bcell" / "ms_vs_hc_stool", tmp).read_text())
    cohort, _ = ingest(Settings.from_config(config))
    return cohort


def source(name: str, cache: Path):
    """(cohort, truth or None), cached."""
    path = cache / f"{name}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    if name in ("imsms", "kiel"):
        result = (real(name), None)
    elif name == "large":
        result = generated(1, households=2000, species=1000, sites=3)
    else:
        seed = int(name.removeprefix("gen").removesuffix("null"))
        result = generated(seed, null=name.endswith("null"))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(result))
    return result


def stage(cohort, name: str, **settings):
    covariates = ["sex", "age"] if name == "kiel" else ["sex", "age", "bmi"]
    return prepare(cohort, DifferentialSettings.from_config({"covariates": covariates, **settings}))


def calls_of(data):
    """The run's calls: primary test, self-calibration, the level in force, the rule."""
    table = primary.run(data).set_index("feature")
    level = calibration.level_in_force(calibration.calibrate(data), data.settings.fdr_level)
    return decide(table, level)["call"], level


def spread(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}


# ---------------------------------------------------------------------------
# Sections


def type1(cache: Path, n_swaps: int) -> dict:
    out = {}
    for name in ("gen101null", "imsms", "kiel"):
        cohort, _ = source(name, cache)
        if cohort is None:
            continue
        data = stage(cohort, name, calibration={"null_replicates": n_swaps})
        started = time.process_time()
        prep = primary.prepare_primary(data)
        P = {c: [] for c in ("p_A", "p_B", "p_C", "pvalue")}
        calls = []
        for r in range(n_swaps):
            raw = {k: v[r] for k, v in prep.raw_null.items()}
            result = primary.combine(raw, (prep.bias_null[0][r], prep.bias_null[1][r]), prep.bias_var, prep.options)
            result["qvalue"] = bh(result["pvalue"])
            for c in P:
                P[c].append(result[c])
            frame = calibration.replicate_frame(result, np.full(len(result["pvalue"]), "", dtype=object))
            calls.append(int((decide(frame, 0.025)["call"] != 0).sum()))
        row = {"swaps": n_swaps, "taxa": len(data.features), "cpu_s": time.process_time() - started,
               "calls_per_swap": spread(calls), "max_calls": int(max(calls))}
        for c, P_ in P.items():
            M = np.array(P_, dtype=float)
            ok = np.isfinite(M)
            per_swap = np.where(ok, M < 0.05, False).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
            per_taxon = np.where(ok, M < 0.05, False).sum(axis=0) / np.maximum(ok.sum(axis=0), 1)
            row[c] = {"alpha_0.05": float((M[ok] < 0.05).mean()), "alpha_0.01": float((M[ok] < 0.01).mean()),
                      "per_swap": spread(per_swap), "max_per_taxon": float(per_taxon[ok.sum(axis=0) > 0].max())}
        out[name] = row
    return out


def planted(cache: Path, n_seeds: int) -> dict:
    rows, nulls = [], []
    for seed in range(101, 101 + n_seeds):
        cohort, truth = source(f"gen{seed}", cache)
        data = stage(cohort, "gen")
        calls, level = calls_of(data)
        classes = truth.set_index("feature")["class"].reindex(calls.index)
        expected = classes.map({"high-risk": 1, "protective": -1}).fillna(0)
        right = int(((calls != 0) & (calls == expected)).sum())
        made = int((calls != 0).sum())
        n_true = int((truth["class"].isin(["high-risk", "protective"])).sum())
        rows.append({"seed": seed, "calls": made, "right": right, "planted": n_true, "level": level,
                     "precision": right / made if made else None, "recall": right / n_true,
                     "treatment_only_called": int(((calls != 0) & (classes == "treatment-only")).sum())})
    for seed in range(101, 101 + min(5, n_seeds)):
        cohort, _ = source(f"gen{seed}null", cache)
        calls, level = calls_of(stage(cohort, "gen"))
        nulls.append({"seed": seed, "calls": int((calls != 0).sum()), "level": level})
    made = sum(r["calls"] for r in rows)
    right = sum(r["right"] for r in rows)
    return {"cohorts": rows, "nulls": nulls, "pooled_precision": right / made if made else None,
            "precision": spread([r["precision"] for r in rows]), "recall": spread([r["recall"] for r in rows]),
            "treatment_only_called": sum(r["treatment_only_called"] for r in rows),
            "null_calls_max": max(r["calls"] for r in nulls) if nulls else None}


def implanted_data(data, status, therapy, values):
    """The stage data with swapped labels and implanted abundances."""
    relabelled = calibration.with_labels(data, status, therapy)
    profiles = pd.DataFrame(values, index=data.profiles.index, columns=data.profiles.columns)
    return replace(relabelled, profiles=profiles, pairs=make_pairs(relabelled.design))


def implants(cache: Path, n_replicates: int) -> dict:
    out = {}
    for name in ("imsms", "kiel", "gen101null"):
        cohort, _ = source(name, cache)
        if cohort is None:
            continue
        data = stage(cohort, name)
        swaps = primary.swap_labels(data.design, n_replicates, data.settings.seed, stream=EVALUATION_STREAM)
        rng = np.random.default_rng(np.random.SeedSequence([EVALUATION_STREAM, 1]))
        values = data.profiles.to_numpy(dtype=float)
        columns = np.array([data.profiles.columns.get_loc(f) for f in data.features])
        rows = []
        started = time.process_time()
        for r in range(n_replicates):
            new, truth = calibration.implant(values, swaps.status[r], data.kind, columns, rng)
            calls, level = calls_of(implanted_data(data, swaps.status[r], swaps.therapy[r], new))
            calls = calls.to_numpy()
            made, false, right = calibration.score(calls, truth)
            big = ((truth["kind"] == "abundance") & truth["band"].isin(["30-60%", ">=60%"])).to_numpy()
            rows.append({"replicate": r, "calls": made, "false": false, "level": level,
                         "recall": float(right.mean()), "recall_2_3x_ge30": float(right[big].mean()),
                         "hits_2_3x_ge30": int(right[big].sum()), "n_2_3x_ge30": int(big.sum()),
                         "fdp": false / made if made else 0.0,
                         "by_band": {f"{k}/{b}": float(right[((truth['kind'] == k) & (truth['band'] == b))
                                                                .to_numpy()].mean())
                                     for k in ("abundance", "prevalence") for b in ("<30%", "30-60%", ">=60%")
                                     if ((truth['kind'] == k) & (truth['band'] == b)).any()}})
        made = sum(r["calls"] for r in rows)
        false = sum(r["false"] for r in rows)
        bands = pd.DataFrame([r.pop("by_band") for r in rows]).mean().round(3).to_dict()
        out[name] = {"replicates": rows, "pooled_precision": 1 - false / made if made else None,
                     "fdp": spread([r["fdp"] for r in rows]), "recall": spread([r["recall"] for r in rows]),
                     "recall_2_3x_ge30": spread([r["recall_2_3x_ge30"] for r in rows]),
                     "pooled_recall_2_3x_ge30": sum(r["hits_2_3x_ge30"] for r in rows)
                     / max(1, sum(r["n_2_3x_ge30"] for r in rows)), "recall_by_band": bands,
                     "levels": sorted({r["level"] for r in rows}), "cpu_s": time.process_time() - started}
    return out


def large(cache: Path) -> dict:
    cohort, truth = source("large", cache)
    data = stage(cohort, "gen")
    started = time.process_time()
    calls, level = calls_of(data)
    classes = truth.set_index("feature")["class"].reindex(calls.index)
    expected = classes.map({"high-risk": 1, "protective": -1}).fillna(0)
    right = int(((calls != 0) & (calls == expected)).sum())
    made = int((calls != 0).sum())
    n_true = int(truth["class"].isin(["high-risk", "protective"]).sum())
    return {"calls": made, "right": right, "planted": n_true, "precision": right / made if made else None,
            "recall": right / n_true, "level": level, "cpu_s": time.process_time() - started,
            "treatment_only_called": int(((calls != 0) & (classes == "treatment-only")).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["type1", "planted", "implants", "large"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "calls_cache"))
    parser.add_argument("--swaps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--replicates", type=int, default=20)
    args = parser.parse_args(argv)
    cache = Path(args.cache)
    path = Path(args.out) / "calls.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result["uptime_start"] = os.getloadavg()
    for section in args.sections:
        started = time.time()
        if section == "type1":
            result["type1"] = type1(cache, args.swaps)
        elif section == "planted":
            result["planted"] = planted(cache, args.seeds)
        elif section == "implants":
            result["implants"] = implants(cache, args.replicates)
        elif section == "large":
            result["large"] = large(cache)
        print(f"{section}: {time.time() - started:.0f} s", file=sys.stderr)
    result["uptime_end"] = os.getloadavg()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float))
    print(json.dumps({k: v for k, v in result.items() if k != "implants"}, indent=1, default=float)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
