"""Every stool sample counts: the all-sample nested model against the first-sample model, on generated cohorts.

    python benchmarks/calibrate_repeated.py [--seeds 20] [--out benchmarks/results/repeated.json]
    python benchmarks/calibrate_repeated.py --primary [--seeds 20] [--effect-size 0.6] \
        [--out benchmarks/results/repeated_primary.json]

For each scenario (a data-generating process: samples per participant K, within-person
noise, its autocorrelation over visits, presence turnover, paired or unpaired) and each
seed, the generator (``workflow_scripts.synthetic``) makes a planted cohort and its null
twin (same participants, samples and noise, no disease effect). Every species is tested
for MS vs control on the CLR of its abundance (whole composition, pseudo-count 0.5),
adjusted for sex, age, BMI, site and therapy, three ways:

- ``all``: every sample, participant within household
  (:func:`workflow_scripts.models.repeated_model.fit_repeated`);
- ``first``: each participant's first sample, household random intercept (today's default
  in the differential stage);
- ``mean``: each participant's mean CLR over their samples, household random intercept.

With the same number of samples for everyone and participant-level covariates, ``all``
and ``mean`` are the same estimator (GLS on balanced data reduces to the participant
means), so they differ only in the unbalanced scenario.

Reported per scenario, as the median and the 10th-90th percentiles over seeds:
``se_ratio`` (median over planted species of SE(all or mean) / SE(first)); ``recall`` and
``precision`` of BH q < 0.05 calls against the planted high-risk and protective species;
``type1`` (fraction of p < 0.05 over every species of the null twin) and ``null_calls``
(q < 0.05 calls on the null twin). Species are those present in at least 10% of the
participants' first samples, the same set for the three models.

``--primary``: the differential stage's primary test (issue 16's differential part) on the
same scenarios, the cohorts ingested as a run would (species rank), with smaller planted
effects (``--effect-size``, default 0.6), under ``differential.repeated_samples``:

- ``first``: the first sample of every participant;
- ``all``: every sample (per-participant mean CLR, presence in any sample, households
  weighted by their number of samples);
- ``all_unweighted``: the same summaries, every household weighing 1.

Calls are the stage's rule (:func:`workflow_scripts.differential.calls.decide`) at the level
in force without the self-calibration's tightening (q < 0.025), with the therapy check;
``--calibrated`` runs the self-calibration of every cohort and calls at the level it chooses
(``first`` and ``all`` only).
Reported per scenario and policy: ``recall`` (planted high-risk and protective species
called in their direction, per seed: mean, 10th-90th percentiles), ``precision`` pooled over
seeds (right calls / calls; treatment-only species count as wrong), ``type1`` (fraction of
combined p < 0.05 over the taxa of 20 label swaps per seed, the swaps of the stage's
self-calibration: mean and 10th-90th percentiles over seeds), and ``gain``: the seeds where
``all`` found more / fewer planted species than ``first``.

Nothing here is tuned: the scenarios are fixed before looking at the results.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow_scripts import synthetic  # noqa: E402
from workflow_scripts.design import build_design, first_samples  # noqa: E402
from workflow_scripts.differential import calibration, primary  # noqa: E402
from workflow_scripts.differential.calls import decide  # noqa: E402
from workflow_scripts.differential.prepare import DifferentialSettings, prepare  # noqa: E402
from workflow_scripts.ingest.harmonise import Settings, ingest  # noqa: E402
from workflow_scripts.models.mixed_model import test_term  # noqa: E402
from workflow_scripts.models.multiple_testing import bh  # noqa: E402
from workflow_scripts.models.repeated_model import fit_repeated  # noqa: E402
from workflow_scripts.transforms import clr_abundance  # noqa: E402

#: name -> generator arguments (besides the seed)
SCENARIOS = {
    "K2_within0.8": dict(samples_per_participant=2, within_sd=0.8),
    "K4_within1.0_ar0.5_turnover0.1": dict(samples_per_participant=4, within_sd=1.0, time_correlation=0.5,
                                           presence_turnover=0.1),
    "K3_within0.5": dict(samples_per_participant=3, within_sd=0.5),
    "K3_within1.2_unpaired": dict(samples_per_participant=3, within_sd=1.2, n_households=1, n_unpaired=118),
    # unbalanced: 60% of participants with 2 samples (a quarter of them 3), the rest 1
    "mixed1to3_within1.0": dict(repeat_fraction=0.6, within_sd=1.0),
}
BASE = dict(n_households=60, n_unpaired=0, n_sites=3, n_species=120, n_variants=5, effect_size=1.0)
MODELS = ("all", "first", "mean")


def cohort_tables(cohort):
    """Species counts (samples x species), each sample's participant, and the participants' design."""
    counts = cohort.species_counts().T
    manifest = cohort.stool_manifest.set_index("sample_id").loc[counts.index]
    participants = cohort.participants.set_index("participant_id")
    design = build_design(participants, ["sex", "age", "bmi"], "MS")
    return counts, manifest, design


def test_species(cohort, models=MODELS) -> dict[str, pd.DataFrame]:
    """Status effect, SE and p-value of every species under each model."""
    counts, manifest, design = cohort_tables(cohort)
    clr = clr_abundance(counts, "counts")
    first = first_samples(manifest)
    prevalent = (counts.loc[first.to_numpy()] > 0).mean() >= 0.1
    clr = clr.loc[:, prevalent[prevalent].index]
    x = design.matrix()
    owner = manifest["participant_id"].to_numpy()
    out = {}
    for model in models:
        if model == "all":
            fit = fit_repeated(clr, x.loc[owner], owner, design.frame.loc[owner, "household"].to_numpy())
        else:
            per = clr.loc[first.loc[x.index].to_numpy()] if model == "first" else clr.groupby(owner).mean().loc[x.index]
            fit = fit_repeated(per, x, x.index.to_numpy(), design.households)
        term = test_term(fit, "status")
        term["qvalue"] = bh(term["pvalue"].to_numpy())
        out[model] = term
    return out


def score(planted: dict, null: dict, truth: pd.DataFrame) -> dict:
    signal = set(truth.loc[truth["class"].isin(["high-risk", "protective"]), "feature"])
    rows = {}
    for model in MODELS:
        term = planted[model]
        hit = term.index.isin(list(signal))
        called = term["qvalue"] < 0.05
        tested_signal = int(hit.sum())
        rows[model] = {
            "recall": float((called & hit).sum() / tested_signal) if tested_signal else np.nan,
            "precision": float((called & hit).sum() / called.sum()) if called.sum() else np.nan,
            "n_calls": int(called.sum()),
            "se_ratio": float(np.median(term["se"][hit] / planted["first"]["se"][hit])) if tested_signal else np.nan,
            "type1": float((null[model]["pvalue"] < 0.05).mean()),
            "null_calls": int((null[model]["qvalue"] < 0.05).sum()),
        }
    return rows


def run_scenario(name: str, seeds) -> dict:
    args = BASE | SCENARIOS[name]
    per_seed = []
    for seed in seeds:
        planted = synthetic.generate(seed=seed, **args)
        null = synthetic.generate(seed=seed, null=True, **args)
        per_seed.append(score(test_species(planted), test_species(null), planted.truth_species))
    summary = {}
    for model in MODELS:
        summary[model] = {}
        for metric in ("se_ratio", "recall", "precision", "type1", "null_calls", "n_calls"):
            values = np.array([s[model][metric] for s in per_seed], dtype=float)
            values = values[np.isfinite(values)]  # precision is undefined for a cohort without calls
            summary[model][metric] = {"median": float(np.median(values)), "p10": float(np.percentile(values, 10)),
                                      "p90": float(np.percentile(values, 90)), "mean": float(values.mean()),
                                      "n": int(values.size)} if values.size else None
    return {"arguments": args, "seeds": [min(seeds), max(seeds)], "summary": summary}


# ---------------------------------------------------------------------------
# The differential stage's primary test

POLICIES = {"first": ("first", True), "all": ("all", True), "all_unweighted": ("all", False)}
SWAPS = 20
LEVEL = 0.025


def workflow_cohort(cohort):
    """The generated cohort ingested as a run would (species rank, every sample kept)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = synthetic.write(cohort, tmp, abundance_format="tsv", genotype_format="dosage")
        ingested, _ = ingest(Settings(participants=str(paths["participants"]),
                                      stool_manifest=str(paths["stool_manifest"]), abundance=str(paths["abundance"]),
                                      taxonomy=str(paths["taxonomy"]), rank="species",
                                      covariates=("sex", "age", "bmi"), min_depth=0))
    return ingested


def primary_result(cohort, truth: pd.DataFrame, policy: str, weighted: bool = True,
                   calibrated: bool = False) -> dict:
    """Calls of the primary test against the planted truth, and its type-I error on the label swaps.

    ``calibrated``: at the level the run's self-calibration chooses (else q < 0.025).
    """
    settings = DifferentialSettings.from_config(repeated_samples=policy, primary={"weight_by_samples": weighted},
                                                calibration={"null_replicates": SWAPS})
    data = prepare(cohort, settings)
    prep = primary.prepare_primary(data)
    level = calibration.level_in_force(calibration.calibrate(data, prep=prep), settings.fdr_level) \
        if calibrated else LEVEL
    result = primary.test_taxa(prep.units, prep.resp, prep.options, prep.bias_var)
    candidates = np.nan_to_num(result["qvalue"], nan=1.0) < level
    result["carried_by"] = primary.therapy_check(prep.units, prep.resp, result, candidates, prep.options)
    table = primary.primary_table(data, prep.units, result).set_index("feature")
    calls = decide(table, level)["call"]
    classes = truth.set_index("feature")["class"].reindex(calls.index)
    expected = classes.map({"high-risk": 1, "protective": -1}).fillna(0)
    null = []
    for r in range(SWAPS):
        raw = {k: v[r] for k, v in prep.raw_null.items()}
        null.append(primary.combine(raw, (prep.bias_null[0][r], prep.bias_null[1][r]), prep.bias_var,
                                    prep.options)["pvalue"])
    P = np.array(null, dtype=float)
    ok = np.isfinite(P)
    return {"right": int(((calls != 0) & (calls == expected)).sum()), "calls": int((calls != 0).sum()),
            "planted": int(truth["class"].isin(["high-risk", "protective"]).sum()),
            "type1": float((P[ok] < 0.05).mean()), "n_tests": int(ok.sum()), "level": level,
            "n_samples": int(table["n_samples"].iloc[0])}


def spread(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90)),
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def run_primary(name: str, seeds, effect_size: float, calibrated: bool = False) -> dict:
    args = BASE | SCENARIOS[name] | {"effect_size": effect_size}
    policies = {p: POLICIES[p] for p in (("first", "all") if calibrated else POLICIES)}
    per_seed = []
    for seed in seeds:
        generated = synthetic.generate(seed=seed, **args)
        cohort = workflow_cohort(generated)
        per_seed.append({p: primary_result(cohort, generated.truth_species, policy, weighted, calibrated)
                         for p, (policy, weighted) in policies.items()})
    summary = {}
    for p in policies:
        rows = [s[p] for s in per_seed]
        right, calls = sum(r["right"] for r in rows), sum(r["calls"] for r in rows)
        summary[p] = {"recall": spread([r["right"] / r["planted"] for r in rows]),
                      "precision_pooled": right / calls if calls else None, "calls": calls, "right": right,
                      "type1": spread([r["type1"] for r in rows]),
                      "type1_pooled": float(np.average([r["type1"] for r in rows],
                                                       weights=[r["n_tests"] for r in rows]))}
    found = np.array([s["all"]["right"] - s["first"]["right"] for s in per_seed])
    summary["gain"] = {"all_more": int((found > 0).sum()), "all_fewer": int((found < 0).sum()),
                       "same": int((found == 0).sum()), "extra_species_per_seed": float(found.mean())}
    return {"arguments": args, "seeds": [min(seeds), max(seeds)], "summary": summary, "per_seed": per_seed}


def main_primary(args) -> int:
    results = {}
    for name in args.scenario or SCENARIOS:
        start = time.perf_counter()
        results[name] = run_primary(name, range(1, args.seeds + 1), args.effect_size, args.calibrated)
        s = results[name]["summary"]
        print(f"{name} ({time.perf_counter() - start:.0f} s); all vs first: more in {s['gain']['all_more']}, "
              f"fewer in {s['gain']['all_fewer']} seeds")
        for p in (p for p in POLICIES if p in s):
            m = s[p]
            precision = "NA" if m["precision_pooled"] is None else f"{m['precision_pooled']:.3f}"
            print(f"  {p:15s} recall {m['recall']['mean']:.3f} [{m['recall']['p10']:.2f}, {m['recall']['p90']:.2f}]  "
                  f"precision {precision} ({m['right']}/{m['calls']})  type-I {m['type1_pooled']:.4f} "
                  f"[{m['type1']['p10']:.3f}, {m['type1']['p90']:.3f}]")
    out = args.out or str(Path(__file__).resolve().parent / "results" / "repeated_primary.json")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default=None, help="default: results/repeated.json (--primary: "
                        "results/repeated_primary.json) next to this script")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="default: all of them")
    parser.add_argument("--primary", action="store_true", help="the differential stage's primary test instead")
    parser.add_argument("--effect-size", type=float, default=0.6, help="planted effect of --primary")
    parser.add_argument("--calibrated", action="store_true",
                        help="--primary at the level the self-calibration chooses (first and all only; slower)")
    args = parser.parse_args(argv)
    if args.primary:
        return main_primary(args)
    args.out = args.out or str(Path(__file__).resolve().parent / "results" / "repeated.json")
    results = {}
    for name in args.scenario or SCENARIOS:
        start = time.perf_counter()
        results[name] = run_scenario(name, range(1, args.seeds + 1))
        s = results[name]["summary"]
        print(f"{name} ({time.perf_counter() - start:.0f} s)")
        for model in MODELS:
            m = {k: v or {"median": np.nan, "mean": np.nan, "p10": np.nan, "p90": np.nan} for k, v in s[model].items()}
            print(f"  {model:5s} SE ratio {m['se_ratio']['median']:.3f}  recall {m['recall']['mean']:.3f}  "
                  f"precision {m['precision']['mean']:.3f}  type-I {m['type1']['mean']:.4f} "
                  f"[{m['type1']['p10']:.3f}, {m['type1']['p90']:.3f}]  null calls {m['null_calls']['mean']:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
