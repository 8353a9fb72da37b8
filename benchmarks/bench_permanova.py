"""Time our PERMANOVA against vegan::adonis2 on the same data, and report the ratio.

Usage::

    python benchmarks/bench_permanova.py                 # real iMSMS 16S cohort if present, else random
    python benchmarks/bench_permanova.py --data random   # random 1,152-sample Bray-Curtis matrix
    python benchmarks/bench_permanova.py --no-r          # ours only (no Rscript needed)
    python benchmarks/bench_permanova.py --memory-n 4000 # also peak memory at n = 4,000

Both engines get one Bray-Curtis matrix (computed here, handed to R as a file),
the same terms, household strata and 999 permutations. Only the test itself is
timed: ``adonis2(...)`` in R, ``permanova(...)`` here (Gower centring, design,
permutations included; reading files excluded). Not a unit test: run by hand.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist, squareform

from workflow_scripts.diversity.permanova import permanova

REAL = Path(os.environ.get("IMSMS_SHARED", "/work/shared")) / "data" / "real" / "imsms_16s"
COVARIATES = ["household", "disease", "sex", "age", "bmi", "site"]
CASES = {
    "one term": ["disease"],
    "five terms": ["disease", "sex", "age", "bmi", "site"],
}

R_SCRIPT = r"""
suppressPackageStartupMessages(library(vegan))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; nperm <- as.integer(args[2]); by <- args[3]
d <- as.dist(as.matrix(read.delim(file.path(dir, "d.tsv"), row.names = 1, check.names = FALSE)))
meta <- read.delim(file.path(dir, "meta.tsv"), stringsAsFactors = TRUE,
                   colClasses = c(household = "character"))
meta$household <- factor(meta$household)
cases <- strsplit(readLines(file.path(dir, "cases.txt")), "\t")
for (cs in cases) {
  fml <- as.formula(paste("d ~", cs[2]))
  set.seed(1)
  t <- system.time(res <- adonis2(fml, data = meta, permutations = nperm, by = by,
                                  strata = meta$household))[["elapsed"]]
  out <- data.frame(case = cs[1], seconds = t, term = rownames(res), df = res$Df,
                    sum_of_squares = sprintf("%.17g", res$SumOfSqs), pseudo_f = sprintf("%.17g", res$F),
                    p_value = res[["Pr(>F)"]])
  write.table(out, file.path(dir, paste0("r_", gsub(" ", "_", cs[1]), ".tsv")), sep = "\t",
              quote = FALSE, row.names = FALSE)
  cat(cs[1], "done in", t, "s\n")
}
"""


def real_cohort():
    """Bray-Curtis of the iMSMS 16S counts and the complete-case metadata."""
    counts = pd.read_csv(REAL / "asv_counts.tsv.gz", sep="\t", index_col=0)
    meta = pd.read_csv(REAL / "metadata.tsv", sep="\t", index_col=0, dtype={"household": str})
    meta = meta[COVARIATES].dropna()
    samples = [s for s in meta.index if s in counts.columns]
    table = counts[samples].to_numpy(dtype=float).T
    return squareform(pdist(table, "braycurtis")), meta.loc[samples], "real iMSMS 16S"


def random_cohort(n: int = 1152, n_species: int = 500, seed: int = 0):
    """A random paired cohort of ``n`` samples with Bray-Curtis distances."""
    rng = np.random.default_rng(seed)
    ids = [f"s{i:05d}" for i in range(n)]
    meta = pd.DataFrame(
        {"household": np.repeat(np.arange(n // 2 + 1), 2)[:n].astype(str),
         "disease": np.tile(["MS", "Control"], n // 2 + 1)[:n],
         "sex": rng.choice(["F", "M"], n), "age": rng.normal(45, 12, n).round(),
         "bmi": rng.normal(26, 4, n).round(1), "site": rng.choice(list("ABCDEFG"), n)},
        index=ids,
    )
    counts = rng.poisson(np.exp(rng.normal(1, 1.5, (n, n_species))))
    return squareform(pdist(counts, "braycurtis")), meta, "random Bray-Curtis"


def time_ours(distances, meta, terms, permutations, by, repeats=3):
    """Median wall time of :func:`permanova` over ``repeats`` runs, and its table."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        table = permanova(distances, meta, terms, strata="household", permutations=permutations,
                          by=by, ids=meta.index)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), table


def time_vegan(distances, meta, permutations, by, workdir: Path):
    """Run adonis2 in R on the same matrix; return per-case seconds and tables."""
    pd.DataFrame(distances, index=meta.index, columns=meta.index).to_csv(workdir / "d.tsv", sep="\t",
                                                                        float_format="%.17g")
    meta.to_csv(workdir / "meta.tsv", sep="\t", index=False)
    (workdir / "cases.txt").write_text("".join(f"{k}\t{' + '.join(v)}\n" for k, v in CASES.items()))
    (workdir / "bench.R").write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(workdir / "bench.R"), str(workdir), str(permutations), by], check=True)
    out = {}
    for case in CASES:
        table = pd.read_csv(workdir / f"r_{case.replace(' ', '_')}.tsv", sep="\t")
        out[case] = (float(table.seconds[0]), table)
    return out


def peak_memory(n: int, permutations: int, by: str):
    """Peak traced allocation (numpy reports to tracemalloc) of a five-term run at size ``n``."""
    distances, meta, _ = random_cohort(n=n, n_species=200, seed=1)
    tracemalloc.start()
    start = time.perf_counter()
    permanova(distances, meta, CASES["five terms"], strata="household", permutations=permutations,
              by=by, ids=meta.index)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    input_mb = distances.nbytes / 2**20
    return peak / 2**20, input_mb, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["auto", "real", "random"], default="auto")
    parser.add_argument("--permutations", type=int, default=999)
    parser.add_argument("--by", choices=["terms", "margin"], default="terms")
    parser.add_argument("--no-r", action="store_true", help="time ours only")
    parser.add_argument("--memory-n", type=int, default=0, help="also measure peak memory at this n")
    args = parser.parse_args(argv)

    use_real = args.data == "real" or (args.data == "auto" and (REAL / "asv_counts.tsv.gz").exists())
    distances, meta, label = real_cohort() if use_real else random_cohort()
    n = len(meta)
    print(f"data: {label}, n = {n}, {meta.household.nunique()} households (strata), "
          f"{args.permutations} permutations, by = {args.by!r}, {os.cpu_count()} cores")

    ours = {case: time_ours(distances, meta, terms, args.permutations, args.by)
            for case, terms in CASES.items()}
    vegan = {}
    if not args.no_r and shutil.which("Rscript"):
        with tempfile.TemporaryDirectory() as tmp:
            vegan = time_vegan(distances, meta, args.permutations, args.by, Path(tmp))
    elif not args.no_r:
        print("Rscript not found: timing ours only")

    print(f"\n{'case':<11} {'terms':<36} {'ours (s)':>9} {'adonis2 (s)':>12} {'ratio':>8}  agreement")
    for case, terms in CASES.items():
        seconds, table = ours[case]
        line = f"{case:<11} {' + '.join(terms):<36} {seconds:9.3f}"
        if case in vegan:
            r_seconds, r_table = vegan[case]
            rel = np.nanmax(np.abs(table.pseudo_f.to_numpy() - r_table.pseudo_f.to_numpy())
                            / np.abs(r_table.pseudo_f.to_numpy()))
            dp = np.nanmax(np.abs(table.p_value.to_numpy() - r_table.p_value.to_numpy()))
            line += f" {r_seconds:12.2f} {r_seconds / seconds:7.0f}x  max rel dF {rel:.1e}, max |dp| {dp:.3f}"
        print(line)
    for case in CASES:
        print(f"\nours, {case}:\n{ours[case][1].to_string(index=False)}")

    if args.memory_n:
        peak, input_mb, seconds = peak_memory(args.memory_n, args.permutations, args.by)
        print(f"\nn = {args.memory_n}, five terms, by = {args.by!r}: {seconds:.2f} s, peak traced memory "
              f"{peak:.0f} MiB beyond the {input_mb:.0f} MiB distance matrix; "
              f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
