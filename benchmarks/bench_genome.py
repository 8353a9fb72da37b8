"""Benchmark: the association stage at genome scale, end to end through Snakemake, per genotype format.

Generates a cohort of ``--households`` households (two participants each, a
fifth of them with repeated stool samples) with ``--species`` species
(:mod:`workflow_scripts.synthetic`), then writes ``--variants`` random
variants over its blood samples (frequencies 0.05-0.5, every one passing QC: the
worst case) with fast writers of this script, as

``vcf``
    a bgzipped VCF with 2-decimal ``DS`` (the imputed dosages of an imputation
    server; ``bgzip -@2``), without an index (ingest builds one);
``plink``
    a PLINK 1 fileset of the hard calls.

and runs ``snakemake --cores 2`` on the association stage's final files (ingest,
then every association job; the other stages are not run). It reports, per
format: wall seconds of the run, the CPU seconds and peak RSS of every job
(Snakemake's ``benchmark:`` files), the largest job's peak RSS, the number of
jobs, the sizes of the input and of ``association/sumstats``, and ``uptime`` at
start and end (the machine is shared: wall times scale with its load, CPU
seconds much less). With ``--bcftools`` it also times one reading pass over the
VCF by this workflow's reader (``source.blocks``) and by ``bcftools query -f
'[%DS\\t]\\n'``, each in its own process, side by side.

    python benchmarks/bench_genome.py --variants 100000 --formats vcf,plink --bcftools
    python benchmarks/bench_genome.py --variants 1000000 --formats plink --workdir /tmp/g

Results go to ``benchmarks/results/genome_<variants>.json`` (``--out``).
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

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", type=int, default=100_000)
    p.add_argument("--households", type=int, default=2_000)
    p.add_argument("--species", type=int, default=200)
    p.add_argument("--formats", default="vcf,plink")
    p.add_argument("--chunk-size", type=int, default=None, help="association.chunk_size (default: the schema's)")
    p.add_argument("--hurdle", action="store_true", help="also fit the hurdle model (off by default)")
    p.add_argument("--bcftools", action="store_true", help="also time one reading pass against bcftools query")
    p.add_argument("--workdir", help="keep the files here (default: a temporary directory, removed)")
    p.add_argument("--out", help="JSON results (default: benchmarks/results/genome_<variants>.json)")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ----------------------------------------------------------------------------- fast writers


def variant_table(n: int, rng) -> pd.DataFrame:
    """Sorted positions over 22 chromosomes in proportion to their length, unique ids, SNV alleles."""
    from workflow_scripts.synthetic.taxa import CHROM_LENGTHS

    names = [c for c in CHROM_LENGTHS if c.isdigit()][:22]
    lengths = np.array([CHROM_LENGTHS[c] for c in names], dtype=float)
    chrom = np.sort(rng.choice(len(names), n, p=lengths / lengths.sum()))
    pos = np.empty(n, np.int64)
    for c in np.unique(chrom):
        rows = np.flatnonzero(chrom == c)
        pos[rows] = np.sort(rng.choice(int(lengths[c]) - 2, rows.size, replace=False)) + 1
    bases = np.array(list("ACGT"))
    ref = rng.integers(0, 4, n)
    alt = (ref + rng.integers(1, 4, n)) % 4
    return pd.DataFrame({"variant_id": [f"rs{10_000_000 + i}" for i in range(n)],
                         "chrom": np.array(names)[chrom], "pos": pos, "ref": bases[ref], "alt": bases[alt]})


def dosage_blocks(n_variants: int, n_samples: int, rng, block: int = 5_000):
    """(first row, hard calls int8, DS in hundredths int16) of blocks of variants, frequencies 0.05-0.5."""
    for start in range(0, n_variants, block):
        m = min(block, n_variants - start)
        af = rng.uniform(0.05, 0.5, m)
        calls = (rng.random((m, n_samples)) < af[:, None]).astype(np.int8) + \
            (rng.random((m, n_samples)) < af[:, None]).astype(np.int8)
        ds = np.clip(np.rint((calls + rng.normal(0, 0.08, calls.shape)) * 100), 0, 200).astype(np.int16)
        yield start, calls, ds


def write_vcf(path: Path, variants: pd.DataFrame, samples, seed: int) -> None:
    """Bgzipped VCF with 2-decimal DS, compressed by ``bgzip -@2`` from a pipe."""
    rng = np.random.default_rng(seed)
    text = np.array([f"{d / 100:.2f}".encode() for d in range(201)], dtype=object)
    header = ("##fileformat=VCFv4.2\n##source=bench_genome\n"
              + "".join(f"##contig=<ID={c}>\n" for c in pd.unique(variants["chrom"]))
              + '##INFO=<ID=R2,Number=1,Type=Float,Description="Imputation r-squared">\n'
              + '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Dosage">\n'
              + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n")
    with open(path, "wb") as out:
        proc = subprocess.Popen(["bgzip", "-@", "2", "-c"], stdin=subprocess.PIPE, stdout=out)
        proc.stdin.write(header.encode())
        cols = variants[["chrom", "pos", "variant_id", "ref", "alt"]].astype(str).to_numpy()
        for start, _, ds in dosage_blocks(len(variants), len(samples), rng):
            lines = []
            for i in range(ds.shape[0]):
                c = cols[start + i]
                lines.append(b"\t".join([c[0].encode(), c[1].encode(), c[2].encode(), c[3].encode(), c[4].encode(),
                                         b".", b"PASS", b"R2=0.95", b"DS", b"\t".join(text[ds[i]])]))
            proc.stdin.write(b"\n".join(lines) + b"\n")
        proc.stdin.close()
        if proc.wait():
            raise RuntimeError("bgzip failed")


def write_plink(prefix: Path, variants: pd.DataFrame, samples, seed: int) -> Path:
    """PLINK 1 fileset of the hard calls (A1 = alt, so the dosage read is the alt count), packed here."""
    rng = np.random.default_rng(seed)
    n = len(samples)
    with open(prefix.with_suffix(".fam"), "w") as fam:
        fam.writelines(f"{s} {s} 0 0 0 -9\n" for s in samples)
    bim = variants.assign(cm=0)[["chrom", "variant_id", "cm", "pos", "alt", "ref"]]
    bim.to_csv(prefix.with_suffix(".bim"), sep="\t", header=False, index=False)
    code = np.array([3, 2, 0], dtype=np.uint8)          # alt count 0, 1, 2 -> .bed 11, 10, 00 (A1 = alt)
    pad = (-n) % 4
    with open(prefix.with_suffix(".bed"), "wb") as bed:
        bed.write(b"\x6c\x1b\x01")
        for _, calls, _ in dosage_blocks(len(variants), n, rng):
            bits = code[calls]
            if pad:
                bits = np.concatenate([bits, np.zeros((bits.shape[0], pad), np.uint8)], axis=1)
            bits = bits.reshape(bits.shape[0], -1, 4)
            packed = bits[:, :, 0] | (bits[:, :, 1] << 2) | (bits[:, :, 2] << 4) | (bits[:, :, 3] << 6)
            bed.write(packed.astype(np.uint8).tobytes())
    return prefix.with_suffix(".bed")


# ----------------------------------------------------------------------------- running


def read_jobs(benchmarks: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(benchmarks.glob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rows.append({"job": path.stem, "s": float(table["s"].iloc[-1]), "cpu_s": float(table["cpu_time"].iloc[-1]),
                     "max_rss_mb": float(table["max_rss"].iloc[-1])})
    return pd.DataFrame(rows)


def size_mb(paths) -> float:
    return sum(Path(p).stat().st_size for p in paths) / 1e6


def run_format(fmt: str, base: dict, variants: pd.DataFrame, samples, work: Path, args) -> dict:
    genotype_dir = work / fmt
    genotype_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if fmt == "vcf":
        path = genotype_dir / "genotypes.vcf.gz"
        write_vcf(path, variants, samples, args.seed)
        files = [path]
    else:
        path = write_plink(genotype_dir / "genotypes", variants, samples, args.seed)
        files = [path, path.with_suffix(".bim"), path.with_suffix(".fam")]
    written_s = time.time() - started
    outdir = work / f"results_{fmt}"
    config = {"inputs": {**base, "genotypes": str(path)}, "outdir": str(outdir),
              "association": {"hurdle": bool(args.hurdle)}}
    if args.chunk_size:
        config["association"]["chunk_size"] = args.chunk_size
    (work / f"config_{fmt}.yaml").write_text(yaml.safe_dump(config))
    targets = [str(outdir / "association" / name) for name in
               ("summary.json", "figures/manhattan_interaction.png", "figures/qq.png")]
    load_start = uptime()
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"),
                             "--cores", "2", "--directory", str(work / f"wd_{fmt}"),
                             "--configfile", str(work / f"config_{fmt}.yaml")], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    wall = time.time() - started
    if result.returncode:
        raise RuntimeError(result.stderr[-4000:])
    jobs = read_jobs(outdir / "benchmarks")
    summary = json.loads((outdir / "association" / "summary.json").read_text())
    stage = lambda prefix: jobs[jobs["job"].str.startswith(prefix)]
    return {
        "format": fmt, "variants": len(variants), "samples": len(samples), "write_s": round(written_s, 1),
        "input_mb": round(size_mb(files), 1), "wall_s": round(wall, 1), "jobs": int(len(jobs)),
        "cpu_s": round(float(jobs["cpu_s"].sum()), 1), "peak_rss_mb": round(float(jobs["max_rss_mb"].max()), 1),
        "peak_rss_job": jobs.loc[jobs["max_rss_mb"].idxmax(), "job"],
        "by_rule": {prefix: {"jobs": int(len(stage(prefix))), "wall_s": round(float(stage(prefix)["s"].sum()), 1),
                             "cpu_s": round(float(stage(prefix)["cpu_s"].sum()), 1),
                             "max_rss_mb": round(float(stage(prefix)["max_rss_mb"].max()), 1)}
                    for prefix in ("ingest", "association_prepare", "association_chunk", "association_fdr",
                                   "association_sumstats", "association_table", "association_figures")
                    if len(stage(prefix))},
        "sumstats_mb": round(size_mb((outdir / "association" / "sumstats").glob("*.parquet")), 1),
        "table_mb": round(size_mb([outdir / "association" / "genotype_species.tsv"]), 1),
        "tests": summary["n_tests"], "rows": summary["n_rows"], "participants": summary["n_participants"],
        "species": summary["n_features"], "chunks": summary["n_chunks"], "table": summary["table"],
        "uptime_start": load_start, "uptime_end": uptime(),
    }


def reading_pass(vcf: Path) -> dict:
    """One pass of our reader and of bcftools query over the VCF, each in its own process."""
    import bench_genotype_reading as reading

    ours = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_genotype_reading.py"), "--child", "vcf",
                           str(vcf), json.dumps(["1", 1, 1_000_000])], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    if ours.returncode:
        raise RuntimeError(ours.stderr[-2000:])
    measured = json.loads(ours.stdout.strip().splitlines()[-1])
    result = {"ours": dict(measured["full"], peak_rss_mb=measured["peak_rss_mb"]), "uptime": uptime()}
    result["bcftools"] = reading.bcftools(vcf)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    from workflow_scripts.synthetic import generate, write

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_genome_"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"genome_{args.variants}.json"
    started = time.time()
    cohort = generate(n_households=args.households, n_unpaired=0, n_species=args.species, n_variants=40,
                      seed=args.seed)
    paths = write(cohort, work / "cohort", abundance_format="biom", genotype_format="dosage")
    base = {k: str(paths[k]) for k in ("participants", "stool_manifest", "abundance", "blood_manifest", "taxonomy")}
    samples = list(cohort.blood_manifest["sample_id"])
    variants = variant_table(args.variants, np.random.default_rng(args.seed))
    print(f"cohort: {len(cohort.participants)} participants, {len(samples)} blood samples "
          f"({time.time() - started:.0f} s); {uptime()}", flush=True)
    results = {"settings": vars(args), "runs": {}}
    for fmt in args.formats.split(","):
        results["runs"][fmt] = run_format(fmt, base, variants, samples, work, args)
        print(json.dumps(results["runs"][fmt]), flush=True)
        if fmt == "vcf" and args.bcftools:
            results["reading"] = reading_pass(work / "vcf" / "genotypes.vcf.gz")
            print(json.dumps(results["reading"]), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
