# Config loading and validation, and the small helpers every rule file uses.
import json
import math
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import update_config

from workflow_scripts.association.resources import chunk_files
from workflow_scripts.cohort import cohort_files
from workflow_scripts.io.genotype_source import companion_files
from workflow_scripts.config_check import check_config
from workflow_scripts.settings import path_problems, refuse_code_in_config

REPO = Path(workflow.basedir)
SCHEMAS = REPO / "config" / "schema"

# Snakemake has already read (and, for YTE templates or YAML python tags, evaluated) the
# --configfile files before this line runs; a config that asks for code is refused here
# so that no result is made from it. README "Security" says why it cannot be refused earlier.
_code = [
    why
    for path in workflow.config_settings.configfiles
    if (why := refuse_code_in_config(path))
]
if _code:
    print(
        "config files must be data, not code:\n  "
        + "\n  ".join(_code)
        + "\nFix: write plain YAML values (no __use_yte__, no !!python tags).",
        file=sys.stderr,
    )
    sys.exit(1)

# The bundled config is the default only when no config with `inputs` is given, so
# a user's config never inherits the synthetic cohort's optional inputs (tree,
# genotypes...). --config key=value overrides still apply on top of it.
if "inputs" not in config:
    bundled = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    bundled["inputs"] = {
        k: (str(REPO / v) if isinstance(v, str) and k != "abundance_kind" else v)
        for k, v in bundled["inputs"].items()
    }
    update_config(bundled, dict(config))
    config.clear()
    config.update(bundled)

# --- Validation: every schema file in one pass (one readable line per problem, exit 1),
# then each stage section's schema again to fill its defaults ----------------------------
_unsafe = path_problems(config)
if _unsafe:
    print("\n".join(_unsafe) + "\nNothing was run.", file=sys.stderr)
    sys.exit(1)
check_config(config, SCHEMAS / "config.schema.yaml")
for _schema in sorted(SCHEMAS.glob("*.schema.yaml")):
    if _schema.name != "config.schema.yaml":
        check_config(config, _schema)

# Rules run `{PY} workflow_scripts.<stage>...`: the interpreter running Snakemake, or
# the rule's conda env python under --sdm conda; PYTHONPATH finds the package even
# where it was not pip-installed (conda envs, cluster nodes).
_USES_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
PY = (
    f"PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}} "
    f"{'python' if _USES_CONDA else shlex.quote(sys.executable)} -m"
)

INPUT_KEYS = [
    "participants",
    "stool_manifest",
    "blood_manifest",
    "abundance",
    "taxonomy",
    "tree",
    "genotypes",
    "variants",
]
INPUTS = {k: config["inputs"][k] for k in INPUT_KEYS if config["inputs"].get(k)}
_missing = [f"inputs.{k}: {v}" for k, v in INPUTS.items() if not Path(v).exists()]
if _missing:
    # Printed and exit 1 (not raised), so that Snakemake adds no traceback lines.
    print(
        "these input files do not exist:\n  "
        + "\n  ".join(_missing)
        + "\nFix: correct the paths in your config (relative paths are read from the "
        "directory Snakemake runs in), or remove optional inputs you do not have.",
        file=sys.stderr,
    )
    sys.exit(1)

HAS_TREE = "tree" in INPUTS
HAS_GENOTYPES = "genotypes" in INPUTS and "blood_manifest" in INPUTS


def out(path):
    """A path under the configured output directory."""
    return f"{config['outdir']}/{path}"


def log_path(name):
    return out(f"logs/{name}.log")


def benchmark_path(name):
    """Per-job wall time, memory and CPU time (Snakemake `benchmark:`), read by benchmarks/run.py."""
    return out(f"benchmarks/{name}.tsv")


def as_json(value):
    """A config section as JSON for a rule's command line (quote it with :q)."""
    return json.dumps(value, sort_keys=True)


def cohort_dir(wildcards, input):
    """The harmonised cohort's directory (its files are a rule's `cohort` input)."""
    return Path(input.cohort[0]).parent


def mem_mb(base, attempt=1, extra_mb=0):
    """Memory for a job: `base` times the configured baseline, plus `extra_mb` that grows
    with the data, doubled on each retry (Slurm ends a job over its memory with
    OUT_OF_MEMORY; the retry gets twice as much)."""
    return int(
        (config["resources"]["mem_mb"] * base + math.ceil(extra_mb))
        * 2 ** (attempt - 1)
    )


def runtime(base, attempt=1, extra_min=0):
    """Minutes for a job: `base` times the configured baseline, plus `extra_min` that grows
    with the data, doubled on each retry (a job Slurm ends with TIMEOUT gets twice the time).
    """
    return int(
        (config["resources"]["runtime"] * base + math.ceil(extra_min))
        * 2 ** (attempt - 1)
    )


def job_mem_mb(base=1, extra=None):
    """A rule's `mem_mb` resource: mem_mb(base, attempt) plus `extra(input)` MB."""
    if extra is None:
        return lambda wildcards, attempt: mem_mb(base, attempt)
    return lambda wildcards, input, attempt: mem_mb(base, attempt, extra(input))


def job_runtime(base=1, extra=None):
    """A rule's `runtime` resource: runtime(base, attempt) plus `extra(input)` minutes."""
    if extra is None:
        return lambda wildcards, attempt: runtime(base, attempt)
    return lambda wildcards, input, attempt: runtime(base, attempt, extra(input))


def cohort_size(input, *counts):
    """Product of counts from the harmonised cohort's cohort.json among a job's inputs
    (e.g. "n_participants", "n_variants"); 0 until ingest has written it. Resources that
    use it are evaluated when the job is about to run, after its inputs exist."""
    path = next((Path(p) for p in input if str(p).endswith("cohort.json")), None)
    if path is None or not path.exists():
        return 0
    info = json.loads(path.read_text())
    return math.prod(int(info.get(name) or 0) for name in counts)


def cohort_file(name):
    """One file of the harmonised cohort (its layout: workflow_scripts/cohort.py)."""
    return out(f"ingest/cohort/{name}")


def cohort_outputs():
    return [cohort_file(name) for name in cohort_files(HAS_TREE, HAS_GENOTYPES)]


def genotype_companions():
    """Files read with the genotype file (PLINK .bim/.fam, BGEN .sample, a VCF/BCF index beside
    it), so that Snakemake sees them as inputs too."""
    if "genotypes" not in INPUTS:
        return []
    return [f for f in companion_files(INPUTS["genotypes"]) if f != INPUTS["genotypes"]]


def genotype_files():
    """The genotype file and its companions: what the association jobs read in place."""
    return (
        [INPUTS["genotypes"], *genotype_companions()] if "genotypes" in INPUTS else []
    )


def association_file(path):
    """A job-to-job file of the association stage (under intermediate/, not for people)."""
    return out(f"intermediate/association/{path}")


def association_chunks(pattern, directory=None):
    """`pattern` ("{}" = the chunk's number) for every chunk association_prepare planned."""
    prepared = checkpoints.association_prepare.get().output.prepared
    base = directory if directory is not None else out("intermediate/association")
    return chunk_files(prepared, f"{base}/{pattern}")


def ingest_mb(input):
    """Memory ingest adds: the abundance and tables parsed (about 25x their files) and the
    genotype file's variant table, never its dosages (about half the genotype files' size
    in MB is a generous bound for the table at any number of samples)."""
    genotype = set(genotype_files())
    sizes = [
        (Path(f).stat().st_size / 1e6, f in genotype) for f in input if Path(f).exists()
    ]
    return 25 * sum(mb for mb, g in sizes if not g) + 0.5 * sum(
        mb for mb, g in sizes if g
    )


def ingest_settings():
    settings = dict(INPUTS)
    settings.update(
        abundance_kind=config["inputs"]["abundance_kind"],
        rank=config["rank"],
        case_label=config["case_label"],
        control_label=config["control_label"],
        covariates=config["covariates"],
        **config["ingest"],
    )
    return settings


def diversity_metrics():
    """Beta metrics that can run on this cohort (UniFrac needs a tree)."""
    tree_metrics = {"weighted_unifrac", "unweighted_unifrac"}
    return [
        m
        for m in config["diversity"]["metrics"]
        if m not in tree_metrics
        or (HAS_TREE and config["inputs"]["abundance_kind"] == "counts")
    ]


def diversity_settings():
    settings = dict(config["diversity"])
    settings.update(
        metrics=diversity_metrics(),
        covariates=config["covariates"],
        seed=config["seed"],
    )
    return settings


def diversity_mb(input):
    """Memory a diversity job adds: about six participants x participants float64
    matrices (distances, Gower matrix, eigenvectors, temporaries)."""
    return 48e-6 * cohort_size(input, "n_participants", "n_participants")


def diversity_minutes(input):
    """One beta metric: about 1 CPU-minute at 4,000 participants and 999 permutations
    (the eigendecomposition grows with participants^3, PERMANOVA with participants^2
    and the permutations); four times that here."""
    n = cohort_size(input, "n_participants")
    permutations = config["diversity"]["permutations"]
    return 4 * ((n / 4000) ** 3 + (n / 4000) ** 2 * permutations / 999)


# --- The results of each stage ------------------------------------------------------------
# Each rule file declares the results that rule all, provenance and the report use,
# STAGE_OUTPUTS["<stage>"] = {name: path or list of paths}. They are read only when
# Snakemake evaluates rule all's and those rules' input functions, after every rule file is
# included, so the order of the includes does not matter. (Snakemake's linter wants the
# functions of a workflow in this file, not in the rule files.)
STAGE_OUTPUTS = {}


def paths(outputs):
    """Every path of a stage's outputs (a dict of paths and lists of paths)."""
    found = []
    for value in outputs.values():
        found.extend(value if isinstance(value, list) else [value])
    return found


def stage_outputs(wildcards=None, exclude=("report",)):
    """The results of every stage but the report (what provenance records)."""
    return [
        path
        for stage, outputs in STAGE_OUTPUTS.items()
        if stage not in exclude
        for path in paths(outputs)
    ]


def all_outputs(wildcards=None):
    return stage_outputs(exclude=())
