"""Genomic inflation (lambda GC) per taxon and QQ-plot points, streamed over chunks.

``lambda_GC = median(chi2) / chi2_1^{-1}(0.5)`` with ``chi2 = F^{-1}_{chi2,1}(1 - p)``
(the 1-df statistic of each p-value).  The median is that of the p-values'
order statistics (the statistic is decreasing in p), found exactly in two
passes: pass 1 counts p-values in ``bins`` equal bins of [0, 1] per group,
pass 2 keeps only the values in the bins holding each group's middle order
statistics.

References
----------
.. [1] Devlin B, Roeder K (1999). Genomic control for association studies.
   Biometrics 55:997-1004.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["MEDIAN_CHI2_1DF", "grouped_lambda_gc", "lambda_gc", "qq_points"]

#: Median of the chi-square distribution with one degree of freedom (0.4549...).
MEDIAN_CHI2_1DF = float(stats.chi2.ppf(0.5, 1))


def lambda_gc(p) -> float:
    """Genomic inflation factor of one set of p-values (NaN ignored; NaN when none).

    The in-memory reference for :func:`grouped_lambda_gc`.
    """
    p = np.asarray(p, dtype=float)
    p = p[~np.isnan(p)]
    if not p.size:
        return float("nan")
    return float(np.median(stats.chi2.isf(p, 1)) / MEDIAN_CHI2_1DF)


def grouped_lambda_gc(chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], n_groups: int,
                      bins: int = 4096) -> np.ndarray:
    """lambda GC of each group (e.g. taxon) over every chunk, in two passes.

    Parameters
    ----------
    chunks : callable
        ``chunks()`` returns an iterable of ``(group, p)`` array pairs
        (group codes 0..n_groups-1, p-values; NaN p not counted), the same
        each call.
    n_groups : int
    bins : int
        Memory is ``n_groups * bins`` counters plus the values of the bins
        holding the medians (about ``tests / bins`` per group).

    Returns
    -------
    numpy.ndarray
        One lambda per group (NaN for a group with no p-value), equal to
        :func:`lambda_gc` on that group's p-values.
    """
    counts = np.zeros((n_groups, bins), np.int64)
    for group, p in chunks():
        group, p = np.asarray(group).ravel(), np.asarray(p, dtype=float).ravel()
        ok = ~np.isnan(p)
        b = np.minimum((p[ok] * bins).astype(np.int64), bins - 1)
        np.add.at(counts, (group[ok], b), 1)
    n = counts.sum(axis=1)
    cum = np.cumsum(counts, axis=1)
    # order statistics (0-based) of the median: (n-1)//2 and n//2
    ranks = np.stack([(n - 1) // 2, n // 2], axis=1)
    target = np.stack([np.array([np.searchsorted(cum[g], r, side="right") for r in ranks[g]])
                       for g in range(n_groups)]) if n_groups else np.zeros((0, 2), int)
    wanted = np.zeros((n_groups, bins), bool)
    has = n > 0
    wanted[np.flatnonzero(has)[:, None], target[has]] = True
    kept: list[list[np.ndarray]] = [[] for _ in range(n_groups)]
    for group, p in chunks():
        group, p = np.asarray(group).ravel(), np.asarray(p, dtype=float).ravel()
        ok = ~np.isnan(p)
        group, p = group[ok], p[ok]
        b = np.minimum((p * bins).astype(np.int64), bins - 1)
        take = wanted[group, b]
        for g in np.unique(group[take]):
            kept[g].append(p[take & (group == g)])
    out = np.full(n_groups, np.nan)
    for g in np.flatnonzero(has):
        values = np.sort(np.concatenate(kept[g]))
        # values are the contents of the (one or two adjacent occupied) target bins, in order
        first_bin = target[g][0]
        start = cum[g][first_bin - 1] if first_bin > 0 else 0
        middle = values[ranks[g] - start]
        out[g] = np.mean(stats.chi2.isf(middle, 1)) / MEDIAN_CHI2_1DF
    return out


def qq_points(chunks: Callable[[], Iterable[np.ndarray]], resolution: float = 0.01,
              exact_below: float = 1e-4) -> pd.DataFrame:
    """Points of a QQ plot of -log10 p against its expectation, thinned, in one pass.

    p-values below ``exact_below`` (few, and the ones that matter) are kept
    and plotted one by one; the others are counted in bins of ``resolution``
    on the -log10 scale and plotted as one point per bin at the bin's middle
    rank, so the plot has at most ``-log10(exact_below) / resolution`` plus
    the tail points whatever the number of tests.

    Returns
    -------
    DataFrame
        ``expected``, ``observed`` (both -log10 p), ``n`` (tests the point
        stands for), ascending in ``expected``.

    Notes
    -----
    The expected -log10 p of the ``i``-th smallest of ``m`` p-values is
    ``-log10((i - 0.5) / m)``.  A binned point's ``observed`` is the bin's
    middle, so it is within ``resolution / 2`` of the true order statistic.
    """
    top = -np.log10(exact_below)
    n_bins = int(np.ceil(top / resolution))
    counts = np.zeros(n_bins, np.int64)
    tail = []
    for p in chunks():
        p = np.asarray(p, dtype=float).ravel()
        p = p[~np.isnan(p)]
        small = p < exact_below
        tail.append(p[small])
        x = -np.log10(np.maximum(p[~small], 1e-300))
        counts += np.bincount(np.minimum((x / resolution).astype(np.int64), n_bins - 1), minlength=n_bins)
    tail_p = np.sort(np.concatenate(tail)) if tail else np.zeros(0)
    m = int(counts.sum()) + tail_p.size
    if m == 0:
        return pd.DataFrame({"expected": [], "observed": [], "n": []})
    # ranks ascending in p: the tail comes first, then bins from large -log10 p (small p) to small
    tail_rank = np.arange(1, tail_p.size + 1)
    desc = counts[::-1]
    upto = tail_p.size + np.cumsum(desc)
    middle_rank = upto - (desc - 1) / 2.0
    centres = ((np.arange(n_bins) + 0.5) * resolution)[::-1]
    occupied = desc > 0
    frame = pd.DataFrame({
        "expected": np.r_[-np.log10((tail_rank - 0.5) / m), -np.log10((middle_rank[occupied] - 0.5) / m)],
        "observed": np.r_[-np.log10(np.maximum(tail_p, 1e-300)), centres[occupied]],
        "n": np.r_[np.ones(tail_p.size, np.int64), desc[occupied]],
    })
    return frame.sort_values("expected", kind="stable").reset_index(drop=True)
