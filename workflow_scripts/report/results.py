"""The run's result files as the report sees them: only the files the rule declared, by their path under outdir.

The report's sections ask for files by their place in the output contract
(``differential/calibration.tsv``, ``../shared/spec/inputs.md`` "Outputs"),
never by a stage's code. A file is *available* when the rule passed it
(``--files``: every stage's declared outputs) and it exists; a stage that did
not run, or a file a stage does not write yet, is simply not available and
the section says so instead of failing.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import runner
from .html import esc

#: Identifier columns read as text (household "001" stays "001").
TEXT_COLUMNS = {c: str for c in ("id", "sample_id", "participant_id", "household_id", "feature", "variant_id",
                                 "site", "term", "method", "axis", "scope", "metric", "prevalence_band", "status", "note", "class", "evidence", "reason")}


@dataclass
class Results:
    """Files of one run under ``root``; ``declared`` are their paths relative to it (posix)."""

    root: Path
    declared: set[str] = field(default_factory=set)
    #: Where the report is written (relative links are made from its directory).
    report_dir: Path | None = None

    @classmethod
    def from_files(cls, root, files, report_path=None) -> "Results":
        root = Path(root)
        declared = set()
        for f in files:
            try:
                declared.add(Path(os.path.relpath(Path(f), root)).as_posix())
            except ValueError:  # another drive (Windows): not under outdir
                continue
        report_dir = Path(report_path).parent if report_path else root / "report"
        return cls(root, declared, report_dir)

    def path(self, rel: str) -> Path | None:
        """The file ``rel`` (relative to outdir) if the run declared it and it exists."""
        if rel in self.declared and (self.root / rel).is_file():
            return self.root / rel
        return None

    def has(self, rel: str) -> bool:
        return self.path(rel) is not None

    def glob(self, pattern: str) -> list[str]:
        """Declared, existing files matching ``pattern`` (relative, sorted)."""
        return sorted(r for r in self.declared if fnmatch.fnmatchcase(r, pattern) and (self.root / r).is_file())

    def table(self, rel: str) -> pd.DataFrame | None:
        path = self.path(rel)
        if path is None:
            return None
        if not path.stat().st_size:
            return pd.DataFrame()
        return runner.read_table(path, dtype=TEXT_COLUMNS)

    def json(self, rel: str) -> dict | None:
        path = self.path(rel)
        return json.loads(path.read_text(encoding="utf-8")) if path else None

    def text(self, rel: str) -> str | None:
        path = self.path(rel)
        return path.read_text(encoding="utf-8") if path else None

    def href(self, rel: str) -> str:
        """A link to ``rel`` relative to the report's directory (the results folder moves as a whole)."""
        target = self.root / rel
        base = self.report_dir or self.root
        return Path(os.path.relpath(target, base)).as_posix()

    def link(self, rel: str, text: str | None = None) -> str:
        return f'<a href="{esc(self.href(rel))}">{esc(text or rel)}</a>'

    def links(self, pattern: str) -> str:
        """A line of links to every available file matching ``pattern`` (empty string when none)."""
        found = self.glob(pattern)
        if not found:
            return ""
        return '<p class="files">Files: ' + ", ".join(self.link(r) for r in found) + "</p>"
