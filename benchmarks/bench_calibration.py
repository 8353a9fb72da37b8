#!/usr/bin/env python
"""What the self-calibration costs, against the rest of the differential stage, in one run.

    python benchmarks/bench_calibration.py [--scale large] [--out benchmarks/results] [--keep DIR]

Generates the cohort of ``benchmarks/run.py --scale`` (``large``: 2,000 households = 4,004
participants, 1,000 species, seed 1), runs ``snakemake --cores 2`` for the differential stage's results
(ingest and the whole differential stage, nothing else), and reads the jobs' Snakemake
``benchmark:`` files:

- ``calibration``: the ``differential_calibration`` job (null swaps, implants, the level in
  force) and the ``differential_method_null_<method>`` jobs (each reporting method rerun on
  the first swaps);
- ``primary``: the ``differential_primary`` job (the test itself, with the swaps its bias
  variance needs);
- ``stage``: every other differential job (prepare, the six methods, therapy effects,
  sensitivity, per-site models, consensus, figures).

The target (issue 14): the calibration costs at most as much again as the stage, i.e.
``calibration_cpu_s / stage_cpu_s <= 1``, both measured in this run. Writes
``<out>/calibration_<scale>.json`` with the per-job table, the load (``os.getloadavg``) at
start and end, and the ratios (CPU and summed job wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run as bench  # benchmarks/run.py

#: The differential stage's results (the targets of the run: ingest and the stage, nothing else).
TARGETS = ["consensus.tsv", "treatment_effects.tsv", "figures/agreement.png", "figures/volcano_primary.png"]


def part(job: str) -> str:
    if job.startswith(("differential_calibration", "differential_method_null_")):
        return "calibration"
    if job == "differential_primary":
        return "primary"
    if job.startswith("differential_"):
        return "stage"
    return "other"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="large", choices=sorted(bench.SCALES))
    parser.add_argument("--out", default=str(bench.RESULTS))
    parser.add_argument("--keep", help="work in this (new or empty) directory and keep it")
    args = parser.parse_args(argv)
    scale = bench.SCALES[args.scale]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix=f"calibration-bench-{args.scale}-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    try:
        paths, size = bench.generate_cohort(scale, work / "cohort")
        bench.write_config(paths, work / "results", work / "config.yaml")
        bench.progress(f"{size['participants']} participants, {size['species']} species; snakemake up to the "
                       "differential stage")
        started = time.perf_counter()
        targets = [str(work / "results" / "differential" / t) for t in TARGETS]
        done = subprocess.run([sys.executable, "-m", "snakemake", *targets, "--cores", str(bench.CORES),
                               "--snakefile", str(bench.REPO / "Snakefile"), "--configfile",
                               str(work / "config.yaml"), "-d", str(work / "wd")],
                              capture_output=True, text=True, env=bench.CALLER_ENVIRONMENT)
        (work / "snakemake.log").write_text(done.stdout + done.stderr)
        if done.returncode:
            raise RuntimeError(f"snakemake failed; see {work / 'snakemake.log'}")
        workflow = {"wall_s": time.perf_counter() - started}
        jobs = bench.read_job_benchmarks(work / "results" / "benchmarks")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    jobs["part"] = jobs["job"].map(part)
    sums = jobs.groupby("part")[["cpu_time", "s"]].sum()
    figure = {p: {"cpu_s": float(sums.loc[p, "cpu_time"]), "wall_s": float(sums.loc[p, "s"])}
              for p in sums.index}
    result = {
        "scale": args.scale, "cohort": size, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_start": load_start, "load_end": os.getloadavg(), "workflow": workflow, "parts": figure,
        "ratio_cpu": figure["calibration"]["cpu_s"] / figure["stage"]["cpu_s"],
        "ratio_wall": figure["calibration"]["wall_s"] / figure["stage"]["wall_s"],
        "ratio_cpu_with_primary": (figure["calibration"]["cpu_s"] + figure["primary"]["cpu_s"])
        / figure["stage"]["cpu_s"],
        "jobs": jobs.sort_values("job").to_dict(orient="records"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"calibration_{args.scale}.json"
    path.write_text(json.dumps(bench._finite(result), indent=1) + "\n")
    print(f"| part | CPU s | job wall s |\n|---|---|---|")
    for p, v in figure.items():
        print(f"| {p} | {v['cpu_s']:.1f} | {v['wall_s']:.1f} |")
    print(f"calibration / stage: CPU {result['ratio_cpu']:.2f}, wall {result['ratio_wall']:.2f}; load "
          f"{load_start} -> {result['load_end']}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
