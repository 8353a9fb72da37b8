"""The conda environments the rules point at (`--sdm conda`) parse and hold what the code imports.

Conda is not needed: the files are read as YAML and checked against `pyproject.toml` (the same
version bounds) and against the imports of `workflow_scripts/`, the package every rule runs.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
# Where the conda package is not the PyPI distribution name (PEP 503-normalised).
CONDA_NAME = {}
# Distributions that run Snakemake itself, not a rule's command: not needed in a rule's env.
NOT_IN_JOB_ENVS = {"snakemake"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(text: str) -> tuple[str, str]:
    """'pandas>=2.2' -> ('pandas', '>=2.2'); 'python=3.11' -> ('python', '=3.11')."""
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\S.*)?", text)
    assert match, f"cannot read the requirement {text!r}"
    return normalise(match.group(1)), re.sub(r"\s+", "", match.group(2) or "")


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def pyproject_requirements() -> dict[str, str]:
    return dict(split_requirement(r) for r in pyproject()["project"]["dependencies"])


def env_requirements(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    deps = env["dependencies"]
    assert all(isinstance(d, str) for d in deps), f"{path.name}: pip sections are not used here"
    return dict(split_requirement(d) for d in deps)


def envs_used_by_rules() -> dict[Path, list[str]]:
    """Env file -> the rule files whose `conda:` directives name it."""
    used: dict[Path, list[str]] = {}
    for rule_file in RULE_FILES:
        for rel in re.findall(r"^\s*conda:\s*\n\s*\"([^\"]+)\"", rule_file.read_text(), flags=re.M):
            path = (rule_file.parent / rel).resolve()
            used.setdefault(path, []).append(rule_file.name)
    return used


def third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported by workflow_scripts/ that are neither stdlib nor the package."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "workflow_scripts").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in {"workflow_scripts", "__future__"}:
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_there_is_an_env_and_every_one_parses():
    assert ENVS, "no envs/*.yaml"
    for path in ENVS:
        env = yaml.safe_load(path.read_text())
        assert isinstance(env, dict), path.name
        assert env.get("channels") and env["channels"][0] == "conda-forge", path.name
        assert "defaults" not in env["channels"], f"{path.name}: use conda-forge, not defaults"
        requirements = env_requirements(path)
        assert "python" in requirements, f"{path.name}: pin python"


def test_every_rule_env_exists_and_every_env_is_used():
    used = envs_used_by_rules()
    assert used, "no rule has a conda: directive"
    missing = {str(p): files for p, files in used.items() if not p.is_file()}
    assert not missing, f"conda: directives name files that do not exist: {missing}"
    unused = [p.name for p in ENVS if p.resolve() not in used]
    assert not unused, f"envs not used by any rule: {unused}"


def test_envs_use_the_versions_in_pyproject():
    project = pyproject_requirements()
    requires_python = pyproject()["project"]["requires-python"]
    lowest = tuple(int(x) for x in re.search(r">=\s*(\d+)\.(\d+)", requires_python).groups())
    for path in ENVS:
        for name, spec in env_requirements(path).items():
            if name == "python":
                pinned = re.fullmatch(r"=+(\d+)\.(\d+)(\.\*)?", spec)
                assert pinned, f"{path.name}: pin python to a minor version, not {spec!r}"
                assert tuple(map(int, pinned.groups()[:2])) >= lowest, f"{path.name}: python{spec}"
                continue
            pypi = {CONDA_NAME.get(k, k): k for k in project}
            assert name in pypi, f"{path.name}: {name} is not a dependency in pyproject.toml"
            assert spec == project[pypi[name]], (
                f"{path.name}: {name}{spec}, but pyproject.toml says {pypi[name]}{project[pypi[name]]}"
            )


def test_envs_hold_every_package_the_code_imports():
    distributions = metadata.packages_distributions()
    needed: dict[str, set[str]] = {}
    for module, files in third_party_imports().items():
        dists = distributions.get(module)
        assert dists, f"{module} (imported in {sorted(files)}) is not installed, so its package is unknown"
        for dist in dists:
            needed.setdefault(CONDA_NAME.get(normalise(dist), normalise(dist)), set()).update(files)
    assert {"numpy", "pandas"} <= set(needed), "the import scan found too little"
    project = pyproject_requirements()
    for package, files in sorted(needed.items()):
        assert package in project or package in NOT_IN_JOB_ENVS, (
            f"{package} (imported in {sorted(files)}) is missing from pyproject.toml dependencies"
        )
    for path in ENVS:
        listed = set(env_requirements(path))
        missing = {p: sorted(f) for p, f in needed.items() if p not in listed and p not in NOT_IN_JOB_ENVS}
        assert not missing, f"{path.name} lacks packages the code imports: {missing}"


@pytest.mark.parametrize("path", ENVS, ids=[p.name for p in ENVS])
def test_env_lists_nothing_twice(path):
    deps = [split_requirement(d)[0] for d in yaml.safe_load(path.read_text())["dependencies"]]
    assert len(deps) == len(set(deps)), path.name
