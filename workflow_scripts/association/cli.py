"""Command line for the association stage (what ``rules/association.smk`` runs); all its file I/O is here.

One subcommand per rule, every file named by the rule::

    prepare   --cohort DIR --settings JSON --ledger --participants --rows --abundance --relative
              --chunks --labelled --prepared
    chunk     --cohort DIR --participants --rows --abundance --relative --prepared --chunks --chunk I
              --tests chunk_I.parquet --qc chunk_I.tsv
    fdr       --prepared --tests FILE... --steps --qq --testing --inflation
    sumstats  --prepared --labelled --steps --testing --tests chunk_I.parquet --sumstats FILE
              --table-part --variant-part --hits-part --top-part
    table     --prepared --testing --inflation --chunks --labelled --ledger-part --qc-parts FILE...
              --table-parts FILE... --variant-parts FILE... --hits-parts FILE... --top-parts FILE...
              --sumstats FILE... --table --variant-summary --variant-qc --ledger --leads --heatmap
              --sumstats-index --summary --markdown
    figures   --variant-summary --heatmap --qq --summary --manhattan-interaction --manhattan-genotype
              --heatmap-figure --qq-figure

``prepare`` plans the chunks and writes what every job shares; ``chunk`` reads
its own region or record range of the genotype file and fits every model
(tests without q-values, and its variants' QC rows); ``fdr`` computes the
Benjamini-Hochberg step functions, lambda GC and QQ points over every chunk
without holding the tests; ``sumstats`` writes one chunk's final summary
statistics (with q-values) and its pieces of the tables; ``table`` joins the
pieces (``genotype_species.tsv`` whole or selected, the per-variant summary,
QC, ledger, lead variants, heatmap cells, summary); ``figures`` draws the
Manhattan, QQ and heatmap plots.  The same inputs give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import runner
from ..cohort import read_cohort, read_cohort_genotypes
from ..io.sumstats import SumstatsWriter, iter_row_groups, read_sumstats
from ..ledger import COLUMNS as LEDGER_COLUMNS
from . import figures
from .chunks import KINDS, ChunkInputs, run_chunk
from .gather import (OUTPUT_COLUMNS, VARIANT_SUMMARY_COLUMNS, ChunkPieces, finalise_chunk, lead_variants,
                     multiple_testing, steps_frame, steps_from_frame)
from .prepare import AssociationSettings, prepare
from .qc import QC_COLUMNS
from .summary import markdown, num, stage_summary

log = logging.getLogger("association")

#: What a chunk job must write before the q-values exist.
_TEST_REQUIRED = ["variant_id", "feature", "n", "beta_genotype", "p_genotype", "beta_interaction", "p_interaction"]


def _exact(frame: pd.DataFrame, path, index: bool = True) -> None:
    runner.write_table(frame, path, index=index, exact=True)


def _read(path, index: bool = True, dtype=None) -> pd.DataFrame:
    return runner.read_table(path, index_col=0 if index else None, dtype=dtype)


def _settings(prepared: dict) -> AssociationSettings:
    return AssociationSettings.from_config(prepared["settings"])


# ---------------------------------------------------------------------- prepare


def cmd_prepare(args) -> None:
    cohort = read_cohort(args.cohort, with_variants=True)
    settings = AssociationSettings.from_config(runner.json_argument(args.settings))
    prepared = prepare(cohort, settings)
    runner.write_table(prepared.ledger, args.ledger)
    _exact(prepared.participants, args.participants)
    _exact(prepared.rows, args.rows)
    _exact(prepared.abundance.rename_axis("row_id"), args.abundance)
    _exact(prepared.relative.rename_axis("row_id"), args.relative)
    _exact(prepared.chunks, args.chunks, index=False)
    _exact(prepared.labelled, args.labelled, index=False)
    summary = dict(prepared.summary, features=list(prepared.abundance.columns),
                   n_file_samples=int(cohort.genotypes.source.get("n_samples", 0)))
    runner.write_json(summary, args.prepared)
    s = prepared.summary
    log.info("%d participants (%d %s) in %d rows, %d clusters; %d species; %d variants in %d chunk(s); "
             "genetic PCs: %s", s["n_participants"], s["n_cases"], cohort.case_label, s["n_rows"],
             s["n_clusters"], s["n_features"], s["n_variants"], s["n_chunks"], s["genetic_pcs"]["reason"])
    if s["status"] != "ok":
        log.warning("nothing to test: %s", s["reason"])


# ---------------------------------------------------------------------- chunk


def _inputs(args, prepared: dict) -> ChunkInputs:
    rows = _read(args.rows, dtype={"row_id": str, "participant_id": str, "cluster": str})
    return ChunkInputs(
        participants=_read(args.participants, dtype={"participant_id": str, "cluster": str,
                                                     "genotype_columns": str}),
        rows=rows, abundance=_read(args.abundance, dtype={"row_id": str}),
        relative=_read(args.relative, dtype={"row_id": str}),
        covariate_columns=list(prepared["covariate_columns"]))


def cmd_chunk(args) -> None:
    prepared = json.loads(Path(args.prepared).read_text())
    settings = _settings(prepared)
    chunks = _read(args.chunks, index=False, dtype={"chrom": str, "regions": str})
    chunk = next(chunks[chunks["chunk"] == int(args.chunk)].itertuples())
    genotypes = read_cohort_genotypes(args.cohort)
    inputs = _inputs(args, prepared)
    n_tests = n_variants = 0
    Path(args.qc).parent.mkdir(parents=True, exist_ok=True)
    with genotypes.open() as source, SumstatsWriter(args.tests, required=_TEST_REQUIRED) as writer, \
            open(args.qc, "w", newline="\n") as qc_file:
        qc_file.write("\t".join(QC_COLUMNS) + "\n")
        for tests, qc in run_chunk(source, chunk, genotypes.region_reads, inputs, settings):
            writer.write(tests)
            runner.append_rows(qc, qc_file)
            n_tests += len(tests)
            n_variants += len(qc)
    log.info("chunk %s (%s): %d variants, %d tests", args.chunk, chunk.regions, n_variants, n_tests)


# ---------------------------------------------------------------------- fdr


def _column(paths, name):
    """A fresh iterator of one column of every file (files without it give nothing)."""
    def values():
        for path in paths:
            handle = pq.ParquetFile(path)
            if name in handle.schema_arrow.names:
                yield handle.read(columns=[name]).column(0).to_numpy()
    return values


def cmd_fdr(args) -> None:
    prepared = json.loads(Path(args.prepared).read_text())
    settings = _settings(prepared)
    features = prepared.get("features", [])
    testing = multiple_testing(lambda name: _column(args.tests, name)(), features)
    Path(args.steps).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(steps_frame(testing.steps), preserve_index=False), args.steps,
                   compression="zstd", store_schema=True)
    runner.write_table(testing.qq, args.qq)
    runner.write_table(testing.inflation, args.inflation)
    n_pairs = sum(pq.ParquetFile(p).metadata.num_rows for p in args.tests)
    study_wide = settings.genome_wide_p / max(len(features), 1)
    counts = {key: {kind: 0 for kind in KINDS} for key in ("n_significant", "n_genome_wide", "n_study_wide")}
    threshold = {}
    for kind, column in KINDS.items():
        step = testing.steps[kind]
        for p in _column(args.tests, column)():
            q = step(p)
            counts["n_significant"][kind] += int((q < settings.fdr).sum())
            counts["n_genome_wide"][kind] += int((p < settings.genome_wide_p).sum())
            counts["n_study_wide"][kind] += int((p < study_wide).sum())
        passing = step.starts[step.q_at < settings.fdr]
        threshold[kind] = num(passing.max()) if passing.size else None
    result = {"n_tests": testing.n_tests, "n_pairs": int(n_pairs), **counts, "threshold_p": threshold,
              "genome_wide_p": settings.genome_wide_p, "study_wide_p": study_wide,
              "whole_table": bool(n_pairs <= settings.max_table_tests)}
    runner.write_json(result, args.testing)
    log.info("%d variant x species pairs; q < %g: %s; genotype_species.tsv: %s", n_pairs, settings.fdr,
             counts["n_significant"], "every test" if result["whole_table"] else "selected tests")


# ---------------------------------------------------------------------- sumstats


def _labels(path) -> pd.DataFrame:
    labelled = _read(path, index=False, dtype={"variant_id": str, "label": str, "gene_or_locus": str})
    return labelled.set_index("variant_id")[["gene_or_locus", "label"]]


def cmd_sumstats(args) -> None:
    prepared = json.loads(Path(args.prepared).read_text())
    settings = _settings(prepared)
    testing = json.loads(Path(args.testing).read_text())
    steps = steps_from_frame(pq.read_table(args.steps).to_pandas())
    pieces = None
    with SumstatsWriter(args.sumstats) as writer:
        for item in finalise_chunk(iter_row_groups(args.tests), steps, prepared["features"], _labels(args.labelled),
                                   settings.fdr, testing["whole_table"], settings.table_p_max,
                                   settings.genome_wide_p, settings.heatmap_pairs):
            if isinstance(item, ChunkPieces):
                pieces = item
            else:
                writer.write(item)
    runner.write_table(pieces.table, args.table_part)
    runner.write_table(pieces.variants, args.variant_part)
    _exact(pieces.hits, args.hits_part, index=False)
    _exact(pieces.top, args.top_part, index=False)
    log.info("%s: %d tests with q-values; %d rows for genotype_species.tsv", args.sumstats, writer.rows,
             len(pieces.table))


# ---------------------------------------------------------------------- table


def _concatenate(parts, target, columns) -> int:
    """Files written by write_table with the same header, joined under one header; returns the rows."""
    rows = 0
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="\n") as out:
        out.write("\t".join(columns) + "\n")
        for part in parts:
            with open(part) as handle:
                header = handle.readline().rstrip("\n").split("\t")
                if header != list(columns):
                    raise ValueError(f"{part} has columns {header}, expected {list(columns)}")
                for line in handle:
                    out.write(line)
                    rows += 1
    return rows


def _variant_ledger(qc_parts, settings: AssociationSettings, ledger_file) -> dict:
    """Ledger rows of the variants (failing QC, or main effect only), appended; returns counts."""
    counts = {"n_variants_failed_qc": 0, "n_variants_tested": 0, "n_variants_main_effect_only": 0}
    for part in qc_parts:
        qc = _read(part, index=False, dtype={"variant_id": str, "chrom": str, "reason": str, "quality_field": str,
                                              "ref": str, "alt": str})
        qc["reason"] = qc["reason"].fillna("")
        failed = qc[~qc["keep"]]
        rows = []
        for r in failed.itertuples():
            parts = []
            for reason in r.reason.split(";"):
                if reason == "low_maf":
                    maf = "not observed" if np.isnan(r.maf) else f"{r.maf:.4g}"
                    parts.append(f"minor allele frequency {maf} < {settings.maf_min:g}")
                elif reason == "low_call_rate":
                    parts.append(f"call rate {r.call_rate:.4g} < {settings.call_rate_min:g}")
                elif reason == "hwe":
                    parts.append(f"Hardy-Weinberg p in controls {r.hwe_p:.3g} < {settings.hwe_p_min:g}")
                elif reason == "low_imputation_quality":
                    parts.append(f"imputation quality ({r.quality_field}) {r.quality:.3g} < "
                                 f"{settings.imputation_quality_min:g}")
                elif reason == "few_carriers":
                    parts.append(f"{r.carriers_cases + r.carriers_controls} minor-allele carriers < "
                                 f"{settings.min_carriers}")
            rows.append(("variant", r.variant_id, "", "dropped", r.reason, "association: " + "; ".join(parts)))
        main_only = qc[qc["keep"] & ~qc["test_interaction"]]
        for r in main_only.itertuples():
            rows.append(("variant", r.variant_id, "", "kept", "interaction_not_tested",
                         f"association: minor-allele carriers {r.carriers_cases} among cases and "
                         f"{r.carriers_controls} among controls; the genotype x status interaction needs "
                         f"{settings.min_carriers} in each (only the main effect is tested)"))
        runner.append_rows(pd.DataFrame(rows, columns=LEDGER_COLUMNS), ledger_file)
        counts["n_variants_failed_qc"] += len(failed)
        counts["n_variants_tested"] += int(qc["keep"].sum())
        counts["n_variants_main_effect_only"] += len(main_only)
    return counts


def _labelled_entries(labelled: pd.DataFrame, qc_parts, variant_summary: pd.DataFrame, sumstats, fdr: float,
                      report_top: int) -> list[dict]:
    """Per labelled variant: QC, and its strongest and significant species of both kinds."""
    if labelled.empty:
        return []
    wanted = set(labelled["variant_id"])
    qc = pd.concat([q[q["variant_id"].isin(wanted)] for q in
                    (_read(p, index=False, dtype={"variant_id": str, "reason": str}) for p in qc_parts)]
                   or [pd.DataFrame(columns=QC_COLUMNS)]).set_index("variant_id")
    summary = variant_summary.set_index("variant_id")
    entries = []
    for row in labelled.itertuples():
        vid = row.variant_id
        q = qc.loc[vid] if vid in qc.index else None
        entry = {"variant_id": vid, "label": row.label, "gene_or_locus": row.gene_or_locus,
                 "maf": num(q["maf"]) if q is not None else None,
                 "tested": bool(q is not None and q["keep"]),
                 "qc_reason": ("" if q is None or pd.isna(q["reason"]) else q["reason"])
                 if q is not None else "not in the genotype file"}
        if entry["tested"] and vid in summary.index:
            v = summary.loc[vid]
            tests = read_sumstats(sumstats[int(row.chunk)], filters=[("variant_id", "==", vid)])
            for kind in ("interaction", "genotype"):
                hits = tests[tests[f"q_{kind}"] < fdr].sort_values([f"p_{kind}", "feature"], kind="stable")
                entry[kind] = {"feature": v[f"best_feature_{kind}"] if isinstance(v[f"best_feature_{kind}"], str)
                               else None, "beta": num(v[f"beta_{kind}"]), "p": num(v[f"p_{kind}"]),
                               "q": num(v[f"q_{kind}"]), "n_significant": int(v[f"n_significant_{kind}"]),
                               "significant_features": [{"feature": r.feature, "p": num(getattr(r, f"p_{kind}")),
                                                         "q": num(getattr(r, f"q_{kind}"))}
                                                        for r in hits.head(report_top).itertuples()]}
        entries.append(entry)
    return entries


def _heatmap(top_parts, sumstats, pairs: int) -> pd.DataFrame:
    """The cells (variants x species of the strongest interaction pairs) from the chunks' files."""
    tops = [(_read(p, index=False, dtype={"variant_id": str, "feature": str}).assign(chunk=i))
            for i, p in enumerate(top_parts)]
    top = pd.concat(tops, ignore_index=True) if tops else pd.DataFrame(columns=["variant_id", "feature", "p", "chunk"])
    top = top.sort_values(["p", "chunk"], kind="stable").head(pairs)
    columns = ["variant_id", "feature", "beta_interaction", "p_interaction", "q_interaction"]
    if top.empty:
        return pd.DataFrame(columns=columns)
    features = sorted(set(top["feature"]))
    cells = []
    for chunk, rows in top.groupby("chunk", sort=True):
        ids = sorted(set(rows["variant_id"]))
        tests = read_sumstats(sumstats[int(chunk)], columns=columns, filters=[("variant_id", "in", ids)])
        cells.append(tests[tests["feature"].isin(features)])
    return pd.concat(cells, ignore_index=True)[columns]


def cmd_table(args) -> None:
    prepared = json.loads(Path(args.prepared).read_text())
    settings = _settings(prepared)
    testing = json.loads(Path(args.testing).read_text())
    n_rows = _concatenate(args.table_parts, args.table, OUTPUT_COLUMNS)
    _concatenate(args.variant_parts, args.variant_summary, VARIANT_SUMMARY_COLUMNS)
    _concatenate(args.qc_parts, args.variant_qc, QC_COLUMNS)
    with open(args.ledger, "w", newline="\n") as ledger_file:
        ledger_file.write(Path(args.ledger_part).read_text())
        counts = _variant_ledger(args.qc_parts, settings, ledger_file)

    hits = [_read(p, index=False, dtype={"variant_id": str, "feature": str, "chrom": str}) for p in args.hits_parts]
    hits = pd.concat(hits, ignore_index=True) if hits else pd.DataFrame()
    leads = lead_variants(hits, settings.clump_window, testing["study_wide_p"])
    runner.write_table(leads, args.leads)
    runner.write_table(_heatmap(args.top_parts, args.sumstats, settings.heatmap_pairs), args.heatmap)

    index = pd.DataFrame({"file": [Path(p).name for p in args.sumstats],
                          "chunk": range(len(args.sumstats)),
                          "regions": _read(args.chunks, index=False, dtype={"regions": str})["regions"]
                          .iloc[:len(args.sumstats)].to_numpy(),
                          "n_tests": [pq.ParquetFile(p).metadata.num_rows for p in args.sumstats],
                          "sha256": [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in args.sumstats]})
    runner.write_table(index, args.sumstats_index)

    significant = []
    for chunk in pd.read_csv(args.table, sep="\t", chunksize=1_000_000, dtype={"variant_id": str, "feature": str}):
        significant.append(chunk[(chunk["q_genotype"] < settings.fdr) | (chunk["q_interaction"] < settings.fdr)])
    significant = pd.concat(significant, ignore_index=True) if significant else pd.DataFrame(columns=OUTPUT_COLUMNS)
    variant_summary = _read(args.variant_summary, index=False, dtype={"variant_id": str, "chrom": str, "label": str})
    labelled = _read(args.labelled, index=False, dtype={"variant_id": str, "label": str, "gene_or_locus": str})
    entries = _labelled_entries(labelled, args.qc_parts, variant_summary, args.sumstats, settings.fdr,
                                settings.report_top)
    inflation = _read(args.inflation, index=False, dtype={"feature": str, "kind": str})
    table_info = {"mode": "all" if testing["whole_table"] else "selected", "n_rows": int(n_rows),
                  "n_tests": int(testing["n_pairs"])}
    summary = stage_summary(dict(prepared, **counts), testing, table_info, significant, leads, inflation,
                            entries, settings.fdr, settings.report_top)
    summary.pop("features", None)
    runner.write_json(summary, args.summary)
    Path(args.markdown).write_text(markdown(summary) + "\n")
    log.info("%d variants tested (%d failed QC); genotype_species.tsv: %d rows (%s); %d lead variants",
             counts["n_variants_tested"], counts["n_variants_failed_qc"], n_rows, table_info["mode"], len(leads))
    for entry in entries:
        if entry["tested"] and entry.get("interaction"):
            e = entry["interaction"]
            log.info("%s (%s): strongest interaction with %s, p %s, q %s", entry["variant_id"], entry["label"],
                     e["feature"], e["p"], e["q"])
        else:
            log.info("%s (%s): not tested (%s)", entry["variant_id"], entry["label"], entry["qc_reason"])


# ---------------------------------------------------------------------- figures


def cmd_figures(args) -> None:
    summary = json.loads(Path(args.summary).read_text())
    variant_summary = runner.read_table(args.variant_summary, dtype={"variant_id": str, "chrom": str, "label": str})
    variant_summary["label"] = variant_summary["label"].fillna("")
    heatmap = runner.read_table(args.heatmap, dtype={"variant_id": str, "feature": str})
    case = summary.get("case_label", "MS")
    for kind, path in (("interaction", args.manhattan_interaction), ("genotype", args.manhattan_genotype)):
        thresholds = {f"q < {summary['fdr']:g}": summary.get("threshold_p", {}).get(kind),
                      f"genome-wide {summary.get('genome_wide_p', 5e-8):g}": summary.get("genome_wide_p"),
                      "study-wide": summary.get("study_wide_p")}
        figures.manhattan(variant_summary, kind, thresholds, case, path)
    figures.heatmap(heatmap, variant_summary.set_index("variant_id"), summary["fdr"], case, args.heatmap_figure)
    qq = runner.read_table(args.qq, dtype={"kind": str})
    figures.qq(qq, {k: v.get("median") for k, v in summary.get("lambda_gc", {}).items()}, args.qq_figure)


def parser():
    parser, commands = runner.subcommands(__doc__, {
        "prepare": (cmd_prepare, "rows, abundance, covariates, genetic PCs, chunk plan"),
        "chunk": (cmd_chunk, "read one chunk of the genotype file and fit every model"),
        "fdr": (cmd_fdr, "Benjamini-Hochberg, lambda GC and QQ points over every chunk"),
        "sumstats": (cmd_sumstats, "one chunk's summary statistics with q-values, and its pieces of the tables"),
        "table": (cmd_table, "genotype_species.tsv, variant summary and QC, ledger, lead variants, summary"),
        "figures": (cmd_figures, "Manhattan, QQ and heatmap plots")})
    p, c, d, s, t, f = commands.values()
    for each in (p, c):
        runner.required(each, "cohort", "participants", "rows", "abundance", "relative", "chunks")
    for each in (p, c, d, s, t):
        runner.required(each, "prepared")
    runner.required(p, "settings", "ledger", "labelled")
    c.add_argument("--chunk", required=True)
    runner.required(c, "tests", "qc")
    runner.required(d, "tests", nargs="*")     # every chunk's tests, in chunk order
    runner.required(d, "steps", "qq", "testing", "inflation")
    runner.required(s, "labelled", "steps", "testing", "tests", "sumstats", "table-part", "variant-part",
                    "hits-part", "top-part")
    runner.required(t, "testing", "inflation", "chunks", "labelled", "ledger-part", "table", "variant-summary",
                    "variant-qc", "ledger", "leads", "heatmap", "sumstats-index", "summary", "markdown")
    for name in ("qc-parts", "table-parts", "variant-parts", "hits-parts", "top-parts", "sumstats"):
        runner.required(t, name, nargs="*")     # one per chunk, in chunk order
    runner.required(f, "variant-summary", "heatmap", "qq", "summary", "manhattan-interaction",
                    "manhattan-genotype", "heatmap-figure", "qq-figure")
    return parser


main = runner.entry_point(parser, "association")


if __name__ == "__main__":
    sys.exit(main())
