"""Per-chunk variant QC that association/qc.py does not already do, and chunk planning.

MAF, call rate and the exact Hardy-Weinberg test in controls are
:func:`workflow_scripts.association.qc.variant_qc` (pure, already blockwise):
a chunk job calls it on the dosages it read.  It lives in a stage package,
so this shared module cannot import it; moving ``association/qc.py`` here is
a ``git mv`` plus one import line, left to the association restructuring
(see the genotypes report).  What is added here:

- :func:`imputation_quality`: the file's ``INFO``/``R2``/``DR2`` against a
  threshold, and the dosage r-squared (MaCH ``Rsq``) computed from the
  dosages for files that state none;
- :func:`plan_chunks`: regions of at most ``chunk_size`` variants per
  chromosome, for one job each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["dosage_r2", "imputation_quality", "plan_chunks"]


def dosage_r2(G) -> np.ndarray:
    """Estimated imputation r-squared from dosages: ``var(dosage) / (2 p (1 - p))``.

    Parameters
    ----------
    G : array (variants x samples)
        Dosages 0-2, NaN missing.

    Returns
    -------
    numpy.ndarray
        One value per variant; NaN for a monomorphic or unobserved variant.

    Notes
    -----
    ``p`` is the mean dosage over 2, the variance is over samples (ddof 0).
    Hard calls in Hardy-Weinberg equilibrium give about 1; a dosage that says
    nothing (everybody at ``2p``) gives 0.  This is MaCH's ``Rsq``
    (minimac's ``R2``).

    References
    ----------
    .. [1] Li Y, Willer CJ, Ding J, Scheet P, Abecasis GR (2010). MaCH: using
       sequence and genotype data to estimate haplotypes and unobserved
       genotypes. Genetic Epidemiology 34:816-834.
    """
    G = np.asarray(G, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(G, axis=1)
        p = mean / 2
        var = np.nanmean((G - mean[:, None]) ** 2, axis=1)
        r2 = var / (2 * p * (1 - p))
    r2[~((p > 0) & (p < 1))] = np.nan
    return r2


def imputation_quality(variants: pd.DataFrame, quality_min: float, G=None) -> pd.DataFrame:
    """Imputation quality of each variant and whether it passes ``quality_min``.

    Parameters
    ----------
    variants : DataFrame
        A genotype reader's variant table (``quality``, ``quality_field``).
    quality_min : float
        Threshold (e.g. 0.3 for minimac R2, 0.8 for a strict INFO); 0 keeps
        everything.
    G : array (variants x samples), optional
        The dosages; when given, variants whose file states no quality get
        :func:`dosage_r2` instead (field ``dosage_r2``).

    Returns
    -------
    DataFrame
        Same index as ``variants``: ``quality``, ``quality_field``,
        ``low_quality`` (True when the quality is known and below
        ``quality_min``).  A variant with no stated quality and no dosages
        is never filtered.
    """
    quality = variants["quality"].to_numpy(float).copy()
    field = variants["quality_field"].astype(str).to_numpy().copy()
    if G is not None:
        absent = np.isnan(quality)
        if absent.any():
            quality[absent] = dosage_r2(np.asarray(G)[absent])
            field[absent] = "dosage_r2"
    low = ~np.isnan(quality) & (quality < quality_min)
    return pd.DataFrame({"quality": quality, "quality_field": field, "low_quality": low}, index=variants.index)


def plan_chunks(variants: pd.DataFrame, chunk_size: int) -> pd.DataFrame:
    """Regions of consecutive variants, at most ``chunk_size`` each, never crossing a chromosome.

    Parameters
    ----------
    variants : DataFrame
        ``chrom``, ``pos`` (the file's order, sorted by position within a
        chromosome), e.g. the non-multiallelic rows of a variant table.
    chunk_size : int

    Returns
    -------
    DataFrame
        ``chunk``, ``chrom``, ``start``, ``end`` (1-based, inclusive: give
        them to ``source.read``), ``n_variants``.  Variants at one position
        always fall in one region (a region read returns every record at its
        positions), so a chunk can exceed ``chunk_size`` by the records
        sharing its last position.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    rows = []
    for chrom, part in variants.groupby("chrom", sort=False):
        pos = part["pos"].to_numpy(np.int64)
        if np.any(np.diff(pos) < 0):
            raise ValueError(f"chromosome {chrom}: positions are not sorted; sort the file")
        i = 0
        while i < pos.size:
            j = min(i + chunk_size, pos.size)
            while j < pos.size and pos[j] == pos[j - 1]:
                j += 1
            start = 1 if not rows or rows[-1][1] != chrom else rows[-1][3] + 1
            end = int(pos[j - 1]) if j < pos.size else int(pos[-1])
            rows.append([len(rows), chrom, start, end, j - i])
            i = j
    return pd.DataFrame(rows, columns=["chunk", "chrom", "start", "end", "n_variants"])
