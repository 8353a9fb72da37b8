"""The workflow on a live Slurm, through snakemake-executor-plugin-slurm and the repo's profile.

The first tests need nothing: the profiles are valid Snakemake 9 profiles and every rule is
ready for a cluster (threads, mem_mb, runtime, log, conda). The rest run the whole workflow on
the bundled synthetic cohort twice, with `--profile config/profiles/local` and with
`--profile config/profiles/slurm`, and check that every job with a command ran as its own
Slurm job, with the resources the rule asked for, and that the results are byte-identical,
file by file. A bad input fails the Slurm run with the local run's message, after the
profile's retries, each with more memory.

They need a Slurm that answers (`sudo .ci/slurm-up` starts a single-node one on Debian; CI
does this): without one they skip, except under CI=true, where they fail. The Slurm mode is
read from `scontrol show config`: with slurmdbd accounting the plugin runs with its defaults
(plus the efficiency report); without accounting it needs `--slurm-status-command squeue
--slurm-no-account`. Set IMSMS_SLURM_WORKDIR to a directory the compute nodes see to run the
same test on a multi-node cluster.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from conftest import REPO

PROFILES = REPO / "config" / "profiles"
SLURM_PROFILE = PROFILES / "slurm"
LOCAL_PROFILE = PROFILES / "local"
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
RUN_TIMEOUT = int(os.environ.get("IMSMS_SLURM_TIMEOUT", "1200"))  # seconds per Snakemake run
COMMAND_DIRECTIVES = {"shell", "script", "run", "wrapper", "notebook", "cwl", "template_engine"}


def profile(path: Path) -> dict:
    return yaml.safe_load((path / "config.yaml").read_text())


def keys(value) -> set:
    """Every mapping key in a parsed YAML document."""
    if isinstance(value, dict):
        return set(value) | set().union(*map(keys, value.values()))
    return set().union(*map(keys, value)) if isinstance(value, list) else set()


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
            "--directory", str(workdir), *args]


# --- no Slurm needed ----------------------------------------------------------------------------


def test_slurm_profile():
    slurm = profile(SLURM_PROFILE)
    assert slurm["executor"] == "slurm"
    assert slurm["jobs"] >= 1 and slurm["latency-wait"] >= 30 and slurm["retries"] >= 1
    resources = slurm["default-resources"]
    assert {"mem_mb", "runtime"} <= set(resources)
    assert "mem_mb_per_cpu" not in keys(slurm), "the plugin refuses mem_mb_per_cpu with mem_mb"
    # Memory grows with the attempt, so a job killed for memory is retried with more.
    scope = {"input": SimpleNamespace(size_mb=0, size=0), "threads": 1}
    mem = [eval(str(resources["mem_mb"]), {}, dict(scope, attempt=a)) for a in (1, 2, 3)]
    assert mem[0] > 0 and mem[0] < mem[1] < mem[2], mem
    # Partition and account are the user's: not set in the repo.
    assert not {"slurm_partition", "slurm_account"} & set(resources)


def test_local_profile():
    local = profile(LOCAL_PROFILE)
    assert local.get("executor", "local") == "local" and local["cores"]


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_profile_is_accepted_by_snakemake(name, tmp_path):
    if name == "slurm" and importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    result = subprocess.run(snakemake_cmd(tmp_path, "--profile", str(PROFILES / name), "--dry-run",
                                          "--config", f"outdir={tmp_path / 'results'}"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def rule_blocks():
    """(file, rule name, {directive: text}) for every rule and checkpoint in the workflow."""
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            header = re.match(r"^(\s*)(?:rule|checkpoint)\s+(\w+)\s*:", line)
            if not header:
                continue
            indent = len(header.group(1))
            directives: dict[str, list[str]] = {}
            current = None
            for text in lines[i + 1:]:
                if not text.strip():
                    continue
                depth = len(text) - len(text.lstrip())
                if depth <= indent:
                    break
                directive = re.match(r"^\s*(\w+)\s*:", text)
                if directive and (current is None or depth <= directive_depth):
                    current, directive_depth = directive.group(1), depth
                    directives[current] = [text]
                elif current:
                    directives[current].append(text)
            yield path.name, header.group(2), {k: "\n".join(v) for k, v in directives.items()}


def test_every_rule_is_ready_for_a_cluster():
    """threads, resources mem_mb and runtime, log and conda on every rule that runs something."""
    problems, checked = [], 0
    for filename, name, directives in rule_blocks():
        if not COMMAND_DIRECTIVES & set(directives):
            continue  # a target rule such as `all`: nothing is submitted
        checked += 1
        missing = [d for d in ("threads", "resources", "log", "conda") if d not in directives]
        resources = directives.get("resources", "")
        missing += [f"resources: {r}" for r in ("mem_mb", "runtime")
                    if not re.search(rf"\b{r}\s*=", resources)]
        if "mem_mb_per_cpu" in resources:
            missing.append("no mem_mb_per_cpu (the plugin refuses it together with mem_mb)")
        if missing:
            problems.append(f"{filename}: rule {name}: {', '.join(missing)}")
    assert checked >= 3, "the rule parser found too few rules"
    assert not problems, "\n".join(problems)


# --- a live Slurm -------------------------------------------------------------------------------


def slurm_problem() -> str | None:
    """Why the Slurm tests cannot run here, or None."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no Slurm here (sbatch/sinfo not found); start a single-node one with `sudo .ci/slurm-up`"
    result = subprocess.run(["timeout", "30", "sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    states = result.stdout.split()
    if result.returncode != 0 or not any(s.rstrip("*~#") in {"idle", "mix", "alloc", "comp"} for s in states):
        return f"Slurm does not answer or has no node up: {(result.stdout + result.stderr).strip()!r}"
    return None


def scontrol_config() -> dict[str, str]:
    out = subprocess.run(["timeout", "30", "scontrol", "show", "config"], capture_output=True,
                         text=True, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.splitlines()) if _}


def slurm_site_args(accounting: bool) -> list[str]:
    """What a user sets for their site (README "Running on a cluster"): partition and account,
    added to the profile's default resources; on a cluster without accounting, the two flags
    the plugin then needs."""
    resources = [f"{k}={v}" for k, v in profile(SLURM_PROFILE)["default-resources"].items()]
    partitions = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
    default = [p.rstrip("*") for p in partitions if p.endswith("*")]
    if default:
        resources.append(f"slurm_partition={default[0]}")
    if not accounting:
        return ["--default-resources", *resources, "--slurm-status-command", "squeue", "--slurm-no-account"]
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    account = subprocess.run(["sacctmgr", "-n", "-P", "show", "user", user, "format=defaultaccount"],
                             capture_output=True, text=True).stdout.strip()
    if account:
        resources.append(f"slurm_account={account}")
    return ["--default-resources", *resources]


@dataclass
class Job:
    """One Snakemake job as Snakemake's log shows it."""

    jobid: str
    rule: str
    local: bool
    has_command: bool
    threads: int = 1
    resources: dict = field(default_factory=dict)
    wildcards: str = ""
    slurm: list = field(default_factory=list)  # (slurm job id, slurm log path) per submission


def parse_log(text: str) -> dict[str, Job]:
    """Jobs by Snakemake job id, with their Slurm submissions (one more per retry).

    The log files Snakemake prints for failed jobs (show-failed-logs: the rule's log and the
    Slurm job's log, which holds the job's own Snakemake output) are left out.
    """
    jobs: dict[str, Job] = {}
    text = re.sub(r"^Logfile [^\n]*:\n={80}\n.*?^={80}$", "", text, flags=re.M | re.S)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        header = re.fullmatch(r"(local)?(?:rule|checkpoint) (\w+):", line.strip())
        if header and not line.startswith(" "):
            fields, command = {}, None
            for text_line in lines[i + 1:]:
                if text_line.startswith("    ") and ": " in text_line:
                    key, _, value = text_line.strip().partition(": ")
                    fields[key] = value
                    continue
                if text_line.startswith("Shell command:"):
                    command = text_line.partition(":")[2].strip()
                break
            resources = dict(re.findall(r"(\w+)=([^,]+)", fields.get("resources", "")))
            job = Job(fields["jobid"], header.group(2), bool(header.group(1)), command not in (None, "None"),
                      int(fields.get("threads", 1)), resources, fields.get("wildcards", ""))
            jobs.setdefault(job.jobid, job)
        submitted = re.search(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.", line)
        if submitted:
            jobs[submitted.group(1)].slurm.append((submitted.group(2), Path(submitted.group(3))))
    return jobs


def slurm_records(ids: list[str], accounting: bool) -> dict[str, dict]:
    """State, account, partition, memory (MB), CPUs and time limit (minutes) of Slurm jobs."""

    def mb(text):
        number, unit = re.fullmatch(r"([\d.]+)([KMGT]?)\w*", text).groups()
        return round(float(number) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "": 1}[unit])

    def minutes(text):
        days, _, clock = text.rpartition("-")
        h, m, s = (["0"] * 3 + clock.split(":"))[-3:]
        return int(days or 0) * 1440 + int(h) * 60 + int(m) + (int(s) > 0)

    records = {}
    if accounting:
        fmt = "JobIDRaw,State,Account,Partition,ReqMem,ReqCPUS,Timelimit,Comment"
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", fmt],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            jid, state, account, partition, mem, cpus, limit, comment = line.split("|")
            records[jid] = dict(state=state.split()[0], account=account, partition=partition,
                                mem_mb=mb(mem), cpus=int(cpus), minutes=minutes(limit), comment=comment)
    else:
        for jid in ids:
            out = subprocess.run(["scontrol", "show", "job", "-o", jid], capture_output=True,
                                 text=True, check=True).stdout
            f = dict(re.findall(r"(\w+)=(\S*)", out))
            records[jid] = dict(state=f["JobState"], account=f.get("Account", ""), partition=f["Partition"],
                                mem_mb=mb(f.get("MinMemoryNode", "0")), cpus=int(f["NumCPUs"]),
                                minutes=minutes(f["TimeLimit"]), comment=f.get("Comment", ""))
    return records


def digest(directory: Path) -> dict[str, str]:
    """SHA-256 of every result file, skipping logs/ and benchmarks/ (as tests/test_workflow.py)."""
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and not {"logs", "benchmarks"} & set(p.parts)}


def bad_input_config(root: Path) -> tuple[Path, str]:
    """A cohort whose participants.tsv has sex 'unknown' on line 5 (as tests/test_workflow.py)."""
    inputs = root / "inputs"
    shutil.copytree(REPO / "resources" / "synthetic", inputs)
    table = pd.read_csv(inputs / "participants.tsv", sep="\t", dtype=str, keep_default_na=False, comment="#")
    table.loc[3, "sex"] = "unknown"
    table.to_csv(inputs / "participants.tsv", sep="\t", index=False)
    config = {"inputs": {"participants": str(inputs / "participants.tsv"),
                         "stool_manifest": str(inputs / "stool_manifest.tsv"),
                         "abundance": str(inputs / "abundance.biom"),
                         "taxonomy": str(inputs / "taxonomy.tsv")},
              "outdir": "out"}
    (root / "bad.yaml").write_text(yaml.safe_dump(config))
    return root / "bad.yaml", f"participants.tsv, line 5, id '{table.loc[3, 'participant_id']}', column 'sex'"


@dataclass
class Run:
    name: str
    workdir: Path
    args: list
    proc: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0
    returncode: int | None = None
    log: str = ""

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._out = open(self.workdir.parent / f"{self.name}.log", "w")
        # SIGINT first, so Snakemake cancels its Slurm jobs; SIGKILL a minute later.
        self.proc = subprocess.Popen(["timeout", "-s", "INT", "-k", "60", str(RUN_TIMEOUT),
                                      *snakemake_cmd(self.workdir, *self.args)],
                                     stdout=self._out, stderr=subprocess.STDOUT, text=True)
        self.started = time.monotonic()

    def wait(self):
        self.returncode = self.proc.wait()
        self.seconds = time.monotonic() - self.started
        self._out.close()
        self.log = (self.workdir.parent / f"{self.name}.log").read_text()
        return self


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The four runs, started together (the Slurm runs mostly wait on the queue)."""
    problem = slurm_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI expects a live Slurm (.ci/run starts one with .ci/slurm-up): {problem}")
        pytest.skip(problem)
    # Fail fast, and clearly, when Slurm answers but cannot run a job.
    probe = subprocess.run(["timeout", "120", "srun", "-N1", "-n1", "-t", "1", "--mem", "100", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T %r %M"], capture_output=True, text=True).stdout
        node = subprocess.run(["sinfo", "-h", "-o", "%t %E"], capture_output=True, text=True).stdout
        problem = (f"Slurm answers but a 1-minute test job failed: {probe.stderr.strip()!r}; "
                   f"node: {node.strip()!r}; queue: {queue.strip()!r}")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    accounting = scontrol_config().get("AccountingStorageType", "") != "accounting_storage/none"
    keep = os.environ.get("IMSMS_SLURM_WORKDIR")  # a shared directory; the run is kept there
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="test_slurm_", dir=keep))
    else:
        base = tmp_path_factory.mktemp("slurm")
    extra = base / "extra.yaml"
    settings = {}
    schema = REPO / "config" / "schema" / "association.schema.yaml"
    if schema.exists() and "chunk_size" in schema.read_text():
        settings["association"] = {"chunk_size": 20}  # 2 chunks of the 38 variants: a real scatter
    extra.write_text(yaml.safe_dump(settings))
    bad_config, bad_message = bad_input_config(base)

    # CI settings on top of the profile: poll soon after submitting (the plugin's default is
    # 40 s, kind to a big cluster's slurmdbd), and keep the Slurm logs of good jobs to check.
    slurm_args = ["--profile", str(SLURM_PROFILE), *slurm_site_args(accounting),
                  "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]
    local_args = ["--profile", str(LOCAL_PROFILE)]
    good = lambda name: ["--configfile", str(extra), "--config", f"outdir={base / name / 'results'}"]
    if accounting:  # the plugin's report of used vs requested resources, from sacct
        slurm_args += ["--slurm-efficiency-report"]
    all_runs = {
        "local": Run("local", base / "local", [*local_args, *good("local")]),
        "slurm": Run("slurm", base / "slurm", [*slurm_args, *good("slurm")]),
        "local_bad": Run("local_bad", base / "local_bad", [*local_args, "--configfile", str(bad_config)]),
        "slurm_bad": Run("slurm_bad", base / "slurm_bad", [*slurm_args, "--configfile", str(bad_config)]),
    }
    for run in all_runs.values():
        run.start()
    try:
        while any(run.returncode is None for run in all_runs.values()):
            for run in all_runs.values():
                if run.returncode is None and run.proc.poll() is not None:
                    run.wait()
            time.sleep(1)
    finally:
        for run in all_runs.values():
            if run.proc and run.proc.poll() is None:
                run.proc.send_signal(2)
                run.proc.wait(90)
        # Leave nothing of ours in the queue, whatever happened.
        logs = [base / f"{name}.log" for name in ("slurm", "slurm_bad")]
        ids = re.findall(r"submitted with SLURM jobid (\d+)", "".join(p.read_text() for p in logs if p.exists()))
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True)
    for run in all_runs.values():
        print(f"{run.name}: exit {run.returncode} after {run.seconds:.0f} s")
    yield SimpleNamespace(base=base, accounting=accounting, bad_message=bad_message, **all_runs)
    if not keep:
        shutil.rmtree(base, ignore_errors=True)


def slurm_test(test):
    """Runs the workflow end to end, locally and through Slurm."""
    return pytest.mark.workflow(pytest.mark.slurm(test))


@slurm_test
def test_the_workflow_runs_through_slurm(runs):
    assert runs.local.returncode == 0, runs.local.log[-3000:]
    assert runs.slurm.returncode == 0, runs.slurm.log[-5000:]
    assert "Using profile" in runs.slurm.log and "SLURM run ID" in runs.slurm.log


@slurm_test
def test_every_job_ran_as_a_slurm_job(runs):
    assert runs.slurm.returncode == 0, runs.slurm.log[-5000:]
    local, slurm = parse_log(runs.local.log), parse_log(runs.slurm.log)
    # Nothing with a command ran outside Slurm; every job with one was submitted.
    outside = [f"{j.rule} {j.wildcards}" for j in slurm.values() if j.has_command and not j.slurm]
    assert not outside, f"jobs not run as Slurm jobs: {outside}"
    assert all(not j.local for j in slurm.values() if j.has_command)
    # The same jobs as the local run, rule by rule, wildcard by wildcard.
    key = lambda jobs: collections.Counter((j.rule, j.wildcards) for j in jobs.values() if j.has_command)
    assert key(slurm) == key(local)
    assert len(key(slurm)) >= 10
    assert sum(1 for j in slurm.values() if j.rule == "association_chunk") > 1 or "association_chunk" not in {
        j.rule for j in local.values()}, "the scatter should make several chunk jobs"
    # A Slurm log per job under .snakemake/slurm_logs/rule_<name>/, written by the job itself.
    logs = runs.slurm.workdir / ".snakemake" / "slurm_logs"
    for job in (j for j in slurm.values() if j.has_command):
        assert len(job.slurm) == 1, f"{job.rule} was submitted {len(job.slurm)} times"
        slurm_id, log = job.slurm[0]
        assert log.is_file() and log.is_relative_to(logs / f"rule_{job.rule}"), log
        assert f"rule {job.rule}:" in log.read_text() or f"checkpoint {job.rule}:" in log.read_text(), log


@slurm_test
def test_slurm_jobs_got_the_rules_resources(runs):
    assert runs.slurm.returncode == 0, runs.slurm.log[-5000:]
    jobs = [j for j in parse_log(runs.slurm.log).values() if j.has_command]
    records = slurm_records([j.slurm[0][0] for j in jobs], runs.accounting)
    for job in jobs:
        record = records[job.slurm[0][0]]
        assert record["state"] == "COMPLETED", (job.rule, record)
        assert record["mem_mb"] == int(job.resources["mem_mb"]), (job.rule, record, job.resources)
        assert record["minutes"] == int(job.resources["runtime"]), (job.rule, record, job.resources)
        assert record["cpus"] == job.threads, (job.rule, record, job.threads)
        assert record["comment"] == "" or record["comment"].startswith(f"rule_{job.rule}"), record
    if runs.accounting:
        # Job accounting: the plugin's efficiency report covers the run.
        reports = list(runs.slurm.workdir.glob("efficiency_report_*.csv"))
        assert len(reports) == 1, reports
        report = pd.read_csv(reports[0])
        assert len(report) >= len(jobs), report
        assert all(r["account"] for r in records.values()), records


@slurm_test
def test_slurm_results_equal_the_local_results(runs):
    assert runs.local.returncode == 0 and runs.slurm.returncode == 0
    local, slurm = digest(runs.local.workdir / "results"), digest(runs.slurm.workdir / "results")
    assert len(local) >= 10
    assert sorted(slurm) == sorted(local), set(slurm) ^ set(local)
    differ = [name for name in local if local[name] != slurm[name]]
    assert not differ, f"differ between the local and the Slurm run: {differ}"


@slurm_test
def test_bad_input_fails_on_slurm_with_the_local_message(runs):
    assert runs.local_bad.returncode != 0 and runs.slurm_bad.returncode != 0
    assert runs.bad_message in runs.local_bad.log
    # The validation report, as the local run prints it, is in the Slurm run's output.
    report = re.search(r"^ERROR ingest: .*?^Nothing was written\..*?$", runs.local_bad.log, re.M | re.S)
    assert report, runs.local_bad.log[-3000:]
    assert report.group(0) in runs.slurm_bad.log, runs.slurm_bad.log[-5000:]
    assert not (runs.slurm_bad.workdir / "out" / "ingest").exists()
    # It failed as a Slurm job, retried as the profile says, with more memory each time.
    (ingest,) = [j for j in parse_log(runs.slurm_bad.log).values() if j.rule == "ingest"]
    assert len(ingest.slurm) == 1 + profile(SLURM_PROFILE)["retries"]
    for _, log in ingest.slurm:
        assert log.is_file() and runs.bad_message in log.read_text()
    records = slurm_records([jid for jid, _ in ingest.slurm], runs.accounting)
    assert {r["state"] for r in records.values()} == {"FAILED"}
    mem = [records[jid]["mem_mb"] for jid, _ in ingest.slurm]
    assert all(a < b for a, b in zip(mem, mem[1:])), mem
    assert re.search(r"SLURM-job '\d+' failed", runs.slurm_bad.log)
