"""Benchmark: vectorised random-intercept LMM vs a per-feature statsmodels loop.

Design: the real iMSMS 16S cohort (1,152 participants in 576 households),
``clr_abundance ~ disease + sex + age + bmi + C(site) + (1 | household)``,
REML. Responses are CLR-transformed ASV counts (pseudo-count 0.5, CLR over
all ASVs), keeping the ``--features`` most prevalent ASVs. With ``--simulate``
(or when the data are absent) the same-shaped design and responses are
simulated instead.

Prints the time per feature of our fit (all features in one call) and of the
statsmodels ``mixedlm(...).fit(reml=True)`` loop on a random sample of
features, their ratio, and the largest differences in beta, SE and p-value on
the sampled features. ``benchmarks/run.py`` calls :func:`compare` on a
generated cohort.

Usage::

    python benchmarks/bench_mixed_model.py [--features 1000] [--statsmodels 20]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from workflow_scripts.models.mixed_model import fit_random_intercept

DATA = Path("/work/shared/data/real/imsms_16s")
FORMULA = "y ~ disease + sex + age + bmi + C(site)"
COVARIATES = ["household", "disease", "sex", "age", "bmi", "site"]
TOLERANCE = 1e-4


def load_real(data_dir: Path, n_features: int):
    meta = pd.read_csv(data_dir / "metadata.tsv", sep="\t", usecols=["sample_id", *COVARIATES])
    for column in ("age", "bmi"):
        meta[column] = pd.to_numeric(meta[column], errors="coerce")
    meta = meta.dropna(subset=COVARIATES).set_index("sample_id")
    counts = pd.read_csv(data_dir / "asv_counts.tsv.gz", sep="\t", index_col="feature_id")
    counts = counts.loc[:, meta.index].T.astype(float)  # samples x ASVs
    logs = np.log(counts.to_numpy() + 0.5)
    clr = logs - logs.mean(axis=1, keepdims=True)
    keep = np.argsort(-(counts.to_numpy() > 0).mean(axis=0), kind="stable")[:n_features]
    return meta.reset_index(), clr[:, keep]


def simulate(n_features: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    n_households = 576
    hh = np.repeat(np.arange(n_households), 2)
    sites = np.array(
        ["San Francisco", "Edinburgh", "Buenos Aires", "New York", "Boston", "San Sebastian", "Pittsburgh"]
    )
    meta = pd.DataFrame(
        {
            "household": hh,
            "disease": np.tile(["MS", "Control"], n_households),
            "sex": np.where(rng.random(hh.size) < 0.5, "F", "M"),
            "age": rng.normal(48, 12, hh.size),
            "bmi": rng.normal(26, 5, hh.size),
            "site": sites[rng.integers(0, sites.size, n_households)][hh],
        }
    )
    sd = rng.uniform(0, 1.5, n_features)
    Y = rng.normal(size=(n_households, n_features))[hh] * sd + rng.normal(size=(hh.size, n_features))
    return meta, Y


def statsmodels_loop(meta: pd.DataFrame, Y: np.ndarray, columns, formula: str = FORMULA):
    """One formula-API MixedLM fit per feature, as an analyst would write it."""
    out = {"beta": [], "se": [], "pvalue": [], "converged": []}
    start = time.perf_counter()
    for j in range(Y.shape[1]):
        data = meta.assign(y=Y[:, j])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm(formula, data, groups=data["household"], re_formula="1").fit(reml=True)
        out["beta"].append(fit.fe_params[columns].to_numpy())
        out["se"].append(fit.bse_fe[columns].to_numpy())
        out["pvalue"].append(fit.pvalues[columns].to_numpy())
        out["converged"].append(fit.converged)
    elapsed = time.perf_counter() - start
    return {key: np.array(value).T for key, value in out.items()}, elapsed


def fixed_effects(meta: pd.DataFrame, Y: np.ndarray, formula: str = FORMULA) -> pd.DataFrame:
    """The fixed-effects matrix statsmodels builds from ``formula`` (the same one for both engines)."""
    model = smf.mixedlm(formula, meta.assign(y=Y[:, 0]), groups=meta["household"], re_formula="1")
    return pd.DataFrame(model.exog, columns=model.exog_names)


def compare(meta: pd.DataFrame, Y: np.ndarray, formula: str = FORMULA, n_reference: int = 20,
            repeats: int = 3, seed: int = 20240601) -> dict:
    """Time our fit of every feature and the statsmodels loop on a random sample; compare them.

    Returns
    -------
    dict
        ``features``, ``ours_seconds`` (best of ``repeats``, all features), ``ours_runs``,
        ``ours_per_feature``, ``sampled``, ``reference_seconds``, ``reference_per_feature``,
        ``not_converged`` (statsmodels fits left out of the comparison), ``boundary``,
        ``max_abs_beta``, ``max_abs_se``, ``max_abs_pvalue`` (NaN when nothing is
        compared), ``columns`` and the result objects ``ours``, ``reference``, ``sample``.
    """
    X = fixed_effects(meta, Y, formula)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ours = fit_random_intercept(Y, X, meta["household"], reml=True)
        times.append(time.perf_counter() - start)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(Y.shape[1], size=min(n_reference, Y.shape[1]), replace=False))
    ref, ref_seconds = statsmodels_loop(meta, Y[:, sample], list(X.columns), formula)
    ok = ref["converged"].astype(bool)
    out = {"features": int(Y.shape[1]), "ours_seconds": min(times), "ours_runs": times,
           "ours_per_feature": min(times) / Y.shape[1], "sampled": int(sample.size),
           "reference_seconds": ref_seconds, "reference_per_feature": ref_seconds / sample.size,
           "not_converged": int((~ok).sum()), "boundary": int(ours.boundary.sum()),
           "columns": list(X.columns), "ours": ours, "reference": ref, "sample": sample}
    for key in ("beta", "se", "pvalue"):
        delta = np.abs(getattr(ours, key)[:, sample][:, ok] - ref[key][:, ok])
        out[f"max_abs_{key}"] = float(delta.max()) if delta.size else float("nan")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=1000, help="features fitted by our engine")
    parser.add_argument("--statsmodels", type=int, default=20, help="features fitted by the statsmodels loop")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats of our fit (best is reported)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--simulate", action="store_true", help="simulate Y instead of reading the iMSMS data")
    args = parser.parse_args(argv)

    if args.simulate or not (args.data_dir / "metadata.tsv").exists():
        source = "simulated"
        meta, Y = simulate(args.features, args.seed)
    else:
        source = f"iMSMS 16S ASV CLR ({args.data_dir})"
        meta, Y = load_real(args.data_dir, args.features)
    sizes = meta["household"].value_counts().value_counts().sort_index()
    result = compare(meta, Y, FORMULA, args.statsmodels, args.repeats, args.seed)
    ours, sample, ok = result["ours"], result["sample"], result["reference"]["converged"].astype(bool)
    columns = result["columns"]

    print(f"data: {source}")
    size_text = ", ".join(f"{size}: {count}" for size, count in sizes.items())
    print(f"design: {len(meta)} samples, {meta['household'].nunique()} households "
          f"(household size: count {{{size_text}}}), {len(columns)} fixed effects: {', '.join(columns)}")
    times = result["ours_runs"]
    print(f"ours: {Y.shape[1]} features in {min(times):.3f} s (best of {args.repeats}; "
          f"runs {', '.join(f'{t:.3f}' for t in times)} s); "
          f"{result['boundary']} on the boundary, {(~ours.converged).sum()} not converged")
    print(f"statsmodels: {sample.size} features in {result['reference_seconds']:.2f} s "
          f"({result['not_converged']} reported not converged, left out of the comparison)")
    print()
    speedup = result["reference_per_feature"] / result["ours_per_feature"]
    print(f"time per feature, ours        : {result['ours_per_feature'] * 1e3:10.3f} ms")
    print(f"time per feature, statsmodels : {result['reference_per_feature'] * 1e3:10.3f} ms")
    print(f"speed-up                      : {speedup:10.0f} x")
    for key in ("beta", "se", "pvalue"):
        print(f"max |delta| {key:<6} vs statsmodels : {result[f'max_abs_{key}']:.2e}")
    disease = columns.index("disease[T.MS]")
    delta_status = np.abs(ours.beta[disease, sample][ok] - result["reference"]["beta"][disease, ok]).max()
    print(f"max |delta| disease[T.MS] beta  : {delta_status:.2e}")
    worst = max(result[f"max_abs_{key}"] for key in ("beta", "se", "pvalue"))
    passed = worst < TOLERANCE and speedup >= 100
    print("PASS" if passed else "FAIL", f"(tolerance {TOLERANCE:g}, required speed-up 100x)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
