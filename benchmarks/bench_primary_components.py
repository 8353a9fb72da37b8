#!/usr/bin/env python
"""What the primary test's components cost on a batch of label swaps (the calibration's inner loop).

    PYTHONPATH=<tree> python benchmarks/bench_primary_components.py [--units 300] [--taxa 1000]
                                                                   [--swaps 200] [--repeats 3]

Times :func:`workflow_scripts.differential.primary.components` on ``--swaps`` replicated tested
columns at once (as ``prepare_primary`` and the calibration call it), for the paired form (household
differences, tested column +-1) and the unpaired form (participants, status permuted), on generated
responses: ``--units`` rows, ``--taxa`` columns, three covariates. Prints the best of
``--repeats`` wall and CPU times per form and the load (``os.getloadavg``) before and after, so that
two trees (e.g. main and a branch, through ``PYTHONPATH``) can be compared on the same machine. On a
loaded machine compare CPU times with one BLAS thread (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from workflow_scripts.differential.primary import Responses, Units, components

OPTIONS = {"min_both_present": 10, "exact_below": 25}


def generated(paired: bool, N: int, p: int, R: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    covariates = rng.normal(size=(N, 3))
    W = covariates if paired else np.column_stack([np.ones(N), covariates])
    present = rng.random((N, p)) < rng.uniform(0.2, 0.95, p)
    A = rng.standard_t(4, size=(N, p)) + 0.2 * covariates[:, [0]]
    B = np.where(present, rng.normal(size=(N, p)), 0.0)
    U = (rng.random((N, p)) < 0.5).astype(float)
    C_mask = rng.random((N, p)) < (0.4 if paired else 1.0)
    resp = Responses(A, B, present, U, C_mask, rng.normal(size=N), np.log(rng.uniform(1e-5, 1e-2, p)))
    status = np.ones(N) if paired else (np.arange(N) % 2).astype(float)
    units = Units(paired, np.arange(N).astype(object), None, None, np.arange(N), status, W,
                  [f"w{i}" for i in range(W.shape[1])], np.full(N, "", dtype=object))
    if paired:
        tested = np.where(rng.random((R, N)) < 0.5, -1.0, 1.0)
    else:
        tested = np.stack([rng.permutation(status) for _ in range(R)])
    return units, resp, tested


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--taxa", type=int, default=1000)
    parser.add_argument("--swaps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()}")
    for paired in (True, False):
        units, resp, tested = generated(paired, args.units, args.taxa, args.swaps)
        wall = cpu = np.inf
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            components(units, resp, tested, OPTIONS)
            wall = min(wall, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
        form = "paired" if paired else "unpaired"
        print(f"{form}: {args.swaps} swaps x {args.taxa} taxa x {args.units} units: best of {args.repeats} "
              f"{wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
