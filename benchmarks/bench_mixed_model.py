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
the sampled features.

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

from workflow_scripts.differential.mixed_model import fit_random_intercept

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


def statsmodels_loop(meta: pd.DataFrame, Y: np.ndarray, columns):
    """One formula-API MixedLM fit per feature, as an analyst would write it."""
    out = {"beta": [], "se": [], "pvalue": [], "converged": []}
    start = time.perf_counter()
    for j in range(Y.shape[1]):
        data = meta.assign(y=Y[:, j])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm(FORMULA, data, groups=data["household"], re_formula="1").fit(reml=True)
        out["beta"].append(fit.fe_params[columns].to_numpy())
        out["se"].append(fit.bse_fe[columns].to_numpy())
        out["pvalue"].append(fit.pvalues[columns].to_numpy())
        out["converged"].append(fit.converged)
    elapsed = time.perf_counter() - start
    return {key: np.array(value).T for key, value in out.items()}, elapsed


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
    model = smf.mixedlm(FORMULA, meta.assign(y=Y[:, 0]), groups=meta["household"], re_formula="1")
    X = pd.DataFrame(model.exog, columns=model.exog_names)
    sizes = meta["household"].value_counts().value_counts().sort_index()

    print(f"data: {source}")
    size_text = ", ".join(f"{size}: {count}" for size, count in sizes.items())
    print(f"design: {len(meta)} samples, {meta['household'].nunique()} households "
          f"(household size: count {{{size_text}}}), {X.shape[1]} fixed effects: {', '.join(X.columns)}")

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = fit_random_intercept(Y, X, meta["household"], reml=True)
        times.append(time.perf_counter() - start)
    ours_per_feature = min(times) / Y.shape[1]
    print(f"ours: {Y.shape[1]} features in {min(times):.3f} s (best of {args.repeats}; "
          f"runs {', '.join(f'{t:.3f}' for t in times)} s); "
          f"{ours.boundary.sum()} on the boundary, {(~ours.converged).sum()} not converged")

    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(Y.shape[1], size=min(args.statsmodels, Y.shape[1]), replace=False))
    ref, sm_elapsed = statsmodels_loop(meta, Y[:, sample], list(X.columns))
    sm_per_feature = sm_elapsed / sample.size
    ok = ref["converged"]

    print(f"statsmodels: {sample.size} features in {sm_elapsed:.2f} s "
          f"({(~ok).sum()} reported not converged, left out of the comparison)")
    print()
    print(f"time per feature, ours        : {ours_per_feature * 1e3:10.3f} ms")
    print(f"time per feature, statsmodels : {sm_per_feature * 1e3:10.3f} ms")
    print(f"speed-up                      : {sm_per_feature / ours_per_feature:10.0f} x")
    worst = 0.0
    for key in ("beta", "se", "pvalue"):
        delta = np.abs(getattr(ours, key)[:, sample][:, ok] - ref[key][:, ok])
        worst = max(worst, float(delta.max()))
        print(f"max |delta| {key:<6} vs statsmodels : {delta.max():.2e}")
    disease = list(X.columns).index("disease[T.MS]")
    delta_status = np.abs(ours.beta[disease, sample][ok] - ref["beta"][disease, ok]).max()
    print(f"max |delta| disease[T.MS] beta  : {delta_status:.2e}")
    passed = worst < TOLERANCE and sm_per_feature / ours_per_feature >= 100
    print("PASS" if passed else "FAIL", f"(tolerance {TOLERANCE:g}, required speed-up 100x)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
