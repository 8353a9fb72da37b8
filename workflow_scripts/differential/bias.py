"""The compositional bias of log-ratio effects: the mode across taxa, and how it varies with abundance.

A change in a few taxa moves every taxon's share, so every log-ratio effect
carries a common shift. LinDA estimates it by the mode of the effects across
taxa (:func:`workflow_scripts.differential.linda.kde_mode`), since most taxa
do not change. The bias is not the same for every taxon: rare taxa, close to
the detection limit, react to dilution differently from abundant ones (zeros
stay zeros). :func:`local_mode` therefore takes the mode among the taxa of
similar abundance. :func:`kde_modes` is the same estimator batched over many
rows (windows, label swaps), so the calibration's swaps cost one call.
"""

from __future__ import annotations

import numpy as np

#: Mean-shift stops when every row's step is below this fraction of its bandwidth.
TOLERANCE = 1e-10


def kde_modes(values) -> np.ndarray:
    """:func:`~workflow_scripts.differential.linda.kde_mode` of every row of ``values``, batched.

    Parameters
    ----------
    values : array_like, shape (r, m)
        Rows of finite values (m >= 2).

    Returns
    -------
    ndarray, shape (r,)

    Notes
    -----
    Per row: bandwidth ``bw.nrd0`` (:func:`bandwidth_nrd0`), start at the
    shorth, mean-shift ascent of the Gaussian kernel density, exactly as
    :func:`kde_mode` does one row.
    """
    x = np.sort(np.asarray(values, dtype=float), axis=1)
    r, m = x.shape
    sd = x.std(axis=1, ddof=1)
    q75, q25 = np.percentile(x, [75, 25], axis=1)
    lo = np.minimum(sd, (q75 - q25) / 1.34)
    lo = np.where(lo > 0, lo, np.where(sd > 0, sd, np.where(x[:, 0] != 0, np.abs(x[:, 0]), 1.0)))
    h = 0.9 * lo * m ** -0.2
    # shorth: mean of the shortest interval holding m // 2 + 1 sorted values
    half = m // 2 + 1
    widths = x[:, half - 1:] - x[:, : m - half + 1]
    start = widths.argmin(axis=1)
    sums = np.concatenate([np.zeros((r, 1)), np.cumsum(x, axis=1)], axis=1)
    rows = np.arange(r)
    t = (sums[rows, start + half] - sums[rows, start]) / half
    active = np.ones(r, bool)
    for _ in range(10_000):
        w = np.exp(-0.5 * ((x[active] - t[active, None]) / h[active, None]) ** 2)
        new = (w * x[active]).sum(axis=1) / w.sum(axis=1)
        done = np.abs(new - t[active]) < TOLERANCE * h[active]
        t[active] = new
        index = np.flatnonzero(active)
        active[index[done]] = False
        if not active.any():
            break
    return t


def local_mode(estimates, abundance, use, min_taxa: int = 100, window: float = 0.3,
               n_grid: int = 15) -> np.ndarray:
    """The compositional bias of every taxon: the mode of the estimates of taxa of similar abundance.

    Parameters
    ----------
    estimates : array_like, shape (p,) or (R, p)
        One effect per taxon (per replicate).
    abundance : array_like, shape (p,)
        Log mean relative abundance of each taxon (orders the windows).
    use : array_like of bool, shape (p,)
        Taxa whose estimate enters the modes (finite in every replicate).
    min_taxa : int
        With fewer usable taxa, the global mode of all of them.
    window : float
        Fraction of the usable taxa in each window (at least 30 taxa).
    n_grid : int
        Windows centred at this many equally spaced abundance quantiles.

    Returns
    -------
    ndarray, same shape as ``estimates``
        The bias of every taxon (also of those not used), to be subtracted.

    Notes
    -----
    The usable taxa are sorted by abundance; each window holds the
    ``max(30, window * m)`` taxa nearest in abundance rank to a grid quantile,
    its mode is the :func:`kde_modes` of their estimates, and the bias of a
    taxon is the modes linearly interpolated at its abundance (constant
    beyond the extreme windows). With fewer than ``min_taxa`` usable taxa this
    is LinDA's global mode; with two or fewer, zero.
    """
    b = np.asarray(estimates, dtype=float)
    single = b.ndim == 1
    B = b[None] if single else b
    abundance = np.asarray(abundance, dtype=float)
    index = np.flatnonzero(np.asarray(use, dtype=bool))
    m = len(index)
    if m <= 2:
        out = np.zeros_like(B)
    elif m < min_taxa:
        out = np.repeat(kde_modes(B[:, index])[:, None], B.shape[1], axis=1)
    else:
        order = index[np.argsort(abundance[index], kind="stable")]
        size = max(30, int(window * m))
        centres = np.round(np.linspace(0, 1, n_grid) * (m - 1)).astype(int)
        starts = np.clip(centres - size // 2, 0, m - size)
        windows = order[starts[:, None] + np.arange(size)[None, :]]  # (n_grid, size)
        modes = kde_modes(B[:, windows].reshape(-1, size)).reshape(B.shape[0], n_grid)
        where = abundance[order[centres]]
        out = np.stack([np.interp(abundance, where, row) for row in modes])
    return out[0] if single else out

