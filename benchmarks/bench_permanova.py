"""Time our PERMANOVA against vegan::adonis2 on the same data, and report the ratio.

Usage::

    python benchmarks/bench_permanova.py                 # real iMSMS 16S cohort if present, else random
    python benchmarks/bench_permanova.py --data random   # random 1,152-sample Bray-Curtis matrix
    python benchmarks/bench_permanova.py --no-r          # ours only (no Rscript needed)
    python benchmarks/bench_permanova.py --memory-n 4000 # also peak memory at n = 4,000

Both engines get one Bray-Curtis matrix (computed here, handed to R as a binary
file), the same terms, household strata and 999 permutations. Only the test
itself is timed: ``adonis2(...)`` in R, ``permanova(...)`` here (Gower centring,
design, permutations included; reading files excluded). Not a unit test: run by
hand. ``benchmarks/run.py`` calls these functions on a generated cohort, and
also :func:`time_skbio` (scikit-bio's one-factor ``permanova``).
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
ids <- readLines(file.path(dir, "ids.txt")); n <- length(ids)
d <- as.dist(matrix(readBin(file.path(dir, "d.bin"), "double", n = n * n, size = 8, endian = "little"),
                    n, n, dimnames = list(ids, ids)))
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


def time_ours(distances, meta, terms, permutations, by="terms", strata="household", repeats=3):
    """Median wall time of :func:`permanova` over ``repeats`` runs, and its table.

    ``strata`` is a column of ``meta`` (permutations within it) or None (free).
    """
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        table = permanova(distances, meta, terms, strata=strata, permutations=permutations,
                          by=by, ids=meta.index)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), table


def time_vegan(distances, meta, permutations, by, workdir: Path, cases=CASES):
    """Run adonis2 in R on the same matrix, household strata; per-case seconds and tables.

    ``cases`` maps a case name to its terms (columns of ``meta``).
    """
    np.ascontiguousarray(distances, dtype="<f8").tofile(workdir / "d.bin")
    (workdir / "ids.txt").write_text("".join(f"{i}\n" for i in meta.index))
    meta.to_csv(workdir / "meta.tsv", sep="\t", index=False)
    (workdir / "cases.txt").write_text("".join(f"{k}\t{' + '.join(v)}\n" for k, v in cases.items()))
    (workdir / "bench.R").write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(workdir / "bench.R"), str(workdir), str(permutations), by], check=True)
    out = {}
    for case in cases:
        table = pd.read_csv(workdir / f"r_{case.replace(' ', '_')}.tsv", sep="\t")
        out[case] = (float(table.seconds[0]), table)
    return out


def time_skbio(distances, groups, permutations, seed=1):
    """Wall time of scikit-bio's one-factor ``permanova`` (free permutations); seconds, pseudo-F, p.

    The ``DistanceMatrix`` is built before the clock starts.
    """
    from skbio import DistanceMatrix
    from skbio.stats.distance import permanova as skbio_permanova

    matrix = DistanceMatrix(np.asarray(distances, dtype=float), ids=[str(i) for i in range(len(groups))])
    start = time.perf_counter()
    result = skbio_permanova(matrix, np.asarray(groups), permutations=permutations, seed=seed)
    seconds = time.perf_counter() - start
    return seconds, float(result["test statistic"]), float(result["p-value"])


def agreement(ours: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
    """Largest relative differences in pseudo-F and sums of squares, and in p, of two adonis2 tables.

    Infinite when the tables do not have the same rows.
    """
    if len(ours) != len(reference) or list(ours.df) != list(reference.df):
        return {"pseudo_f_rel": np.inf, "sum_of_squares_rel": np.inf, "p_abs": np.inf}
    out = {}
    for key, column in (("pseudo_f_rel", "pseudo_f"), ("sum_of_squares_rel", "sum_of_squares")):
        mine, theirs = ours[column].to_numpy(dtype=float), reference[column].to_numpy(dtype=float)
        tested = ~np.isnan(theirs)
        out[key] = float(np.max(np.abs(mine[tested] - theirs[tested]) / np.abs(theirs[tested])))
    out["p_abs"] = float(np.nanmax(np.abs(ours.p_value.to_numpy(dtype=float)
                                          - reference.p_value.to_numpy(dtype=float))))
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

    ours = {case: time_ours(distances, meta, terms, args.permutations, args.by, strata="household")
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
            diff = agreement(table, r_table)
            line += (f" {r_seconds:12.2f} {r_seconds / seconds:7.0f}x  max rel dF {diff['pseudo_f_rel']:.1e}, "
                     f"max |dp| {diff['p_abs']:.3f}")
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
