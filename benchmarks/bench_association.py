"""Benchmark: association engine vs. one statsmodels OLS fit per test.

Also the household cluster-robust version the workflow runs
(``workflow_scripts.models.cluster_robust``) against ``statsmodels`` OLS with
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
statsmodels disagree beyond ``--rtol``.  ``benchmarks/run.py`` calls
:func:`compare` on a generated cohort's prepared association inputs.
"""

from __future__ import annotations

import argparse
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


if __name__ == "__main__":
    import blas_threads

    blas_threads.limit(parse_args().threads)

import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from scipy import special  # noqa: E402

from workflow_scripts.models.association import associate  # noqa: E402

COMPARED = ["beta_genotype", "se_genotype", "p_genotype",
            "beta_interaction", "se_interaction", "p_interaction"]
P_COLUMNS = [COMPARED.index("p_genotype"), COMPARED.index("p_interaction")]


@dataclass
class Data:
    """One association problem: ``Y`` (n x S), dosages ``G`` (V x n, NaN = missing), design."""

    Y: np.ndarray
    G: np.ndarray
    status: np.ndarray
    covariates: np.ndarray | None
    households: np.ndarray
    variant_ids: list
    feature_ids: list

    @property
    def n_pairs(self) -> int:
        return self.G.shape[0] * self.Y.shape[1]

    @property
    def incomplete(self) -> int:
        """Variants with at least one missing dosage."""
        return int(np.isnan(self.G).any(axis=1).sum())


def simulate(participants, species, variants, covariates=4, seed=2024, missing_variants=0.0,
             missing_rate=0.0, paired=False) -> Data:
    """Random status, covariates, dosages and responses; ``paired``: households of one case and one control."""
    rng = np.random.default_rng(seed)
    n, S, V = participants, species, variants
    status = rng.integers(0, 2, n).astype(float)
    cov = np.column_stack([rng.normal(45, 12, n), rng.integers(0, 2, n),
                           rng.standard_normal((n, max(covariates - 2, 0)))])[:, :covariates]
    G = rng.binomial(2, rng.uniform(0.05, 0.5, V)[:, None], (V, n)).astype(float)
    if missing_variants:
        rows = rng.random(V) < missing_variants
        holes = (rng.random((V, n)) < missing_rate) & rows[:, None]
        G[holes] = np.nan
    Y = rng.standard_normal((n, S)) + 0.3 * status[:, None] + 0.01 * cov[:, [0]]
    households = np.arange(n)
    if paired:
        households, status = np.arange(n) // 2, (np.arange(n) % 2 == 0).astype(float)
    return Data(Y, G, status, cov, households, [f"rs{i}" for i in range(V)], [f"sp{j}" for j in range(S)])


def run_engine(data: Data, clustered: bool, chunk_size: int = 1000) -> pd.DataFrame:
    """Both models for every variant x feature: the workflow's clustered engine or plain OLS."""
    frames = associate(data.Y, data.G, data.status, data.covariates, data.variant_ids, data.feature_ids,
                       households=data.households if clustered else None, chunk_size=chunk_size)
    return pd.concat(list(frames), ignore_index=True)


def time_engine(data: Data, clustered: bool, chunk_size: int = 1000, repeats: int = 3):
    """Best wall-clock and best CPU time (all threads of this process) over repeats, and the table."""
    wall, cpu, result = np.inf, np.inf, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = run_engine(data, clustered, chunk_size)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, result


def statsmodels_loop(data: Data, pairs, clustered: bool):
    """Two statsmodels OLS fits per (variant, feature) pair on its complete cases.

    Returns wall seconds, CPU seconds and a ``len(pairs) x 6`` array in :data:`COMPARED` order.
    """
    cov = data.covariates if data.covariates is not None else np.empty((len(data.status), 0))
    out = []
    start, start_cpu = time.perf_counter(), time.process_time()
    for v, s in pairs:
        keep = ~np.isnan(data.G[v])
        g, st = data.G[v, keep], data.status[keep]
        kw = dict(cov_type="cluster", cov_kwds={"groups": data.households[keep]}, use_t=True) if clustered else {}
        x_main = np.column_stack([np.ones(keep.sum()), st, cov[keep], g])
        fit_a = sm.OLS(data.Y[keep, s], x_main).fit(**kw)
        fit_b = sm.OLS(data.Y[keep, s], np.column_stack([x_main, g * st])).fit(**kw)
        out.append((fit_a.params[-1], fit_a.bse[-1], fit_a.pvalues[-1],
                    fit_b.params[-1], fit_b.bse[-1], fit_b.pvalues[-1]))
    return time.perf_counter() - start, time.process_time() - start_cpu, np.array(out)


def compare(data: Data, clustered: bool, sample: int = 200, chunk_size: int = 1000, repeats: int = 3,
            seed: int = 2025, variants=None) -> dict:
    """Time the engine on every pair and statsmodels on ``sample`` random pairs; compare them.

    ``variants`` limits the sampled pairs to these variant rows (e.g. those whose
    interaction the workflow reports). Returns the times, ``tests_per_cpu_second``
    (variant x feature pairs, each with both models, per CPU-second of the engine),
    the speed-ups per pair by CPU and by wall time, and ``max_rel`` (largest
    relative difference in beta, se and p of both models) and ``max_abs_p``.
    """
    engine_wall, engine_cpu, result = time_engine(data, clustered, chunk_size, repeats)
    rng = np.random.default_rng(seed)
    pool = np.arange(data.G.shape[0]) if variants is None else np.asarray(variants)
    pairs = list(zip(pool[rng.integers(0, pool.size, sample)], rng.integers(0, data.Y.shape[1], sample)))
    ref_wall, ref_cpu, reference = statsmodels_loop(data, pairs, clustered)
    n_species = data.Y.shape[1]
    ours = result.iloc[[v * n_species + s for v, s in pairs]][COMPARED].to_numpy(dtype=float)
    n_pairs = data.n_pairs
    return {
        "clustered": clustered, "n_pairs": n_pairs, "sampled": len(pairs),
        "engine_wall": engine_wall, "engine_cpu": engine_cpu,
        "reference_wall": ref_wall, "reference_cpu": ref_cpu,
        "speedup_cpu": (ref_cpu / len(pairs)) / (engine_cpu / n_pairs),
        "speedup_wall": (ref_wall / len(pairs)) / (engine_wall / n_pairs),
        "tests_per_cpu_second": n_pairs / engine_cpu,
        "max_rel": float(np.max(np.abs(ours - reference) / np.abs(reference))),
        "max_abs_p": float(np.max(np.abs(ours[:, P_COLUMNS] - reference[:, P_COLUMNS]))),
    }


def report(name: str, data: Data, result: dict, args) -> None:
    n, n_pairs, sampled = len(data.status), result["n_pairs"], result["sampled"]
    kind = "household-robust (CR1), " if result["clustered"] else ""
    who = f"{n} participants" + (f" in {len(np.unique(data.households))} households" if result["clustered"] else "")
    print(f"\n== {kind}{name}: {who} x "
          f"{data.Y.shape[1]} species x {data.G.shape[0]} variants ({data.incomplete} with missing "
          f"dosages), {args.covariates} covariates, chunk {args.chunk_size}, threads {args.threads}")
    print(f"engine      : {result['engine_wall']:8.3f} s wall, {result['engine_cpu']:.3f} s CPU for "
          f"{n_pairs:,} variant x species pairs (both models) = "
          f"{result['engine_wall'] / n_pairs * 1e9:8.1f} ns per pair")
    per_pair = result["reference_wall"] / sampled
    print(f"statsmodels : {result['reference_wall']:8.3f} s for {sampled} pairs (2 OLS fits each) "
          f"= {per_pair * 1e3:8.3f} ms per pair, {per_pair / 2 * 1e3:.3f} ms per fit")
    if not result["clustered"]:
        t_values = np.random.default_rng(0).standard_normal(2 * n_pairs)
        start = time.perf_counter()
        special.stdtr(float(n - args.covariates - 3), -np.abs(t_values))
        floor = time.perf_counter() - start
        print(f"of which    : ~{floor:.3f} s is the Student-t tail function alone "
              f"(2 p-values per pair, scipy.special.stdtr)")
    print(f"speed-up    : {result['speedup_cpu']:,.0f}x per pair by CPU time, "
          f"{result['speedup_wall']:,.0f}x by wall clock (both models)")
    print(f"throughput  : {result['tests_per_cpu_second']:,.0f} interaction tests per CPU-second "
          f"({result['engine_cpu']:.3f} s CPU), {n_pairs / result['engine_wall'] / args.threads:,.0f} "
          f"per second per thread by wall clock; each also with its main-effect test")
    print(f"equality    : max relative difference vs statsmodels on {sampled} pairs "
          f"= {result['max_rel']:.2e} (beta, se, p of both models), max |delta p| {result['max_abs_p']:.2e}")


def main(argv=None) -> int:
    args = parse_args(argv)
    worst = 0.0
    for clustered, seed in ((False, args.seed + 1), (True, args.seed + 2)):
        for name, missing in (("complete dosages", 0.0), ("missing dosages", args.missing_variants)):
            data = simulate(args.participants, args.species, args.variants, args.covariates, args.seed,
                            missing, args.missing_rate, paired=clustered)
            result = compare(data, clustered, args.sample, args.chunk_size, args.repeats, seed)
            report(name, data, result, args)
            worst = max(worst, result["max_rel"])
    if not worst < args.rtol:
        print(f"FAIL: engine and statsmodels differ by {worst:.2e} > {args.rtol:.0e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
