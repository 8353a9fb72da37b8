"""PERMDISP (homogeneity of multivariate dispersions), equal to R's ``vegan::betadisper`` + ``permutest``.

:func:`dispersion_distances` gives every sample's distance to its group centre
(``betadisper(d, group, type)$distances``) and :func:`permdisp` the ANOVA F of
those distances with a permutation p-value (``permutest(betadisper(...))``).

How it is fast: the distances to the centres are computed once, from one
eigendecomposition; a permutation only reorders the ANOVA residuals, and all
permutations go through one ``B x n`` by ``n x k`` product of permuted
residuals and group indicators. scikit-bio 0.7 instead recomputes the
centres and the distances for every permutation of the labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import blas

from .pcoa import pcoa_axes
from .permanova import (
    BATCH_BYTES,
    COLUMNS,
    P_EPS,
    aligned_labels,
    checked_permutations,
    distance_array,
    refuse,
)

TOL = float(np.sqrt(np.finfo(float).eps))
"""vegan's ``sqrt(.Machine$double.eps)``: eigenvalue cut-off and optim's ``reltol``."""
BFGS_MAXIT = 100
"""``optim(method = "BFGS")`` default ``maxit``."""
_STEPREDN, _ACCTOL, _RELTEST = 0.2, 1e-4, 10.0  # constants of R's vmmin (src/appl/optim.c)


def kept_axes(eigenvalues: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the positive and of the negative axes vegan keeps."""
    cut = max(TOL, TOL * eigenvalues[0]) if len(eigenvalues) else TOL
    want = np.abs(eigenvalues) > cut
    return np.flatnonzero(want & (eigenvalues > 0)), np.flatnonzero(want & (eigenvalues < 0))


def vmmin(x0: np.ndarray, fn, gr, maxit: int = BFGS_MAXIT, reltol: float = TOL) -> np.ndarray:
    """R's ``optim(x0, fn, gr, method = "BFGS")`` (C routine ``vmmin``), step for step.

    Parameters
    ----------
    x0 : numpy.ndarray
        Starting point.
    fn, gr : callable
        Objective and its gradient.
    maxit, reltol : int, float
        optim's defaults (100 and :math:`\\sqrt{\\text{eps}}`); ``abstol`` is -Inf.

    Returns
    -------
    numpy.ndarray
        ``optim(...)$par``.

    Notes
    -----
    vegan's spatial median is whatever this BFGS returns, not the exact
    minimiser (it stops once the objective changes by less than ``reltol``
    relative), so matching vegan means following the same iterations: backtracking
    by 0.2 from step 1 until the Armijo condition with 1e-4 holds, the BFGS
    update of the inverse Hessian, resets to the identity on a non-descent
    direction or a failed curvature condition, and the same stopping rules.
    As in R only the lower triangle of the inverse Hessian is kept; it is
    updated in place by BLAS ``dsyr``/``dsyr2`` (one ``p x p`` array).
    """
    b = np.array(x0, dtype=float)
    n = len(b)
    if n == 0:
        return b
    f = fn(b)
    if not np.isfinite(f):
        raise ValueError("initial value in 'vmmin' is not finite")
    fmin = f
    gradcount = 1
    g = gr(b)
    iteration = 1
    ilast = gradcount
    hessian = np.zeros((n, n), order="F")  # lower triangle used
    while True:
        if ilast == gradcount:
            hessian.fill(0.0)
            np.fill_diagonal(hessian, 1.0)
        start, gprev = b.copy(), g.copy()
        direction = blas.dsymv(-1.0, hessian, g, lower=1)
        gradproj = float(direction @ g)
        if gradproj < 0.0:  # downhill
            step, accepted = 1.0, False
            while True:
                b = start + step * direction
                count = int(np.count_nonzero(_RELTEST + start == _RELTEST + b))
                if count < n:
                    f = fn(b)
                    accepted = bool(np.isfinite(f) and f <= fmin + gradproj * step * _ACCTOL)
                    if not accepted:
                        step *= _STEPREDN
                if count == n or accepted:
                    break
            if not abs(f - fmin) > reltol * (abs(fmin) + reltol):  # relative change too small
                count = n
                fmin = f
            if count < n:  # progress: BFGS update
                fmin = f
                g = gr(b)
                gradcount += 1
                iteration += 1
                direction *= step
                change = g - gprev
                d1 = float(direction @ change)
                if d1 > 0:  # B += (d2 t t' - Bc t' - t (Bc)') / d1
                    hc = blas.dsymv(1.0, hessian, change, lower=1)
                    d2 = 1.0 + float(hc @ change) / d1
                    hessian = blas.dsyr(d2 / d1, direction, lower=1, a=hessian, overwrite_a=1)
                    hessian = blas.dsyr2(-1.0 / d1, hc, direction, lower=1, a=hessian, overwrite_a=1)
                else:
                    ilast = gradcount
            elif ilast < gradcount:  # no progress: one more try from the identity
                count = 0
                ilast = gradcount
        else:  # uphill: reset unless just reset
            count = 0
            if ilast == gradcount:
                count = n
            else:
                ilast = gradcount
        if iteration >= maxit:
            break
        if gradcount - ilast > 2 * n:
            ilast = gradcount  # periodic restart
        if count == n and ilast == gradcount:
            break
    return b


def spatial_median(points: np.ndarray) -> np.ndarray:
    """vegan's spatial median of the rows of ``points`` (``ordimedian``).

    Parameters
    ----------
    points : numpy.ndarray
        ``m x p`` coordinates.

    Returns
    -------
    numpy.ndarray
        ``p`` coordinates: BFGS (:func:`vmmin`) on the sum of Euclidean
        distances :math:`\\sum_i \\lVert x_i - c \\rVert`, started at the
        coordinate-wise median.
    """
    if points.shape[1] == 0:
        return np.empty(0)

    def objective(c):
        diff = points - c
        return float(np.sum(np.sqrt(np.einsum("ij,ij->i", diff, diff))))

    def gradient(c):
        diff = c - points
        with np.errstate(divide="ignore", invalid="ignore"):  # c on a point: NaN, as in R
            diff /= np.sqrt(np.einsum("ij,ij->i", diff, diff))[:, None]
        return diff.sum(axis=0)

    return vmmin(np.median(points, axis=0), objective, gradient)


def _centres_distances(vectors, columns, codes, k, test):
    """Squared distances of every sample to its group centre on the given axes."""
    out = np.zeros(len(codes))
    if len(columns) == 0:
        return out
    for group in range(k):
        members = np.flatnonzero(codes == group)
        points = vectors[np.ix_(members, columns)]
        centre = points.mean(axis=0) if test == "centroid" else spatial_median(points)
        points -= centre
        out[members] = np.einsum("ij,ij->i", points, points)
    return out


def _betadisper(array: np.ndarray, codes: np.ndarray, k: int, test: str, axes=None) -> tuple[np.ndarray, int]:
    """vegan's ``betadisper(...)$distances`` and how many negative squared distances became 0."""
    if test not in ("median", "centroid"):
        raise ValueError(f"test={test!r}; use 'median' or 'centroid'")
    vectors, values = pcoa_axes(array) if axes is None else axes
    positive, negative = kept_axes(values)
    # vegan takes the centres on the real and on the imaginary axes separately; the
    # squared distance is the real part minus the imaginary part
    squared = _centres_distances(vectors, positive, codes, k, test)
    squared -= _centres_distances(vectors, negative, codes, k, test)
    clipped = int(np.count_nonzero(squared < 0))
    return np.sqrt(np.maximum(squared, 0.0)), clipped  # vegan: Re(sqrt(as.complex(.))) = 0


def _groups(distances, groups, ids):
    """Distance array, ids, integer group codes (sorted levels) and the number of groups."""
    array, ids = distance_array(distances, ids)
    labels = aligned_labels(groups, pd.DataFrame(index=ids), ids, "groups")
    levels, codes = np.unique(labels.astype(str), return_inverse=True)
    if len(levels) < 2:
        refuse(f"groups has {len(levels)} level(s)", "PERMDISP needs two or more groups")
    if len(ids) <= len(levels):
        refuse(f"{len(ids)} samples for {len(levels)} groups", "give more samples than groups")
    return array, ids, codes, len(levels)


def dispersion_distances(distances, groups, test: str = "median", ids=None) -> pd.Series:
    """Distance of every sample to its group centre, ``vegan::betadisper(d, groups, type)$distances``.

    Parameters
    ----------
    distances : skbio.DistanceMatrix, pandas.DataFrame or numpy.ndarray
        ``n x n`` dissimilarities (with ``ids`` when an ndarray).
    groups : pandas.Series or array-like
        Group per sample (a Series is aligned by sample id).
    test : {"median", "centroid"}
        Spatial median (vegan's default) or centroid.
    ids : sequence of str, optional
        Sample ids of an ndarray ``distances``.

    Returns
    -------
    pandas.Series
        Indexed by sample id; ``attrs["clipped"]`` counts negative squared
        distances set to 0 (vegan warns about them).
    """
    array, ids, codes, k = _groups(distances, groups, ids)
    z, clipped = _betadisper(array, codes, k, test)
    out = pd.Series(z, index=pd.Index(ids, name="sample_id"), name="distance_to_centre")
    out.attrs["clipped"] = clipped
    return out


def _anova(z: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.float64, np.float64]:
    """Between-groups and residual sums of squares of the one-way ANOVA of ``z``."""
    sizes = np.bincount(codes, minlength=k)
    means = np.bincount(codes, weights=z, minlength=k) / sizes
    between = np.sum(sizes * (means - z.mean()) ** 2)  # numpy floats: 0/0 is NaN, not an exception
    residual = np.sum((z - means[codes]) ** 2)
    return between, residual


def permuted_f(residuals: np.ndarray, codes: np.ndarray, k: int, perms: np.ndarray,
               batch_bytes: int = BATCH_BYTES) -> np.ndarray:
    """ANOVA F of the permuted residuals, ``permutest.betadisper``'s ``F.perm``.

    Parameters
    ----------
    residuals : numpy.ndarray
        ``z`` minus its group means.
    codes : numpy.ndarray
        Group code per sample, ``0 .. k-1``.
    k : int
        Number of groups.
    perms : numpy.ndarray
        ``B x n``; row ``b`` puts ``residuals[perms[b, i]]`` at sample ``i``.
    batch_bytes : int
        Memory for one batch of permuted residuals.

    Returns
    -------
    numpy.ndarray
        ``B`` statistics.

    Notes
    -----
    With :math:`S_g` the sum of the permuted residuals in group :math:`g`,
    the fitted sum of squares is :math:`\\sum_g S_g^2/n_g - (\\sum_g S_g)^2/n`
    and the residual one :math:`\\sum_i r_i^2 - \\sum_g S_g^2/n_g` (a
    permutation keeps :math:`\\sum r_i^2`), so the group sums of all
    permutations, one ``B x n`` by ``n x k`` product, give every F.
    """
    n = len(residuals)
    sizes = np.bincount(codes, minlength=k).astype(float)
    indicator = np.zeros((n, k))
    indicator[np.arange(n), codes] = 1.0
    total = float(residuals @ residuals)
    out = np.empty(len(perms))
    per_batch = max(1, batch_bytes // (8 * n))
    for start in range(0, len(perms), per_batch):
        sums = residuals[perms[start : start + per_batch]] @ indicator  # b x k
        within = np.sum(sums**2 / sizes, axis=1)
        fitted = within - sums.sum(axis=1) ** 2 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + len(sums)] = (fitted / (k - 1)) / ((total - within) / (n - k))
    return out


def permdisp(
    distances, groups, permutations=999, seed=1, test: str = "median", ids=None, axes=None
) -> pd.DataFrame:
    """Homogeneity of multivariate dispersions (PERMDISP), as ``vegan::betadisper`` + ``permutest``.

    Parameters
    ----------
    distances : skbio.DistanceMatrix, pandas.DataFrame or numpy.ndarray
        ``n x n`` dissimilarities (with ``ids`` when an ndarray).
    groups : pandas.Series or array-like
        Group per sample (a Series is aligned by sample id).
    permutations : int or array-like
        Number of free permutations (:func:`~.permutations.permutation_matrix`
        with ``seed``), or an explicit ``B x n`` zero-based matrix; vegan's
        ``permutest(b, permutations = perms + 1)`` then gives the same p-value.
    seed : int or numpy.random.Generator
        Seed of ``numpy.random.default_rng`` for the permutations.
    test : {"median", "centroid"}
        Distances to the group spatial median (vegan's default
        ``type = "median"``) or to the centroid.
    ids : sequence of str, optional
        Sample ids of an ndarray ``distances``.
    axes : tuple of numpy.ndarray, optional
        :func:`~.pcoa.pcoa_axes` of ``distances`` (in the same sample order),
        when already computed for the ordination.

    Returns
    -------
    pandas.DataFrame
        One row with the columns of :func:`~.permanova.permanova`: ``term``
        (the groups' name, or ``"groups"``), ``df`` = groups - 1,
        ``sum_of_squares`` (between groups, ``anova(betadisper)``'s "Sum Sq"),
        ``r2`` (NaN: vegan reports none), ``pseudo_f`` and ``p_value``.
        ``attrs`` holds ``f_perm``, ``n_permutations``, ``residual_df``,
        ``residual_sum_of_squares`` and ``clipped`` (see
        :func:`dispersion_distances`).

    Notes
    -----
    As vegan 2.6 with ``bias.adjust = FALSE``:

    1. PCoA of the Gower-centred matrix on all axes with
       :math:`|\\lambda| > \\sqrt{\\epsilon}\\max(1, \\lambda_1)`, each scaled by
       :math:`\\sqrt{|\\lambda|}`; non-Euclidean dissimilarities such as
       Bray-Curtis have negative eigenvalues, i.e. imaginary axes.
    2. Per group a centre on the real axes and one on the imaginary axes:
       their means, or spatial medians by vegan's BFGS (:func:`spatial_median`).
    3. :math:`z_i = \\sqrt{d^2_{+,i} - d^2_{-,i}}` from the squared distances to
       the centre on the real and on the imaginary axes (0 when negative).
    4. :math:`F` of the one-way ANOVA of :math:`z` on the groups.
    5. Each permutation reorders the residuals :math:`z - \\bar z_{g}` and
       refits (:func:`permuted_f`);
       :math:`p = (1 + \\#\\{F^\\pi \\ge F - \\sqrt\\epsilon\\})/(1 + B)`.

    With ``test="median"`` the agreement with vegan is to rounding in most
    cases, but vegan's BFGS ends in a line search at rounding level, so the
    distances can differ by ~1e-8 (vegan differs from itself as much when the
    samples are reordered); the p-value is unaffected unless a permuted F
    lies that close to the observed one.

    scikit-bio's ``permdisp`` differs: it drops the imaginary axes (so its
    :math:`z` and F differ for non-Euclidean input) and permutes the group
    labels, recomputing the centres every time, which is slower and gives a
    different (label-permutation) null distribution.

    References
    ----------
    Anderson, M. J. (2006). Distance-based tests for homogeneity of
    multivariate dispersions. Biometrics 62, 245-253.
    Oksanen, J. et al. vegan: Community Ecology Package (``betadisper``,
    ``permutest.betadisper``).
    """
    array, ids, codes, k = _groups(distances, groups, ids)
    explicit = np.ndim(permutations) != 0  # check a given matrix first; draw one after the eigendecomposition
    perms = checked_permutations(permutations, len(ids), None, seed) if explicit else None
    z, clipped = _betadisper(array, codes, k, test, axes)
    if perms is None:
        perms = checked_permutations(permutations, len(ids), None, seed)
    between, residual = _anova(z, codes, k)
    residual_df = len(ids) - k
    with np.errstate(divide="ignore", invalid="ignore"):  # identical z: NaN, as R's lm
        f_obs = (between / (k - 1)) / (residual / residual_df)
    means = np.bincount(codes, weights=z, minlength=k) / np.bincount(codes, minlength=k)
    f_perm = permuted_f(z - means[codes], codes, k, perms)
    p = (np.sum(f_perm >= f_obs - P_EPS) + 1.0) / (len(f_perm) + 1.0) if not np.isnan(f_obs) else np.nan
    name = groups.name if isinstance(groups, pd.Series) and groups.name is not None else "groups"
    table = pd.DataFrame(
        {"term": [str(name)], "df": [k - 1], "sum_of_squares": [float(between)], "r2": [np.nan],
         "pseudo_f": [float(f_obs)], "p_value": [float(p)]},
        columns=COLUMNS,
    )
    table.attrs.update(f_perm=f_perm, n_permutations=len(perms), residual_df=residual_df,
                       residual_sum_of_squares=float(residual), clipped=clipped)
    return table
