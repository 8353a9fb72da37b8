"""PERMANOVA on a distance matrix, equal to R's ``vegan::adonis2``.

:func:`permanova` returns the adonis2 table (sequential or marginal sums of
squares, R², pseudo-F and permutation p-values) for a design with several
terms, optionally with permutations restricted to strata (the household in
the iMSMS pairing). PERMDISP (homogeneity of dispersions) is in :mod:`.permdisp`.

How it is fast: the Gower-centred matrix :math:`G = -\\tfrac12 J D^{(2)} J`
is formed once; the design enters only through an orthonormal basis whose
columns are ordered by term, so each term's sum of squares under a
permutation is a sum of quadratic forms :math:`u^\\top G u` of permuted basis
columns. All permutations of a batch are stacked into one matrix and pushed
through a single ``G @ U`` product, with no Python loop over permutations.
When the strata are pairs (households; singletons allowed) a permutation is a
set of swaps, and the same forms come from an ``n/2``-sided matrix at a
quarter of the cost (:func:`paired_forms`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from ..errors import InputError, Problem
from .permutations import permutation_matrix, stratum_codes, within_strata

COLUMNS = ["term", "df", "sum_of_squares", "r2", "pseudo_f", "p_value"]
ALIAS_TOL = 1e-7
"""Tolerance of R's ``qr()`` (LINPACK ``dqrdc2``): a column whose part not
explained by the earlier columns has a norm below this fraction of its own
norm is aliased and dropped."""
P_EPS = float(np.sqrt(np.finfo(float).eps))
"""vegan counts ``F_perm >= F_obs - sqrt(.Machine$double.eps)``."""
BATCH_BYTES = 64 * 2**20
"""Memory for one batch of permuted basis columns (and as much for ``G @ U``)."""
WHERE = "PERMANOVA input"


def refuse(message: str, fix: str, column: str | None = None, item: str | None = None):
    """Raise the :class:`~workflow_scripts.errors.InputError` of a bad PERMANOVA or PERMDISP input."""
    raise InputError([Problem(WHERE, message, fix, column=column, item=item)])


def formula(terms) -> str:
    """R's right-hand side for ``terms``, e.g. ``'status + sex + age'``.

    Parameters
    ----------
    terms : sequence of str
        Design columns in model order.

    Returns
    -------
    str
        The terms joined by ``' + '``, as in ``adonis2(d ~ status + sex + age)``.
    """
    return " + ".join(str(term) for term in terms)


def distance_array(distances, ids=None) -> tuple[np.ndarray, list[str]]:
    """The square distance array and its sample ids from any accepted form.

    Parameters
    ----------
    distances : skbio.DistanceMatrix, pandas.DataFrame or numpy.ndarray
        Square symmetric non-negative distances. A DataFrame carries its ids
        in its index; an ndarray needs ``ids``.
    ids : sequence of str, optional
        Sample ids in row order, for an ndarray (or to override).

    Returns
    -------
    (numpy.ndarray, list of str)
    """
    if hasattr(distances, "ids") and hasattr(distances, "data"):  # skbio.DistanceMatrix
        array, found = np.asarray(distances.data, dtype=float), list(distances.ids)
    elif isinstance(distances, pd.DataFrame):
        array, found = distances.to_numpy(dtype=float), [str(i) for i in distances.index]
    else:
        array, found = np.asarray(distances, dtype=float), None
    ids = [str(i) for i in ids] if ids is not None else found
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        refuse(f"distances have shape {array.shape}, not square", "pass an n x n distance matrix")
    if ids is None or len(ids) != len(array):
        refuse("distances come without one id per row", "pass ids=, or a skbio.DistanceMatrix")
    if not np.all(np.isfinite(array)):
        refuse("distances contain NaN or infinite values", "recompute the distance matrix")
    scale = float(np.max(array)) if array.size else 0.0
    if np.any(array < -ALIAS_TOL) or np.max(np.abs(array - array.T), initial=0.0) > 1e-8 * scale:
        refuse("distances are negative or not symmetric", "pass a proper dissimilarity matrix")
    return array, ids


def gower_centre(distances: np.ndarray) -> np.ndarray:
    """Gower-centred matrix of a distance matrix.

    Parameters
    ----------
    distances : numpy.ndarray
        ``n x n`` distances :math:`d_{ij}`.

    Returns
    -------
    numpy.ndarray
        :math:`G = -\\tfrac12 J A J` with :math:`a_{ij} = d_{ij}^2` and
        :math:`J = I - \\tfrac1n 1 1^\\top`.

    Notes
    -----
    Computed in place on one ``n x n`` array as
    :math:`g_{ij} = a_{ij} - \\bar a_{i\\cdot} - \\bar a_{\\cdot j} + \\bar a_{\\cdot\\cdot}`
    after :math:`a_{ij} = -\\tfrac12 d_{ij}^2`. The trace of :math:`G` is the
    total sum of squares :math:`\\tfrac1n \\sum_{i<j} d_{ij}^2`.

    References
    ----------
    Gower, J. C. (1966). Some distance properties of latent root and vector
    methods used in multivariate analysis. Biometrika 53, 325-338.
    """
    centred = np.square(distances)
    centred *= -0.5
    row = centred.mean(axis=1)
    centred -= row[:, None]
    centred -= row[None, :]  # symmetric, so column means equal row means
    centred += row.mean()
    return centred


def design_matrix(design: pd.DataFrame, terms) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Treatment-coded model matrix without intercept, like R's ``model.matrix``.

    Parameters
    ----------
    design : pandas.DataFrame
        One row per sample; the ``terms`` columns are used.
    terms : sequence of str
        Columns in model order.

    Returns
    -------
    X : numpy.ndarray
        ``n x m`` float matrix.
    assign : numpy.ndarray
        Index into ``terms`` of every column of ``X`` (R's ``assign``).
    names : list of str
        Column names in R's style: ``age``, ``siteboston``.

    Notes
    -----
    Numeric columns enter as they are. Any other column (text, boolean,
    categorical) is a factor coded with treatment contrasts: one 0/1 column
    per level except the first. Levels are the pandas ``Categorical`` order
    when the column is categorical, else sorted (code-point order, which is
    R's order in the C locale), keeping only levels that occur.
    """
    blocks, assign, names = [], [], []
    for index, term in enumerate(terms):
        column = design[term]
        if ptypes.is_numeric_dtype(column) and not ptypes.is_bool_dtype(column):
            blocks.append(column.to_numpy(dtype=float)[:, None])
            names.append(str(term))
            assign.append(index)
            continue
        if isinstance(column.dtype, pd.CategoricalDtype):
            present = set(column.dropna().unique())
            levels = [level for level in column.cat.categories if level in present]
        else:
            levels = sorted(column.dropna().unique())
        values = column.to_numpy(dtype=object)
        for level in levels[1:]:
            blocks.append((values == level).astype(float)[:, None])
            names.append(f"{term}{level}")
            assign.append(index)
    n = len(design)
    matrix = np.hstack(blocks) if blocks else np.empty((n, 0))
    return matrix, np.asarray(assign, dtype=int), names


def nested_basis(matrix: np.ndarray, assign: np.ndarray, tol: float = ALIAS_TOL):
    """Orthonormal basis of the centred design, nested by term, aliased columns dropped.

    Parameters
    ----------
    matrix : numpy.ndarray
        ``n x m`` model matrix (no intercept), columns grouped by term.
    assign : numpy.ndarray
        Term index of every column.
    tol : float
        Aliasing tolerance, as R's ``qr(tol = 1e-7)``.

    Returns
    -------
    basis : numpy.ndarray
        ``n x r`` with orthonormal columns; the first ``k`` span the first
        ``k`` kept (centred) columns of ``matrix``.
    kept_assign : numpy.ndarray
        Term index of every basis column.

    Notes
    -----
    With :math:`X_c = X - 1\\bar x^\\top = QR` (Householder QR), a column
    :math:`j` is aliased when :math:`|R_{jj}| < \\mathrm{tol}\\,\\lVert x_{c,j}
    \\rVert`; it is dropped and the QR recomputed, which keeps the other
    columns in order like the pivoting of LINPACK ``dqrdc2`` that vegan uses.
    """
    centred = matrix - matrix.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    keep = [j for j in range(centred.shape[1]) if norms[j] > 0]
    while keep:
        basis, upper = np.linalg.qr(centred[:, keep])
        ratio = np.abs(np.diag(upper)) / norms[keep]
        aliased = np.flatnonzero(ratio < tol)
        if len(aliased) == 0:
            return basis, assign[keep]
        del keep[aliased[0]]
    return np.empty((len(matrix), 0)), np.empty(0, dtype=int)


def marginal_bases(matrix: np.ndarray, assign: np.ndarray, n_terms: int, tol: float = ALIAS_TOL):
    """For every term, an orthonormal basis of its part not explained by the others.

    Parameters
    ----------
    matrix, assign : see :func:`nested_basis`
    n_terms : int
        Number of terms.
    tol : float
        Aliasing tolerance.

    Returns
    -------
    list of numpy.ndarray
        ``n x df_t`` per term (``df_t`` may be 0 for a term aliased by others).

    Notes
    -----
    The term is put last and the nested basis recomputed; its last block
    spans :math:`(I - H_{-t}) X_t`, so the marginal sum of squares is
    :math:`SS(\\text{full}) - SS(\\text{full} - t) = \\sum_j w_j^\\top G w_j`
    over that block.
    """
    bases = []
    for term in range(n_terms):
        order = np.concatenate([np.flatnonzero(assign != term), np.flatnonzero(assign == term)])
        basis, kept = nested_basis(matrix[:, order], assign[order], tol)
        bases.append(basis[:, kept == term])
    return bases


def _inverse(batch: np.ndarray) -> np.ndarray:
    """Row-wise inverse permutations by scatter (no sort)."""
    inverse = np.empty_like(batch)
    np.put_along_axis(inverse, batch, np.arange(batch.shape[1]), axis=1)
    return inverse


def quadratic_forms(
    gower: np.ndarray, basis: np.ndarray, perms: np.ndarray, batch_bytes: int = BATCH_BYTES
) -> np.ndarray:
    """:math:`q_j^\\top G_\\pi q_j` for every permutation :math:`\\pi` and basis column :math:`q_j`.

    Parameters
    ----------
    gower : numpy.ndarray
        ``n x n`` Gower-centred matrix :math:`G`.
    basis : numpy.ndarray
        ``n x m`` columns :math:`q_j`.
    perms : numpy.ndarray
        ``B x n`` permutations; :math:`G_\\pi = G[\\pi][:, \\pi]` as vegan.
    batch_bytes : int
        Size of one batch of permuted columns; bounds extra memory to about
        twice this.

    Returns
    -------
    numpy.ndarray
        ``B x m``.

    Notes
    -----
    :math:`q^\\top G_\\pi q = \\sum_{ij} q_i G_{\\pi_i \\pi_j} q_j = u^\\top G u`
    with :math:`u = q[\\pi^{-1}]`, so permuting :math:`G` equals permuting
    the basis rows by the inverse permutation. A batch of ``b`` permutations
    stacks the ``m b`` permuted columns as rows of ``U`` (``mb x n``) and
    evaluates ``rowsum(U * (U @ G))`` (:math:`G` is symmetric): one matrix
    product, :math:`O(n^2 b m)` flops.
    """
    n, m = basis.shape
    perms = np.atleast_2d(perms)
    forms = np.empty((len(perms), m))
    if m == 0:
        return forms
    columns = np.ascontiguousarray(basis.T)
    per_batch = max(1, batch_bytes // (8 * n * m))
    for start in range(0, len(perms), per_batch):
        inverse = _inverse(perms[start : start + per_batch])
        stacked = np.take(columns, inverse, axis=1).reshape(-1, n)  # row j*b + k: column j, perm k
        product = stacked @ gower
        forms[start : start + len(inverse)] = np.einsum("ij,ij->i", stacked, product).reshape(m, -1).T
    return forms


def household_pairs(codes: np.ndarray):
    """The two members of every stratum of size two, or None if any stratum is larger.

    Parameters
    ----------
    codes : numpy.ndarray
        Stratum code per sample.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray) or None
        First and second member of each pair (strata of one are left out).
    """
    sizes = np.bincount(codes)
    if sizes.max(initial=0) > 2:
        return None
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[sizes == 2]
    return order[starts], order[starts + 1]


def paired_forms(
    gower: np.ndarray, basis: np.ndarray, perms: np.ndarray, first: np.ndarray, second: np.ndarray,
    batch_bytes: int = BATCH_BYTES,
) -> np.ndarray:
    """As :func:`quadratic_forms` when strata are pairs (and singletons): swaps as sign flips.

    Parameters
    ----------
    gower, basis, perms, batch_bytes : see :func:`quadratic_forms`
        ``perms`` may only swap the two members of a pair.
    first, second : numpy.ndarray
        Members of the ``H`` pairs (:func:`household_pairs`).

    Returns
    -------
    numpy.ndarray
        ``B x m``, equal to :func:`quadratic_forms` up to rounding.

    Notes
    -----
    For pair :math:`h = (a, b)` let :math:`w_h = (e_a - e_b)/\\sqrt2`,
    :math:`c_h = (q_a - q_b)/\\sqrt2` and :math:`\\mu = q - \\sum_h c_h w_h`
    (pair means; the value itself for a singleton). A permutation swaps some
    pairs, :math:`\\sigma_h = -1`, and leaves the others, :math:`\\sigma_h = 1`:
    :math:`u = q[\\pi^{-1}] = \\mu + \\sum_h \\sigma_h c_h w_h`. Hence

    .. math:: u^\\top G u = \\mu^\\top G \\mu + 2 \\sum_h \\sigma_h c_h\\, w_h^\\top G \\mu
              + (\\sigma \\circ c)^\\top K (\\sigma \\circ c),
              \\qquad K_{hh'} = w_h^\\top G w_{h'}.

    :math:`K` is :math:`H \\times H` (:math:`n/2` for a cohort of households),
    so the batched product costs a quarter of the one in :func:`quadratic_forms`.
    """
    n, m = basis.shape
    perms = np.atleast_2d(perms)
    forms = np.empty((len(perms), m))
    if m == 0:
        return forms
    root2 = np.sqrt(2.0)
    kernel = (gower[np.ix_(first, first)] - gower[np.ix_(first, second)]
              - gower[np.ix_(second, first)] + gower[np.ix_(second, second)]) / 2.0
    coef = (basis[first] - basis[second]).T / root2  # m x H
    means = basis.T.copy()
    means[:, first] -= coef / root2
    means[:, second] += coef / root2
    g_means = means @ gower  # m x n
    constant = np.einsum("ij,ij->i", means, g_means)
    linear = coef * (g_means[:, first] - g_means[:, second]) / root2  # m x H
    per_batch = max(1, batch_bytes // (8 * max(len(first), 1) * m))
    for start in range(0, len(perms), per_batch):
        signs = np.where(perms[start : start + per_batch, first] == first, 1.0, -1.0)  # b x H
        coords = (signs[:, None, :] * coef[None, :, :]).reshape(-1, len(first))  # (b m) x H
        quadratic = np.einsum("ij,ij->i", coords, coords @ kernel).reshape(len(signs), m)
        forms[start : start + len(signs)] = constant + 2 * signs @ linear.T + quadratic
    return forms


def permuted_forms(gower, basis, perms, codes=None) -> np.ndarray:
    """Quadratic forms under permutation by the cheaper exact route for the strata.

    :func:`paired_forms` when every stratum has at most two samples (the
    household design), else :func:`quadratic_forms`.
    """
    pairs = household_pairs(codes) if codes is not None else None
    if pairs is not None:
        return paired_forms(gower, basis, perms, *pairs, batch_bytes=BATCH_BYTES)
    return quadratic_forms(gower, basis, perms, batch_bytes=BATCH_BYTES)


def p_values(f_perm: np.ndarray, f_obs: np.ndarray) -> np.ndarray:
    """Permutation p-values as vegan: ``(1 + #{F_perm >= F_obs - eps}) / (1 + B)``.

    Parameters
    ----------
    f_perm : numpy.ndarray
        ``B x k`` pseudo-F under permutation.
    f_obs : numpy.ndarray
        ``k`` observed pseudo-F.

    Returns
    -------
    numpy.ndarray
        ``k`` p-values (NaN where ``f_obs`` is NaN).
    """
    hits = np.sum(f_perm >= f_obs - P_EPS, axis=0)
    p = (hits + 1.0) / (len(f_perm) + 1.0)
    return np.where(np.isnan(f_obs), np.nan, p)


def aligned_labels(values, design: pd.DataFrame, ids: list[str], what: str):
    """Labels per sample in distance order from a column name, a Series or an array."""
    if values is None:
        return None
    if isinstance(values, str):
        if values not in design.columns:
            refuse(f"{what} column {values!r} is not in the design", "name a design column", column=values)
        values = design[values]
    if isinstance(values, pd.Series):
        values = values.set_axis(values.index.astype(str))
        known = set(values.index)
        missing = [i for i in ids if i not in known]
        if missing:
            refuse(f"{what} has no label for {len(missing)} sample(s)", "index it by sample id",
                  item=missing[0])
        values = values.loc[ids]
    values = np.asarray(values, dtype=object)
    if len(values) != len(ids):
        refuse(f"{what} has {len(values)} labels for {len(ids)} samples", "give one label per sample")
    values = pd.Series(values, index=ids)
    if values.isna().any():
        refuse(f"{what} has missing labels", "give every sample a label (a stratum of one is fine)",
              item=str(values.index[values.isna()][0]))
    return values.to_numpy(dtype=object)


def _design_rows(design: pd.DataFrame, ids: list[str], terms) -> pd.DataFrame:
    """The design rows in distance-matrix order, checked for ids, columns and NaN."""
    index = design.index.astype(str)
    if index.has_duplicates:
        refuse("the design index has duplicate sample ids", "keep one row per sample",
              item=str(index[index.duplicated()][0]))
    known = set(index)
    missing = [i for i in ids if i not in known]
    if missing:
        refuse(f"{len(missing)} sample(s) of the distances are not in the design",
              "index the design by the distance-matrix ids", item=missing[0])
    absent = [t for t in terms if t not in design.columns]
    if absent:
        refuse(f"term {absent[0]!r} is not a design column", "name existing columns", column=absent[0])
    rows = design.set_axis(index).loc[ids]
    for term in terms:
        if rows[term].isna().any():
            refuse(f"term {term!r} has missing values", "drop those samples first (adonis2 uses na.fail)",
                  column=term, item=str(rows.index[rows[term].isna()][0]))
    return rows


def checked_permutations(permutations, n: int, strata, seed) -> np.ndarray:
    """An explicit matrix checked against the strata, or one drawn as permute does."""
    if np.ndim(permutations) == 0:
        return permutation_matrix(n, int(permutations), strata=strata, seed=seed)
    perms = np.atleast_2d(np.asarray(permutations, dtype=np.intp))
    if perms.shape[1] != n or np.any(np.sort(perms, axis=1) != np.arange(n)):
        refuse("the permutation matrix has rows that are not permutations of 0..n-1",
              "pass B x n zero-based permutations")
    if strata is not None and not within_strata(perms, strata):
        refuse("the permutation matrix moves samples across strata", "pass permutations within strata")
    return perms


def _table(labels, df, ss, f_obs, p, residual_df, residual_ss, total_ss, n) -> pd.DataFrame:
    """The adonis2 table: one row per test, then Residual and Total."""
    df = np.asarray(df, dtype=float)
    ss = np.asarray(ss, dtype=float)
    table = pd.DataFrame(
        {
            "term": list(labels) + ["Residual", "Total"],
            "df": np.concatenate([df, [residual_df, n - 1]]).astype(int),
            "sum_of_squares": np.concatenate([ss, [residual_ss, total_ss]]),
            "r2": np.concatenate([ss, [residual_ss, total_ss]]) / total_ss,
            "pseudo_f": np.concatenate([f_obs, [np.nan, np.nan]]),
            "p_value": np.concatenate([p, [np.nan, np.nan]]),
        },
        columns=COLUMNS,
    )
    return table


def permanova(
    distances,
    design: pd.DataFrame,
    terms,
    strata=None,
    permutations=999,
    by: str | None = "terms",
    seed=1,
    ids=None,
) -> pd.DataFrame:
    """Permutational multivariate ANOVA on distances, the table of ``vegan::adonis2``.

    Parameters
    ----------
    distances : skbio.DistanceMatrix, pandas.DataFrame or numpy.ndarray
        ``n x n`` dissimilarities (with ``ids`` when an ndarray).
    design : pandas.DataFrame
        Indexed by sample id; holds the ``terms`` columns (and may hold more).
    terms : sequence of str
        Design columns in model order, e.g. ``["disease", "sex", "age"]``.
        Categorical columns are treatment-coded (see :func:`design_matrix`).
    strata : str, pandas.Series, array-like or None
        Stratum per sample (a design column name, a Series indexed by id, or
        labels in distance order). Permutations stay within strata, as
        ``adonis2(..., strata = household)``.
    permutations : int or array-like
        Number of permutations, or an explicit ``B x n`` zero-based matrix
        (row ``b``: position ``i`` receives sample ``perm[b, i]``, vegan's
        convention minus one).
    by : {"terms", "margin", None}
        Sequential sums of squares (first to last), marginal ones (each term
        after all others), or the model as a whole (one ``Model`` row).
    seed : int or numpy.random.Generator
        Seed of ``numpy.random.default_rng`` for the permutations.
    ids : sequence of str, optional
        Sample ids of an ndarray ``distances``.

    Returns
    -------
    pandas.DataFrame
        Columns ``term, df, sum_of_squares, r2, pseudo_f, p_value``; a row per
        term, then ``Residual`` and ``Total``. A term wholly aliased with
        earlier ones is left out for ``by="terms"``; for ``by="margin"`` a term
        aliased with the others keeps a row with df 0, SS 0 and NaN F and p
        (vegan prints -Inf and NA), as vegan does.
        ``attrs`` holds ``f_perm`` (``B x k`` permuted pseudo-F),
        ``n_permutations``, ``formula`` and ``by``.

    Notes
    -----
    With :math:`G` the Gower-centred matrix (:func:`gower_centre`),
    :math:`SS_T = \\operatorname{tr} G` and :math:`H_k` the hat matrix of the
    first :math:`k` terms (centred columns), the sequential sum of squares of
    term :math:`k` is :math:`SS_k = \\operatorname{tr}(H_k G) -
    \\operatorname{tr}(H_{k-1} G) = \\sum_{j \\in k} q_j^\\top G q_j` over the
    columns of the nested orthonormal basis (:func:`nested_basis`). With model
    rank :math:`p`, :math:`SS_R = SS_T - \\sum_k SS_k` on
    :math:`n - p - 1` df,

    .. math:: F_k = \\frac{SS_k / df_k}{SS_R / (n - p - 1)}, \\qquad R^2_k = SS_k / SS_T.

    Marginal :math:`SS_k` (``by="margin"``) is the drop in model sum of squares
    when term :math:`k` is removed from the full model (:func:`marginal_bases`).

    Permutation scheme (vegan's ``permutest.cca`` under its default
    "reduced" model, which without ``Condition()`` terms permutes the raw
    data): every permutation :math:`\\pi` permutes rows and columns of
    :math:`G` together, :math:`G_\\pi = G[\\pi, \\pi]`, while the design stays
    fixed. One set of permutations serves all terms. For ``by="terms"`` each
    permuted :math:`F_k^\\pi` uses the permuted sequential :math:`SS_k^\\pi`
    and :math:`SS_R^\\pi = SS_T - \\sum_k SS_k^\\pi`; for ``by="margin"`` the
    permuted marginal :math:`SS_k^\\pi` over the permuted full-model residual.
    Restricted permutations are free within strata (``how(blocks=strata)``);
    when at most ``max(permutations, 5040)`` distinct ones exist they are
    enumerated as ``permute::check`` does (:func:`~.permutations.permutation_matrix`).
    The p-value is :math:`(1 + \\#\\{F^\\pi \\ge F - \\sqrt{\\epsilon}\\})/(1 + B)`.

    References
    ----------
    Anderson, M. J. (2001). A new method for non-parametric multivariate
    analysis of variance. Austral Ecology 26, 32-46.
    McArdle, B. H. & Anderson, M. J. (2001). Fitting multivariate models to
    community data: a comment on distance-based redundancy analysis.
    Ecology 82, 290-297.
    Oksanen, J. et al. vegan: Community Ecology Package (``adonis2``,
    ``permutest.cca``).
    """
    if by not in ("terms", "margin", None):
        raise ValueError(f"by={by!r}; use 'terms', 'margin' or None")
    terms = list(terms)
    array, ids = distance_array(distances, ids)
    rows = _design_rows(design, ids, terms)
    labels = aligned_labels(strata, rows, ids, "strata")
    perms = checked_permutations(permutations, len(ids), labels, seed)

    gower = gower_centre(array)
    total_ss = float(np.trace(gower))
    matrix, assign, _ = design_matrix(rows, terms)
    basis, kept = nested_basis(matrix, assign)
    rank = basis.shape[1]
    residual_df = len(ids) - rank - 1
    if rank == 0 or residual_df <= 0:
        refuse(f"the model has rank {rank} and {residual_df} residual df",
              "use terms that vary, and fewer parameters than samples - 1")

    columns, groups, labels_out, df = _tested_columns(matrix, assign, basis, kept, terms, by)
    n_groups = len(df) + (by == "margin")
    codes = stratum_codes(labels, len(ids)) if labels is not None else None
    identity = np.arange(len(ids))[None, :]
    observed = _group_sums(quadratic_forms(gower, columns, identity), groups, n_groups)[0]
    permuted = _group_sums(permuted_forms(gower, columns, perms, codes), groups, n_groups)
    ss, f_obs = _statistics(observed[None, :], by, df, total_ss, residual_df)
    _, f_perm = _statistics(permuted, by, df, total_ss, residual_df)
    ss, f_obs = ss[0], f_obs[0]
    residual_ss = total_ss - (observed[0] if by == "margin" else observed.sum())

    p = p_values(f_perm, f_obs)
    table = _table(labels_out, df, ss, f_obs, p, residual_df, residual_ss, total_ss, len(ids))
    table.attrs.update(f_perm=f_perm, n_permutations=len(perms), formula=formula(terms), by=by)
    return table


def _tested_columns(matrix, assign, basis, kept, terms, by):
    """Basis columns whose quadratic forms are needed, their group, the row labels and df.

    ``by="terms"``: the nested basis, grouped by term. ``by="margin"``: the
    nested basis as group 0 (full model, for the residual), then each term's
    marginal basis as group ``t + 1``. ``by=None``: the nested basis as one group.
    """
    rank = basis.shape[1]
    if by == "margin":
        extra = marginal_bases(matrix, assign, len(terms))
        groups = [np.zeros(rank, int)] + [np.full(e.shape[1], t + 1) for t, e in enumerate(extra)]
        df = np.array([e.shape[1] for e in extra])
        return np.hstack([basis] + extra), np.concatenate(groups), list(terms), df
    if by == "terms":
        present = np.unique(kept)
        groups = np.searchsorted(present, kept)
        return basis, groups, [terms[t] for t in present], np.bincount(groups)
    return basis, np.zeros(rank, int), ["Model"], np.array([rank])


def _group_sums(forms: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the quadratic forms of the columns of each group: ``B x m`` to ``B x g``."""
    indicator = np.zeros((len(groups), n_groups))
    indicator[np.arange(len(groups)), groups] = 1.0
    return forms @ indicator


def _statistics(sums: np.ndarray, by, df: np.ndarray, total_ss: float, residual_df: int):
    """Sums of squares and pseudo-F per test from group sums (``B x g``).

    For ``by="margin"`` group 0 is the full model and groups ``1..k`` the
    marginal parts; otherwise the groups are the tested terms.
    """
    if by == "margin":
        residual = total_ss - sums[:, :1]
        ss = sums[:, 1:]
    else:
        residual = total_ss - sums.sum(axis=1, keepdims=True)
        ss = sums
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ss / df) / (residual / residual_df)
    return ss, np.where(df > 0, f, np.nan)

