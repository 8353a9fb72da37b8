"""The layers hold: stage packages import only the shared layer, the shared layer no stage.

``workflow_scripts/`` has a shared layer at the bottom (every top-level module,
and the packages ``models``, ``io`` and ``gwas``), tools that make or convert data
(``synthetic``, ``examples``) and stage packages on top (every other package:
``ingest``, ``diversity``, ``differential``, ``association``,
``classification``, ``report``, and any new one). Imports are read with
``ast``, relative ones resolved, so the rule cannot regress unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

ROOT = REPO / "workflow_scripts"
SHARED_PACKAGES = {"models", "io", "gwas"}
TOOLS = {"synthetic", "examples"}


def layer(name: str) -> str:
    """``shared``, ``tool`` or ``stage`` for a first-level name under workflow_scripts."""
    if name in TOOLS:
        return "tool"
    if name in SHARED_PACKAGES or not (ROOT / name).is_dir():
        return "shared"
    return "stage"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, first-level name under workflow_scripts) of every import of the package in ``path``."""
    module = path.relative_to(REPO).with_suffix("").parts
    package = module[:-1] if module[-1] != "__init__" else module[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ((node.module,) if node.module else ()))
            else:
                target = node.module or ""
            # `from . import x` / `from .. import x` name modules or packages.
            names = [f"{target}.{alias.name}" for alias in node.names] if not node.module else [target]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "workflow_scripts" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def test_the_layer_of_every_package_is_known():
    names = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    stages = {n for n in names if layer(n) == "stage"}
    assert {"ingest", "diversity", "differential", "association", "classification", "report"} <= stages
    assert {"models", "io"} <= {n for n in names if layer(n) == "shared"}


def test_stages_import_only_the_shared_layer_and_the_shared_layer_no_stage():
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        own = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for line, target in imports(path):
            if target == own:
                continue
            if layer(own) == "stage" and layer(target) != "shared":
                problems.append(f"{path.relative_to(REPO)}:{line}: stage {own!r} imports {layer(target)} {target!r}")
            if layer(own) == "shared" and layer(target) != "shared":
                problems.append(f"{path.relative_to(REPO)}:{line}: the shared layer imports {layer(target)} "
                                f"{target!r}")
    assert not problems, "\n".join(problems)


def test_no_private_name_is_imported_across_modules():
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("workflow_scripts")):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private:
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno}: imports {private}")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_relative_and_absolute_imports(tmp_path):
    """The rule can fail: a sibling import in any spelling is found."""
    source = ("from ..differential.prepare import prepare\nfrom .. import association\n"
              "import workflow_scripts.report.build\nfrom ..models import mixed_model\nfrom . import alpha\n")
    path = ROOT / "diversity" / "_layer_probe.py"
    path.write_text(source)
    try:
        found = [target for _, target in imports(path)]
    finally:
        path.unlink()
    assert found == ["differential", "association", "report", "models", "diversity"]
