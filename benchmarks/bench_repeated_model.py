"""Speed of the repeated-samples engine (participant within household) against the household model and statsmodels.

    python benchmarks/bench_repeated_model.py [--households 600 --features 1000 --samples 3 --statsmodels 3]

An iMSMS-like design: households of a case and a control, each with 1 to ``--samples`` stool
samples (uniform), 3 sites, intercept + status + 6 covariates + site dummies; CLR-like
responses with participant, household and residual variance. Times, on all features at once:

- ``fit_random_intercept`` on each participant's first sample (the differential stage's
  household model today);
- ``fit_repeated`` on every sample, participant within household (and within site as a
  third, random level);
- statsmodels ``MixedLM`` (household groups, participant variance component) on a few
  features, one fit each, after checking it finds no better optimum.

Prints seconds per call and per feature, and the ratios, with BLAS on one thread (per-core
figures). Run on an idle machine; the machine's load is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from blas_threads import limit  # noqa: E402

limit(1)  # per-core figures: BLAS reads its thread count when NumPy loads

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

from workflow_scripts.models.mixed_model import fit_random_intercept  # noqa: E402
from workflow_scripts.models.repeated_model import fit_repeated  # noqa: E402


def simulate(households=600, features=1000, samples=3, seed=1):
    rng = np.random.default_rng(seed)
    hh_of = np.repeat(np.arange(households), 2)
    n_part = hh_of.size
    per = rng.integers(1, samples + 1, n_part)
    part = np.repeat(np.arange(n_part), per)
    hh = hh_of[part]
    site_of = rng.integers(3, size=households)
    site = site_of[hh]
    Xp = np.column_stack([np.ones(n_part), np.arange(n_part) % 2, rng.normal(size=(n_part, 6))])
    dummies = np.column_stack([site_of[hh_of] == 1, site_of[hh_of] == 2]).astype(float)
    Xp = np.column_stack([Xp, dummies])
    Y = (rng.normal(size=(n_part, features)) * 0.8)[part] + (rng.normal(size=(households, features)) * 0.5)[hh] \
        + rng.normal(size=(part.size, features))
    first = np.r_[True, part[1:] != part[:-1]]
    return Y, Xp[part], Xp[:, :-2][part], part, hh, site, first


def timed(function, repeat=3):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=600)
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=3, help="each participant has 1 to this many samples")
    parser.add_argument("--statsmodels", type=int, default=3, help="features fitted by statsmodels")
    args = parser.parse_args(argv)
    Y, X, X_no_site, part, hh, site, first = simulate(args.households, args.features, args.samples)
    p = Y.shape[1]
    print(f"{len(np.unique(part))} participants, {len(part)} samples, {p} features, "
          f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    t_household, _ = timed(lambda: fit_random_intercept(Y[first], X[first], hh[first]))
    t_repeated, fit = timed(lambda: fit_repeated(Y, X, part, hh))
    t_site, _ = timed(lambda: fit_repeated(Y, X_no_site, part, hh, site))
    print(f"household model, first samples:        {t_household:.2f} s ({t_household / p * 1e3:.2f} ms/feature)")
    print(f"participant in household, all samples: {t_repeated:.2f} s ({t_repeated / p * 1e3:.2f} ms/feature), "
          f"{t_repeated / t_household:.2f}x the household model; converged {fit.converged.mean():.3f}")
    print(f"... and in site (random):              {t_site:.2f} s ({t_site / p * 1e3:.2f} ms/feature)")
    frame = pd.DataFrame(X[:, 1:], columns=[f"x{i}" for i in range(1, X.shape[1])])
    frame["hh"], frame["part"] = hh, part
    formula = "y ~ " + " + ".join(frame.columns[: X.shape[1] - 1])
    times = []
    for j in range(args.statsmodels):
        frame["y"] = Y[:, j]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm = smf.mixedlm(formula, frame, groups="hh", re_formula="1",
                             vc_formula={"part": "0 + C(part)"}).fit(reml=True)
        times.append(time.perf_counter() - start)
        assert fit.loglik[j] >= sm.llf - 1e-6, "statsmodels found a better optimum"
    if times:
        per_feature = t_repeated / p
        print(f"statsmodels MixedLM (vc):               {np.mean(times):.2f} s/feature; ratio "
              f"{np.mean(times) / per_feature:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
