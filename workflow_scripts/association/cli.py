"""Command line for the association stage (what ``rules/association.smk`` runs).

Four subcommands, one per rule; all file reading and writing of the stage is
here, every file named by the rule::

    python -m workflow_scripts.association.cli prepare --cohort results/ingest/cohort \\
        --settings '{"maf_min": 0.05, ...}' --ledger ledger.tsv --variant-qc variant_qc.tsv \\
        --participants prepared/participants.tsv --abundance prepared/abundance.tsv \\
        --prepared prepared/summary.json
    python -m workflow_scripts.association.cli chunk --cohort results/ingest/cohort \\
        --participants ... --abundance ... --variant-qc ... --prepared ... \\
        --chunk 0 --output chunks/chunk_0.npy
    python -m workflow_scripts.association.cli gather --abundance ... --variant-qc ... \\
        --prepared ... --chunks chunks/chunk_0.npy ... --table genotype_species.tsv \\
        --variant-summary variant_summary.tsv --heatmap heatmap.tsv --summary summary.json \\
        --markdown summary.md
    python -m workflow_scripts.association.cli figures --variant-summary ... --heatmap ... \\
        --summary ... --manhattan figures/manhattan_interaction.png \\
        --heatmap-figure figures/heatmap_interaction.png

``prepare`` writes the ledger, the variant QC table and the prepared inputs
(the participants with their covariates, the CLR abundances, a summary with
the number of chunks); ``chunk`` fits one chunk of variants; ``gather`` applies
the global FDR over the chunks (given in chunk order) and writes the final
table, the per-variant summary, the heatmap cells and the stage summary;
``figures`` draws the Manhattan-style plot and the heatmap.  Every number is
written so that the same inputs give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .. import runner
from ..cohort import read_cohort
from . import figures
from .chunks import OUTPUT_COLUMNS, gather, run_chunk
from .prepare import AssociationSettings, prepare
from .summary import markdown, stage_summary

log = logging.getLogger("association")

def _read_prepared(path) -> pd.DataFrame:
    # The prepared tables are written exactly; pandas reads them back to the same floats (tests).
    return runner.read_table(path, index_col=0)


def read_variant_qc(path: Path) -> pd.DataFrame:
    table = runner.read_table(path, dtype={"variant_id": str, "chrom": str, "gene_or_locus": str, "label": str,
                               "reason": str})
    table["label"] = table["label"].fillna("") if "label" in table else ""
    table["reason"] = table["reason"].fillna("")
    return table.set_index("variant_id")


def cmd_prepare(args) -> None:
    cohort = read_cohort(args.cohort)
    settings = AssociationSettings.from_config(runner.json_argument(args.settings))
    prepared = prepare(cohort, settings)
    runner.write_table(prepared.ledger, args.ledger)
    runner.write_table(prepared.variant_qc, args.variant_qc, index=True)
    runner.write_table(prepared.participants, args.participants, index=True, exact=True)
    runner.write_table(prepared.abundance.rename_axis("participant_id"), args.abundance, index=True, exact=True)
    runner.write_json(prepared.summary, args.prepared)
    s = prepared.summary
    log.info("%d participants (%d %s), %d households; %d species; %d of %d variants pass QC -> %d chunk(s)",
             s["n_participants"], s["n_cases"], cohort.case_label, s["n_households"], s["n_features"],
             s["n_variants_tested"], s["n_variants"], s["n_chunks"])
    if s["status"] != "ok":
        log.warning("nothing to test: %s", s["reason"])


def cmd_chunk(args) -> None:
    participants, abundance = _read_prepared(args.participants), _read_prepared(args.abundance)
    prepared = json.loads(Path(args.prepared).read_text())
    qc = read_variant_qc(args.variant_qc)
    these = qc[qc["chunk"] == args.chunk].sort_index()
    cohort = read_cohort(args.cohort)
    result = run_chunk(cohort.genotypes, participants, abundance, prepared["covariate_columns"], these)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, result)
    log.info("chunk %d: %d variants x %d species", args.chunk, len(these), abundance.shape[1])


def cmd_gather(args) -> None:
    abundance = _read_prepared(args.abundance)
    prepared = json.loads(Path(args.prepared).read_text())
    qc = read_variant_qc(args.variant_qc)
    settings = prepared["settings"]
    fdr, n_chunks = float(settings["fdr"]), int(prepared["n_chunks"])
    if len(args.chunks) != n_chunks:
        raise ValueError(f"{len(args.chunks)} chunk files for the {n_chunks} chunks of {args.prepared}")
    tested = qc[qc["chunk"] >= 0].sort_index()
    pieces, finish = gather(lambda i: np.load(args.chunks[i]), n_chunks, tested,
                            abundance.columns, fdr=fdr, heatmap_pairs=int(settings["heatmap_pairs"]))
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    with open(args.table, "w", newline="\n") as handle:
        handle.write("\t".join(OUTPUT_COLUMNS) + "\n")
        for piece in pieces:
            runner.append_rows(piece, handle)
    result = finish()
    runner.write_table(result.variant_summary, args.variant_summary)
    runner.write_table(result.heatmap, args.heatmap)
    summary = stage_summary(prepared, result, qc, fdr, int(settings["report_top"]))
    runner.write_json(summary, args.summary)
    Path(args.markdown).write_text(markdown(summary) + "\n")
    log.info("%d genotype and %d interaction tests; q < %g: %d genotype main effects, %d interactions",
             result.n_tests["genotype"], result.n_tests["interaction"], fdr,
             result.n_significant["genotype"], result.n_significant["interaction"])
    for entry in summary["labelled_variants"]:
        if entry["tested"]:
            e = entry["interaction"]
            log.info("%s (%s): strongest interaction with %s, p %s, q %s", entry["variant_id"], entry["label"],
                     e["feature"], e["p"], e["q"])
        else:
            log.info("%s (%s): not tested (%s)", entry["variant_id"], entry["label"], entry["qc_reason"])


def cmd_figures(args) -> None:
    summary = json.loads(Path(args.summary).read_text())
    variant_summary = runner.read_table(args.variant_summary,
                                        dtype={"variant_id": str, "chrom": str, "label": str})
    variant_summary["label"] = variant_summary["label"].fillna("")
    heatmap = runner.read_table(args.heatmap, dtype={"variant_id": str, "feature": str})
    case = summary.get("case_label", "MS")
    figures.manhattan(variant_summary, summary.get("threshold_p_interaction"), summary["fdr"], case,
                      args.manhattan)
    figures.heatmap(heatmap, variant_summary.set_index("variant_id"), summary["fdr"], case,
                    args.heatmap_figure)


def parser():
    parser, commands = runner.subcommands(__doc__, {
        "prepare": (cmd_prepare, "participants, abundance, covariates, variant QC, chunks"),
        "chunk": (cmd_chunk, "fit one chunk of variants"),
        "gather": (cmd_gather, "global FDR, final table, summary"),
        "figures": (cmd_figures, "Manhattan-style plot and heatmap")})
    p, c, g, f = commands.values()
    # --cohort: the harmonised cohort directory; --abundance, --participants and --prepared:
    # the prepared CLR abundances, participants with covariates, and summary.json of prepare.
    for each in (p, c):
        runner.required(each, "cohort", "participants")
    for each in (p, c, g):
        runner.required(each, "variant-qc", "abundance", "prepared")
    runner.required(p, "settings", "ledger")
    runner.required(c, "output")
    c.add_argument("--chunk", required=True, type=int)
    runner.required(g, "chunks", nargs="*")  # every chunk's .npy file, in chunk order
    runner.required(g, "table", "markdown")
    for each in (g, f):  # --heatmap: the heatmap cells (TSV); --summary: the stage summary (JSON)
        runner.required(each, "variant-summary", "heatmap", "summary")
    runner.required(f, "manhattan", "heatmap-figure")
    return parser


main = runner.entry_point(parser, "association")


if __name__ == "__main__":
    sys.exit(main())
