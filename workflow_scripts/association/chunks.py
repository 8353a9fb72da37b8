"""The association stage between the files: one chunk of tests, and the gather.

Scatter: each chunk job fits both models (household-robust errors,
:mod:`workflow_scripts.models.cluster_robust`) for its variants x every
tested species and returns the numbers as one float array
(:data:`CHUNK_COLUMNS`, rows variant-major in the chunk's variant order, then
feature order).  Variant and feature ids are not stored in it: they follow
from the prepared variant table (``chunk`` column, sorted ids) and feature
list, which every job shares.

Gather: :func:`gather` reads the chunks twice.  Pass 1 keeps only the two
p-value columns of every test (8 bytes per test and kind) and applies
Benjamini-Hochberg over all tests of each kind; pass 2 streams the chunks
again and yields the final table in pieces, with the q-values, while
collecting the per-variant summary and the heatmap cells.  Memory is
``O(tests)`` for the p- and q-values only (32 bytes per variant x species
pair), never the full table.

No file I/O here; :mod:`workflow_scripts.association.cli` reads and writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..models.cluster_robust import BLOCK, CLUSTERED_COLUMNS, clustered_block, prepare_clustered
from ..models.multiple_testing import bh
from .prepare import GenotypeView

#: Columns of a chunk array, in order.
CHUNK_COLUMNS = CLUSTERED_COLUMNS[2:]

#: Columns of ``genotype_species.tsv``, in order.
OUTPUT_COLUMNS = [
    "variant_id", "feature", "n", "n_households", "allele_frequency",
    "beta_genotype", "se_genotype", "t_genotype", "p_genotype", "q_genotype",
    "beta_interaction", "se_interaction", "t_interaction", "p_interaction", "q_interaction",
    "beta_genotype_in_controls",
]

#: Columns of ``variant_summary.tsv``, in order.
VARIANT_SUMMARY_COLUMNS = [
    "variant_id", "chrom", "pos", "gene_or_locus", "label", "n", "allele_frequency",
    "n_features", "best_feature_interaction", "beta_interaction", "p_interaction", "q_interaction",
    "n_significant_interaction", "best_feature_genotype", "beta_genotype", "p_genotype",
    "q_genotype", "n_significant_genotype",
]

_COL = {name: i for i, name in enumerate(CHUNK_COLUMNS)}


def chunk_results(Y: np.ndarray, status: np.ndarray, covariates: np.ndarray | None,
                  households: np.ndarray, feature_ids, dosage_blocks,
                  test_interaction: np.ndarray | None = None) -> np.ndarray:
    """Both models for one chunk of variants, as a (m * S, len(CHUNK_COLUMNS)) array.

    Parameters
    ----------
    Y : (n, S) CLR abundances of the tested features
    status : (n,) 1 = case
    covariates : (n, k) or None
    households : (n,) household ids
    feature_ids : sequence of length S
    dosage_blocks : iterable of (m_b, n) dosage arrays (NaN = missing)
        The chunk's variants in order, in blocks (memory stays
        ``O(block * (n + S))`` plus the chunk's result).
    test_interaction : (m,) bool, optional
        False for variants whose genotype x status interaction is not
        reported (too few minor-allele carriers in a status group); their
        interaction columns and the model's genotype coefficient are NaN.
    """
    cd = prepare_clustered(Y, status, covariates, households, feature_ids)
    parts = []
    for block in dosage_blocks:
        result = clustered_block(cd, np.asarray(block, dtype=float))
        m = block.shape[0]
        S = Y.shape[1]
        out = np.empty((m * S, len(CHUNK_COLUMNS)))
        for name, j in _COL.items():
            values = result[name]
            out[:, j] = np.repeat(values, S) if values.ndim == 1 else values.ravel()
        parts.append(out)
    if not parts:
        return np.empty((0, len(CHUNK_COLUMNS)))
    out = np.concatenate(parts)
    if test_interaction is not None:
        skip = np.repeat(~np.asarray(test_interaction, dtype=bool), Y.shape[1])
        for name in ("beta_interaction", "se_interaction", "t_interaction", "p_interaction",
                     "beta_genotype_interaction_model"):
            out[skip, _COL[name]] = np.nan
    return out


def run_chunk(genotypes, participants: pd.DataFrame, abundance: pd.DataFrame,
              covariate_columns: list[str], variants: pd.DataFrame) -> np.ndarray:
    """One chunk from the prepared inputs (what the chunk job does between its files).

    Parameters
    ----------
    genotypes : array_like, variants x cohort participants
        The cohort's dosages (memory map), read only for ``variants``.
    participants, abundance, covariate_columns
        From :class:`~workflow_scripts.association.prepare.Prepared`.
    variants : DataFrame
        The chunk's rows of the variant QC table, in chunk order (``row``,
        ``test_interaction``).
    """
    covariates = participants[covariate_columns].to_numpy(dtype=float) if covariate_columns else None
    view = GenotypeView(genotypes, variants["row"].to_numpy(), participants["genotype_column"].to_numpy())
    return chunk_results(abundance.to_numpy(dtype=float), participants["status"].to_numpy(dtype=float),
                         covariates, participants["household"].astype(str).to_numpy(),
                         list(abundance.columns), dosage_blocks(view),
                         test_interaction=variants["test_interaction"].to_numpy(dtype=bool))


def dosage_blocks(view, size: int = 4 * BLOCK) -> Iterator[np.ndarray]:
    """Blocks of rows of a :class:`~workflow_scripts.association.prepare.GenotypeView`."""
    for start in range(0, len(view), size):
        yield view[start:start + size]


@dataclass
class GatherResult:
    """What the gather produces besides the table itself."""

    variant_summary: pd.DataFrame
    heatmap: pd.DataFrame
    n_tests: dict
    n_significant: dict
    threshold_p_interaction: float | None
    significant: dict = field(default_factory=dict)


def _best(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (V, S): column of the smallest p (NaN-aware; -1 if all NaN) and that p."""
    filled = np.where(np.isnan(p), np.inf, p)
    best = filled.argmin(axis=1) if p.shape[1] else np.zeros(p.shape[0], int)
    value = filled[np.arange(p.shape[0]), best] if p.shape[1] else np.full(p.shape[0], np.inf)
    return np.where(np.isfinite(value), best, -1), np.where(np.isfinite(value), value, np.nan)


def gather(load_chunk: Callable[[int], np.ndarray], n_chunks: int, tested: pd.DataFrame,
           features: pd.Index, fdr: float = 0.05, heatmap_pairs: int = 30,
           ) -> tuple[Iterator[pd.DataFrame], Callable[[], GatherResult]]:
    """Global FDR over every chunk, and the final table in pieces.

    Parameters
    ----------
    load_chunk : callable
        ``load_chunk(i)`` returns chunk ``i``'s array (:data:`CHUNK_COLUMNS`).
    n_chunks : int
    tested : DataFrame
        The tested variants in chunk order (sorted ids): index variant_id,
        columns ``chunk`` and the annotation (``chrom``, ``pos``,
        ``gene_or_locus``, ``label``).
    features : Index
        Tested features, in the order of the chunk arrays.
    fdr : float
        q-value threshold for the per-variant counts and the summary.
    heatmap_pairs : int
        The heatmap shows the variants and species of this many strongest
        interaction pairs.

    Returns
    -------
    pieces : iterator of DataFrame
        The rows of ``genotype_species.tsv`` (:data:`OUTPUT_COLUMNS`), one
        piece per chunk, sorted by variant, then feature.
    finish : callable
        Call after exhausting ``pieces``: returns the :class:`GatherResult`.
    """
    S = len(features)
    V = len(tested)
    counts = tested.groupby("chunk").size().reindex(range(n_chunks), fill_value=0).to_numpy()
    offsets = np.concatenate([[0], np.cumsum(counts)])
    p_gen = np.full(V * S, np.nan)
    p_int = np.full(V * S, np.nan)
    for i in range(n_chunks):
        data = load_chunk(i)
        rows = slice(offsets[i] * S, offsets[i + 1] * S)
        if data.shape != (counts[i] * S, len(CHUNK_COLUMNS)):
            raise ValueError(f"chunk {i} holds {data.shape}, expected ({counts[i] * S}, {len(CHUNK_COLUMNS)}): "
                             "it is from another preparation; rerun the chunk jobs")
        p_gen[rows] = data[:, _COL["p_genotype"]]
        p_int[rows] = data[:, _COL["p_interaction"]]
    q_gen, q_int = bh(p_gen), bh(p_int)

    # Heatmap: variants and species of the strongest interaction pairs (ties by position).
    finite = np.flatnonzero(np.isfinite(p_int))
    top = finite[np.lexsort((finite, p_int[finite]))][:heatmap_pairs] if heatmap_pairs > 0 else finite[:0]
    hv = np.unique(top // S) if S else top
    hf = np.unique(top % S) if S else top

    best_int, best_p_int = _best(p_int.reshape(V, S))
    best_gen, best_p_gen = _best(p_gen.reshape(V, S))
    sig_int = (q_int.reshape(V, S) < fdr).sum(axis=1)
    sig_gen = (q_gen.reshape(V, S) < fdr).sum(axis=1)
    per_variant = {"n": np.zeros(V, int), "af": np.full(V, np.nan), "beta_int": np.full(V, np.nan),
                   "beta_gen": np.full(V, np.nan)}
    cells = []
    vids = tested.index.to_numpy().astype(str)
    feats = np.asarray(features).astype(str)

    def pieces() -> Iterator[pd.DataFrame]:
        for i in range(n_chunks):
            data = load_chunk(i)
            v0, v1 = offsets[i], offsets[i + 1]
            m = v1 - v0
            rows = slice(v0 * S, v1 * S)
            local = np.arange(m)
            per_variant["n"][v0:v1] = data[local * S, _COL["n"]].astype(int) if S else 0
            per_variant["af"][v0:v1] = data[local * S, _COL["allele_frequency"]] if S else np.nan
            for key, best, column in (("beta_int", best_int, "beta_interaction"),
                                      ("beta_gen", best_gen, "beta_genotype")):
                b = best[v0:v1]
                has = b >= 0
                per_variant[key][v0:v1][has] = data[local[has] * S + b[has], _COL[column]]
            in_chunk = hv[(hv >= v0) & (hv < v1)]
            for v in in_chunk:
                idx = (v - v0) * S + hf
                cells.append(pd.DataFrame({
                    "variant_id": vids[v], "feature": feats[hf],
                    "beta_interaction": data[idx, _COL["beta_interaction"]],
                    "p_interaction": data[idx, _COL["p_interaction"]],
                    "q_interaction": q_int[v * S + hf]}))
            frame = pd.DataFrame({
                "variant_id": np.repeat(vids[v0:v1], S),
                "feature": np.tile(feats, m),
                "n": data[:, _COL["n"]].astype(int),
                "n_households": data[:, _COL["n_households"]].astype(int),
            })
            for name in OUTPUT_COLUMNS[4:]:
                if name == "q_genotype":
                    frame[name] = q_gen[rows]
                elif name == "q_interaction":
                    frame[name] = q_int[rows]
                elif name == "beta_genotype_in_controls":
                    frame[name] = data[:, _COL["beta_genotype_interaction_model"]]
                else:
                    frame[name] = data[:, _COL[name]]
            yield frame

    def finish() -> GatherResult:
        annotation = tested.reindex(columns=["chrom", "pos", "gene_or_locus", "label"])
        summary = pd.DataFrame({
            "variant_id": vids,
            "chrom": annotation["chrom"].to_numpy(),
            "pos": annotation["pos"].to_numpy(),
            "gene_or_locus": annotation["gene_or_locus"].to_numpy(),
            "label": annotation["label"].to_numpy(),
            "n": per_variant["n"],
            "allele_frequency": per_variant["af"],
            "n_features": S,
            "best_feature_interaction": np.where(best_int >= 0, feats[np.maximum(best_int, 0)] if S else "", ""),
            "beta_interaction": per_variant["beta_int"],
            "p_interaction": best_p_int,
            "q_interaction": _at(q_int, best_int, S),
            "n_significant_interaction": sig_int,
            "best_feature_genotype": np.where(best_gen >= 0, feats[np.maximum(best_gen, 0)] if S else "", ""),
            "beta_genotype": per_variant["beta_gen"],
            "p_genotype": best_p_gen,
            "q_genotype": _at(q_gen, best_gen, S),
            "n_significant_genotype": sig_gen,
        }, columns=VARIANT_SUMMARY_COLUMNS)
        heatmap = (pd.concat(cells, ignore_index=True) if cells else
                   pd.DataFrame(columns=["variant_id", "feature", "beta_interaction", "p_interaction",
                                         "q_interaction"]))
        significant = {}
        for kind, q in (("interaction", q_int), ("genotype", q_gen)):
            hits = np.flatnonzero(q < fdr)
            significant[kind] = pd.DataFrame({"variant_id": vids[hits // S] if S else [],
                                              "feature": feats[hits % S] if S else [],
                                              "p": (p_int if kind == "interaction" else p_gen)[hits],
                                              "q": q[hits]})
        passing = p_int[q_int < fdr]
        return GatherResult(
            variant_summary=summary, heatmap=heatmap,
            n_tests={"genotype": int(np.isfinite(p_gen).sum()), "interaction": int(np.isfinite(p_int).sum())},
            n_significant={"genotype": int((q_gen < fdr).sum()), "interaction": int((q_int < fdr).sum())},
            threshold_p_interaction=float(passing.max()) if passing.size else None,
            significant=significant)

    return pieces(), finish


def _at(values: np.ndarray, best: np.ndarray, S: int) -> np.ndarray:
    """values[v * S + best[v]] per variant; NaN where best is -1."""
    out = np.full(best.size, np.nan)
    has = best >= 0
    out[has] = values[np.flatnonzero(has) * S + best[has]]
    return out
