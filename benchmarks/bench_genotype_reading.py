"""Benchmark: streaming genotype readers on one generated cohort in every format, against bcftools.

Writes one random genotype set (``--variants`` x ``--samples``; hard calls at
frequencies 0.05-0.5, a quarter of the variants imputed with 3-decimal ``DS``)
as a bgzipped VCF with ``GT:DS`` and its tabix index, a BCF with its CSI index,
a PLINK 1 fileset (hard calls) and a BGEN 1.2 (8-bit probabilities, as UK
Biobank ships), then measures, each in its own process so peak memory is its own:

``full``
    ``source.blocks(1000)`` over the whole file: wall and CPU seconds, variants
    per second, peak RSS (MiB) of the process.
``sites``
    ``source.variant_table()`` (no dosages decoded).
``chunk``
    ``source.read(chrom, start, end)`` of one region of about ``--chunk``
    variants in the middle of the file: what one association job reads.
``bcftools``
    ``bcftools query -f '[%DS\\t]\\n'`` over the same VCF and BCF, output to
    /dev/null (when bcftools is on PATH): the htslib parse alone, the floor
    any VCF reader meets.

Readers must agree before any time is reported: the column sums of the
dosages are compared between formats (VCF = BCF exactly, BGEN within the
8-bit quantisation, PLINK against the rounded DS).  The 1 M-variant figures
are linear extrapolations (every reader is one streaming pass).  Run on an
idle machine; the load average at start and end is in the JSON::

    python benchmarks/bench_genotype_reading.py --variants 20000 --samples 4000
    python benchmarks/bench_genotype_reading.py --child vcf PATH   # one measurement (internal)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FORMATS = ("vcf", "bcf", "plink", "bgen")
FILES = {"vcf": "g.vcf.gz", "bcf": "g.bcf", "plink": "g.bed", "bgen": "g.bgen"}
COMPANIONS = {"vcf": {"g.vcf.gz", "g.vcf.gz.tbi"}, "bcf": {"g.bcf", "g.bcf.csi"},
              "plink": {"g.bed", "g.bim", "g.fam"}, "bgen": {"g.bgen", "g.sample"}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", type=int, default=20_000)
    p.add_argument("--samples", type=int, default=4_000)
    p.add_argument("--chunk", type=int, default=1_000, help="variants in the region read of 'chunk'")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--workdir", help="write the files here and keep them (default: a temporary directory)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "genotype_reading.json"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reuse", action="store_true",
                   help="with --workdir: measure the files a previous run left there instead of writing them")
    p.add_argument("--child", nargs=3, metavar=("FORMAT", "PATH", "REGION"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- generating the files


def generate(workdir: Path, n_variants: int, n_samples: int, seed: int) -> dict:
    import numpy as np
    import pandas as pd

    from workflow_scripts.io.bgen import write_bgen
    from workflow_scripts.synthetic.writers import BGZF_EOF, bgzf_compress, index_vcf, vcf_to_bcf, write_plink

    rng = np.random.default_rng(seed)
    chrom = np.sort(rng.integers(1, 23, n_variants))
    pos = np.concatenate([np.sort(rng.choice(np.arange(1, 50_000_000), (chrom == c).sum(), replace=False))
                          for c in range(1, 23)])
    bases = np.array(list("ACGT"))
    ref = rng.integers(4, size=n_variants)
    variants = pd.DataFrame({"variant_id": [f"rs{i + 1}" for i in range(n_variants)], "chrom": chrom.astype(str),
                             "pos": pos, "ref": bases[ref], "alt": bases[(ref + rng.integers(1, 4, n_variants)) % 4]})
    samples = [f"S{j:05d}" for j in range(n_samples)]
    af = rng.uniform(0.05, 0.5, n_variants)
    imputed = rng.random(n_variants) < 0.25
    lookup = np.array([f"{i / 1000:g}" for i in range(2001)])
    gt_text = np.array(["0/0", "0/1", "1/1"])
    started = time.perf_counter()
    header = ["##fileformat=VCFv4.2", *(f"##contig=<ID={c},length=50000000>" for c in range(1, 23)),
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Alternate allele dosage">',
              "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples])]
    dosages = np.empty((n_variants, n_samples), dtype=np.float32)
    with open(workdir / FILES["vcf"], "wb") as fh:
        fh.write(bgzf_compress(("\n".join(header) + "\n").encode())[:-len(BGZF_EOF)])
        for lo in range(0, n_variants, 500):
            hi = min(lo + 500, n_variants)
            u = rng.random((2, hi - lo, n_samples))
            calls = (u[0] < af[lo:hi, None]).astype(np.int8) + (u[1] < af[lo:hi, None])
            noise = np.clip(calls + rng.normal(0, 0.08, calls.shape), 0, 2)
            ds = np.round(np.where(imputed[lo:hi, None], noise, calls), 3)
            dosages[lo:hi] = ds
            cells = np.char.add(np.char.add(gt_text[calls], ":"), lookup[np.rint(ds * 1000).astype(int)])
            lines = []
            for i in range(hi - lo):
                v = variants.iloc[lo + i]
                lines.append(f"{v.chrom}\t{v.pos}\t{v.variant_id}\t{v.ref}\t{v.alt}\t.\tPASS\t.\tGT:DS\t"
                             + "\t".join(cells[i]) + "\n")
            fh.write(bgzf_compress("".join(lines).encode())[:-len(BGZF_EOF)])
        fh.write(BGZF_EOF)
    timings = {"vcf": time.perf_counter() - started}
    t = time.perf_counter()
    index_vcf(workdir / FILES["vcf"])
    vcf_to_bcf(workdir / FILES["vcf"], workdir / FILES["bcf"])
    timings["bcf"] = time.perf_counter() - t
    t = time.perf_counter()
    write_plink(workdir / FILES["plink"], variants, np.rint(dosages), samples)
    timings["plink"] = time.perf_counter() - t
    t = time.perf_counter()
    write_bgen(workdir / FILES["bgen"], variants, dosages, samples, bits=8)
    timings["bgen"] = time.perf_counter() - t
    return {"write_s": {k: round(v, 1) for k, v in timings.items()},
            "sizes_mb": {k: round(sum(f.stat().st_size for f in workdir.iterdir() if f.name in COMPANIONS[k])
                                      / 2 ** 20, 1) for k in FILES}}


# ----------------------------------------------------------------------------- one measurement per process


def child(fmt: str, path: str, region: str) -> dict:
    import numpy as np

    from workflow_scripts.io.genotype_source import open_genotypes

    out = {}
    t0, c0 = time.perf_counter(), time.process_time()
    with open_genotypes(path, format=fmt) as source:
        opened = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        table = source.variant_table()
        out["sites"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                        "variants": len(table)}
        chrom, start, end = json.loads(region)
        t0, c0 = time.perf_counter(), time.process_time()
        variants, dosages = source.read(chrom, start, end)
        out["chunk"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                        "variants": len(variants), "region": f"{chrom}:{start}-{end}"}
        t0, c0 = time.perf_counter(), time.process_time()
        n, sums = 0, None
        for variants, dosages in source.blocks(1000):
            n += len(variants)
            part = np.nansum(dosages, axis=0, dtype=np.float64)
            sums = part if sums is None else sums + part
        out["full"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "variants": n}
    out["open_s"] = opened
    out["peak_rss_mb"] = peak_rss_mb()
    out["column_sums"] = sums.tolist()
    return out


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ``ru_maxrss`` would include the parent's peak before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bcftools(path: Path) -> dict | None:
    """``bcftools query`` from a small wrapper process, so its peak RSS is bcftools' own (plus ~10 MB)."""
    if not shutil.which("bcftools"):
        return None
    proc = subprocess.run([sys.executable, __file__, "--child", "bcftools", str(path), "null"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bcftools_child(path: str) -> dict:
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run([shutil.which("bcftools"), "query", "-f", "[%DS\t]\n", path], stdout=null, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": after.ru_utime + after.ru_stime,
            "peak_rss_mb": after.ru_maxrss / 1024}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        fmt, path, region = args.child
        print(json.dumps(bcftools_child(path) if fmt == "bcftools" else child(fmt, path, region)))
        return 0
    import numpy as np

    formats = args.formats.split(",")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-genotypes-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = {"variants": args.variants, "samples": args.samples, "load_average_at_start": os.getloadavg(),
              "uptime_at_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    try:
        if args.reuse and all((workdir / f).is_file() for f in FILES.values()):
            result["reused_files"] = True
        else:
            result.update(generate(workdir, args.variants, args.samples, args.seed))
        # the region: from the middle variant, about --chunk variants on its chromosome
        from workflow_scripts.io.genotype_source import open_genotypes

        with open_genotypes(workdir / FILES["plink"]) as source:
            table = source.variant_table()
        mid = table.iloc[len(table) // 2]
        same = table[(table["chrom"] == mid.chrom) & (table["pos"] >= mid.pos)].head(args.chunk)
        region = json.dumps([str(mid.chrom), int(mid.pos), int(same["pos"].max())])
        result["readers"] = {}
        for fmt in formats:
            proc = subprocess.run([sys.executable, __file__, "--child", fmt, str(workdir / FILES[fmt]), region],
                                  capture_output=True, text=True, check=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
            result["readers"][fmt] = json.loads(proc.stdout.strip().splitlines()[-1])
        result["bcftools_query_ds"] = {fmt: bcftools(workdir / FILES[fmt]) for fmt in ("vcf", "bcf")
                                       if fmt in formats}
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    # equality before speed
    sums = {fmt: np.asarray(r.pop("column_sums")) for fmt, r in result["readers"].items()}
    checks = {}
    if "vcf" in sums and "bcf" in sums:
        checks["vcf_equals_bcf"] = bool(np.array_equal(sums["vcf"], sums["bcf"]))
    if "vcf" in sums and "bgen" in sums:
        checks["bgen_vs_vcf_max_mean_abs_diff"] = float(np.max(np.abs(sums["bgen"] - sums["vcf"])) / args.variants)
        checks["bgen_within_8bit"] = checks["bgen_vs_vcf_max_mean_abs_diff"] <= 1.5 / 255
    result["equality"] = checks
    for fmt, r in result["readers"].items():
        r["variants_per_s"] = r["full"]["variants"] / r["full"]["wall_s"]
        r["variants_per_cpu_s"] = r["full"]["variants"] / max(r["full"]["cpu_s"], 1e-9)
        r["estimate_1M_variants_min"] = 1e6 / r["variants_per_s"] / 60
        r["estimate_1M_sites_min"] = 1e6 / (r["sites"]["variants"] / r["sites"]["wall_s"]) / 60
    for fmt, b in result["bcftools_query_ds"].items():
        if b and fmt in result["readers"]:
            b["variants_per_s"] = args.variants / b["wall_s"]
            b["ours_over_bcftools_wall"] = result["readers"][fmt]["full"]["wall_s"] / b["wall_s"]
            b["ours_over_bcftools_cpu"] = result["readers"][fmt]["full"]["cpu_s"] / max(b["cpu_s"], 1e-9)
    result["load_average_at_end"] = os.getloadavg()
    result["uptime_at_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(table_markdown(result))
    return 0


def table_markdown(result: dict) -> str:
    rows = [f"{result['variants']:,} variants x {result['samples']:,} samples; load at start "
            f"{[round(x, 2) for x in result['load_average_at_start']]}, at end "
            f"{[round(x, 2) for x in result['load_average_at_end']]}", "",
            "| format | full pass wall s | CPU s | variants/s | peak RSS MiB | sites-only s | one chunk s "
            "| 1 M variants (min, extrapolated) |", "|---|---|---|---|---|---|---|---|"]
    for fmt, r in result["readers"].items():
        rows.append(f"| {fmt} | {r['full']['wall_s']:.1f} | {r['full']['cpu_s']:.1f} | {r['variants_per_s']:,.0f} "
                    f"| {r['peak_rss_mb']:.0f} | {r['sites']['wall_s']:.1f} | {r['chunk']['wall_s']:.2f} "
                    f"({r['chunk']['variants']} variants) | {r['estimate_1M_variants_min']:.1f} |")
    for fmt, b in result["bcftools_query_ds"].items():
        if b:
            rows.append(f"| bcftools query DS ({fmt}) | {b['wall_s']:.1f} | {b['cpu_s']:.1f} | "
                        f"{b['variants_per_s']:,.0f} | {b['peak_rss_mb']:.0f} | | | "
                        f"{1e6 / b['variants_per_s'] / 60:.1f} |")
    rows.append("")
    rows.append(f"equality: {result['equality']}")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
