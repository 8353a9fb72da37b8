"""Command line for the association stage (what ``rules/association.smk`` runs).

Four subcommands, one per rule; all file reading and writing of the stage is here::

    python -m workflow_scripts.association.cli prepare --cohort results/ingest/cohort \\
        --settings '{"maf_min": 0.05, ...}' --outdir results/association
    python -m workflow_scripts.association.cli chunk --cohort results/ingest/cohort \\
        --outdir results/association --chunk 0 --output results/association/chunks/chunk_0.npy
    python -m workflow_scripts.association.cli gather --outdir results/association
    python -m workflow_scripts.association.cli figures --outdir results/association

``prepare`` writes ``ledger.tsv``, ``variant_qc.tsv`` and ``prepared/`` (the
participants with their covariates, the CLR abundances, ``summary.json`` with
the number of chunks); ``chunk`` fits one chunk of variants; ``gather`` applies
the global FDR and writes ``genotype_species.tsv``, ``variant_summary.tsv``,
``heatmap.tsv``, ``summary.json`` and ``summary.md``; ``figures`` draws the
Manhattan-style plot and the heatmap.  Every number is written so that the same
inputs give byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..cohort import read_cohort
from ..ingest.cli import setup_logging
from . import figures
from .prepare import Settings, prepare
from .stage import OUTPUT_COLUMNS, gather, run_chunk
from .summary import markdown, stage_summary

log = logging.getLogger("association")

#: Float format of the prepared inputs: round-trips exactly.
EXACT = "%.17g"
#: Float format of the result tables.
SHORT = "%.6g"


def _tsv(frame: pd.DataFrame, path: Path, index: bool = False, float_format: str = SHORT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=index, lineterminator="\n", float_format=float_format, na_rep="NA")


def _read_exact(path: Path, index_col=0) -> pd.DataFrame:
    # pandas' default parser reads "%.17g" back exactly (checked in the tests).
    return pd.read_csv(path, sep="\t", index_col=index_col, keep_default_na=False, na_values=["NA"])


def _json(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _paths(outdir: Path) -> dict[str, Path]:
    return {
        "ledger": outdir / "ledger.tsv",
        "variant_qc": outdir / "variant_qc.tsv",
        "participants": outdir / "prepared" / "participants.tsv",
        "abundance": outdir / "prepared" / "abundance.tsv",
        "prepared_summary": outdir / "prepared" / "summary.json",
        "chunks": outdir / "chunks",
        "table": outdir / "genotype_species.tsv",
        "variant_summary": outdir / "variant_summary.tsv",
        "heatmap": outdir / "heatmap.tsv",
        "summary": outdir / "summary.json",
        "markdown": outdir / "summary.md",
        "manhattan": outdir / "figures" / "manhattan_interaction.png",
        "heatmap_png": outdir / "figures" / "heatmap_interaction.png",
    }


def chunk_path(outdir: Path, chunk: int) -> Path:
    return _paths(outdir)["chunks"] / f"chunk_{chunk}.npy"


def read_variant_qc(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["NA"],
                        dtype={"variant_id": str, "chrom": str, "gene_or_locus": str, "label": str,
                               "reason": str})
    table["label"] = table["label"].fillna("") if "label" in table else ""
    table["reason"] = table["reason"].fillna("")
    return table.set_index("variant_id")


def cmd_prepare(args) -> int:
    cohort = read_cohort(args.cohort)
    settings = Settings(**json.loads(args.settings))
    prepared = prepare(cohort, settings)
    paths = _paths(Path(args.outdir))
    _tsv(prepared.ledger, paths["ledger"])
    _tsv(prepared.variant_qc, paths["variant_qc"], index=True, float_format="%.6g")
    _tsv(prepared.participants, paths["participants"], index=True, float_format=EXACT)
    _tsv(prepared.abundance.rename_axis("participant_id"), paths["abundance"], index=True, float_format=EXACT)
    _json(prepared.summary, paths["prepared_summary"])
    s = prepared.summary
    log.info("%d participants (%d %s), %d households; %d species; %d of %d variants pass QC -> %d chunk(s)",
             s["n_participants"], s["n_cases"], cohort.case_label, s["n_households"], s["n_features"],
             s["n_variants_tested"], s["n_variants"], s["n_chunks"])
    if s["status"] != "ok":
        log.warning("nothing to test: %s", s["reason"])
    return 0


def _load_prepared(outdir: Path):
    paths = _paths(outdir)
    participants = _read_exact(paths["participants"])
    abundance = _read_exact(paths["abundance"])
    summary = json.loads(paths["prepared_summary"].read_text())
    return participants, abundance, summary


def cmd_chunk(args) -> int:
    outdir = Path(args.outdir)
    participants, abundance, summary = _load_prepared(outdir)
    qc = read_variant_qc(_paths(outdir)["variant_qc"])
    these = qc[qc["chunk"] == args.chunk].sort_index()
    cohort = read_cohort(args.cohort)
    result = run_chunk(cohort.genotypes, participants, abundance, summary["covariate_columns"], these)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.save(output, result)
    log.info("chunk %d: %d variants x %d species", args.chunk, len(these), abundance.shape[1])
    return 0


def cmd_gather(args) -> int:
    outdir = Path(args.outdir)
    paths = _paths(outdir)
    participants, abundance, prepared = _load_prepared(outdir)
    qc = read_variant_qc(paths["variant_qc"])
    settings = prepared["settings"]
    fdr, n_chunks = float(settings["fdr"]), int(prepared["n_chunks"])
    tested = qc[qc["chunk"] >= 0].sort_index()
    chunk_dir = Path(args.chunk_dir) if args.chunk_dir else paths["chunks"]
    pieces, finish = gather(lambda i: np.load(chunk_dir / f"chunk_{i}.npy"), n_chunks, tested,
                            abundance.columns, fdr=fdr, heatmap_pairs=int(settings["heatmap_pairs"]))
    paths["table"].parent.mkdir(parents=True, exist_ok=True)
    with open(paths["table"], "w", newline="\n") as handle:
        handle.write("\t".join(OUTPUT_COLUMNS) + "\n")
        for piece in pieces:
            piece.to_csv(handle, sep="\t", index=False, header=False, lineterminator="\n",
                         float_format=SHORT, na_rep="NA")
    result = finish()
    _tsv(result.variant_summary, paths["variant_summary"])
    _tsv(result.heatmap, paths["heatmap"])
    summary = stage_summary(prepared, result, qc, fdr, int(settings["report_top"]))
    _json(summary, paths["summary"])
    paths["markdown"].write_text(markdown(summary) + "\n")
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
    return 0


def cmd_figures(args) -> int:
    paths = _paths(Path(args.outdir))
    summary = json.loads(paths["summary"].read_text())
    variant_summary = pd.read_csv(paths["variant_summary"], sep="\t", keep_default_na=False,
                                  na_values=["NA"], dtype={"variant_id": str, "chrom": str, "label": str})
    variant_summary["label"] = variant_summary["label"].fillna("")
    heatmap = pd.read_csv(paths["heatmap"], sep="\t", keep_default_na=False, na_values=["NA"],
                          dtype={"variant_id": str, "feature": str})
    paths["manhattan"].parent.mkdir(parents=True, exist_ok=True)
    case = summary.get("case_label", "MS")
    figures.manhattan(variant_summary, summary.get("threshold_p_interaction"), summary["fdr"], case,
                      paths["manhattan"])
    figures.heatmap(heatmap, variant_summary.set_index("variant_id"), summary["fdr"], case,
                    paths["heatmap_png"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="participants, abundance, covariates, variant QC, chunks")
    p.add_argument("--cohort", required=True, help="harmonised cohort directory (ingest output)")
    p.add_argument("--settings", required=True, help="JSON object of association settings")
    p.add_argument("--outdir", required=True, help="the stage directory (results/association)")
    c = sub.add_parser("chunk", help="fit one chunk of variants")
    c.add_argument("--cohort", required=True)
    c.add_argument("--outdir", required=True)
    c.add_argument("--chunk", required=True, type=int)
    c.add_argument("--output", required=True, help="the chunk's .npy file")
    g = sub.add_parser("gather", help="global FDR, final table, summary")
    g.add_argument("--outdir", required=True)
    g.add_argument("--chunk-dir", help="directory of chunk_<i>.npy (default <outdir>/chunks)")
    f = sub.add_parser("figures", help="Manhattan-style plot and heatmap")
    f.add_argument("--outdir", required=True)
    for each in (p, c, g, f):
        each.add_argument("--log")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    command = {"prepare": cmd_prepare, "chunk": cmd_chunk, "gather": cmd_gather, "figures": cmd_figures}
    return command[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
