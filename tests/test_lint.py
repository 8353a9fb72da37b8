"""The workflow stays lint-clean and snakefmt-formatted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def test_snakemake_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(REPO / "Snakefile")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


SNAKEFMT = shutil.which("snakefmt") or shutil.which("snakefmt", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SNAKEFMT is None, reason="snakefmt not installed (pip install -e '.[test]')")
def test_snakefmt_check():
    snakefmt = SNAKEFMT
    files = [str(REPO / "Snakefile"), *map(str, sorted((REPO / "rules").glob("*.smk")))]
    result = subprocess.run([snakefmt, "--check", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
