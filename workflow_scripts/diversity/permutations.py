"""Restricted permutations for permutation tests, as ``permute::shuffleSet``.

A permutation is a row of integers ``perm`` of length ``n``: position ``i``
receives sample ``perm[i]`` (0-based). This is the convention of the
permutation matrices of the R package ``permute`` (there 1-based), so a matrix
made here can be handed to ``vegan::adonis2(..., permutations = perm + 1)``
and the other way round.

With strata (``permute::how(blocks = strata)``) samples are shuffled freely
*within* each stratum and never across; the strata themselves stay in place,
and a stratum of one sample keeps its sample.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

MINPERM = 5040
"""``permute::how(minperm=)``: below this many distinct permutations all are used."""


def stratum_codes(strata, n: int) -> np.ndarray:
    """Integer code per sample of its stratum; one stratum when ``strata`` is None.

    Parameters
    ----------
    strata : array-like of hashable or None
        Stratum label per sample, in sample order.
    n : int
        Number of samples.

    Returns
    -------
    numpy.ndarray
        ``int64`` codes ``0 .. k-1`` of length ``n``.
    """
    if strata is None:
        return np.zeros(n, dtype=np.int64)
    labels = pd.Series(np.asarray(strata, dtype=object))
    if len(labels) != n:
        raise ValueError(f"strata has {len(labels)} labels for {n} samples; give one label per sample")
    if labels.isna().any():
        raise ValueError("strata has missing labels; give every sample a stratum (a singleton is fine)")
    codes, _ = pd.factorize(labels, sort=True)
    return codes.astype(np.int64)


def count_permutations(codes: np.ndarray, cap: int | None = None) -> int:
    """Number of distinct within-stratum permutations, the identity included.

    Parameters
    ----------
    codes : numpy.ndarray
        Stratum code per sample (:func:`stratum_codes`).
    cap : int, optional
        Stop multiplying once the count exceeds ``cap`` and return it (the
        count for 4,000 free samples has 12,674 digits and is not needed).

    Returns
    -------
    int

    Notes
    -----
    The count is :math:`\\prod_s n_s!` over strata of sizes :math:`n_s`, as
    ``permute::numPerms`` for free permutation within blocks.
    """
    if cap is None:
        return math.prod(math.factorial(int(size)) for size in np.bincount(codes))
    total = 1
    for size in np.bincount(codes):
        for factor in range(2, int(size) + 1):
            total *= factor
            if total > cap:
                return total
    return total


def all_permutations(codes: np.ndarray) -> np.ndarray:
    """Every within-stratum permutation except the identity, as ``permute::allPerms``.

    Parameters
    ----------
    codes : numpy.ndarray
        Stratum code per sample; the number of permutations must be small.

    Returns
    -------
    numpy.ndarray
        ``(count - 1, n)`` matrix of permutations (rows), identity removed.
    """
    n = len(codes)
    rows = np.arange(n)[None, :]
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        if len(members) < 2:
            continue
        block = np.array(list(itertools.permutations(members)))
        rows = np.repeat(rows, len(block), axis=0)
        rows[:, members] = np.tile(block, (len(rows) // len(block), 1))
    return rows[1:]  # itertools yields the identity first, so row 0 is it


def shuffle_within(codes: np.ndarray, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """Random permutations, each free within strata, vectorised over permutations.

    Parameters
    ----------
    codes : numpy.ndarray
        Stratum code per sample.
    n_perm : int
        Number of permutations (rows).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        ``(n_perm, n)`` matrix of permutations.

    Notes
    -----
    Each row draws one uniform key :math:`u \\in [0, 1)` per sample and sorts
    samples by :math:`c + u/2` with :math:`c` the stratum code, i.e. by
    (stratum, key). Sorting by stratum alone gives the slots of every stratum;
    the ``k``-th slot receives the ``k``-th sample of the random order, which
    belongs to the same stratum. Within a stratum every ordering is equally
    likely, independently across strata and rows: ``permute::shuffle`` with
    ``how(blocks = strata)`` and free permutation within blocks.
    """
    n = len(codes)
    keys = codes + 0.5 * rng.random((n_perm, n))  # never reaches the next stratum's code
    order = np.argsort(keys, axis=1)
    slots = np.argsort(codes, kind="stable")
    perms = np.empty_like(order)
    perms[:, slots] = order
    return perms


def permutation_matrix(
    n: int, permutations: int, strata=None, seed=1, minperm: int = MINPERM
) -> np.ndarray:
    """The permutations a test uses, chosen as ``permute::shuffleSet`` does.

    Parameters
    ----------
    n : int
        Number of samples.
    permutations : int
        Number of permutations asked for.
    strata : array-like or None
        Stratum label per sample; permutations stay within strata.
    seed : int or numpy.random.Generator
        Seed for ``numpy.random.default_rng``.
    minperm : int
        Enumerate every permutation when fewer than this many exist.

    Returns
    -------
    numpy.ndarray
        ``(n_perm, n)`` permutations; ``n_perm`` can be smaller than asked.

    Notes
    -----
    As ``permute::check``: when the number of distinct permutations other than
    the identity, :math:`N - 1 = \\prod_s n_s! - 1`, is at most
    ``max(permutations, minperm)``, all of them are listed; if that is more
    than asked for, ``permutations`` rows are drawn from the list without
    replacement. Otherwise rows are drawn at random (with possible repeats and
    identities, as in permute). The p-value denominator is then
    ``n_perm + 1`` with the number actually used. Only the random stream
    differs from R: numpy's generator, not R's ``sample``.

    References
    ----------
    Simpson, G. L. permute: Functions for Generating Restricted Permutations
    of Data (``how``, ``shuffleSet``, ``check``, ``allPerms``).
    Anderson, M. J. & ter Braak, C. J. F. (2003). Permutation tests for
    multi-factorial analysis of variance. Journal of Statistical Computation
    and Simulation 73, 85-113.
    """
    rng = np.random.default_rng(seed)
    codes = stratum_codes(strata, n)
    limit = max(int(permutations), minperm)
    if count_permutations(codes, cap=limit + 1) - 1 <= limit:
        every = all_permutations(codes)
        if len(every) > permutations:
            every = every[rng.choice(len(every), size=int(permutations), replace=False)]
        return every
    return shuffle_within(codes, int(permutations), rng)


def within_strata(perms: np.ndarray, strata) -> bool:
    """True when every permutation keeps every sample inside its stratum."""
    perms = np.atleast_2d(perms)
    codes = stratum_codes(strata, perms.shape[1])
    return bool(np.all(codes[perms] == codes))
