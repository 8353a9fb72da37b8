"""Calibration of the clinical stage: inference under the null, and the progression call on planted truth.

Two parts, both printed as distributions and written as JSON:

``typei``
    Type-I error of the taxon ~ axis test when the axis carries no signal:
    the axis (EDSS; progressive course) is shuffled among the patients, the
    covariates and abundances are kept, and every taxon is tested with HC3
    sandwich errors, classical OLS errors, and a rank-based partial Spearman
    test (ranks of taxon and axis, covariates as they are). Run on the real
    iMSMS 16S cohort at genus rank (when ``../shared`` is present: real zeros
    and heavy tails) and on generated cohorts. Reported per method and alpha,
    overall and by the taxon's share of zeros, with the spread over taxa.

``planted``
    Generated cohorts with severity-linked species (``severity_effect``) and
    their null twins (same seed, ``null=True``) over many seeds: precision and
    recall of ``progression_class`` against ``truth_species.progression_class``,
    the calls on null cohorts, and the calls on MS-risk-only species.

``implant``
    The real iMSMS cohort with its clinical block (EDSS, course, duration)
    shuffled among the patients and severity implanted on real taxa
    (:func:`implant`): the rule on real zeros, depth and site structure.

Results (2025-12, HC3 and the default progression rule; per-cohort distributions in the JSON)
    ``typei`` (400 shuffles; % rejected at 5 / 1 / 0.1 %): real iMSMS genus,
    EDSS axis, 576 patients: HC3 4.73 / 0.88 / 0.09, classical 4.95 / 0.96 /
    0.09; course axis shuffled within therapy: HC3 5.07 / 1.15 / 0.12,
    classical 5.40 / 1.20 / 0.13, HC2 5.47 / 1.25 / 0.14; 60 random patients:
    HC3 2.2-2.7 % at 5 % (conservative), classical 4.7-5.1 %. Generated null
    cohorts (10 x 150 patients x 200 species x 6 axes): HC3 4.38 / 0.88 /
    0.10, classical 5.08 / 1.13 / 0.14, HC2 5.27 / 1.23 / 0.18.

    ``planted`` (200 species, 20 severity-linked, seeds 1-60 each, planted
    and null twin): precision / recall pooled over cohorts, then the share of
    cohorts reaching precision >= 0.9 and recall >= 0.8:

    ==========  ==========  ========  =====================  ================  =========
    households  precision   recall    cohorts P>=.9 / R>=.8  MS-risk-only call null calls
    ==========  ==========  ========  =====================  ================  =========
    300         0.993       1.000     60 / 60                1 of 60 cohorts   0 in 60
    150         0.995       0.998     60 / 60                0                 0 in 60
    100         0.998       0.912     60 / 53                0                 0 in 60
    80          0.996       0.689     59 / 30                0                 0 in 60
    50          1.000       0.122     32 / 1                 0                 0 in 60
    ==========  ==========  ========  =====================  ================  =========

    ``implant`` (real iMSMS genus, 576 patients, 10 genera, no blood
    markers): effect 0.3 per SD of EDSS: precision 1.000, recall 0.57 (0.30-0.80);
    0.5: precision 1.000, recall 0.92 (0.70-1.00), 19 of 20 cohorts >= 0.8.

Usage::

    python benchmarks/calibrate_clinical.py typei --shuffles 400 --out typei.json
    python benchmarks/calibrate_clinical.py planted --seeds 1-20 --households 150 --species 200 --out p.json
    python benchmarks/calibrate_clinical.py implant --seeds 1-20 --severity-effect 0.3 --out i.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workflow_scripts.clinical import associations, progression  # noqa: E402
from workflow_scripts.clinical.analyse import Settings, analyse  # noqa: E402
from workflow_scripts.transforms import participant_profiles  # noqa: E402
from workflow_scripts.ingest.harmonise import Settings as IngestSettings  # noqa: E402
from workflow_scripts.ingest.harmonise import ingest  # noqa: E402
from workflow_scripts.synthetic import generate, write  # noqa: E402

ALPHAS = (0.05, 0.01, 0.001)


def synthetic_cohort(**kwargs):
    """A generated cohort (with blood manifest) ingested in memory: (synthetic.Cohort, workflow Cohort)."""
    synthetic = generate(**{"n_variants": 5, "n_unpaired": 0, **kwargs})
    with tempfile.TemporaryDirectory() as tmp:
        paths = write(synthetic, tmp, abundance_format="tsv", genotype_format="dosage")
        cohort, _ = ingest(IngestSettings(
            participants=str(paths["participants"]), stool_manifest=str(paths["stool_manifest"]),
            blood_manifest=str(paths["blood_manifest"]), abundance=str(paths["abundance"]),
            taxonomy=str(paths["taxonomy"]), rank="species", covariates=("sex", "age", "bmi"), min_depth=0))
    return synthetic, cohort


def imsms_cohort(shared: Path):
    """The real iMSMS 16S cohort at genus rank, with the authors' disease_duration."""
    import yaml

    from workflow_scripts.examples import imsms

    source = shared / "data" / "real" / "imsms_16s"
    with tempfile.TemporaryDirectory() as tmp:
        config = yaml.safe_load(imsms.convert(source, Path(tmp)).read_text())
        config.update(case_label="MS", control_label="HHC")
        cohort, _ = ingest(IngestSettings.from_config(config))
    meta = pd.read_csv(source / "metadata.tsv", sep="\t", dtype=str).set_index("sample_id")
    cohort.participants["disease_duration"] = pd.to_numeric(
        meta["disease_duration"].reindex(cohort.participants.index), errors="coerce").where(
        cohort.participants["status"] == "MS")
    return cohort


# --------------------------------------------------------------------------- type-I error


def _pvalues(Y, axis, Z, method):
    if method == "spearman":
        Y = stats.rankdata(Y, axis=0)
        axis = stats.rankdata(axis)
        method = "classical"
    return associations.fit_axis(Y, axis, Z, method)["pvalue"]


def shuffled_type_i(cohort, axis_name: str, shuffles: int, seed: int, subsample: int | None = None,
                    within_therapy: bool = False) -> dict:
    """Rejection rates of every method over ``shuffles`` permutations of one axis.

    With ``subsample``, every permutation is made in a fresh random subset of
    that many patients (small cohorts are where heavy tails hurt). With
    ``within_therapy``, the axis is shuffled within therapy groups only, so it
    keeps its link to therapy (e.g. anti-CD20 for progressive MS) while a taxon
    whose spread differs by therapy meets it: the case the sandwich is for.
    """
    pts = associations.patients(cohort)
    result = analyse(cohort)
    values = result.patients[axis_name].reindex(pts.clr.index)
    has = values.notna().to_numpy()
    Y = pts.clr.to_numpy()[has]
    Z = pts.covariates.to_numpy(dtype=float)[has]
    axis = values.to_numpy()[has]
    samples = cohort.samples[cohort.samples["participant_id"].isin(pts.clr.index)]
    profiles = participant_profiles(cohort.table("taxa").loc[samples.index], samples, "first")
    zeros = (profiles.loc[pts.clr.index, pts.clr.columns].to_numpy()[has] == 0).mean(axis=0)
    dmt = pts.covariates.filter(like="dmt_").to_numpy()[has]
    therapy = (dmt * np.arange(1, dmt.shape[1] + 1)).sum(axis=1)  # 0 = untreated
    rng = np.random.default_rng(seed)
    methods = ("hc2", "hc3", "classical", "spearman")
    p = {m: np.empty((shuffles, Y.shape[1])) for m in methods}
    for b in range(shuffles):
        rows = np.sort(rng.choice(len(axis), subsample, replace=False)) if subsample else np.arange(len(axis))
        perm = axis[rows].copy()
        if within_therapy:
            for group in np.unique(therapy[rows]):
                members = np.flatnonzero(therapy[rows] == group)
                perm[members] = rng.permutation(perm[members])
        else:
            perm = rng.permutation(perm)
        for m in methods:
            try:
                p[m][b] = _pvalues(Y[rows], perm, Z[rows], m)
            except ValueError:  # the shuffled axis is aliased in this subset
                p[m][b] = np.nan
    bins = {"zeros<10%": zeros < 0.1, "zeros 10-50%": (zeros >= 0.1) & (zeros < 0.5), "zeros>=50%": zeros >= 0.5}
    out = {"axis": axis_name, "n": int(subsample or has.sum()), "taxa": int(Y.shape[1]), "shuffles": shuffles, "methods": {}}
    for m in methods:
        rates = {}
        for alpha in ALPHAS:
            per_taxon = np.nanmean(p[m] < alpha, axis=0)
            rates[str(alpha)] = {
                "overall": float(per_taxon.mean()),
                **{name: float(per_taxon[mask].mean()) if mask.any() else None for name, mask in bins.items()},
                "taxa_q90": float(np.quantile(per_taxon, 0.9)), "taxa_max": float(per_taxon.max()),
            }
        out["methods"][m] = rates
    out["taxa_per_bin"] = {name: int(mask.sum()) for name, mask in bins.items()}
    return out


def null_cohort_type_i(args) -> list[dict]:
    """Rejection rates on generated null cohorts: the axes as generated (tied to age, course,
    duration), no severity-linked species; every taxon x axis test is a null test."""
    out = []
    for inference in ("hc2", "hc3", "classical"):
        p = []
        for seed in range(1, args.null_seeds + 1):
            _, cohort = synthetic_cohort(n_households=args.households, n_species=args.species, seed=seed, null=True)
            p.append(analyse(cohort, Settings(inference=inference)).associations["pvalue"].to_numpy())
        p = np.concatenate(p)
        out.append({"cohort": f"generated null cohorts x{args.null_seeds}", "axis": "all", "inference": inference,
                    "tests": int(len(p)), **{f"alpha_{a}": float(np.mean(p < a)) for a in ALPHAS}})
    return out


def run_typei(args) -> dict:
    reports = []
    shared = REPO.parent / "shared"
    if not shared.is_dir():  # a git worktree lives elsewhere; as tests/conftest.py
        shared = Path(os.environ.get("IMSMS_SHARED", "/work/shared"))
    if (shared / "data" / "real" / "imsms_16s").is_dir():
        cohort = imsms_cohort(shared)
        for axis in ("edss", "progressive"):
            reports.append({"cohort": "iMSMS 16S genus", **shuffled_type_i(cohort, axis, args.shuffles, 1)})
            reports.append({"cohort": "iMSMS 16S genus, random 60 patients",
                            **shuffled_type_i(cohort, axis, args.shuffles, 2, subsample=60)})
            reports.append({"cohort": "iMSMS 16S genus, shuffled within therapy",
                            **shuffled_type_i(cohort, axis, args.shuffles, 3, within_therapy=True)})
            reports.append({"cohort": "iMSMS 16S genus, random 60 patients, shuffled within therapy",
                            **shuffled_type_i(cohort, axis, args.shuffles, 4, subsample=60, within_therapy=True)})
    for seed in (1, 2):
        _, cohort = synthetic_cohort(n_households=args.households, n_species=args.species, seed=seed)
        for axis in ("edss", "progressive"):
            reports.append({"cohort": f"synthetic seed {seed}", **shuffled_type_i(cohort, axis, args.shuffles,
                                                                                  seed)})
    reports += null_cohort_type_i(args)
    for r in reports:
        if "methods" not in r:
            print(f"\n{r['cohort']} ({r['inference']}): {r['tests']} tests, "
                  + ", ".join(f"{k} {v:.4f}" for k, v in r.items() if k.startswith("alpha_")))
            continue
        print(f"\n{r['cohort']}: axis {r['axis']}, {r['n']} patients, {r['taxa']} taxa "
              f"{r['taxa_per_bin']}, {r['shuffles']} shuffles")
        for m, rates in r["methods"].items():
            line = "  ".join(f"a={a}: {v['overall']:.4f} [{v['zeros<10%'] or 0:.4f}/{v['zeros 10-50%'] or 0:.4f}/"
                             f"{v['zeros>=50%'] or 0:.4f}] q90 {v['taxa_q90']:.3f} max {v['taxa_max']:.3f}"
                             for a, v in rates.items())
            print(f"  {m:9s} {line}")
    return {"part": "typei", "reports": reports}


# --------------------------------------------------------------------------- planted truth


def score_calls(truth: pd.DataFrame, calls: pd.DataFrame) -> dict:
    """Precision, recall and wrong calls of the progression call against the planted truth."""
    t = truth.set_index("feature")
    c = calls.set_index("feature")["progression_class"]
    expected = t["progression_class"].reindex(c.index).fillna("neutral")
    called = c != "neutral"
    right = called & (c == expected)
    planted = t.index[t["progression_class"] != "neutral"]
    ms_only = t.index[t["class"].isin(["high-risk", "protective"]) & (t["progression_class"] == "neutral")]
    return {
        "calls": int(called.sum()), "right": int(right.sum()), "planted": int(len(planted)),
        "planted_tested": int(len(planted.intersection(c.index))),
        "precision": float(right.sum() / called.sum()) if called.any() else float("nan"),
        "recall": float(right.sum() / len(planted)) if len(planted) else float("nan"),
        "ms_risk_only_called": int((c.reindex(ms_only) != "neutral").fillna(False).sum()),
        "wrong": sorted(c.index[called & ~right]),
    }


def _dist(values) -> dict:
    v = np.asarray(values, dtype=float)
    if np.isnan(v).all():
        return {}
    return {"mean": float(np.nanmean(v)), "min": float(np.nanmin(v)), "q10": float(np.nanquantile(v, 0.1)),
            "median": float(np.nanmedian(v)), "max": float(np.nanmax(v))}


def summarise(frame: pd.DataFrame) -> dict:
    """Distributions over the seeds of one rule's figures."""
    planted, null = frame[~frame["null"]], frame[frame["null"]]
    right, calls = planted["right"].sum(), planted["calls"].sum()
    return {
        "pooled_precision": float(right / calls) if calls else float("nan"),
        "pooled_recall": float(right / planted["planted"].sum()),
        "precision": _dist(planted["precision"]), "recall": _dist(planted["recall"]),
        "seeds_precision_ge_0.9": int((planted["precision"] >= 0.9).sum()),
        "seeds_recall_ge_0.8": int((planted["recall"] >= 0.8).sum()),
        "seeds": int(len(planted)),
        "ms_risk_only_called_total": int(planted["ms_risk_only_called"].sum()),
        "null_calls": {str(k): int(v) for k, v in null["calls"].value_counts().sort_index().items()},
        "null_cohorts_over_1_call": int((null["calls"] > 1).sum()),
    }


def _associations(args, settings, seed, null) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Truth and association table of one generated cohort (kept in ``--cache`` to score more rules later)."""
    key = f"{args.households}_{args.species}_{args.severity_effect}_{settings.inference}_{seed}_{int(null)}.pkl"
    path = Path(args.cache) / key if args.cache else None
    if path is not None and path.exists():
        return pd.read_pickle(path)
    synthetic, cohort = synthetic_cohort(n_households=args.households, n_species=args.species, seed=seed,
                                         null=null, severity_effect=args.severity_effect)
    out = (synthetic.truth_species, analyse(cohort, settings).associations)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.to_pickle(out, path)
    return out


def run_planted(args) -> dict:
    first, last = (int(x) for x in args.seeds.split("-"))
    rules = {json.dumps(r, sort_keys=True): progression.Rule.from_dict(r) for r in json.loads(args.rules)}
    settings = Settings(inference=args.inference)
    rows = []
    for seed in range(first, last + 1):
        for null in (False, True):
            truth, table = _associations(args, settings, seed, null)
            q = table.groupby("axis")["qvalue"].apply(lambda s: int((s < 0.05).sum()))
            for name, rule in rules.items():
                score = score_calls(truth, progression.progression_calls(table, rule))
                rows.append({"rule": name, "seed": seed, "null": null, **score, "q05_per_axis": q.to_dict()})
                print(f"{name} seed {seed:3d} {'null   ' if null else 'planted'} calls {score['calls']:3d} "
                      f"precision {score['precision']:.3f} recall {score['recall']:.3f} "
                      f"ms-risk-only called {score['ms_risk_only_called']} wrong {score['wrong']}", flush=True)
    frame = pd.DataFrame(rows)
    summary = {"households": args.households, "species": args.species, "severity_effect": args.severity_effect,
               "inference": args.inference, "seeds": f"{first}-{last}",
               "rules": {name: summarise(part) for name, part in frame.groupby("rule", sort=False)}}
    print(json.dumps(summary, indent=2))
    return {"part": "planted", "summary": summary, "cohorts": rows}


def implant(cohort, seed: int, effect: float, k: int, min_prevalence: float = 0.7):
    """The real cohort with its clinical block shuffled among patients and severity planted on ``k`` taxa.

    EDSS, disease course and duration move together to a random other patient
    (so the real associations are broken, the axes keep their joint
    distribution, and age, sex, BMI, site, therapy and every zero stay where
    they are); then the non-zero counts of ``k`` taxa present in at least
    ``min_prevalence`` of the patients are multiplied by
    ``exp(+-effect * z)``, ``z`` the patient's standardised (new) EDSS, half
    of them up and half down (Wirbel et al. 2024: change only what you plant).
    Returns the new cohort and the truth (taxon -> +1 / -1).
    """
    import biom

    rng = np.random.default_rng(seed)
    part = cohort.participants.copy()
    ms = part.index[part["status"] == cohort.case_label]
    block = [c for c in ("edss", "disease_course", "disease_duration") if c in part.columns]
    part.loc[ms, block] = part.loc[rng.permutation(ms), block].to_numpy()
    edss = part.loc[ms, "edss"].astype(float)
    z = ((edss - edss.mean()) / edss.std()).fillna(0.0)
    table = cohort.table("taxa")
    owner = cohort.samples.loc[table.index, "participant_id"]
    patient_rows = owner.isin(ms).to_numpy()
    prevalence = (table[patient_rows] > 0).mean()
    pool = [t for t in prevalence.index[prevalence >= min_prevalence] if not t.endswith("__unassigned")]
    chosen = rng.choice(pool, size=k, replace=False)
    sign = np.where(np.arange(k) < k // 2, 1.0, -1.0)
    values = table.to_numpy(dtype=float).copy()
    zs = z.reindex(owner.to_numpy()).fillna(0.0).to_numpy()  # controls: 0
    cols = table.columns.get_indexer(chosen)
    scaled = values[:, cols] * np.exp(np.outer(zs, effect * sign))
    values[:, cols] = np.where(values[:, cols] > 0, np.maximum(np.rint(scaled), 1), 0)
    taxa = biom.Table(values.T, list(table.columns), list(table.index))
    from dataclasses import replace

    return replace(cohort, participants=part, taxa=taxa), pd.Series(sign, index=chosen)


def run_implant(args) -> dict:
    shared = REPO.parent / "shared"
    if not shared.is_dir():
        shared = Path(os.environ.get("IMSMS_SHARED", "/work/shared"))
    base = imsms_cohort(shared)
    first, last = (int(x) for x in args.seeds.split("-"))
    rules = {json.dumps(r, sort_keys=True): progression.Rule.from_dict(r) for r in json.loads(args.rules)}
    rows = []
    for seed in range(first, last + 1):
        cohort, truth = implant(base, seed, args.severity_effect, args.implanted)
        table = analyse(cohort, Settings(inference=args.inference)).associations
        for name, rule in rules.items():
            calls = progression.progression_calls(table, rule).set_index("feature")["progression_class"]
            called = calls.index[calls != "neutral"]
            expected = truth.map({1.0: "high-risk", -1.0: "protective"})
            right = [f for f in called if f in expected.index and calls[f] == expected[f]]
            rows.append({"rule": name, "seed": seed, "null": False, "calls": len(called), "right": len(right),
                         "planted": len(truth), "precision": len(right) / len(called) if len(called) else np.nan,
                         "recall": len(right) / len(truth), "ms_risk_only_called": 0,
                         "wrong": sorted(set(called) - set(right))})
            print(f"{name} seed {seed} calls {len(called)} right {len(right)} of {len(truth)} "
                  f"wrong {rows[-1]['wrong']}", flush=True)
    frame = pd.DataFrame(rows)
    summary = {"cohort": "iMSMS 16S genus, clinical block shuffled, severity implanted",
               "effect": args.severity_effect, "implanted": args.implanted, "inference": args.inference,
               "rules": {name: summarise(part) for name, part in frame.groupby("rule", sort=False)}}
    print(json.dumps(summary, indent=2))
    return {"part": "implant", "summary": summary, "cohorts": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["typei", "planted", "implant"])
    parser.add_argument("--households", type=int, default=150)
    parser.add_argument("--species", type=int, default=200)
    parser.add_argument("--seeds", default="1-20")
    parser.add_argument("--shuffles", type=int, default=400)
    parser.add_argument("--null-seeds", type=int, default=10)
    parser.add_argument("--severity-effect", type=float, default=0.8,
                        help="planted: natural-log effect per unit latent severity; implant: per SD of EDSS")
    parser.add_argument("--implanted", type=int, default=10, help="implant: taxa given a severity effect")
    parser.add_argument("--inference", default="hc3")
    parser.add_argument("--rules", default="[{}]",
                        help="JSON list of progression Rule settings to score on the same cohorts ({} = defaults)")
    parser.add_argument("--cache", help="directory to keep each cohort's association table in (re-scoring rules)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    result = {"typei": run_typei, "planted": run_planted, "implant": run_implant}[args.part](args)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
