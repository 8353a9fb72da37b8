"""One benchmark run: generate a cohort, run the whole workflow, time the references on the same data.

Usage::

    python benchmarks/run.py --scale small|imsms|large [--out benchmarks/results] [--no-r] [--keep DIR]
    python benchmarks/run.py --compare benchmarks/results/small.json benchmarks/results/large.json
    python benchmarks/run.py --table benchmarks/results/large.json

In one run:

1. generate a synthetic cohort (``workflow_scripts.synthetic``, seed 1) and a
   config that names only its files and an output directory;
2. run ``snakemake --cores 2`` on it as a subprocess: wall time, CPU time of
   the process tree (user + sys of the finished children) and peak resident
   set size of the whole tree (the sum over Snakemake and its descendants,
   sampled every 0.15 s); per stage, the sums of the jobs' Snakemake
   ``benchmark:`` files (``<outdir>/benchmarks/<job>.tsv``);
3. on the workflow's harmonised cohort, time our engines and the references
   they replace, single-threaded (BLAS at one thread; the workflow itself
   runs with the caller's environment), and report a ratio (reference time /
   our time) only after checking the two agree: PERMANOVA against
   ``vegan::adonis2`` and scikit-bio, the random-intercept mixed model against
   a statsmodels ``MixedLM`` loop, the association engine against statsmodels
   OLS loops (``bench_permanova``, ``bench_mixed_model``, ``bench_association``);
4. write ``<out>/<scale>.json`` and print Markdown tables; with ``small.json``
   and ``large.json`` both in ``<out>``, also how each stage grows between them.

A ratio is null, with the reason in ``ratio_reasons``, when the reference could
not run (no Rscript, ``--no-r``) or the results were not equal.
"""

from __future__ import annotations

import os
import sys

import blas_threads

#: The workflow runs with the environment the harness was started with.
CALLER_ENVIRONMENT = dict(os.environ)
if __name__ == "__main__":
    blas_threads.limit(1)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402

import bench_association  # noqa: E402
import bench_mixed_model  # noqa: E402
import bench_permanova  # noqa: E402
from workflow_scripts.association.prepare import AssociationSettings, prepare  # noqa: E402
from workflow_scripts.association.qc import block_qc  # noqa: E402
from workflow_scripts.cohort import Cohort, read_cohort, read_variants  # noqa: E402
from workflow_scripts.design import build_design, first_samples  # noqa: E402
from workflow_scripts.diversity.beta import distance_matrix  # noqa: E402
from workflow_scripts.synthetic import generate, write  # noqa: E402
from workflow_scripts.transforms import clr_abundance, participant_profiles, select_features  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CORES = 2
SAMPLE_SECONDS = 0.15
SEED = 1


@dataclass(frozen=True)
class Scale:
    """A cohort size and how much reference work to time on it."""

    households: int
    species: int
    variants: int
    permutations: int = 999
    mixedlm_features: int = 20  # features fitted by the statsmodels MixedLM loop
    association_pairs: int = 200  # variant x species pairs fitted by the statsmodels OLS loops
    repeats: int = 3  # runs of our engines; the best (median for PERMANOVA) is reported


#: ``small`` has the species and variants of ``large``, so the two differ only in participants.
SCALES = {
    "tiny": Scale(20, 40, 20, permutations=99, mixedlm_features=3, association_pairs=20, repeats=1),
    "small": Scale(300, 1000, 500),
    "imsms": Scale(576, 1000, 200),
    "large": Scale(2000, 1000, 500, mixedlm_features=10),
}
PUBLIC_SCALES = ["small", "imsms", "large"]

#: Rule name prefix -> stage.
STAGES = {"ingest": "ingest", "diversity": "diversity", "differential": "differential",
          "clinical": "clinical", "association": "association", "classification": "classification",
          "provenance": "report", "report": "report"}
STAGE_ORDER = ["ingest", "diversity", "differential", "clinical", "association", "classification", "report"]

#: Equality tolerances checked before a ratio is reported.
PERMANOVA_RTOL = 1e-8
MIXED_MODEL_ATOL = bench_mixed_model.TOLERANCE
ASSOCIATION_TOL = 1e-8

UNITS = {
    "permanova_vs_adonis2": "one status test, household strata, wall seconds",
    "permanova_vs_skbio": "one status test, free permutations, wall seconds",
    "mixed_models_vs_mixedlm_loop": "wall seconds per feature",
    "association_vs_ols_loop": "CPU seconds per variant x species pair (both models), CR1 household errors",
    "association_plain_vs_ols_loop": "CPU seconds per variant x species pair (both models), plain OLS errors",
}
TARGETS = {
    "permanova_vs_adonis2": (">=", 50),
    "mixed_models_vs_mixedlm_loop": (">=", 100),
    "association_vs_ols_loop": (">=", 100),
    "association_tests_per_s_per_core": (">=", 1e6),
}
LARGE_TARGETS = {"workflow_wall_s": ("<", 300), "workflow_peak_rss_mb": ("<", 4096)}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- cohort and config

def generate_cohort(scale: Scale, directory: Path) -> tuple[dict, dict]:
    """Write the synthetic cohort; return its file paths and its size."""
    cohort = generate(n_households=scale.households, n_species=scale.species, n_variants=scale.variants,
                      seed=SEED)
    paths = write(cohort, directory)
    size = {"households": scale.households, "participants": len(cohort.participants),
            "samples": len(cohort.stool_manifest), "species": scale.species, "features": len(cohort.counts),
            "variants": scale.variants}
    return paths, size


def write_config(paths: dict, outdir: Path, path: Path) -> dict:
    """A config with only the inputs and the output directory (everything else defaults)."""
    names = ["participants", "stool_manifest", "blood_manifest", "abundance", "taxonomy", "tree",
             "genotypes", "variants"]
    config = {"inputs": {**{k: str(paths[k]) for k in names}, "abundance_kind": "counts"},
              "outdir": str(outdir)}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def with_defaults(config: dict) -> dict:
    """The config with the schema defaults filled in, as ``rules/common.smk`` fills them."""
    from snakemake.utils import validate

    filled = json.loads(json.dumps(config))
    validate(filled, str(REPO / "config" / "schema" / "config.schema.yaml"))
    for section in ("diversity", "differential", "association"):
        validate(filled, str(REPO / "config" / "schema" / f"{section}.schema.yaml"))
    return filled


# --------------------------------------------------------------------------- the workflow

def tree_rss(pid: int) -> int:
    """Resident set size of a process and all its descendants, in bytes (0 once it has gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_workflow(config_path: Path, workdir: Path, log_path: Path, until=None, env=None) -> dict:
    """Run Snakemake on the config; wall, CPU and peak tree RSS, printing its progress.

    CPU time is user + sys of the children this process has waited for (Snakemake
    and, through it, every job), taken before and after the run.
    """
    command = [sys.executable, "-m", "snakemake", "--cores", str(CORES), "--snakefile",
               str(REPO / "Snakefile"), "--configfile", str(config_path), "-d", str(workdir)]
    command += ["--until", *until] if until else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, own_before = _busy_seconds(), time.process_time()
    peak, steps, shown = 0, "", ""
    start = time.perf_counter()
    with open(log_path, "w") as log, open(log_path) as reader:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            found = re.findall(r"(\d+ of \d+ steps \(\d+%\) done)", reader.read())
            steps = found[-1] if found else steps
            if steps != shown:
                progress(f"  workflow: {steps} ({time.perf_counter() - start:.0f} s)")
                shown = steps
            time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, own = _busy_seconds() - busy_before, time.process_time() - own_before
    if process.returncode:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"the workflow failed (exit {process.returncode}); log {log_path}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak / 2**20, "steps": steps,
            "other_cpu_s": max(busy - cpu - own, 0.0)}


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all cores)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def read_job_benchmarks(directory: Path) -> pd.DataFrame:
    """One row per job from Snakemake's benchmark files: job, stage, s, cpu_time, max_rss (MB)."""
    rows = []
    for path in sorted(directory.glob("*.tsv")):
        table = pd.read_csv(path, sep="\t", na_values=["-", "NA"])
        row = table.iloc[-1]
        rows.append({"job": path.stem, "stage": STAGES.get(path.stem.split("_")[0], "other"),
                     "s": float(row["s"]), "cpu_time": float(pd.to_numeric(row["cpu_time"], errors="coerce")),
                     "max_rss": float(pd.to_numeric(row["max_rss"], errors="coerce"))})
    return pd.DataFrame(rows, columns=["job", "stage", "s", "cpu_time", "max_rss"])


def stage_figures(jobs: pd.DataFrame) -> dict:
    """Per stage: summed job wall seconds, summed CPU seconds, the largest job RSS, jobs, slowest job."""
    out = {}
    for stage in [*STAGE_ORDER, "other"]:
        part = jobs[jobs["stage"] == stage]
        if part.empty:
            continue
        slowest = part.loc[part["s"].idxmax()]
        out[stage] = {"wall_s": float(part["s"].sum()), "cpu_s": float(part["cpu_time"].sum(min_count=1)),
                      "max_rss_mb": float(part["max_rss"].max()), "jobs": int(len(part)),
                      "slowest_job": str(slowest["job"]), "slowest_job_s": float(slowest["s"])}
    return out


# --------------------------------------------------------------------------- reference inputs

def diversity_inputs(cohort: Cohort):
    """Bray-Curtis between the participants' first stool samples (as the diversity stage), status, household."""
    samples = cohort.samples
    participants = cohort.participants.loc[pd.unique(samples["participant_id"])]
    frame = build_design(participants, [], cohort.case_label, stage="benchmark", samples=samples).frame
    first = first_samples(samples).reindex(frame.index)
    profiles = cohort.table("features").loc[first.to_numpy()]
    distances = distance_matrix(profiles, "braycurtis").data
    meta = pd.DataFrame({"status": frame["status"].to_numpy(), "household": frame["household"].astype(str).to_numpy()},
                        index=pd.Index(first.to_numpy(), name="sample_id"))
    return distances, meta


def mixed_model_inputs(cohort: Cohort, config: dict):
    """The design (status, covariates, site, household) and CLR species profiles of the prevalent species."""
    covariates = list(config["covariates"])
    design = build_design(cohort.participants, covariates, cohort.case_label, stage="benchmark",
                          samples=cohort.samples)
    frame = design.frame
    samples = cohort.samples[cohort.samples["participant_id"].isin(frame.index)]
    profiles = participant_profiles(cohort.table("taxa").loc[samples.index], samples, "first").reindex(frame.index)
    clr = clr_abundance(profiles, cohort.info["abundance_kind"])
    features, _ = select_features(profiles, config["differential"]["min_prevalence"], "benchmark")
    meta = frame[["status", *covariates, "site", "household"]].reset_index(drop=True)
    terms = ["status", *covariates] + (["C(site)"] if meta["site"].nunique() > 1 else [])
    return meta, clr[features].to_numpy(), "y ~ " + " + ".join(terms)


def association_inputs(cohort: Cohort, config: dict):
    """The association stage's prepared inputs (its ``prepare``, its QC), and the rows whose interaction it reports."""
    if cohort.variants is None:
        cohort = replace(cohort, variants=read_variants(cohort.genotypes.directory))
    settings = AssociationSettings.from_config(config["association"], covariates=config["covariates"])
    prepared = prepare(cohort, settings)
    part, rows = prepared.participants, prepared.rows
    variants, G = cohort.genotypes.dosage_matrix(list(part.index))
    qc = block_qc(G, variants, part["status"].to_numpy(), **settings.qc())
    tested = qc[qc["keep"]]
    dosages = G[qc["keep"].to_numpy()][:, part.index.get_indexer(rows["participant_id"])]
    covariates = rows[prepared.covariate_columns].to_numpy(dtype=float) if prepared.covariate_columns else None
    data = bench_association.Data(
        Y=prepared.abundance.to_numpy(dtype=float), G=dosages, status=rows["status"].to_numpy(dtype=float),
        covariates=covariates, households=pd.factorize(rows["cluster"].astype(str))[0],
        variant_ids=list(tested["variant_id"]), feature_ids=list(prepared.abundance.columns))
    return data, np.flatnonzero(tested["test_interaction"].to_numpy(dtype=bool))


# --------------------------------------------------------------------------- references

class Ratios:
    """Collects each comparison: our time, the reference's, the differences, and the ratio or why there is none."""

    def __init__(self):
        self.ratios, self.reasons, self.ours, self.reference, self.equality = {}, {}, {}, {}, {}

    def add(self, name, ours_s, reference_s=None, checked=None, tolerance=None, info=None, reason=None):
        """Record one comparison; the ratio is ``reference_s / ours_s`` only if every checked difference
        is within ``tolerance`` and no ``reason`` says the reference did not run."""
        self.ours[name] = ours_s
        self.reference[name] = reference_s
        if checked is not None:
            equal = all(value <= tolerance for value in checked.values())  # NaN compares False
            self.equality[name] = {**checked, **(info or {}), "tolerance": tolerance, "equal": equal}
            if reason is None and not equal:
                failed = [f"{k} {v:.3g} > {tolerance:g}" for k, v in checked.items() if not v <= tolerance]
                reason = "not equal to the reference: " + ", ".join(failed)
        if reason is None and reference_s is None:
            reason = "the reference did not run"
        self.ratios[name] = None if reason else reference_s / ours_s
        if reason:
            self.reasons[name] = reason


def r_available(no_r: bool) -> str | None:
    """Why adonis2 cannot run, or None when it can."""
    if no_r:
        return "--no-r: R not run"
    if shutil.which("Rscript") is None:
        return "Rscript not found"
    return None


def permanova_references(cohort: Cohort, scale: Scale, ratios: Ratios, no_r: bool) -> dict:
    distances, meta = diversity_inputs(cohort)
    n, perms = len(meta), scale.permutations
    progress(f"PERMANOVA: n = {n}, {perms} permutations; ours")
    ours_s, ours = bench_permanova.time_ours(distances, meta, ["status"], perms, "terms", "household",
                                             scale.repeats)
    reason = r_available(no_r)
    if reason is None:
        progress("PERMANOVA: vegan::adonis2 (Rscript)")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                r_s, r_table = bench_permanova.time_vegan(distances, meta, perms, "terms", Path(tmp),
                                                          cases={"status": ["status"]})["status"]
        except (subprocess.CalledProcessError, OSError) as err:
            reason = f"adonis2 failed: {err}"
    if reason is None:
        diff = bench_permanova.agreement(ours, r_table)
        ratios.add("permanova_vs_adonis2", ours_s, r_s, tolerance=PERMANOVA_RTOL,
                   checked={"pseudo_f_rel": diff["pseudo_f_rel"], "sum_of_squares_rel": diff["sum_of_squares_rel"]},
                   info={"p_abs": diff["p_abs"]})
    else:
        ratios.add("permanova_vs_adonis2", ours_s, reason=reason)

    progress("PERMANOVA: ours without strata, scikit-bio permanova")
    free_s, free = bench_permanova.time_ours(distances, meta, ["status"], perms, "terms", None, scale.repeats)
    sk_s, sk_f, sk_p = bench_permanova.time_skbio(distances, meta["status"].to_numpy(), perms)
    f_ours = float(free.pseudo_f.iloc[0])
    ratios.add("permanova_vs_skbio", free_s, sk_s, tolerance=PERMANOVA_RTOL,
               checked={"pseudo_f_rel": abs(f_ours - sk_f) / abs(sk_f)},
               info={"p_abs": abs(float(free.p_value.iloc[0]) - sk_p)})
    return {"participants": n, "permutations": perms}


def mixed_model_reference(cohort: Cohort, config: dict, scale: Scale, ratios: Ratios) -> dict:
    meta, Y, formula = mixed_model_inputs(cohort, config)
    progress(f"mixed model: {Y.shape[1]} features x {len(meta)} participants, ours; "
             f"statsmodels MixedLM on {min(scale.mixedlm_features, Y.shape[1])} features")
    result = bench_mixed_model.compare(meta, Y, formula, scale.mixedlm_features, scale.repeats)
    checked = {f"max_abs_{k}": result[f"max_abs_{k}"] for k in ("beta", "se", "pvalue")}
    ratios.add("mixed_models_vs_mixedlm_loop", result["ours_per_feature"], result["reference_per_feature"],
               checked=checked, tolerance=MIXED_MODEL_ATOL,
               info={"compared": result["sampled"] - result["not_converged"],
                     "statsmodels_not_converged": result["not_converged"]})
    return {"formula": formula + " + (1 | household)", "participants": len(meta), "features": result["features"],
            "statsmodels_features": result["sampled"], "ours_total_s": result["ours_seconds"],
            "statsmodels_total_s": result["reference_seconds"]}


def association_reference(cohort: Cohort, config: dict, scale: Scale, ratios: Ratios) -> dict:
    progress("association: preparing the stage's inputs")
    data, interaction_rows = association_inputs(cohort, config)
    out = {"participants": len(data.status), "species": data.Y.shape[1], "variants": data.G.shape[0],
           "pairs": data.n_pairs, "statsmodels_pairs": scale.association_pairs}
    for clustered, name in ((True, "association_vs_ols_loop"), (False, "association_plain_vs_ols_loop")):
        progress(f"association ({'CR1 household errors' if clustered else 'plain OLS errors'}): "
                 f"{data.n_pairs:,} pairs, ours; statsmodels on {scale.association_pairs}")
        result = bench_association.compare(data, clustered, scale.association_pairs, repeats=scale.repeats,
                                           variants=interaction_rows)
        ratios.add(name, result["engine_cpu"] / result["n_pairs"], result["reference_cpu"] / result["sampled"],
                   checked={"max_abs_p": result["max_abs_p"], "max_rel": result["max_rel"]},
                   tolerance=ASSOCIATION_TOL)
        key = "tests_per_s_per_core" if clustered else "plain_tests_per_s_per_core"
        out[key] = result["tests_per_cpu_second"]
        out["engine_cpu_s" if clustered else "plain_engine_cpu_s"] = result["engine_cpu"]
    return out


def references(cohort: Cohort, config: dict, scale: Scale, no_r: bool) -> tuple[Ratios, dict]:
    """Every reference comparison on the harmonised cohort; the ratios and details of each."""
    ratios = Ratios()
    details = {"permanova": permanova_references(cohort, scale, ratios, no_r),
               "mixed_model": mixed_model_reference(cohort, config, scale, ratios),
               "association": association_reference(cohort, config, scale, ratios)}
    return ratios, details


# --------------------------------------------------------------------------- environment

def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "pandas", "statsmodels", "scikit-bio", "snakemake", "psutil"):
        out[name] = metadata.version(name)
    if shutil.which("Rscript"):
        text = subprocess.run(
            ["Rscript", "-e", 'cat(paste(R.version$major, R.version$minor, sep = "."), '
             'tryCatch(as.character(packageVersion("vegan")), error = function(e) ""), sep = "\\t")'],
            capture_output=True, text=True).stdout.strip().split("\t")
        out["R"] = text[0] if text and text[0] else None
        out["vegan"] = text[1] if len(text) > 1 and text[1] else None
    return out


def machine() -> dict:
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = found.group(1).strip() if found else model
    return {"cores": os.cpu_count(), "cpu_model": model, "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "reference_threads": 1}


def targets(result: dict) -> dict:
    """Each target with the value it is judged on and whether it is met (None: no value)."""
    values = dict(result["ratios"])
    values["association_tests_per_s_per_core"] = result["association_tests_per_s_per_core"]
    wanted = dict(TARGETS)
    if result["scale"] == "large":
        wanted.update(LARGE_TARGETS)
        values["workflow_wall_s"] = result["workflow"]["wall_s"]
        values["workflow_peak_rss_mb"] = result["workflow"]["peak_rss_mb"]
    out = {}
    for name, (op, bound) in wanted.items():
        value = values.get(name)
        met = None if value is None else (value >= bound if op == ">=" else value < bound)
        out[name] = {"target": f"{op} {bound:,.0f}", "value": value, "met": met}
    return out


# --------------------------------------------------------------------------- one run

def run(scale_name: str, out: Path = RESULTS, no_r: bool = False, keep: Path | None = None, until=None,
        env=None) -> dict:
    """Generate, run the workflow, time the references; write ``<out>/<scale>.json`` and return it."""
    scale = SCALES[scale_name]
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise SystemExit(f"--keep {keep}: the directory is not empty; remove it or name another")
    work = keep or Path(tempfile.mkdtemp(prefix=f"imsms-bench-{scale_name}-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = _run(scale_name, scale, work, no_r, until, env)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result = _finite(result)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{scale_name}.json"
    path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    progress(f"wrote {path}")
    return result


def _finite(value):
    """Plain JSON values: NumPy scalars as Python ones, NaN and infinity as null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _run(scale_name: str, scale: Scale, work: Path, no_r: bool, until, env) -> dict:
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    host = machine()
    progress(f"scale {scale_name}: {scale.households} households, {scale.species} species, "
             f"{scale.variants} variants; working in {work}")
    start = time.perf_counter()
    paths, size = generate_cohort(scale, work / "cohort")
    generate_s = time.perf_counter() - start
    progress(f"cohort: {size['participants']} participants, {size['samples']} stool samples, "
             f"{size['features']} features ({generate_s:.0f} s)")
    outdir = work / "results"
    config = write_config(paths, outdir, work / "config.yaml")

    progress(f"workflow: snakemake --cores {CORES}" + (f" --until {' '.join(until)}" if until else ""))
    workflow = run_workflow(work / "config.yaml", work / "wd", work / "snakemake.log", until,
                            CALLER_ENVIRONMENT if env is None else env)
    jobs = read_job_benchmarks(outdir / "benchmarks")
    workflow["jobs"] = int(len(jobs))
    progress(f"workflow: {workflow['wall_s']:.1f} s wall, {workflow['cpu_s']:.1f} s CPU, "
             f"peak RSS {workflow['peak_rss_mb']:.0f} MiB, {len(jobs)} jobs; other processes used "
             f"{workflow['other_cpu_s']:.0f} CPU s meanwhile")

    cohort = read_cohort(outdir / "ingest" / "cohort")
    ratios, details = references(cohort, with_defaults(config), scale, no_r)
    result = {
        "scale": scale_name, "started": started, "cohort": size, "settings": asdict(scale),
        "machine": host, "versions": versions(),
        "ratios": ratios.ratios, "ratio_reasons": ratios.reasons, "ratio_units": {k: UNITS[k] for k in ratios.ratios},
        "reference_seconds": ratios.reference, "ours_seconds": ratios.ours, "equality": ratios.equality,
        "association_tests_per_s_per_core": details["association"]["tests_per_s_per_core"],
        "references": details, "generate_s": generate_s,
        "workflow": workflow, "stages": stage_figures(jobs),
    }
    result["targets"] = targets(result)
    return result


# --------------------------------------------------------------------------- tables

def _fmt(value, unit: str = "", digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.2f} M{unit}"
    if abs(value) >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:.{digits}g}{unit}"


def _seconds(value) -> str:
    if value is None:
        return "—"
    return f"{value * 1e6:.3g} µs" if value < 1e-3 else f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def markdown(result: dict) -> str:
    """The run as Markdown: cohort, references, workflow, stages."""
    c, m, v = result["cohort"], result["machine"], result["versions"]
    lines = [f"### `{result['scale']}`: {c['households']:,} households, {c['participants']:,} participants, "
             f"{c['samples']:,} stool samples, {c['species']:,} species, {c['variants']:,} variants",
             "",
             f"{m['cores']} cores ({m['cpu_model']}), {m['mem_gb']} GB; load at start "
             f"{', '.join(map(str, m['load_average_at_start']))}; Python {v['python']}, NumPy {v['numpy']}, "
             f"SciPy {v['scipy']}, pandas {v['pandas']}, statsmodels {v['statsmodels']}, "
             f"scikit-bio {v['scikit-bio']}, Snakemake {v['snakemake']}"
             + (f", R {v['R']}, vegan {v['vegan']}" if v.get("R") else "") + f"; started {result['started']}.",
             "",
             "| comparison | ours | reference | ratio | target | equality (largest difference) |",
             "|---|---|---|---|---|---|"]
    target = result.get("targets", {})
    for name, ratio in result["ratios"].items():
        eq = result["equality"].get(name, {})
        diffs = ", ".join(f"{k} {val:.1e}" for k, val in eq.items()
                          if k not in ("tolerance", "equal") and isinstance(val, float))
        ratio_text = f"{_fmt(ratio)}×" if ratio is not None else f"null ({result['ratio_reasons'][name]})"
        t = target.get(name)
        target_text = f"{t['target']}× {'met' if t['met'] else 'missed' if t['met'] is False else ''}" if t else ""
        lines.append(f"| {name} ({result['ratio_units'][name]}) | {_seconds(result['ours_seconds'][name])} | "
                     f"{_seconds(result['reference_seconds'][name])} | {ratio_text} | {target_text.strip()} | "
                     f"{diffs}{'' if not eq else ' (equal)' if eq['equal'] else ' (NOT equal)'} |")
    t = target.get("association_tests_per_s_per_core", {})
    lines.append(f"| association tests / s / core (CR1, both models) | "
                 f"{_fmt(result['association_tests_per_s_per_core'])} | | | "
                 f"{t.get('target', '')} {'met' if t.get('met') else 'missed'} | |")
    w = result["workflow"]
    lines += ["", "| workflow | wall | CPU | peak RSS (process tree) | jobs |", "|---|---|---|---|---|",
              f"| snakemake --cores {CORES} | {w['wall_s']:.1f} s | {w['cpu_s']:.1f} s | "
              f"{w['peak_rss_mb']:,.0f} MiB | {w['jobs']} |"]
    if w.get("other_cpu_s") is not None:
        lines += ["", f"Other processes on the machine used {w['other_cpu_s']:.0f} CPU seconds during the workflow "
                      f"({w['other_cpu_s'] / w['wall_s']:.2f} of the {result['machine']['cores']} cores on average)."]
    if "workflow_wall_s" in target:
        lines.append("")
        lines.append("Targets at `large`: wall " + ("met" if target["workflow_wall_s"]["met"] else "missed")
                     + " (< 300 s), peak RSS " + ("met" if target["workflow_peak_rss_mb"]["met"] else "missed")
                     + " (< 4,096 MiB).")
    lines += ["", "| stage | jobs | job wall s (sum) | CPU s (sum) | largest job RSS | slowest job |",
              "|---|---|---|---|---|---|"]
    for stage, s in result["stages"].items():
        lines.append(f"| {stage} | {s['jobs']} | {s['wall_s']:.1f} | {_fmt(s['cpu_s'])} | "
                     f"{_fmt(s['max_rss_mb'])} MiB | {s['slowest_job']} ({s['slowest_job_s']:.1f} s) |")
    return "\n".join(lines)


def growth(small: dict, large: dict) -> str:
    """How each stage's wall and CPU time grow between two runs, against the growth in participants.

    The exponent is ``log(time ratio) / log(participant ratio)``: 1 is linear in
    participants, 2 quadratic (meaningful when the runs differ only in participants).
    CPU time is the steadier of the two when other load was on the machine.
    """
    n_ratio = large["cohort"]["participants"] / small["cohort"]["participants"]
    same = all(small["cohort"][k] == large["cohort"][k] for k in ("species", "variants"))

    def exponent(a, b):
        if not a or not b or n_ratio == 1:
            return float("nan")
        return math.log(b / a) / math.log(n_ratio)

    lines = [f"Growth `{small['scale']}` → `{large['scale']}`: participants × {n_ratio:.2f}"
             + ("" if same else " (species or variants differ too: the exponent is not about participants alone)"),
             "", "| stage | small wall s | large wall s | wall exponent | small CPU s | large CPU s | CPU exponent |",
             "|---|---|---|---|---|---|---|"]
    rows = [(stage, small["stages"][stage], large["stages"][stage])
            for stage in STAGE_ORDER if stage in small["stages"] and stage in large["stages"]]
    rows.append(("whole workflow", small["workflow"], large["workflow"]))
    for stage, a, b in rows:
        wall, cpu = exponent(a["wall_s"], b["wall_s"]), exponent(a["cpu_s"], b["cpu_s"])
        flag = " (faster than linear)" if cpu > 1.1 else ""
        lines.append(f"| {stage} | {a['wall_s']:.1f} | {b['wall_s']:.1f} | {wall:.2f} | "
                     f"{a['cpu_s']:.1f} | {b['cpu_s']:.1f} | {cpu:.2f}{flag} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See benchmarks/README.md for what each figure means.")
    parser.add_argument("--scale", choices=list(SCALES), metavar="{" + ",".join(PUBLIC_SCALES) + "}",
                        help="cohort size to generate and run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where <scale>.json goes (default %(default)s)")
    parser.add_argument("--no-r", action="store_true", help="do not run R (adonis2's ratio is null)")
    parser.add_argument("--keep", type=Path, help="work in this (new or empty) directory and keep it")
    parser.add_argument("--until", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("SMALL_JSON", "LARGE_JSON"),
                        help="print how each stage grows between two results")
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the tables of a result")
    args = parser.parse_args(argv)
    if args.compare:
        small, large = (json.loads(p.read_text()) for p in args.compare)
        print(growth(small, large))
        return 0
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return 0
    if not args.scale:
        parser.error("give --scale, --compare or --table")
    result = run(args.scale, args.out, args.no_r, args.keep, args.until)
    print()
    print(markdown(result))
    pair = [args.out / f"{name}.json" for name in ("small", "large")]
    if args.scale in ("small", "large") and all(p.exists() for p in pair):
        print()
        print(growth(*(json.loads(p.read_text()) for p in pair)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
