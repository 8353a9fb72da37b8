"""Lead variants by distance clumping, per taxon.

Within each taxon, the variant with the smallest p-value (below the threshold)
is a lead; every other significant variant on the same chromosome within
``window`` base pairs of it joins its clump; repeat with the smallest p-value
left.  This is PLINK's ``--clump`` with distance only (no LD, which needs
the genotypes of a reference panel): clumps of nearby variants in linkage
are reported once, independent signals further apart than ``window`` stay
separate.

References
----------
.. [1] Purcell S et al. (2007). PLINK: a tool set for whole-genome association
   and population-based linkage analyses. AJHG 81:559-575.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["clump"]


def clump(tests: pd.DataFrame, p_threshold: float = 5e-8, window: int = 500_000, p_column: str = "p",
          group: str = "feature") -> pd.DataFrame:
    """Lead variants of each group (taxon) by distance clumping.

    Parameters
    ----------
    tests : DataFrame
        One row per variant x group: ``group``, ``variant_id``, ``chrom``,
        ``pos``, ``p_column`` (only the rows below ``p_threshold`` matter, so
        the significant rows of a genome scan are enough).
    p_threshold : float
        Variants with ``p < p_threshold`` are clumped (genome-wide 5e-8 by
        default).
    window : int
        Base pairs each side of a lead.

    Returns
    -------
    DataFrame
        The lead rows (all input columns) plus ``n_in_clump`` (the lead
        included) and ``clump_start``/``clump_end`` (positions of the clump's
        outermost members), sorted by group then p.  Ties in p go to the
        variant listed first.
    """
    sig = tests[tests[p_column] < p_threshold]
    leads = []
    for _, rows in sig.groupby(group, sort=True):
        rows = rows.iloc[np.argsort(rows[p_column].to_numpy(), kind="stable")]
        chrom = rows["chrom"].fillna("").astype(str).to_numpy()     # no chromosome (a dosage TSV): one
        pos = rows["pos"].to_numpy(np.int64)
        free = np.ones(len(rows), bool)
        for i in range(len(rows)):
            if not free[i]:
                continue
            member = free & (chrom == chrom[i]) & (np.abs(pos - pos[i]) <= window)
            free &= ~member
            lead = rows.iloc[i].to_dict()
            lead.update(n_in_clump=int(member.sum()), clump_start=int(pos[member].min()),
                        clump_end=int(pos[member].max()))
            leads.append(lead)
    columns = [*tests.columns, "n_in_clump", "clump_start", "clump_end"]
    return pd.DataFrame(leads, columns=columns).reset_index(drop=True)
