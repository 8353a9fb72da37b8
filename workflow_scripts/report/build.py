"""The HTML report: one self-contained page a clinician-scientist can read.

Sections: cohort (from the ledger), diversity, differential abundance, genotype
x microbiota, species classification, methods and parameters (config, package
versions, seed, input checksums from ``provenance.json``). Each section reads
its stage's output files, each named on the command line by the rule; a stage
whose files are not given did not run, and its section says so.

    python -m workflow_scripts.report.build --cohort-info ingest/cohort/cohort.json \
        --participants ingest/cohort/participants.tsv --ledger ingest/ledger.tsv \
        --alpha-tests ... --permanova ... --permdisp ... --alpha-figure ... --pcoa-figures ... \
        --consensus ... --differential-figures ... \
        [--associations ... --association-summary ... --association-figures ...] \
        --classification ... --provenance provenance.json --out report/report.html
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from .. import runner
from .html import esc, image, page, table


def _tsv(path: Path) -> pd.DataFrame:
    return runner.read_table(path, dtype={"id": str, "sample_id": str, "participant_id": str,
                                              "household_id": str, "feature": str, "variant_id": str})


def _not_run(stage: str) -> str:
    return f'<p class="skip">The {stage} stage did not run.</p>'


def _figures(paths) -> str:
    return "".join(image(p, p.stem.replace("_", " ")) for p in sorted(map(Path, paths)))


def cohort_section(a) -> str:
    info = json.loads(Path(a.cohort_info).read_text())
    part = _tsv(a.participants)
    ledger = _tsv(a.ledger)
    case, control = info["case_label"], info["control_label"]
    cards = [("participants", info["n_participants"]), ("household pairs", info["n_households_paired"]),
             ("stool samples", info["n_samples"]), ("sites", part["site"].nunique()),
             (f"taxa at {info['rank']}", info["n_taxa"]), ("variants", info["n_variants"])]
    body = '<div class="cards">' + "".join(f'<div class="card"><b>{v}</b>{esc(k)}</div>' for k, v in cards)
    body += "</div>"
    by_site = part.groupby(["site", "status"]).size().unstack(fill_value=0)
    body += "<h3>Participants by site</h3>" + table(by_site, index=True)
    if "dmt" in part.columns:
        dmt = part.loc[part["status"] == case, "dmt"].fillna("unknown").value_counts().rename("patients")
        body += f"<h3>Disease-modifying therapy ({esc(case)} patients)</h3>" + table(dmt.to_frame(), index=True)
    dropped = ledger[ledger["outcome"] == "dropped"]
    summary = ledger.groupby(["entity", "outcome"]).size().unstack(fill_value=0)
    body += "<h3>What went in and what was kept</h3>" + table(summary, index=True)
    if len(dropped):
        reasons = dropped.groupby(["entity", "reason"]).size().rename("n").reset_index()
        body += "<h3>What was dropped, and why</h3>" + table(reasons)
    else:
        body += "<p>Nothing was dropped at ingest.</p>"
    body += (f'<p class="note">Every input id is in <code>ingest/ledger.tsv</code>. Status labels: '
             f"{esc(case)} (case) and {esc(control)} (household control).</p>")
    return body


def diversity_section(a) -> str:
    if not a.permanova:
        return _not_run("diversity")
    tests = _tsv(a.alpha_tests)
    body = "<h3>Alpha diversity, MS vs household controls</h3>"
    body += table(tests[["metric", "test", "effect", "se", "p_value", "n", "n_pairs"]])
    if a.alpha_figure:
        body += image(a.alpha_figure, "alpha diversity by status")
    perm = _tsv(a.permanova)
    terms = perm[~perm["term"].isin(["Residual", "Total"])]
    body += "<h3>PERMANOVA</h3>" + table(terms[["metric", "model", "term", "df", "r2", "pseudo_f", "p_value",
                                                  "strata"]], max_rows=80)
    body += ('<p class="note">Model <code>status</code>: permutations within households (the paired test). '
             "<code>adjusted</code>: sequential terms; <code>adjusted_marginal</code>: each term after all "
             "others.</p>")
    if a.permdisp:
        body += "<h3>Dispersion (PERMDISP) by status</h3>" + table(_tsv(a.permdisp))
    body += "<h3>Ordination</h3>" + "".join(image(p, p.stem) for p in sorted(map(Path, a.pcoa_figures)))
    return body


def differential_section(a) -> str:
    if not a.consensus:
        return _not_run("differential-abundance")
    consensus = _tsv(a.consensus)
    called = consensus[consensus["call"] != "none"] if "call" in consensus.columns else consensus
    body = f"<p>{len(called)} of {len(consensus)} tested taxa are called by the consensus.</p>"
    body += table(called, max_rows=40)
    body += _figures(a.differential_figures)
    return body


def association_section(a) -> str:
    if not a.associations:
        return ('<p class="skip">Skipped: the cohort has no genotypes (no blood manifest or genotype '
                "file was configured).</p>")
    results = _tsv(a.associations)
    body = f"<p>{len(results)} variant x taxon tests.</p>"
    summary = json.loads(Path(a.association_summary).read_text()) if a.association_summary else {}
    labelled = summary.get("labelled_variants", [])
    if labelled:
        rows = []
        for v in labelled:
            for kind in ("genotype", "interaction"):
                best = v.get(kind) or {}
                rows.append({"variant": v.get("variant_id"), "label": v.get("label"),
                             "locus": v.get("gene_or_locus"), "effect": kind,
                             "best taxon": best.get("feature"), "beta": best.get("beta"),
                             "q": best.get("q"), "significant taxa": best.get("n_significant")})
        body += "<h3>Labelled variants</h3>" + table(pd.DataFrame(rows))
    top = results.sort_values(["q_interaction", "p_interaction"]).head(15)
    body += "<h3>Strongest genotype x MS interactions</h3>" + table(top[[c for c in (
        "variant_id", "feature", "n", "allele_frequency", "beta_interaction", "p_interaction", "q_interaction",
        "beta_genotype", "q_genotype") if c in top.columns]])
    body += _figures(a.association_figures)
    return body


def classification_section(a) -> str:
    if not a.classification:
        return _not_run("classification")
    frame = _tsv(a.classification)
    counts = frame["class"].value_counts()
    body = "<p>" + ", ".join(f"{esc(k)}: {v}" for k, v in counts.items()) + "</p>"
    order = frame["class"].map({"high-risk": 0, "protective": 1, "neutral": 2})
    body += table(frame.assign(_o=order).sort_values(["_o", "feature"]).drop(columns="_o"), max_rows=80)
    return body


def methods_section(a) -> str:
    if not a.provenance:
        return '<p class="skip">No provenance.json.</p>'
    record = json.loads(Path(a.provenance).read_text())
    versions = pd.Series(record["packages"], name="version").to_frame()
    inputs = pd.DataFrame([{"input": k, "path": v["path"], "sha256": v["sha256"][:16] + "…"}
                           for k, v in record["inputs"].items()])
    return (f"<p>Seed: <b>{esc(record['seed'])}</b>. Full record: <code>provenance.json</code>.</p>"
            "<h3>Configuration</h3><pre>" + esc(yaml.safe_dump(record["config"], sort_keys=False)) + "</pre>"
            "<h3>Software</h3>" + table(versions, index=True) + "<h3>Inputs</h3>" + table(inputs))


SECTIONS = [("cohort", "Cohort", cohort_section), ("diversity", "Diversity", diversity_section),
            ("differential", "Differential abundance", differential_section),
            ("association", "Genotype x microbiota", association_section),
            ("classification", "Species classification", classification_section),
            ("methods", "Methods and parameters", methods_section)]


def build(a) -> str:
    """The report page from the files named in ``a`` (the parsed command line)."""
    info = json.loads(Path(a.cohort_info).read_text())
    subtitle = (f"{info['n_participants']} participants, {info['n_households_paired']} household pairs; "
                f"{info['case_label']} vs {info['control_label']}; rank {info['rank']}.")
    return page("Gut microbiome in multiple sclerosis: cohort report",
                [(anchor, title, section(a)) for anchor, title, section in SECTIONS], subtitle)


def cmd_report(args) -> None:
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(build(args), encoding="utf-8")


def parser():
    parser = runner.parser(__doc__)
    for name in ("cohort-info", "participants", "ledger"):
        parser.add_argument(f"--{name}", required=True, help="ingest output")
    # The stages' files: a single file may be left out (the flag without a value) and a list may
    # be empty, when the stage did not run (no genotypes: no association).
    for name in ("alpha-tests", "permanova", "permdisp", "alpha-figure", "consensus", "associations",
                 "association-summary", "classification", "provenance"):
        parser.add_argument(f"--{name}", nargs="?")
    for name in ("pcoa-figures", "differential-figures", "association-figures"):
        parser.add_argument(f"--{name}", nargs="*", default=[])
    parser.add_argument("--out", required=True, help="report.html to write")
    return runner.command(parser, cmd_report)


main = runner.entry_point(parser, "report")


if __name__ == "__main__":
    sys.exit(main())
