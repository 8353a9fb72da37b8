"""Calibration of the clinical stage: inference under the null, and the progression call on planted truth.

Three parts, each printed as distributions and written as JSON (``--out``):

``typei``
    Type-I error of every component test (``clr``, ``abundance``,
    ``presence``) and of their Cauchy combination when the axis carries no
    signal: the axis (EDSS; progressive course) is shuffled among the
    patients (optionally within therapy groups, so it keeps its link to
    therapy), covariates and abundances kept. Cohorts: the real iMSMS 16S
    cohort at genus rank (when ``../shared`` is present: real zeros and heavy
    tails) and generated cohorts with repeated stool samples; error variants:
    one row per patient (HC3, HC2, classical) and every sample as a row
    (CR1, CR2, CR3 by participant). Rates per alpha, overall and by the
    taxon's share of zeros, with the spread over taxa.

``planted``
    Generated cohorts with severity-linked species and their null twins (same
    seed, ``null=True``) over many seeds: precision and recall of
    ``progression_class`` against ``truth_species.progression_class``, calls
    on null cohorts, calls on MS-risk-only species, for every settings
    variant on the same cohorts. ``--zeros 0.3-0.8`` gives the severity-linked
    species natural zeros first (:func:`natural_zeros`): the generator makes
    them present in every gut, and real severity-linked taxa are not.

``implant``
    The real iMSMS cohort with its clinical block (EDSS, course, duration)
    shuffled among the patients and severity implanted on real genera
    (:func:`implant`, Wirbel et al. 2024: real zeros, depth, sites, therapy).
    ``--prevalence 0.3-0.8`` implants into zero-inflated genera.

Usage (results in README "Clinical", with the load at the time)::

    python benchmarks/calibrate_clinical.py typei --shuffles 200 --out typei.json
    python benchmarks/calibrate_clinical.py planted --seeds 1-20 --households 150 --species 200 \\
        --zeros 0.3-0.8 --variants '{"default": {}, "clr": {"components": ["clr"]}}' --out p.json
    python benchmarks/calibrate_clinical.py implant --seeds 1-20 --severity-effect 0.5 --prevalence 0.3-0.8

Run with ``OPENBLAS_NUM_THREADS=1`` on a shared machine: the models are many
small matrix products, which a multi-threaded BLAS slows down under load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workflow_scripts.clinical import associations  # noqa: E402
from workflow_scripts.clinical.analyse import ClinicalSettings, analyse  # noqa: E402
from workflow_scripts.ingest.harmonise import Settings as IngestSettings  # noqa: E402
from workflow_scripts.ingest.harmonise import ingest  # noqa: E402
from workflow_scripts.synthetic import generate, write  # noqa: E402

ALPHAS = (0.05, 0.01, 0.001)


def shared_dir() -> Path:
    shared = REPO.parent / "shared"
    if not shared.is_dir():  # a git worktree lives elsewhere; as tests/conftest.py
        shared = Path(os.environ.get("IMSMS_SHARED", "/work/shared"))
    return shared


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
    """The real iMSMS 16S cohort at genus rank through the example converter (with disease_duration)."""
    import yaml

    from workflow_scripts.examples import imsms

    source = shared / "data" / "real" / "imsms_16s"
    with tempfile.TemporaryDirectory() as tmp:
        config = yaml.safe_load(imsms.convert(source, Path(tmp)).read_text())
        config.update(case_label="MS", control_label="HHC")
        cohort, _ = ingest(IngestSettings.from_config(config))
    return cohort


def _with_taxa(cohort, values: np.ndarray, table: pd.DataFrame):
    import biom

    return replace(cohort, taxa=biom.Table(values.T, list(table.columns), list(table.index)))


def natural_zeros(cohort, taxa, seed: int, low: float, high: float, shared: float = 0.5):
    """``cohort`` with the taxa ``taxa`` absent from part of the participants (all their samples).

    Each taxon gets a prevalence drawn uniformly in ``[low, high]``; presence
    is a Bernoulli draw, the uniform shared within the household for half the
    participants (as the generator's own structural zeros). Absence does not
    depend on severity, so a severity effect stays an abundance effect among
    the carriers, diluted in the CLR by the zeros.
    """
    rng = np.random.default_rng(seed)
    table = cohort.table("taxa")
    part = cohort.participants
    house = part["household_id"].astype(object).where(part["household_id"].notna(), part.index.to_series())
    codes = pd.factorize(house)[0]
    position = pd.Series(np.arange(len(part)), index=part.index)
    rows = position[cohort.samples.loc[table.index, "participant_id"]].to_numpy()
    values = table.to_numpy(dtype=float).copy()
    for taxon in taxa:
        if taxon not in table.columns:
            continue
        prevalence = rng.uniform(low, high)
        draw = np.where(rng.random(len(part)) < shared, rng.random(codes.max() + 1)[codes], rng.random(len(part)))
        absent = draw >= prevalence
        values[absent[rows], table.columns.get_loc(taxon)] = 0.0
    return _with_taxa(cohort, values, table)


# --------------------------------------------------------------------------- type-I error


def shuffled_type_i(cohort, axis_name: str, variants: dict, shuffles: int, seed: int,
                    within_therapy: bool = False) -> dict:
    """Rejection rates of every component and the combination over ``shuffles`` permutations of one axis.

    The axis is permuted among the patients (within therapy groups with
    ``within_therapy``); every variant (settings overrides) is tested on the
    same permutations.
    """
    base = ClinicalSettings.from_config()
    result = analyse(cohort, base)
    patient_axis = result.scores[axis_name].dropna()
    rng = np.random.default_rng(seed)
    therapy = cohort.participants["dmt"].reindex(patient_axis.index).fillna("unknown") \
        if "dmt" in cohort.participants.columns else pd.Series("none", index=patient_axis.index)
    perms = []
    for _ in range(shuffles):
        values = patient_axis.copy()
        if within_therapy:
            for _, members in values.groupby(therapy).groups.items():
                values[members] = rng.permutation(values[members].to_numpy())
        else:
            values[:] = rng.permutation(values.to_numpy())
        perms.append(values)
    out = {"axis": axis_name, "patients": int(len(patient_axis)), "shuffles": shuffles, "variants": {}}
    for name, overrides in variants.items():
        settings = ClinicalSettings.from_config(overrides)
        rows = associations.analysis_rows(cohort, settings.covariates, settings.min_prevalence,
                                          settings.pseudo_count, settings.repeated_samples)
        zeros = 1 - rows.log_present.notna().groupby(rows.participant.to_numpy()).any().mean().to_numpy()
        select = rows.participant.isin(patient_axis.index).to_numpy()
        p = {c: [] for c in (*settings.components, "combined")}
        for values in perms:
            axis = values.reindex(rows.participant.to_numpy()).to_numpy(dtype=float)
            fits = associations.component_tests(rows, select, axis, settings)
            for c in settings.components:
                p[c].append(fits[c]["pvalue"] if c in fits else np.full(rows.clr.shape[1], np.nan))
            p["combined"].append(associations.combine(fits, rows.clr.shape[1])["pvalue"])
        bins = {"zeros<10%": zeros < 0.1, "zeros 10-50%": (zeros >= 0.1) & (zeros < 0.5), "zeros>=50%": zeros >= 0.5}
        rates = {}
        for c, values in p.items():
            P = np.array(values)
            rates[c] = {}
            for alpha in ALPHAS:
                per_taxon = np.nanmean(P < alpha, axis=0)
                finite = np.isfinite(per_taxon)
                rates[c][str(alpha)] = {
                    "overall": float(np.nanmean(P < alpha)),
                    **{b: float(np.nanmean(per_taxon[m & finite])) if (m & finite).any() else None
                       for b, m in bins.items()},
                    "taxa_q90": float(np.nanquantile(per_taxon, 0.9)), "taxa_max": float(np.nanmax(per_taxon)),
                    "tests": int(np.isfinite(P).sum()),
                }
        out["variants"][name] = {"rows": int(select.sum()), "errors": settings.cluster_inference
                                 if rows.clustered else settings.inference, "rates": rates,
                                 "taxa_per_bin": {b: int(m.sum()) for b, m in bins.items()}}
    return out


def _print_type_i(report: dict) -> None:
    print(f"\n{report['cohort']}: axis {report['axis']}, {report['patients']} patients, "
          f"{report['shuffles']} shuffles", flush=True)
    for name, v in report["variants"].items():
        for c, rates in v["rates"].items():
            line = "  ".join(f"a={a}: {r['overall']:.4f} [{r['zeros<10%'] or 0:.3f}/{r['zeros 10-50%'] or 0:.3f}/"
                             f"{r['zeros>=50%'] or 0:.3f}] max {r['taxa_max']:.3f}" for a, r in rates.items())
            print(f"  {name:14s} {v['errors']:9s} {c:9s} {line}", flush=True)


TYPE_I_VARIANTS = {
    "all cr1": {"repeated_samples": "all", "cluster_inference": "cr1"},
    "all cr2": {"repeated_samples": "all", "cluster_inference": "cr2"},
    "all cr3": {"repeated_samples": "all", "cluster_inference": "cr3"},
    "first hc3": {"repeated_samples": "first", "inference": "hc3"},
    "first hc2": {"repeated_samples": "first", "inference": "hc2"},
    "first classical": {"repeated_samples": "first", "inference": "classical"},
}


def run_typei(args) -> dict:
    variants = json.loads(args.variants) if args.variants else TYPE_I_VARIANTS
    reports = []
    source = shared_dir() / "data" / "real" / "imsms_16s"
    if source.is_dir() and not args.skip_real:
        cohort = imsms_cohort(shared_dir())
        real = {k: v for k, v in variants.items() if not k.startswith("all")} or variants  # one sample each
        for axis in ("edss", "progressive"):
            for within in (False, True):
                report = {"cohort": "iMSMS 16S genus" + (", shuffled within therapy" if within else ""),
                          **shuffled_type_i(cohort, axis, real, args.shuffles, 1 + within, within)}
                _print_type_i(report)
                reports.append(report)
    for seed in range(1, args.null_seeds + 1):
        _, cohort = synthetic_cohort(n_households=args.households, n_species=args.species, seed=seed,
                                     repeat_fraction=args.repeat_fraction, null=True)
        for axis in ("edss", "progressive"):
            report = {"cohort": f"generated null seed {seed}, {args.households} households, repeat fraction "
                                f"{args.repeat_fraction}", **shuffled_type_i(cohort, axis, variants, args.shuffles,
                                                                             seed)}
            _print_type_i(report)
            reports.append(report)
    return {"part": "typei", "reports": reports}


# --------------------------------------------------------------------------- planted truth


def score_calls(truth: pd.DataFrame, calls: pd.DataFrame) -> dict:
    """Precision, recall and wrong calls of the progression call against the planted truth."""
    t = truth.set_index("feature")
    c = calls.set_index("feature")["progression_class"] if len(calls) else pd.Series(dtype=object)
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
    """Distributions over the seeds of one variant's figures."""
    planted, null = frame[~frame["null"]], frame[frame["null"]]
    right, calls = planted["right"].sum(), planted["calls"].sum()
    return {
        "pooled_precision": float(right / calls) if calls else float("nan"),
        "pooled_recall": float(right / planted["planted"].sum()),
        "precision": _dist(planted["precision"]), "recall": _dist(planted["recall"]),
        "seeds_precision_ge_0.9": int((planted["precision"].fillna(1.0) >= 0.9).sum()),
        "seeds_recall_ge_0.8": int((planted["recall"] >= 0.8).sum()),
        "seeds": int(len(planted)),
        "ms_risk_only_called_total": int(planted["ms_risk_only_called"].sum()),
        "null_calls": {str(k): int(v) for k, v in null["calls"].value_counts().sort_index().items()},
        "null_cohorts_over_1_call": int((null["calls"] > 1).sum()),
    }


def _print_summary(summary: dict) -> None:
    for name, s in summary.items():
        print(f"{name:24s} precision {s['pooled_precision']:.3f} (min {s['precision'].get('min', np.nan):.2f}) "
              f"recall {s['pooled_recall']:.3f} (min {s['recall'].get('min', np.nan):.2f}, q10 "
              f"{s['recall'].get('q10', np.nan):.2f}, median {s['recall'].get('median', np.nan):.2f}) "
              f"P>=.9 {s['seeds_precision_ge_0.9']}/{s['seeds']} R>=.8 {s['seeds_recall_ge_0.8']}/{s['seeds']} "
              f"ms-risk-only {s['ms_risk_only_called_total']} null calls {s['null_calls']}", flush=True)


def _range(text: str) -> tuple[float, float]:
    low, high = (float(x) for x in text.split("-"))
    return low, high


def run_planted(args) -> dict:
    first, last = (int(x) for x in args.seeds.split("-"))
    variants = json.loads(args.variants)
    rows = []
    for seed in range(first, last + 1):
        planted_truth = None
        for null in (False, True):
            synthetic, cohort = synthetic_cohort(n_households=args.households, n_species=args.species, seed=seed,
                                                 null=null, severity_effect=args.severity_effect,
                                                 repeat_fraction=args.repeat_fraction)
            truth = synthetic.truth_species
            planted_truth = truth if not null else planted_truth
            if args.zeros:
                severity = planted_truth.loc[planted_truth["progression_class"] != "neutral", "feature"]
                cohort = natural_zeros(cohort, severity, seed + 10_000, *_range(args.zeros))
            for name, overrides in variants.items():
                result = analyse(cohort, ClinicalSettings.from_config(overrides))
                score = score_calls(truth, result.progression)
                rows.append({"variant": name, "seed": seed, "null": null, **score})
                print(f"{name} seed {seed:3d} {'null   ' if null else 'planted'} calls {score['calls']:3d} "
                      f"precision {score['precision']:.3f} recall {score['recall']:.3f} "
                      f"ms-risk-only {score['ms_risk_only_called']} wrong {score['wrong']}", flush=True)
    frame = pd.DataFrame(rows)
    summary = {name: summarise(part) for name, part in frame.groupby("variant", sort=False)}
    print(f"\n{args.households} households, {args.species} species, effect {args.severity_effect}, "
          f"zeros {args.zeros or 'none'}, seeds {args.seeds}")
    _print_summary(summary)
    return {"part": "planted", "households": args.households, "species": args.species,
            "severity_effect": args.severity_effect, "zeros": args.zeros, "seeds": args.seeds,
            "variants": variants, "summary": summary, "cohorts": rows}


def implant(cohort, seed: int, effect: float, k: int, prevalence: tuple[float, float] = (0.7, 1.0)):
    """The real cohort with its clinical block shuffled among patients and severity planted on ``k`` taxa.

    EDSS, disease course and duration move together to a random other patient
    (so the real associations are broken, the axes keep their joint
    distribution, and age, sex, BMI, site, therapy and every zero stay where
    they are); then the non-zero counts of ``k`` taxa whose prevalence among
    the patients is within ``prevalence`` are multiplied by
    ``exp(+-effect * z)``, ``z`` the patient's standardised (new) EDSS, half
    of them up and half down (Wirbel et al. 2024: change only what you plant).
    Returns the new cohort and the truth (taxon -> +1 / -1).
    """
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
    share = (table[patient_rows] > 0).mean()
    pool = [t for t in share.index[(share >= prevalence[0]) & (share <= prevalence[1])]
            if not t.endswith("__unassigned")]
    chosen = rng.choice(pool, size=k, replace=False)
    sign = np.where(np.arange(k) < k // 2, 1.0, -1.0)
    values = table.to_numpy(dtype=float).copy()
    zs = z.reindex(owner.to_numpy()).fillna(0.0).to_numpy()  # controls: 0
    cols = table.columns.get_indexer(chosen)
    scaled = values[:, cols] * np.exp(np.outer(zs, effect * sign))
    values[:, cols] = np.where(values[:, cols] > 0, np.maximum(np.rint(scaled), 1), 0)
    return replace(_with_taxa(cohort, values, table), participants=part), pd.Series(sign, index=chosen)


def run_implant(args) -> dict:
    base = imsms_cohort(shared_dir())
    first, last = (int(x) for x in args.seeds.split("-"))
    variants = json.loads(args.variants)
    prevalence = _range(args.prevalence)
    rows = []
    for seed in range(first, last + 1):
        cohort, truth = implant(base, seed, args.severity_effect, args.implanted, prevalence)
        for name, overrides in variants.items():
            calls = analyse(cohort, ClinicalSettings.from_config(overrides)).progression
            calls = calls.set_index("feature")["progression_class"]
            called = calls.index[calls != "neutral"]
            expected = truth.map({1.0: "high-risk", -1.0: "protective"})
            right = [f for f in called if f in expected.index and calls[f] == expected[f]]
            rows.append({"variant": name, "seed": seed, "null": False, "calls": len(called), "right": len(right),
                         "planted": len(truth), "precision": len(right) / len(called) if len(called) else np.nan,
                         "recall": len(right) / len(truth), "ms_risk_only_called": 0,
                         "wrong": sorted(set(called) - set(right))})
            print(f"{name} seed {seed} calls {len(called)} right {len(right)} of {len(truth)} "
                  f"wrong {rows[-1]['wrong']}", flush=True)
    frame = pd.DataFrame(rows)
    summary = {name: summarise(part) for name, part in frame.groupby("variant", sort=False)}
    print(f"\niMSMS implants: effect {args.severity_effect} per SD of EDSS, {args.implanted} genera at prevalence "
          f"{args.prevalence}, seeds {args.seeds}")
    _print_summary(summary)
    return {"part": "implant", "cohort": "iMSMS 16S genus, clinical block shuffled, severity implanted",
            "effect": args.severity_effect, "implanted": args.implanted, "prevalence": args.prevalence,
            "variants": variants, "summary": summary, "cohorts": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["typei", "planted", "implant"])
    parser.add_argument("--households", type=int, default=150)
    parser.add_argument("--species", type=int, default=200)
    parser.add_argument("--seeds", default="1-20")
    parser.add_argument("--shuffles", type=int, default=200)
    parser.add_argument("--null-seeds", type=int, default=2, help="typei: generated null cohorts")
    parser.add_argument("--repeat-fraction", type=float, default=0.2,
                        help="generated cohorts: fraction of participants with 2-3 stool samples")
    parser.add_argument("--skip-real", action="store_true", help="typei: no iMSMS shuffles")
    parser.add_argument("--severity-effect", type=float, default=0.8,
                        help="planted: natural-log effect per unit latent severity; implant: per SD of EDSS")
    parser.add_argument("--zeros", help="planted: prevalence range LOW-HIGH given to the severity-linked species")
    parser.add_argument("--implanted", type=int, default=10, help="implant: genera given a severity effect")
    parser.add_argument("--prevalence", default="0.7-1.0", help="implant: prevalence range of the implanted genera")
    parser.add_argument("--variants", default='{"default": {}}',
                        help="JSON object: name -> clinical settings overrides, all run on the same cohorts")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.part == "typei" and args.variants == '{"default": {}}':
        args.variants = None
    result = {"typei": run_typei, "planted": run_planted, "implant": run_implant}[args.part](args)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
