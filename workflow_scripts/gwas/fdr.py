"""Benjamini-Hochberg over more tests than fit in memory, exactly.

:func:`bh_over_chunks` reads the p-values chunk by chunk (a callable that
returns a fresh iterator each time it is called, e.g. over per-chunk Parquet
files) and returns a :class:`BHStepFunction`: ``q = step(p)`` gives, for any
p-value of those chunks, the q-value ``statsmodels.stats.multitest.multipletests
(all_p, method="fdr_bh")`` would give, bit for bit, without ever holding all
p-values.

How
    BH's q-value is a non-decreasing step function of p,
    ``q(p) = min(1, min_{t >= p} t / (R(t) / m))`` over the observed p-values
    ``t``, ``R(t)`` = number of p-values ``<= t``, ``m`` = number of tests.
    Pass 1 counts the p-values in bins of their IEEE-754 bit pattern (for
    non-negative doubles the bit pattern orders like the value, so a bin is a
    range of values of relative width ``2^-bits``) and keeps each bin's count,
    smallest and largest value.  A bin holding one distinct value knows its
    ``t / (R(t)/m)`` exactly; for any other bin, ``min(p) / (C_b / m)`` is a
    lower bound (``C_b`` = count up to the bin's end).  Walking bins from the
    largest p down with the running minimum, a bin whose lower bound is not
    below the running minimum's upper bound changes nothing: its q-values are
    the running minimum.  Only the remaining bins need their values: pass 2
    collects them when they total at most ``budget`` values, else they are
    split ``bits`` finer and counted again (a bin of one bit pattern holds one
    value, so this ends).  Every operation is the one statsmodels does
    (``p / (i / m)``, a running minimum, values above 1 set to 1), so results
    are equal, not close.

References
----------
.. [1] Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate:
   a practical and powerful approach to multiple testing. JRSS B 57:289-300.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["BHStepFunction", "bh_over_chunks"]


@dataclass
class BHStepFunction:
    """q-values as a step function of p: ``q(p) = q_at[searchsorted(starts, p, 'right') - 1]``.

    Attributes
    ----------
    starts : float64 array, ascending
        Smallest p-value each step applies to.
    q_at : float64 array
        The q-value of the step.
    n_tests : int
        ``m``, the number of finite p-values.
    passes : int
        Passes over the chunks it took (counting, refining, collecting).
    """

    starts: np.ndarray
    q_at: np.ndarray
    n_tests: int
    passes: int

    def __call__(self, p) -> np.ndarray:
        """q-values of p-values that were among the chunks (NaN stays NaN)."""
        p = np.asarray(p, dtype=float)
        q = np.full(p.shape, np.nan)
        finite = ~np.isnan(p)
        if finite.any() and self.starts.size:
            at = np.searchsorted(self.starts, p[finite] + 0.0, side="right") - 1
            q[finite] = self.q_at[np.maximum(at, 0)]
        return q


def _finite(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64).ravel()
    p = p[~np.isnan(p)] + 0.0          # + 0.0 turns -0.0 into 0.0
    if p.size and p.min() < 0:
        raise ValueError(f"p-values must be >= 0, got {p.min()}")
    return p


def _reduce(keys, counts, lo, hi):
    """Merge rows with equal keys (keys need not be sorted)."""
    order = np.argsort(keys, kind="stable")
    keys, counts, lo, hi = keys[order], counts[order], lo[order], hi[order]
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return (keys[first], np.add.reduceat(counts, first), np.minimum.reduceat(lo, first),
            np.maximum.reduceat(hi, first))


def _histogram(chunks, bin_starts, bin_ends, shift):
    """Count/min/max per sub-bin of width ``2^shift`` bit patterns, only inside the given bins.

    ``bin_starts``/``bin_ends`` (uint64, sorted, disjoint) restrict the
    counting; ``None`` counts everything.
    """
    keys = np.zeros(0, np.uint64)
    counts = np.zeros(0, np.int64)
    lo = np.zeros(0)
    hi = np.zeros(0)
    for chunk in chunks():
        p = _finite(chunk)
        bits = p.view(np.uint64)
        if bin_starts is not None:
            at = np.searchsorted(bin_starts, bits, side="right") - 1
            inside = (at >= 0) & (bits < bin_ends[np.maximum(at, 0)])
            p, bits = p[inside], bits[inside]
        if not p.size:
            continue
        k = bits >> np.uint64(shift)
        part = _reduce(k, np.ones(k.size, np.int64), p, p)
        keys, counts, lo, hi = _reduce(np.r_[keys, part[0]], np.r_[counts, part[1]], np.r_[lo, part[2]],
                                       np.r_[hi, part[3]])
    start = keys << np.uint64(shift)
    end = (keys + np.uint64(1)) << np.uint64(shift)
    return start, end, counts, lo, hi


def _plan(counts, lo, hi, m):
    """Bins (ascending) whose values are needed, given the bounds; see the module docstring."""
    cum = np.cumsum(counts)
    needed = np.zeros(counts.size, bool)
    s_hi = 1.0
    for b in range(counts.size - 1, -1, -1):
        scale = cum[b] / float(m)
        g_hi = hi[b] / scale
        if lo[b] == hi[b]:
            s_hi = min(s_hi, g_hi)
        elif lo[b] / scale < s_hi:
            needed[b] = True
            s_hi = min(s_hi, g_hi)
    return needed


def bh_over_chunks(chunks: Callable[[], Iterable], budget: int = 20_000_000, bits: int = 12) -> BHStepFunction:
    """Benjamini-Hochberg q-values over every p-value of every chunk, in a few streaming passes.

    Parameters
    ----------
    chunks : callable
        ``chunks()`` returns an iterable of p-value arrays (any shape; NaN =
        not tested, not counted); called once per pass, it must give the same
        values each time.
    budget : int
        Most p-values held at once in the collecting pass (8 bytes each).
    bits : int
        Mantissa bits resolved per counting pass (bins of relative width
        ``2^-bits``; ``2^(12 + bits)`` bins at most).

    Returns
    -------
    BHStepFunction
        ``step(p)`` equals ``multipletests(all_p, method="fdr_bh")[1]`` at
        the chunk's positions.

    Notes
    -----
    Memory is O(occupied bins + ``budget``), not O(tests).  Each counting
    pass is a sort of each chunk's p-values; the usual case takes two passes
    (count, collect) plus one refinement when the p-values are dense.
    """
    shift = 52 - bits
    start, end, counts, lo, hi = _histogram(chunks, None, None, shift)
    passes = 1
    m = int(counts.sum())
    if m == 0:
        return BHStepFunction(np.zeros(0), np.zeros(0), 0, passes)
    while True:
        needed = _plan(counts, lo, hi, m)
        if counts[needed].sum() <= budget or shift == 0:
            break
        shift = max(shift - bits, 0)
        sub = _histogram(chunks, start[needed], end[needed], shift)
        passes += 1
        keep = ~needed
        start, end, counts, lo, hi = (np.r_[a[keep], b] for a, b in zip((start, end, counts, lo, hi), sub))
        order = np.argsort(start, kind="stable")
        start, end, counts, lo, hi = start[order], end[order], counts[order], lo[order], hi[order]
    values = np.zeros(0)
    if needed.any():
        parts = []
        n_start, n_end = start[needed], end[needed]
        for chunk in chunks():
            p = _finite(chunk)
            b = p.view(np.uint64)
            at = np.searchsorted(n_start, b, side="right") - 1
            parts.append(p[(at >= 0) & (b < n_end[np.maximum(at, 0)])])
        passes += 1
        values = np.sort(np.concatenate(parts)) if parts else values
    # The exact walk from the largest p down.
    cum = np.cumsum(counts)
    step_start, step_q = [], []
    s = 1.0
    offsets = np.searchsorted(values, lo[needed], side="left") if values.size else np.zeros(0, int)
    which = np.cumsum(needed) - 1
    for b in range(counts.size - 1, -1, -1):
        if lo[b] == hi[b]:
            s = min(s, hi[b] / (cum[b] / float(m)))
            step_start.append([lo[b]])
            step_q.append([s])
        elif not needed[b]:
            step_start.append([lo[b]])
            step_q.append([s])
        else:
            first = offsets[which[b]]
            v = values[first:first + counts[b]]
            distinct = np.unique(v)
            # R(t) for each distinct t: values <= t before the bin, plus those in it.
            r = (cum[b] - counts[b]) + np.searchsorted(v, distinct, side="right")
            f = distinct / (r / float(m))
            q = np.minimum(np.minimum.accumulate(f[::-1])[::-1], s)
            s = float(q[0])
            step_start.append(distinct[::-1])
            step_q.append(q[::-1])
    starts = np.concatenate(step_start)[::-1]
    q_at = np.concatenate(step_q)[::-1]
    # Most neighbouring p-values share their q (the running minimum is flat over long stretches):
    # keep each run's first and last p only. The function is the same, the largest p with q below a
    # level is still a start, and the step function shrinks ~70-fold, so the jobs that apply it
    # (one per chunk) need memory for the runs, not for every test.
    change = q_at[1:] != q_at[:-1]
    keep = np.r_[True, change] | np.r_[change, True]
    return BHStepFunction(starts[keep], q_at[keep], m, passes)
