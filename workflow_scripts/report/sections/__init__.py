"""One module per stage: ``section(results) -> Section`` from that stage's files (never its code).

A section whose stage did not run, or whose files are missing, still returns a
:class:`Section` whose body says so ("did not run", "skipped because ...");
nothing here raises for a missing file. ``findings`` and ``caveats`` are short
HTML sentences the summary at the top of the report gathers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Section:
    anchor: str
    title: str
    body: str
    #: Sentences for the summary: what was tested, what was found.
    findings: list[str] = field(default_factory=list)
    #: Limits of the evidence, shown in the summary and in the section.
    caveats: list[str] = field(default_factory=list)
    #: Limits shown in the section only (the summary has them from another section).
    notes: list[str] = field(default_factory=list)
    ran: bool = True


def not_run(anchor: str, title: str, why: str) -> Section:
    from ..html import skipped

    return Section(anchor, title, skipped(why), ran=False)
