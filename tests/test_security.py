"""No config value runs code: paths are quoted in every rule and refused when they hold shell
or control characters; config files that ask Snakemake to evaluate Python are refused.

A space in ``outdir`` and in input paths works (tests/test_workflow.py runs a whole cohort
from ``my inputs/`` into ``my results``); here: the rules' quoting, read from the rule files
and seen in the commands Snakemake prints, and hostile values that must stop the run with
a message naming the key while the canary file they try to create never appears.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

RESOURCES = REPO / "resources" / "synthetic"
#: Placeholders a rule's shell command may use unquoted: the interpreter prefix (quoted in
#: rules/common.smk) and the thread count (an integer).
UNQUOTED = {"params.py", "threads"}


def snakemake(workdir, *args):
    """A dry run; ``.output`` is what Snakemake printed (it prints some errors to stdout)."""
    workdir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores",
                             "1", "--directory", str(workdir), *args], capture_output=True, text=True, timeout=300)
    result.output = result.stdout + result.stderr
    return result


def inputs(**overrides):
    values = {"participants": str(RESOURCES / "participants.tsv"),
              "stool_manifest": str(RESOURCES / "stool_manifest.tsv"),
              "abundance": str(RESOURCES / "abundance.biom"), "taxonomy": str(RESOURCES / "taxonomy.tsv")}
    values.update(overrides)
    return values


def shell_commands():
    """(rule file, rule, command text) of every `shell:` directive in the rule files."""
    for path in sorted((REPO / "rules").glob("*.smk")):
        rule, lines, inside, indent = None, [], False, 0
        for line in path.read_text().splitlines() + [""]:
            header = re.match(r"\s*(?:rule|checkpoint) (\w+):", line)
            if header:
                rule = header.group(1)
            stripped = line.strip()
            if inside:
                if stripped and len(line) - len(line.lstrip()) > indent:
                    lines.append(stripped)
                    continue
                yield path.name, rule, " ".join(lines)
                inside, lines = False, []
            if stripped == "shell:":
                inside, indent = True, len(line) - len(line.lstrip())


def test_every_path_in_every_shell_command_is_quoted():
    commands = list(shell_commands())
    assert len(commands) >= 15
    problems = []
    for filename, rule, command in commands:
        for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", command):
            name, _, spec = field.partition(":")
            if name not in UNQUOTED and spec != "q":
                problems.append(f"{filename}: rule {rule}: {{{field}}} is not quoted (add :q)")
    assert not problems, "\n".join(problems)


def test_the_commands_snakemake_runs_keep_a_path_with_a_space_in_one_word(tmp_path):
    outdir = "my results"
    result = snakemake(tmp_path, "--printshellcmds", "--config", f"outdir={outdir}")
    assert result.returncode == 0, result.output[-3000:]
    commands = [line for line in result.stdout.splitlines() if "workflow_scripts." in line]
    assert len(commands) >= 15
    for command in commands:
        words = shlex.split(command)
        assert any(w.startswith(f"{outdir}/") for w in words), command  # the path is one word
        assert not any(w.startswith("results/") for w in words), command  # never cut at the space


HOSTILE = [
    {"outdir": "out$(touch CANARY_1)", "participants": "p`touch CANARY_2`.tsv",
     "stool_manifest": "s;touch CANARY_3", "abundance": "a\ntouch CANARY_4"},
    {"outdir": "out\ntouch CANARY_5", "participants": "p$(touch CANARY_6).tsv",
     "stool_manifest": "s`touch CANARY_7`", "abundance": "a; touch CANARY_8"},
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=["outdir-substitution", "outdir-newline"])
def test_hostile_paths_in_a_config_file_stop_the_run_and_run_nothing(tmp_path, hostile):
    config = {"inputs": inputs(**{k: v for k, v in hostile.items() if k != "outdir"}), "outdir": hostile["outdir"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    assert result.returncode != 0
    for key in ("outdir", "inputs.participants", "inputs.stool_manifest", "inputs.abundance"):
        assert f"config {key} = " in result.output, key
    assert "Fix: use a path of letters, digits, spaces" in result.output
    assert not list(tmp_path.rglob("CANARY*")) and not list(REPO.glob("CANARY*"))


def test_hostile_outdir_on_the_command_line_is_refused(tmp_path):
    result = snakemake(tmp_path, "--config", "outdir=o`touch CANARY_9`; touch CANARY_10")
    assert result.returncode != 0 and "config outdir = " in result.output
    assert not list(tmp_path.rglob("CANARY*")) and not list(REPO.glob("CANARY*"))


def test_the_schema_refuses_the_same_paths():
    """The pattern lives in the schema (the documentation of every key); the friendly check reads it."""
    from jsonschema import Draft202012Validator

    from workflow_scripts.settings import load_schema, path_problem

    schema = load_schema("config")
    validator = Draft202012Validator(schema)
    for value in [*(v for hostile in HOSTILE for v in hostile.values()), "-rf", "a{b}", "x'y"]:
        assert path_problem(value), value
        assert not validator.is_valid({"inputs": inputs(), "outdir": value}), value
    for value in ["results", "my results/run 2", "/data/cohort-1/résultats", "C:/x,y=z@1%+"]:
        assert path_problem(value) is None, value
        assert validator.is_valid({"inputs": inputs(), "outdir": value}), value


CODE = {
    "yte": "__use_yte__: true\noutdir: out\nseed: ?1 + 1\n",
    "python_tag": "outdir: out\ncovariates: !!python/tuple [sex, age]\n",
}


@pytest.mark.parametrize("kind", sorted(CODE))
def test_config_files_that_are_code_are_refused(tmp_path, kind):
    (tmp_path / "config.yaml").write_text(CODE[kind])
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    assert result.returncode != 0
    assert "config files must be data, not code" in result.output and "config.yaml" in result.output


def test_a_python_call_tag_is_refused_before_it_runs(tmp_path):
    (tmp_path / "config.yaml").write_text('outdir: out\nseed: !!python/object/apply:os.system ["touch CANARY_8"]\n')
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    assert result.returncode != 0
    assert not list(tmp_path.rglob("CANARY*")) and not list(REPO.glob("CANARY*"))
