"""Benchmark: association engine vs. one statsmodels OLS fit per test.

Also the household cluster-robust version the workflow runs
(``workflow_scripts.association.clustered``) against ``statsmodels`` OLS with
``cov_type="cluster"``, on an iMSMS-like paired design (every household one
case and one control).

Simulates an iMSMS-sized cohort (default 1,150 participants, 200 species,
2,000 variants, 4 covariates), times the full engine (both models, every
variant x species, DataFrames included), times a per-test ``statsmodels``
loop on a random sample of variant x species pairs, checks that the two agree
on that sample, and prints the speed-up and tests per second per core.

Run single-threaded for the per-core figure (the default sets the BLAS
thread count to 1 before NumPy loads).  Tests per second per core are
reported from process CPU time, which other load on the machine does not
inflate, and from wall-clock time::

    /work/venv/bin/python benchmarks/bench_association.py
    /work/venv/bin/python benchmarks/bench_association.py --threads 4 --variants 5000

Not a test: it prints numbers and exits non-zero only if the engine and
statsmodels disagree beyond ``--rtol``.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=1150)
    parser.add_argument("--species", type=int, default=200)
    parser.add_argument("--variants", type=int, default=2000)
    parser.add_argument("--covariates", type=int, default=4)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=200, help="pairs fitted by statsmodels")
    parser.add_argument("--missing-variants", type=float, default=0.3,
                        help="fraction of variants with missing calls in the second scenario")
    parser.add_argument("--missing-rate", type=float, default=0.02,
                        help="fraction of participants missing in those variants")
    parser.add_argument("--repeats", type=int, default=3, help="engine runs; the best is reported")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--seed", type=int, default=2024)
    return parser.parse_args(argv)


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from scipy import special  # noqa: E402

from workflow_scripts.association.clustered import associate_clustered  # noqa: E402
from workflow_scripts.association.engine import associate  # noqa: E402

COMPARED = ["beta_genotype", "se_genotype", "p_genotype",
            "beta_interaction", "se_interaction", "p_interaction"]


def simulate(args, with_missing: bool):
    rng = np.random.default_rng(args.seed)
    n, S, V = args.participants, args.species, args.variants
    status = rng.integers(0, 2, n).astype(float)
    cov = np.column_stack([rng.normal(45, 12, n), rng.integers(0, 2, n),
                           rng.standard_normal((n, max(args.covariates - 2, 0)))])[:, :args.covariates]
    G = rng.binomial(2, rng.uniform(0.05, 0.5, V)[:, None], (V, n)).astype(float)
    if with_missing:
        rows = rng.random(V) < args.missing_variants
        holes = (rng.random((V, n)) < args.missing_rate) & rows[:, None]
        G[holes] = np.nan
    Y = rng.standard_normal((n, S)) + 0.3 * status[:, None] + 0.01 * cov[:, [0]]
    return Y, G, status, cov, [f"rs{i}" for i in range(V)], [f"sp{j}" for j in range(S)]


def time_engine(data, args):
    """Best wall-clock and best CPU time (all threads of this process) over repeats."""
    wall, cpu, frames = np.inf, np.inf, None
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        frames = list(associate(*data, chunk_size=args.chunk_size))
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, pd.concat(frames, ignore_index=True)


def time_statsmodels(data, pairs):
    Y, G, status, cov = data[:4]
    out = []
    start, start_cpu = time.perf_counter(), time.process_time()
    for v, s in pairs:
        keep = ~np.isnan(G[v])
        g, st = G[v, keep], status[keep]
        x_main = np.column_stack([np.ones(keep.sum()), st, cov[keep], g])
        fit_a = sm.OLS(Y[keep, s], x_main).fit()
        fit_b = sm.OLS(Y[keep, s], np.column_stack([x_main, g * st])).fit()
        out.append((fit_a.params[-1], fit_a.bse[-1], fit_a.pvalues[-1],
                    fit_b.params[-1], fit_b.bse[-1], fit_b.pvalues[-1]))
    return time.perf_counter() - start, time.process_time() - start_cpu, np.array(out)


def scenario(name, with_missing, args):
    data = simulate(args, with_missing)
    n_variants, n_species = args.variants, args.species
    n_pairs = n_variants * n_species
    engine_s, engine_cpu, result = time_engine(data, args)

    rng = np.random.default_rng(args.seed + 1)
    pairs = list(zip(rng.integers(0, n_variants, args.sample), rng.integers(0, n_species, args.sample)))
    sm_s, sm_cpu, reference = time_statsmodels(data, pairs)
    ours = result.iloc[[v * n_species + s for v, s in pairs]][COMPARED].to_numpy()
    rel = np.max(np.abs(ours - reference) / np.abs(reference))

    engine_per_pair = engine_s / n_pairs
    sm_per_pair = sm_s / len(pairs)
    incomplete = int(np.isnan(data[1]).any(axis=1).sum())
    print(f"\n== {name}: {args.participants} participants x {n_species} species x "
          f"{n_variants} variants ({incomplete} with missing dosages), "
          f"{args.covariates} covariates, chunk {args.chunk_size}, threads {args.threads}")
    print(f"engine      : {engine_s:8.3f} s for {n_pairs:,} variant x species pairs "
          f"(both models) = {engine_per_pair * 1e9:8.1f} ns per pair")
    print(f"statsmodels : {sm_s:8.3f} s for {len(pairs)} pairs (2 OLS fits each) "
          f"= {sm_per_pair * 1e3:8.3f} ms per pair, {sm_per_pair / 2 * 1e3:.3f} ms per fit")
    t_values = np.random.default_rng(0).standard_normal(2 * n_pairs)
    start = time.perf_counter()
    special.stdtr(float(args.participants - args.covariates - 3), -np.abs(t_values))
    floor = time.perf_counter() - start
    print(f"of which    : ~{floor:.3f} s is the Student-t tail function alone "
          f"(2 p-values per pair, scipy.special.stdtr)")
    speedup_cpu = (sm_cpu / len(pairs)) / (engine_cpu / n_pairs)
    print(f"speed-up    : {speedup_cpu:,.0f}x per pair by CPU time, "
          f"{sm_per_pair / engine_per_pair:,.0f}x by wall clock (both models)")
    print(f"throughput  : {n_pairs / engine_cpu:,.0f} interaction tests per CPU-second "
          f"({engine_cpu:.3f} s CPU), {n_pairs / engine_s / args.threads:,.0f} per second per thread "
          f"by wall clock; each also with its main-effect test")
    print(f"equality    : max relative difference vs statsmodels on {len(pairs)} pairs "
          f"= {rel:.2e} (beta, se, p of both models)")
    return rel


def scenario_clustered(name, with_missing, args):
    """Household-robust (CR1) errors: the engine the workflow's chunk jobs run."""
    Y, G, _, cov, vids, fids = simulate(args, with_missing)
    n = args.participants
    households = np.arange(n) // 2
    status = (np.arange(n) % 2 == 0).astype(float)
    n_pairs = args.variants * args.species
    wall, cpu, result = np.inf, np.inf, None
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        frames = list(associate_clustered(Y, G, status, cov, households, vids, fids,
                                          chunk_size=args.chunk_size))
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    result = pd.concat(frames, ignore_index=True)
    rng = np.random.default_rng(args.seed + 2)
    pairs = list(zip(rng.integers(0, args.variants, args.sample), rng.integers(0, args.species, args.sample)))
    reference = []
    start_cpu = time.process_time()
    for v, j in pairs:
        keep = ~np.isnan(G[v])
        g, st = G[v, keep], status[keep]
        kw = dict(cov_type="cluster", cov_kwds={"groups": households[keep]}, use_t=True)
        x_main = np.column_stack([np.ones(keep.sum()), st, cov[keep], g])
        fit_a = sm.OLS(Y[keep, j], x_main).fit(**kw)
        fit_b = sm.OLS(Y[keep, j], np.column_stack([x_main, g * st])).fit(**kw)
        reference.append((fit_a.params[-1], fit_a.bse[-1], fit_a.pvalues[-1],
                          fit_b.params[-1], fit_b.bse[-1], fit_b.pvalues[-1]))
    sm_cpu = time.process_time() - start_cpu
    reference = np.array(reference)
    ours = result.iloc[[v * args.species + j for v, j in pairs]][COMPARED].to_numpy()
    rel = np.max(np.abs(ours - reference) / np.abs(reference))
    max_dp = np.max(np.abs(ours[:, [2, 5]] - reference[:, [2, 5]]))
    incomplete = int(np.isnan(G).any(axis=1).sum())
    print(f"\n== household-robust (CR1), {name}: {n} participants in {n // 2} households x "
          f"{args.species} species x {args.variants} variants ({incomplete} with missing dosages)")
    print(f"engine      : {wall:8.3f} s wall, {cpu:.3f} s CPU for {n_pairs:,} pairs (both models)")
    print(f"statsmodels : {sm_cpu / len(pairs) * 1e3:8.3f} ms CPU per pair (OLS cluster, 2 fits)")
    print(f"speed-up    : {(sm_cpu / len(pairs)) / (cpu / n_pairs):,.0f}x per pair by CPU time")
    print(f"throughput  : {n_pairs / cpu:,.0f} interaction tests per CPU-second, each with its main-effect test")
    print(f"equality    : max relative difference {rel:.2e}, max |delta p| {max_dp:.2e} on {len(pairs)} pairs")
    return rel


def main():
    args = ARGS
    worst = max(scenario("complete dosages", False, args),
                scenario("missing dosages", True, args),
                scenario_clustered("complete dosages", False, args),
                scenario_clustered("missing dosages", True, args))
    if not worst < args.rtol:
        print(f"FAIL: engine and statsmodels differ by {worst:.2e} > {args.rtol:.0e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
