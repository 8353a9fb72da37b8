"""After the chunk jobs: multiple testing over every test, without holding them; then each chunk's final files.

Three steps, each a job (or one job per chunk), none holding every test:

:func:`multiple_testing` (one job)
    Benjamini-Hochberg over all tests of each kind (genotype main effect,
    genotype x status interaction, hurdle presence, hurdle abundance among
    carriers), exactly and streamed (:func:`workflow_scripts.gwas.fdr.bh_over_chunks`:
    a few passes over one p-value column of the chunk files, memory bounded
    by its budget); genomic inflation (lambda GC) per species and kind
    (:func:`~workflow_scripts.gwas.inflation.grouped_lambda_gc`, two passes);
    QQ-plot points (:func:`~workflow_scripts.gwas.inflation.qq_points`); the
    counts; and whether ``genotype_species.tsv`` can hold every test
    (``max_table_tests``).
:func:`finalise_chunk` (one job per chunk)
    The chunk's tests with their q-values (the contract's summary
    statistics), its rows of ``genotype_species.tsv`` (all, or the selected
    ones), its rows of the per-variant summary, its genome-wide significant
    tests (for clumping) and its strongest interaction pairs (for the heatmap).
:mod:`workflow_scripts.association.cli` ``table`` (one job)
    Concatenates those pieces and clumps the lead variants.

Rows of every chunk file are variant-major with the species in the prepared
order, so a row's species is its position modulo the number of species.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..gwas.clump import clump
from ..gwas.fdr import BHStepFunction, bh_over_chunks
from ..gwas.inflation import grouped_lambda_gc, qq_points
from .chunks import KINDS

#: Columns of ``genotype_species.tsv``, in order (the contract's, plus standard errors, sizes and frequency).
OUTPUT_COLUMNS = [
    "variant_id", "feature", "n", "n_households", "allele_frequency",
    "beta_genotype", "se_genotype", "p_genotype", "q_genotype",
    "beta_interaction", "se_interaction", "p_interaction", "q_interaction",
    "beta_genotype_in_controls",
]

#: Columns of ``variant_summary.tsv``, in order.
VARIANT_SUMMARY_COLUMNS = [
    "variant_id", "chrom", "pos", "gene_or_locus", "label", "n", "allele_frequency", "n_features",
    "best_feature_interaction", "beta_interaction", "p_interaction", "q_interaction", "n_significant_interaction",
    "best_feature_genotype", "beta_genotype", "p_genotype", "q_genotype", "n_significant_genotype",
    "p_presence", "q_presence", "n_significant_presence", "p_carriers", "q_carriers", "n_significant_carriers",
]

#: Columns of the genome-wide significant tests handed to the clumping.
HIT_COLUMNS = ["kind", "feature", "variant_id", "chrom", "pos", "beta", "p", "q"]

#: Columns of ``lead_variants.tsv``.
LEAD_COLUMNS = [*HIT_COLUMNS, "n_in_clump", "clump_start", "clump_end", "study_wide"]


@dataclass
class Testing:
    """What :func:`multiple_testing` finds over every chunk."""

    steps: dict[str, BHStepFunction]
    n_tests: dict[str, int]
    inflation: pd.DataFrame
    qq: pd.DataFrame


def multiple_testing(columns: Callable[[str], Iterable[np.ndarray]], features, budget: int = 20_000_000,
                     kinds=KINDS) -> Testing:
    """BH step functions, lambda GC per species, QQ points and counts for every kind of test.

    Parameters
    ----------
    columns : callable
        ``columns(name)`` returns a fresh iterable of that column's values,
        one array per chunk file, in the files' row order.
    features : sequence
        The species, in the files' order (a row's species is its position
        modulo their number).
    budget : int
        p-values the exact BH holds at most (8 bytes each).
    """
    S = len(features)
    steps, n_tests, inflation, qq = {}, {}, [], []
    for kind, column in kinds.items():
        def p_values(column=column):
            return (np.asarray(p, dtype=float) for p in columns(column))

        step = bh_over_chunks(p_values, budget=budget)
        steps[kind] = step
        n_tests[kind] = int(step.n_tests)
        if not step.n_tests:
            continue

        def grouped(column=column):
            for p in p_values(column):
                yield np.tile(np.arange(S), p.size // S if S else 0), p

        lam = grouped_lambda_gc(grouped, S)
        counts = np.zeros(S, np.int64)
        for group, p in grouped():
            counts += np.bincount(group[~np.isnan(p)], minlength=S)
        inflation.append(pd.DataFrame({"kind": kind, "feature": list(features), "n_tests": counts,
                                       "lambda_gc": lam}))
        points = qq_points(p_values)
        qq.append(points.assign(kind=kind))
    inflation = pd.concat(inflation, ignore_index=True) if inflation else \
        pd.DataFrame(columns=["kind", "feature", "n_tests", "lambda_gc"])
    qq = pd.concat(qq, ignore_index=True)[["kind", "expected", "observed", "n"]] if qq else \
        pd.DataFrame(columns=["kind", "expected", "observed", "n"])
    return Testing(steps, n_tests, inflation[inflation["n_tests"] > 0].reset_index(drop=True), qq)


def steps_frame(steps: dict[str, BHStepFunction]) -> pd.DataFrame:
    """The step functions as one table (kind, start, q, n_tests) to hand to the chunk jobs."""
    parts = [pd.DataFrame({"kind": kind, "start": step.starts, "q": step.q_at, "n_tests": step.n_tests})
             for kind, step in steps.items()]
    return pd.concat(parts, ignore_index=True)


def steps_from_frame(frame: pd.DataFrame) -> dict[str, BHStepFunction]:
    """The inverse of :func:`steps_frame`."""
    steps = {}
    for kind in KINDS:
        rows = frame[frame["kind"] == kind]
        n = int(rows["n_tests"].iloc[0]) if len(rows) else 0
        steps[kind] = BHStepFunction(rows["start"].to_numpy(float), rows["q"].to_numpy(float), n, 0)
    return steps


@dataclass
class ChunkPieces:
    """One chunk's share of the final files."""

    table: pd.DataFrame
    variants: pd.DataFrame
    hits: pd.DataFrame
    top: pd.DataFrame


def _best(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (V, S): column of the smallest p (-1 when all NaN) and that p."""
    filled = np.where(np.isnan(p), np.inf, p)
    best = filled.argmin(axis=1) if p.shape[1] else np.zeros(p.shape[0], int)
    value = filled[np.arange(p.shape[0]), best] if p.shape[1] else np.full(p.shape[0], np.inf)
    return np.where(np.isfinite(value), best, -1), np.where(np.isfinite(value), value, np.nan)


def _at(values: np.ndarray, best: np.ndarray) -> np.ndarray:
    """values[v, best[v]] per row; NaN where best is -1."""
    out = np.full(best.size, np.nan)
    has = best >= 0
    out[has] = values[np.flatnonzero(has), best[has]]
    return out


def finalise_chunk(blocks: Iterable[pd.DataFrame], steps: dict[str, BHStepFunction], features,
                   labels: pd.DataFrame, fdr: float, whole_table: bool, table_p: float, genome_wide_p: float,
                   top: int) -> Iterator[pd.DataFrame | ChunkPieces]:
    """A chunk's tests with q-values, block by block, then (last item) its :class:`ChunkPieces`.

    Parameters
    ----------
    blocks : iterable of DataFrame
        The chunk's tests (:data:`~workflow_scripts.association.chunks.TEST_COLUMNS`
        and, with the hurdle model, its columns), variant-major.
    steps : dict
        kind -> BH step function (:func:`multiple_testing`).
    features : sequence
        The species, in the files' order.
    labels : DataFrame
        index variant_id: ``gene_or_locus``, ``label`` (the labelled variants).
    fdr : float
        q below this counts as significant (per-variant counts; table selection).
    whole_table : bool
        ``genotype_species.tsv`` holds every test; else only those with q <
        ``fdr`` or p < ``table_p`` for the genotype or the interaction term.
    genome_wide_p : float
        Tests below it of any kind are handed on for clumping.
    top : int
        Strongest interaction pairs of the chunk kept for the heatmap.

    Yields
    ------
    DataFrame, ..., ChunkPieces
        Every block with its ``q_*`` columns inserted after the ``p_*``
        ones, then the pieces.
    """
    S = len(features)
    feats = np.asarray(features).astype(str)
    tables, variant_rows, hits, tops = [], [], [], []
    for block in blocks:
        m = len(block) // S if S else 0
        for kind, column in KINDS.items():
            if column in block.columns:
                block.insert(block.columns.get_loc(column) + 1, f"q_{kind}", steps[kind](block[column].to_numpy()))
        yield block
        if not m:
            continue
        keep = np.ones(len(block), bool)
        if not whole_table:
            keep = ((block["q_genotype"] < fdr) | (block["q_interaction"] < fdr) | (block["p_genotype"] < table_p)
                    | (block["p_interaction"] < table_p)).to_numpy()
        tables.append(block.loc[keep, OUTPUT_COLUMNS])
        first = np.arange(m) * S
        vids = block["variant_id"].to_numpy()[first].astype(str)
        summary = {"variant_id": vids, "chrom": block["chrom"].to_numpy()[first],
                   "pos": block["pos"].to_numpy()[first],
                   "gene_or_locus": labels["gene_or_locus"].reindex(vids).to_numpy(),
                   "label": labels["label"].reindex(vids).to_numpy(),
                   "n": block["n"].to_numpy()[first], "allele_frequency": block["allele_frequency"].to_numpy()[first],
                   "n_features": S}
        for kind in KINDS:
            if f"p_{kind}" not in block.columns:
                summary.update({f"p_{kind}": np.nan, f"q_{kind}": np.nan, f"n_significant_{kind}": 0})
                continue
            p = block[f"p_{kind}"].to_numpy().reshape(m, S)
            q = block[f"q_{kind}"].to_numpy().reshape(m, S)
            best, best_p = _best(p)
            if kind in ("interaction", "genotype"):
                beta = block[f"beta_{kind}"].to_numpy().reshape(m, S)
                summary[f"best_feature_{kind}"] = np.where(best >= 0, feats[np.maximum(best, 0)], "")
                summary[f"beta_{kind}"] = _at(beta, best)
            summary[f"p_{kind}"] = best_p
            summary[f"q_{kind}"] = _at(q, best)
            summary[f"n_significant_{kind}"] = (q < fdr).sum(axis=1)
            sig = np.flatnonzero(block[f"p_{kind}"].to_numpy() < genome_wide_p)
            if sig.size:
                beta_column = f"beta_{kind}" if f"beta_{kind}" in block.columns else None
                hits.append(pd.DataFrame({
                    "kind": kind, "feature": feats[sig % S], "variant_id": vids[sig // S],
                    "chrom": block["chrom"].to_numpy()[sig], "pos": block["pos"].to_numpy()[sig],
                    "beta": block[beta_column].to_numpy()[sig] if beta_column else np.nan,
                    "p": block[f"p_{kind}"].to_numpy()[sig], "q": block[f"q_{kind}"].to_numpy()[sig]}))
        variant_rows.append(pd.DataFrame(summary, columns=VARIANT_SUMMARY_COLUMNS))
        p_int = block["p_interaction"].to_numpy()
        finite = np.flatnonzero(np.isfinite(p_int))
        best = finite[np.lexsort((finite, p_int[finite]))][:top]
        tops.append(pd.DataFrame({"variant_id": vids[best // S], "feature": feats[best % S], "p": p_int[best]}))
    empty = pd.DataFrame
    yield ChunkPieces(
        table=pd.concat(tables, ignore_index=True) if tables else empty(columns=OUTPUT_COLUMNS),
        variants=pd.concat(variant_rows, ignore_index=True) if variant_rows else empty(columns=VARIANT_SUMMARY_COLUMNS),
        hits=pd.concat(hits, ignore_index=True) if hits else empty(columns=HIT_COLUMNS),
        top=(pd.concat(tops, ignore_index=True).sort_values(["p"], kind="stable").head(top)
             if tops else empty(columns=["variant_id", "feature", "p"])))


def lead_variants(hits: pd.DataFrame, window: int, study_wide_p: float) -> pd.DataFrame:
    """Lead variants per species and kind by distance clumping of the genome-wide significant tests."""
    if hits.empty:
        return pd.DataFrame(columns=LEAD_COLUMNS)
    parts = []
    for kind in KINDS:
        rows = hits[hits["kind"] == kind]
        if len(rows):
            leads = clump(rows, p_threshold=np.inf, window=window, p_column="p", group="feature")
            parts.append(leads)
    leads = pd.concat(parts, ignore_index=True)
    leads["study_wide"] = leads["p"] < study_wide_p
    return leads[LEAD_COLUMNS]
