"""Variant quality control before association: MAF, call rate, Hardy-Weinberg, carriers, imputation quality.

Pure functions on arrays; the association rule decides what to do with the
table (normally: test only ``keep`` variants).  :func:`block_qc` is what each
chunk job runs on the block of variants it has just read (and what the
preparation runs on the variants it thins for the genetic principal
components): the per-variant filters of the stage in their order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

from ..errors import Problems
from ..gwas.qc import dosage_r2

__all__ = ["QC_COLUMNS", "block_qc", "carriers", "genotype_counts", "hwe_exact", "variant_qc"]

#: Heterozygote-count probabilities within this relative distance of the
#: observed one count as ties (guards against rounding in log-gamma sums).
_TIE_RTOL = 1e-7


def hwe_exact(n_het, n_hom1, n_hom2, chunk_size: int = 4096) -> np.ndarray:
    """Exact Hardy-Weinberg equilibrium test (two-sided), vectorised.

    Parameters
    ----------
    n_het, n_hom1, n_hom2 : array_like of int
        Heterozygote and the two homozygote counts, one entry per variant.
    chunk_size : int
        Variants evaluated together (memory is ``chunk_size * (N_rare / 2)``).

    Returns
    -------
    numpy.ndarray of float
        p-values; 1.0 where no genotypes were counted.

    Notes
    -----
    Conditional on ``N`` individuals and ``n_A`` copies of the rarer allele
    (``n_B = 2N - n_A``), the probability of ``n_AB`` heterozygotes is

    ``P(n_AB) = 2^n_AB N! n_A! n_B! / (n_AA! n_AB! n_BB! (2N)!)``,

    ``n_AA = (n_A - n_AB) / 2``, ``n_BB = N - n_AB - n_AA``, over
    ``n_AB = n_A mod 2, n_A mod 2 + 2, ..., n_A``.  The p-value is the sum
    of ``P`` over all ``n_AB`` no more probable than the observed one
    (Wigginton et al. 2005).  All ``n_AB`` of a variant are evaluated at
    once from log-gamma functions instead of the paper's recurrence, and the
    distribution is normalised to sum to one; probabilities equal within a
    relative ``1e-7`` count as ties.

    References
    ----------
    .. [1] Wigginton JE, Cutler DJ, Abecasis GR (2005). A note on exact tests
       of Hardy-Weinberg equilibrium. American Journal of Human Genetics
       76(5):887-893.
    """
    het = np.atleast_1d(np.asarray(n_het, dtype=np.int64))
    hom1 = np.atleast_1d(np.asarray(n_hom1, dtype=np.int64))
    hom2 = np.atleast_1d(np.asarray(n_hom2, dtype=np.int64))
    het, hom1, hom2 = np.broadcast_arrays(het, hom1, hom2)
    out = np.ones(het.shape, dtype=float)
    flat = [a.ravel() for a in (het, hom1, hom2)]
    p = out.ravel()
    for start in range(0, p.size, chunk_size):
        part = slice(start, start + chunk_size)
        p[part] = _hwe_block(*(a[part] for a in flat))
    return out


def _hwe_block(het, hom1, hom2) -> np.ndarray:
    n = het + hom1 + hom2
    rare = np.minimum(2 * hom1 + het, 2 * hom2 + het)
    common = 2 * n - rare
    steps = np.arange(rare.max() // 2 + 1 if rare.size else 1)
    h = (rare % 2)[:, None] + 2 * steps[None, :]               # candidate het counts
    valid = h <= rare[:, None]
    h = np.where(valid, h, 0)
    rare_hom = (rare[:, None] - h) // 2
    common_hom = n[:, None] - h - rare_hom
    log_p = (h * np.log(2.0)
             - special.gammaln(rare_hom + 1) - special.gammaln(h + 1) - special.gammaln(common_hom + 1)
             + (special.gammaln(n + 1) + special.gammaln(rare + 1) + special.gammaln(common + 1)
                - special.gammaln(2 * n + 1))[:, None])
    log_p = np.where(valid, log_p, -np.inf)
    log_p -= log_p.max(axis=1, keepdims=True)
    prob = np.exp(log_p)
    observed = prob[np.arange(het.size), (het - rare % 2) // 2]
    tail = np.where(prob <= observed[:, None] * (1.0 + _TIE_RTOL), prob, 0.0).sum(axis=1)
    p = np.minimum(tail / prob.sum(axis=1), 1.0)
    return np.where(n > 0, p, 1.0)


def genotype_counts(G) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard-call genotype counts per variant: (hom ref, het, hom alt).

    Dosages are rounded to the nearest integer (halves up); NaN is not
    counted.  Exact for hard-called genotypes, a best-guess call for imputed
    dosages.
    """
    G = np.asarray(G, dtype=float)
    calls = np.floor(G + 0.5)
    return ((calls == 0).sum(axis=1), (calls == 1).sum(axis=1), (calls == 2).sum(axis=1))


def variant_qc(G, status, maf_min: float = 0.05, call_rate_min: float = 0.95,
               hwe_p_min: float = 1e-6, variant_ids: Sequence | None = None) -> pd.DataFrame:
    """Per-variant QC table: minor allele frequency, call rate, HWE in controls.

    Parameters
    ----------
    G : array_like, shape (V, n)
        ALT allele dosages 0-2, NaN for missing.
    status : array_like, shape (n,)
        1 = MS, 0 = control. Hardy-Weinberg is tested in controls only, since
        a disease-associated variant need not be in equilibrium in cases.
    maf_min, call_rate_min, hwe_p_min : float
        A variant is kept when ``maf >= maf_min``, ``call_rate >=
        call_rate_min`` and ``hwe_p >= hwe_p_min``.
    variant_ids : sequence, optional
        Index of the returned table (default 0..V-1).

    Returns
    -------
    pandas.DataFrame
        One row per variant: ``maf``, ``call_rate``, ``hwe_p``, ``keep``,
        ``reason`` (failed filters joined by ``";"`` in the order
        ``low_maf``, ``low_call_rate``, ``hwe``; empty when kept), and the
        control genotype counts ``n_hom_ref``, ``n_het``, ``n_hom_alt`` the
        HWE test used.

    Notes
    -----
    ``call_rate = #observed / n``; ``p = sum(observed dosage) / (2 #observed)``,
    ``maf = min(p, 1 - p)`` (all participants; NaN when nothing is observed,
    which fails ``low_maf``).  ``hwe_p`` is the exact test of
    :func:`hwe_exact` on hard-called control genotypes (1.0 when no control
    is called).

    References
    ----------
    .. [1] Wigginton JE, Cutler DJ, Abecasis GR (2005). A note on exact tests
       of Hardy-Weinberg equilibrium. AJHG 76(5):887-893.
    .. [2] Anderson CA et al. (2010). Data quality control in genetic
       case-control association studies. Nature Protocols 5:1564-1573.
    """
    G = np.asarray(G, dtype=float)
    status = np.asarray(status)
    problems = Problems()
    if G.ndim != 2 or status.shape != (G.shape[-1],):
        problems.add("variant QC input", f"G has shape {G.shape}, status {status.shape}",
                     "pass G as variants x participants and one status per participant")
    elif not np.isin(status, (0, 1)).all():
        problems.add("variant QC input", "status holds values other than 0/1",
                     "code MS as 1 and healthy controls as 0")
    problems.raise_if_any()

    observed = ~np.isnan(G)
    n_obs = observed.sum(axis=1)
    call_rate = n_obs / G.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        af = np.where(observed, G, 0.0).sum(axis=1) / (2.0 * n_obs)
    maf = np.minimum(af, 1.0 - af)
    hom_ref, het, hom_alt = genotype_counts(G[:, status == 0])
    hwe_p = hwe_exact(het, hom_ref, hom_alt)

    fails = {
        "low_maf": ~(maf >= maf_min),
        "low_call_rate": call_rate < call_rate_min,
        "hwe": hwe_p < hwe_p_min,
    }
    reason = np.full(G.shape[0], "", dtype=object)
    for name, failed in fails.items():
        reason = np.where(failed, np.where(reason == "", name, reason + ";" + name), reason)
    index = pd.RangeIndex(G.shape[0]) if variant_ids is None else pd.Index(variant_ids, name="variant_id")
    return pd.DataFrame({
        "maf": maf,
        "call_rate": call_rate,
        "hwe_p": hwe_p,
        "keep": reason == "",
        "reason": reason.astype(str),
        "n_hom_ref": hom_ref,
        "n_het": het,
        "n_hom_alt": hom_alt,
    }, index=index)


def carriers(G, status) -> tuple[np.ndarray, np.ndarray]:
    """Participants carrying the minor allele, among cases and among controls.

    The minor allele is the rarer one over all participants; dosages are
    hard-called (rounded) and missing calls are not counted.
    """
    G = np.asarray(G, dtype=float)
    with np.errstate(invalid="ignore"):
        af = np.nanmean(G, axis=1) / 2 if G.shape[1] else np.full(G.shape[0], np.nan)
        calls = np.floor(G + 0.5)
        carrier = np.where((af <= 0.5)[:, None], calls >= 1, calls <= 1) & ~np.isnan(G)
    cases = np.asarray(status) == 1
    return carrier[:, cases].sum(axis=1), carrier[:, ~cases].sum(axis=1)


#: Columns of :func:`block_qc` (and of ``variant_qc.tsv``), in order.
QC_COLUMNS = ["variant_id", "chrom", "pos", "ref", "alt", "quality", "quality_field", "dosage_r2", "maf",
              "call_rate", "hwe_p", "n_hom_ref", "n_het", "n_hom_alt", "carriers_cases", "carriers_controls",
              "keep", "test_interaction", "reason"]


def block_qc(G, variants: pd.DataFrame, status, maf_min: float, call_rate_min: float, hwe_p_min: float,
             min_carriers: int, quality_min: float) -> pd.DataFrame:
    """Every per-variant filter of the stage, for one block of variants (participants' dosages).

    Parameters
    ----------
    G : (V, n) dosages of the participants analysed (NaN = missing)
    variants : DataFrame
        The reader's rows for ``G`` (``variant_id``, ``chrom``, ``pos``,
        ``ref``, ``alt``, ``quality``, ``quality_field``).
    status : (n,) 1 = case, 0 = control
    maf_min, call_rate_min, hwe_p_min : float
        As :func:`variant_qc`.
    min_carriers : int
        Fewest minor-allele carriers (``few_carriers``); the interaction is
        tested only with this many among cases and among controls.
    quality_min : float
        The file's imputation quality (INFO/R2/DR2) below this fails
        (``low_imputation_quality``); NaN (not stated) passes.

    Returns
    -------
    DataFrame
        :data:`QC_COLUMNS`; ``reason`` lists every failed filter (``;``),
        ``dosage_r2`` is the MaCH r-squared of the dosages (for information).
    """
    G = np.asarray(G, dtype=float)
    status = np.asarray(status)
    qc = variant_qc(G, status, maf_min, call_rate_min, hwe_p_min)
    cases, controls = carriers(G, status) if G.shape[0] else (np.zeros(0, int), np.zeros(0, int))
    quality = variants["quality"].to_numpy(dtype=float)
    reason = qc["reason"].to_numpy(dtype=object)
    for failed, name in ((quality < quality_min, "low_imputation_quality"),
                         (cases + controls < min_carriers, "few_carriers")):
        reason = np.where(failed, np.where(reason == "", name, reason + ";" + name), reason)
    keep = reason == ""
    out = pd.DataFrame({
        "variant_id": variants["variant_id"].to_numpy(), "chrom": variants["chrom"].to_numpy(),
        "pos": variants["pos"].to_numpy(), "ref": variants["ref"].to_numpy(), "alt": variants["alt"].to_numpy(),
        "quality": quality, "quality_field": variants["quality_field"].to_numpy(),
        "dosage_r2": dosage_r2(G) if G.shape[0] else np.zeros(0),
        "maf": qc["maf"].to_numpy(), "call_rate": qc["call_rate"].to_numpy(), "hwe_p": qc["hwe_p"].to_numpy(),
        "n_hom_ref": qc["n_hom_ref"].to_numpy(), "n_het": qc["n_het"].to_numpy(),
        "n_hom_alt": qc["n_hom_alt"].to_numpy(), "carriers_cases": cases, "carriers_controls": controls,
        "keep": keep, "test_interaction": keep & (cases >= min_carriers) & (controls >= min_carriers),
        "reason": reason.astype(str)}, columns=QC_COLUMNS)
    return out
