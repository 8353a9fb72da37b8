"""The HTML report: one self-contained page that tells the findings first, then the evidence.

Order: a summary in words (what was tested, what was called, how strong the
evidence is and its caveats), a card per called taxon, then one section per
stage (cohort, diversity, differential abundance, genotype x microbiota,
clinical, calibration, exports) and the methods in prose. Each section is a
module of :mod:`workflow_scripts.report.sections` that reads its stage's
result files (:class:`~workflow_scripts.report.results.Results`), never its
code; a stage that did not run gets a note instead of a section.

    python -m workflow_scripts.report.build --results RESULTS_DIR --files FILE ... \\
        --out RESULTS_DIR/report/report.html --readme RESULTS_DIR/README.md --log LOG

``--files`` are the stages' declared outputs (the rule passes them all);
``--readme`` also writes the results folder's README.md
(:mod:`workflow_scripts.report.readme`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .. import runner
from .html import caveats as caveat_box, esc, page, skipped
from .readme import write_readme
from .results import Results
from .sections import Section
from .sections import association, calibration, classification, clinical, differential, diversity, export, ingest
from .sections import methods

log = logging.getLogger("report")

#: Sections after the summary, in page order.
STAGES = (classification, ingest, diversity, differential, association, clinical, calibration, export, methods)


def summary(sections: list[Section], facts: dict) -> str:
    """The findings-first summary: sentences gathered from every section, then every caveat."""
    by_anchor = {s.anchor: s for s in sections}
    tested = by_anchor["cohort"].findings + by_anchor["differential"].findings
    called = by_anchor["taxa"].findings
    other = [f for a in ("diversity", "association", "clinical") for f in by_anchor[a].findings]
    strength = by_anchor["calibration"].findings
    body = '<div class="summary">'
    if tested:
        body += "<h3>What was tested</h3><p class=\"lede\">" + " ".join(tested) + "</p>"
    if called:
        body += "<h3>What was called</h3><ul>" + "".join(f"<li>{f}</li>" for f in called) + "</ul>"
    if other:
        body += "<h3>Other findings</h3><ul>" + "".join(f"<li>{f}</li>" for f in other) + "</ul>"
    body += "<h3>Strength of evidence</h3>"
    if strength:
        body += "<ul>" + "".join(f"<li>{f}</li>" for f in strength) + "</ul>"
    else:
        body += ("<p>The false-discovery rate of the calls was not measured on this cohort (no calibration in this "
                 "run); the per-method q-values assume each method is calibrated here.</p>")
    body += "</div>"
    items = [f'{c} <a href="#{esc(s.anchor)}">({esc(s.title)})</a>' for s in sections for c in s.caveats]
    body += caveat_box(items, "Caveats: read the calls with these in mind")
    skipped = [s.title for s in sections if not s.ran]
    if skipped:
        body += f'<p class="note">Not in this run: {esc(", ".join(skipped))} (see those sections).</p>'
    return body


def drawn(stage, results: Results) -> Section:
    """``stage.section(results)``, or a note when its files cannot be read (the rest of the report still shows)."""
    try:
        return stage.section(results)
    except Exception as err:  # noqa: BLE001 - one malformed file must not cost the whole report
        log.warning("section %s could not be drawn: %s: %s", stage.TITLE, type(err).__name__, err, exc_info=True)
        return Section(stage.ANCHOR, stage.TITLE, skipped(
            f"This section could not be drawn from the stage's files ({esc(type(err).__name__)}: {esc(err)}); "
            "the log of the report job has the details."), ran=False)


def build(results: Results) -> str:
    """The report page for the run whose files ``results`` holds."""
    sections = [drawn(stage, results) for stage in STAGES]
    facts = ingest.cohort_facts(results)
    subtitle = ("Gut microbiome of multiple sclerosis patients and their household controls. "
                + (f"{facts['n_participants']} participants, {facts['n_pairs']} household pairs, "
                   f"{esc(facts['case'])} vs {esc(facts['control'])}, {esc(facts['rank'])} rank." if facts else ""))
    parts = [("summary", "Summary", summary(sections, facts))]
    for s in sections:
        body = s.body
        if s.caveats or s.notes:
            body = caveat_box(s.caveats + s.notes) + body
        parts.append((s.anchor, s.title, body))
    return page("Gut microbiome in multiple sclerosis: findings", subtitle, parts)


def cmd_report(args) -> None:
    results = Results.from_files(args.results, args.files, args.out)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(build(results), encoding="utf-8")
    log.info("wrote the report %s from %d result files", args.out, len(results.declared))
    if args.readme:
        write_readme(Path(args.results), Path(args.readme))
        log.info("wrote %s", args.readme)


def parser():
    parser = runner.parser(__doc__)
    parser.add_argument("--results", required=True, help="the run's output directory")
    parser.add_argument("--files", nargs="*", default=[], help="the stages' declared output files")
    parser.add_argument("--out", required=True, help="report.html to write")
    parser.add_argument("--readme", help="README.md of the results folder to write")
    return runner.command(parser, cmd_report)


main = runner.entry_point(parser, "report")


if __name__ == "__main__":
    sys.exit(main())
