"""The one error type the workflow raises for bad input.

Validation collects every problem it finds in one pass and raises a single
:class:`InputError` listing them all, so an analyst fixes a file once instead
of re-running the workflow for each mistake.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input.

    Parameters
    ----------
    file : str
        The input file (or config key) the problem is in.
    message : str
        What is wrong, naming the bad value.
    fix : str
        What the analyst should do about it.
    line : int, optional
        1-based line number in ``file``.
    item : str, optional
        The sample, participant, feature or variant ID concerned.
    column : str, optional
        The column concerned.
    """

    file: str
    message: str
    fix: str
    line: int | None = None
    item: str | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.item is not None:
            where.append(f"id {self.item!r}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}. Fix: {self.fix}"


class InputError(Exception):
    """Bad input: carries every :class:`Problem` found, each with its fix."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self.report())

    def report(self, limit: int = 200) -> str:
        shown = self.problems[:limit]
        lines = [f"{len(self.problems)} problem(s) in the input:"]
        lines += [f"  - {p}" for p in shown]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more of the same kinds")
        return "\n".join(lines)


class Problems:
    """Collects problems during a validation pass; raises them together."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, file, message, fix, line=None, item=None, column=None) -> None:
        self.items.append(Problem(str(file), message, fix, line, item, column))

    def extend(self, other: "Problems | list[Problem]") -> None:
        self.items.extend(other.items if isinstance(other, Problems) else other)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise InputError(self.items)
