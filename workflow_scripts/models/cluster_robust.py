"""Household cluster-robust (CR1) standard errors for the association models.

The iMSMS design pairs every MS patient with a healthy control from the same
household, so two abundance profiles of a household are not independent
(shared diet, home, microbes).  The association models are fitted by ordinary
least squares (:mod:`workflow_scripts.models.association_core`); this module
replaces their model-based standard errors by the household cluster-robust
(Liang-Zeger sandwich) ones, computed for every variant x feature at once.

Why cluster-robust errors, and not a household random intercept
-----------------------------------------------------------------
- *Exact and vectorised.*  After Frisch-Waugh-Lovell the sandwich variance of
  one coefficient is a sum over households of squared score sums
  (Notes below).  Expanded, it needs a handful of cross products of the same
  kind the engine already forms (per-participant and within-household
  products of genotypes against the abundances), i.e. a few more matrix
  products per chunk, and equals ``statsmodels`` ``OLS(...).fit(
  cov_type="cluster", cov_kwds={"groups": household}, use_t=True)`` to
  rounding.  A random intercept needs its variance ratio per feature: the
  whitening (Helmert rotation, :mod:`workflow_scripts.models.group_rotation`)
  then differs per feature, the covariates must be projected out of every
  variant once per feature, and a fixed ratio estimated under the null model
  would only approximate ``MixedLM`` refitted per test (the EMMAX/P3D
  approximation), so there would be no exact reference.
- *Valid without a model for the correlation.*  The sandwich needs neither
  normal household effects nor equal variances: CLR abundances of sparse
  species are zero-inflated and heteroscedastic, and a household can share
  more than a random intercept describes.
- *Little efficiency lost.*  Household members are mostly partners, so their
  genotypes are unrelated; generalised least squares gains mainly for
  within-household contrasts (MS status), not for the genotype terms tested.
- *Calibration.*  The CR1 small-sample factor and Student's t with
  ``G - 1`` degrees of freedom (``G`` households) are the Stata/statsmodels
  convention.  With genotypes permuted across the participants of a
  300-household synthetic cohort (40 variants x 60 species, 20
  permutations) the p-values are uniform by Kolmogorov-Smirnov for both
  terms, and the interaction's tail is nominal; the main effect's far tail
  is somewhat liberal (1.3x the nominal rate below 1e-3, about 2.5x below
  1e-4), because CLR abundances of species with structural zeros are
  bimodal and the sandwich estimates a carrier group's variance from that
  group alone (a group that happens to hold no zero looks far too precise).
  Model-based OLS errors are better there (about 1.2x and 1.7x) but ignore
  the households; CR3 (jackknife) does not help.  The stage therefore also
  requires ``min_carriers`` minor-allele carriers per test (per status group
  for the interaction, whose errors otherwise collapse when one or two cases
  carry the allele).  With few households (< 50) CR1 is liberal in general,
  and the stage says so in its summary.
- *Tried and not chosen.*  A household random intercept with the variance
  ratio of each species fitted once under the null model (the EMMAX/P3D
  approximation, generalised least squares per test) gave similar power and
  calibration in a small prototype comparison (6 planted and 8 permuted
  synthetic cohorts), at an extra cost of ``O(rank(C)^2)`` per variant x
  species for the per-species projection of the covariates.

Unpaired participants are households of one.  Point estimates are the OLS
ones and do not change.

Missing dosages
---------------
Variants with missing calls are fitted on the participants observed for them
(complete cases, as the engine does): the covariates are projected out of
those participants alone, and the households are those with an observed
member.  This stays vectorised: the projected genotypes are exact per
variant (``x - Q K+ Q'x`` with ``K = Q_O'Q_O``), and the observed rows'
residualised abundances differ from the shared ones by a rank-``r`` term
``Q K+ u`` that enters the cross products as small corrections
(:func:`_correct_for_missing`).  The extra cost is about ``2 r`` products of
length ``n`` per test (``r`` the rank of the covariates), so variants with
missing calls run several times slower than complete ones (imputed dosages
have none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import Problems
from .association_core import (
    RESULT_COLUMNS,
    Projection,
    observed_gram,
    project_covariates,
    solve_models,
    sufficient_statistics,
)
from .tdist import two_sided_p

#: Columns of the household-robust results (:func:`workflow_scripts.models.association.associate`
#: with households), in order.
CLUSTERED_COLUMNS = [*RESULT_COLUMNS[:3], "n_households", *RESULT_COLUMNS[3:]]

VALUE_COLUMNS = CLUSTERED_COLUMNS[5:]

#: Variants processed together inside a chunk: small enough for the per-variant
#: work arrays (variants x participants) to stay in cache, large enough for
#: efficient matrix products.
BLOCK = 128
#: The same for variants with missing dosages (their corrections hold a
#: variants x participants x rank array).
MISSING_BLOCK = 32
_INPUT = "association input"


@dataclass(frozen=True)
class _Layout:
    """Participants re-ordered so that household sums are slices, not gathers.

    Order: the first members of the two-person households (``n2`` of them),
    their second members in the same household order, then the households of
    one, then the larger households (contiguous).  ``perm[j]`` is the
    position in the engine's order of the participant at position ``j``.
    """

    perm: np.ndarray
    n2: int
    n1: int
    big_starts: np.ndarray      # start of every larger household within the tail
    big_cluster: np.ndarray     # household (0-based, tail only) of every tail participant
    big_first: np.ndarray       # within-household pairs of the tail (tail positions)
    big_second: np.ndarray

    @property
    def n_clusters(self) -> int:
        return self.n2 + self.n1 + self.big_starts.size

    @property
    def tail(self) -> int:
        return 2 * self.n2 + self.n1

    def sums(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """(m, n) participant values in layout order -> (m, G) household sums, into ``out``."""
        n2, n1, tail = self.n2, self.n1, self.tail
        np.add(v[:, :n2], v[:, n2:2 * n2], out=out[:, :n2])
        out[:, n2:n2 + n1] = v[:, 2 * n2:tail]
        if self.big_starts.size:
            out[:, n2 + n1:] = np.add.reduceat(v[:, tail:], self.big_starts, axis=1)
        return out

    def spread(self, sums: np.ndarray, out: np.ndarray) -> np.ndarray:
        """(m, G) household sums -> (m, n), each participant its household's, into ``out``."""
        n2, n1, tail = self.n2, self.n1, self.tail
        out[:, :n2] = sums[:, :n2]
        out[:, n2:2 * n2] = sums[:, :n2]
        out[:, 2 * n2:tail] = sums[:, n2:n2 + n1]
        if self.big_starts.size:
            out[:, tail:] = sums[:, n2 + n1:][:, self.big_cluster]
        return out

    def pair_products(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """(m, n) -> (m, n_pairs): ``v_i v_k`` for every within-household pair, into ``out``."""
        n2, tail = self.n2, self.tail
        np.multiply(v[:, :n2], v[:, n2:2 * n2], out=out[:, :n2])
        if self.big_first.size:
            tail_v = v[:, tail:]
            np.multiply(tail_v[:, self.big_first], tail_v[:, self.big_second], out=out[:, n2:])
        return out

    @property
    def n_pairs(self) -> int:
        return self.n2 + self.big_first.size


def _layout(cluster: np.ndarray) -> _Layout:
    """The :class:`_Layout` of households given as codes per participant (engine order)."""
    sizes = np.bincount(cluster) if cluster.size else np.zeros(0, int)
    by_cluster = np.argsort(cluster, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    two = np.flatnonzero(sizes == 2)
    one = np.flatnonzero(sizes == 1)
    big = np.flatnonzero(sizes > 2)
    members_big = [by_cluster[starts[h]:starts[h] + sizes[h]] for h in big]
    perm = np.concatenate([by_cluster[starts[two]], by_cluster[starts[two] + 1],
                           by_cluster[starts[one]]] + members_big).astype(np.intp)
    big_sizes = sizes[big]
    big_starts = np.concatenate([[0], np.cumsum(big_sizes)[:-1]]).astype(np.intp)
    first, second = [np.zeros(0, np.intp)], [np.zeros(0, np.intp)]
    for h, size in enumerate(big_sizes):
        i, k = np.triu_indices(size, 1)
        first.append(big_starts[h] + i)
        second.append(big_starts[h] + k)
    return _Layout(perm=perm, n2=two.size, n1=one.size,
                   big_starts=big_starts if big.size else np.zeros(0, np.intp),
                   big_cluster=np.repeat(np.arange(big.size), big_sizes).astype(np.intp),
                   big_first=np.concatenate(first), big_second=np.concatenate(second))


@dataclass(frozen=True)
class ClusteredDesign:
    """The engine's shared design plus the household structure.

    Attributes
    ----------
    base : Projection
        From :func:`~workflow_scripts.models.association_core.project_covariates`
        (participants stored cases first, ``base.order``).
    layout : _Layout
        Household-contiguous order of the participants (see :class:`_Layout`).
    basis : numpy.ndarray, shape (n, r)
        ``base.basis`` in layout order.
    status : numpy.ndarray, shape (n,)
        Status in layout order.
    y_resid : numpy.ndarray, shape (n, S)
        Residualised abundances ``y~`` in layout order.
    y_quad : numpy.ndarray, shape (n + n_pairs, S)
        Squares ``y~_i^2``, then the within-household products ``y~_i y~_k``
        of every pair (layout order).
    """

    base: Projection
    layout: _Layout
    basis: np.ndarray
    status: np.ndarray
    y_resid: np.ndarray
    y_quad: np.ndarray
    _buffers: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return self.base.n

    def buffers(self, m: int) -> dict[str, np.ndarray]:
        """Work arrays for blocks of ``m`` variants, allocated once and reused.

        Reusing them keeps the allocator from returning and re-faulting
        megabytes of memory for every block, which otherwise costs more than
        the arithmetic.
        """
        if m not in self._buffers:
            n, G, S = self.n, self.n_clusters, self.y_resid.shape[1]
            n_pairs = self.layout.n_pairs
            self._buffers.clear()
            self._buffers[m] = {
                "x": np.empty((m, n)), "g": np.empty((m, n)), "h": np.empty((m, n)),
                "tmp": np.empty((m, n)), "spread": np.empty((m, n)),
                "B": np.empty((m, G)), "D1": np.empty((m, G)), "D2": np.empty((m, G)),
                "lin_left": np.empty((3 * m, n)), "quad_left": np.empty((2 * m, n + n_pairs)),
                "lin": np.empty((3 * m, S)), "quad": np.empty((2 * m, S)),
                "basis_t": np.ascontiguousarray(self.basis.T),
            }
        return self._buffers[m]

    @property
    def n_clusters(self) -> int:
        return self.layout.n_clusters


def _household_codes(households, n: int) -> np.ndarray:
    values = pd.Series(np.asarray(households, dtype=object).ravel())
    problems = Problems()
    if len(values) != n:
        problems.add(_INPUT, f"{len(values)} household ids for {n} participants",
                     "pass one household id per row of Y (unpaired participants: their own id)")
    elif values.isna().any():
        problems.add(_INPUT, "household ids contain missing values",
                     "give unpaired participants a household of their own")
    problems.raise_if_any()
    return pd.factorize(values, sort=False)[0].astype(np.intp)


def prepare_clustered(Y, status, covariates, households, feature_ids) -> ClusteredDesign:
    """Project the covariates out once and index the households.

    Parameters
    ----------
    Y : array_like, shape (n, S)
        Abundances (e.g. CLR), participants x features, no NaN.
    status : array_like, shape (n,)
        1 = MS, 0 = control.
    covariates : array_like, shape (n, k) or None
        Covariates without intercept.
    households : array_like, shape (n,)
        Household id of every participant (unpaired: an id of their own).
    feature_ids : sequence of str, length S

    Returns
    -------
    ClusteredDesign
    """
    Y = np.asarray(Y, dtype=float)
    status = np.asarray(status, dtype=float)
    cov = None if covariates is None else np.asarray(covariates, dtype=float)
    if cov is not None and cov.ndim == 1:
        cov = cov[:, None]
    codes = _household_codes(households, Y.shape[0] if Y.ndim == 2 else -1)
    base = project_covariates(Y, status, cov, feature_ids)
    layout = _layout(codes[base.order])
    y = base.y_resid[layout.perm]
    pairs = layout.pair_products(y.T, np.empty((y.shape[1], layout.n_pairs))).T
    return ClusteredDesign(base=base, layout=layout, basis=base.basis[layout.perm],
                           status=base.status[layout.perm], y_resid=y,
                           y_quad=np.concatenate([y * y, pairs]))


def _missing_terms(base: Projection, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``K+`` (m, r, r) and ``u = Q_O'y~_O`` (m, r, S) for variants observed on ``~missing``.

    ``K = Q_O'Q_O = I - Q_M'Q_M`` and ``u = -Q_M'y~_M`` (``y~`` is orthogonal to
    ``Q``), summed over the missing participants only, as the engine does for
    its sufficient statistics (same rank tolerance).
    """
    gram_pinv, u, _, _ = observed_gram(base, missing)
    return gram_pinv, u


def _correct_for_missing(cd: ClusteredDesign, lin, quad, lin_left, g_t, hp, quad_left, shift, m) -> None:
    """Turn the cross products with ``y~`` into those with the observed rows' ``y~_O`` (in place).

    Notes
    -----
    On the observed participants the residualised abundances are
    ``y~_O = y~ - Q w`` with ``w = K+ u`` (one r x S matrix per variant), and
    every left vector (``g~ B``, ``hp D1``, ... and the squares and pair
    products) is zero on the missing participants.  Hence, per variant,

    ``L y~_O = L y~ - (L Q) w`` for the three linear rows, and for a
    quadratic row with squares ``l_i`` and pair products ``p_ik``

    ``sum_i l_i y~_O,i^2 + sum_{i<k} p_ik y~_O,i y~_O,k
    = [l, p] [y~^2; y~_i y~_k] - sum_i y~_i z_i'w + w'(Q'Z / 2) w``,

    ``z_i = 2 l_i q_i + sum_{k in i's household} p_ik q_k``.  The extra cost is
    one (m r x n) by (n x S) product per quadratic row.
    """
    lay, q, y = cd.layout, cd.basis, cd.y_resid
    n, r = q.shape
    lq = (lin_left @ q).reshape(3, m, r).transpose(1, 0, 2)          # (m, 3, r)
    lin -= np.matmul(lq, shift).transpose(1, 0, 2).reshape(3 * m, -1)
    n2, tail = lay.n2, lay.tail
    for row, f in enumerate((g_t, hp)):
        squares = quad_left[row * m:(row + 1) * m, :n]
        pairs = quad_left[row * m:(row + 1) * m, n:]
        z = 2.0 * squares[:, :, None] * q[None, :, :]
        z[:, :n2] += pairs[:, :n2, None] * q[None, n2:2 * n2]
        z[:, n2:2 * n2] += pairs[:, :n2, None] * q[None, :n2]
        if lay.big_first.size:
            first, second = tail + lay.big_first, tail + lay.big_second
            big = pairs[:, n2:]
            np.add.at(z, (slice(None), first), big[:, :, None] * q[None, second])
            np.add.at(z, (slice(None), second), big[:, :, None] * q[None, first])
        zy = (z.transpose(0, 2, 1).reshape(m * r, n) @ y).reshape(m, r, -1)
        half = np.matmul(q.T, z) / 2.0                                # (m, r, r)
        cross = np.einsum("vrs,vrs->vs", zy, shift)
        pure = np.einsum("vrs,vrs->vs", shift, np.matmul(half, shift))
        quad[row * m:(row + 1) * m] += pure - cross


def _robust_block(cd: ClusteredDesign, dosage: np.ndarray, incomplete: bool = False) -> dict[str, np.ndarray]:
    """Both models with household-robust errors for a block of variants (m, n), original order.

    ``incomplete`` must be True when any dosage is missing (NaN); see
    :func:`_correct_for_missing` for how those variants stay exact.

    Notes
    -----
    With ``P`` the projection off ``C = [1, status, covariates]``,
    ``g~ = Pg``, ``h~ = P(g * status)``, ``y~ = Py`` and ``hp = h~ - r g~``
    (``r = g~'h~ / g~'g~``), Frisch-Waugh-Lovell makes the row of
    ``(X'X)^-1 X'`` belonging to the genotype in model (a) ``g~' / g~'g~``
    and the one belonging to the interaction in model (b) ``hp' / hp'hp``.
    The residuals are ``e_a = y~ - b_g g~`` and
    ``e_b = y~ - b_g g~ - b_int hp`` (``g~`` and ``hp`` are orthogonal, so
    the fitted values of model (b) are ``b_g g~ + b_int hp`` with ``b_g`` of
    model (a)).  The CR1 variances are

    ``V_a = c_a sum_h (sum_{i in h} g~_i e_a,i)^2 / (g~'g~)^2``,
    ``V_int = c_b sum_h (sum_{i in h} hp_i e_b,i)^2 / (hp'hp)^2``,

    ``c = G / (G - 1) * (n - 1) / (n - K)`` with ``K`` the number of
    coefficients (``rank(C) + 1`` or ``+ 2``) and ``G`` households.  With
    household sums ``B_h = sum g~^2``, ``D1_h = sum hp g~``,
    ``D2_h = sum hp^2``,

    ``sum_h (sum g~ e_a)^2 = T1 - 2 b_g T2 + b_g^2 sum_h B_h^2``,

    ``T1 = sum_h (sum_i g~_i y~_i)^2 = sum_i g~_i^2 y~_i^2
    + 2 sum_{i<k in h} g~_i g~_k y~_i y~_k``,
    ``T2 = sum_i g~_i B_h(i) y~_i``, and for model (b)

    ``sum_h (sum hp e_b)^2 = U2 - 2 b_g UD1 - 2 b_int UD2 + b_g^2 sum D1^2
    + 2 b_g b_int sum D1 D2 + b_int^2 sum D2^2``

    with ``U2``, ``UD1 = sum_i hp_i D1_h(i) y~_i``, ``UD2`` likewise.  For all
    features at once these are two matrix products per block:
    ``[g~ B; hp D1; hp D2] @ y~`` and
    ``[g~^2, 2 g~_i g~_k; hp^2, 2 hp_i hp_k] @ [y~^2; y~_i y~_k]``.
    Participants are stored household by household (:class:`_Layout`), so
    household sums are slices.
    """
    base, lay = cd.base, cd.layout
    m, n = dosage.shape[0], cd.n
    stats = sufficient_statistics(base, dosage)
    s = solve_models(stats)
    w = cd.buffers(m)
    x, g_t, hp, tmp, spread = w["x"], w["g"], w["h"], w["tmp"], w["spread"]
    B, D1, D2 = w["B"], w["D1"], w["D2"]
    lin_left, quad_left, lin, quad = w["lin_left"], w["quad_left"], w["lin"], w["quad"]

    np.take(stats.x, lay.perm, axis=1, out=x)
    a, c = stats.a, stats.c
    if incomplete:
        missing = np.isnan(dosage[:, base.order])
        gram_pinv, u = _missing_terms(base, missing)
        a = np.einsum("vij,vj->vi", gram_pinv, a)      # K+ Q'x: projection on the observed rows
        c = np.einsum("vij,vj->vi", gram_pinv, c)
        shift = np.matmul(gram_pinv, u)                 # y~ on the observed rows: y~ - Q K+ u
        observed = ~missing[:, lay.perm]
    np.matmul(a, w["basis_t"], out=tmp)
    np.subtract(x, tmp, out=g_t)                        # g~
    np.multiply(x, cd.status, out=hp)
    np.matmul(c, w["basis_t"], out=tmp)
    hp -= tmp                                           # h~
    ratio = np.nan_to_num(s["ratio"], nan=0.0, posinf=0.0, neginf=0.0)
    np.multiply(g_t, ratio[:, None], out=tmp)
    hp -= tmp                                           # hp = h~ - r g~
    if incomplete:
        g_t *= observed                                 # the missing rows leave every sum
        hp *= observed

    g2, h2 = quad_left[:m, :n], quad_left[m:, :n]
    np.multiply(g_t, g_t, out=g2)
    np.multiply(hp, hp, out=h2)
    lay.pair_products(g_t, out=quad_left[:m, n:])
    lay.pair_products(hp, out=quad_left[m:, n:])
    quad_left[:, n:] *= 2.0
    lay.sums(g2, out=B)
    lay.sums(h2, out=D2)
    np.multiply(hp, g_t, out=tmp)
    lay.sums(tmp, out=D1)
    np.multiply(g_t, lay.spread(B, out=spread), out=lin_left[:m])
    np.multiply(hp, lay.spread(D1, out=spread), out=lin_left[m:2 * m])
    np.multiply(hp, lay.spread(D2, out=spread), out=lin_left[2 * m:])
    np.matmul(lin_left, cd.y_resid, out=lin)
    np.matmul(quad_left, cd.y_quad, out=quad)
    if incomplete:
        _correct_for_missing(cd, lin, quad, lin_left, g_t, hp, quad_left, shift, m)
        G = np.count_nonzero(lay.sums(observed.astype(float), out=np.empty_like(B)), axis=1).astype(float)
    else:
        G = np.full(m, float(cd.n_clusters))
    t2, ud1, ud2 = lin[:m], lin[m:2 * m], lin[2 * m:]
    t1, u2 = quad[:m], quad[m:]

    b, bi = s["beta"], s["beta_int"]
    bb = np.einsum("vh,vh->v", B, B)[:, None]
    d11 = np.einsum("vh,vh->v", D1, D1)[:, None]
    d12 = np.einsum("vh,vh->v", D1, D2)[:, None]
    d22 = np.einsum("vh,vh->v", D2, D2)[:, None]
    n = stats.n.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        meat_a = np.maximum(t1 - 2.0 * b * t2 + b * b * bb, 0.0)
        meat_b = np.maximum(u2 - 2.0 * b * ud1 - 2.0 * bi * ud2
                            + b * b * d11 + 2.0 * b * bi * d12 + bi * bi * d22, 0.0)
        factor = G / (G - 1.0) * (n - 1.0)
        c_a = factor / (n - stats.rank - 1.0)
        c_b = factor / (n - stats.rank - 2.0)
        se = np.sqrt(c_a[:, None] * meat_a) / s["gg"][:, None]
        se_int = np.sqrt(c_b[:, None] * meat_b) / s["hh_perp"][:, None]
        t = b / se
        t_int = bi / se_int
    df = np.where(G >= 2, G - 1.0, np.nan)
    return {
        "n": stats.n,
        "n_households": G.astype(int),
        "allele_frequency": stats.af,
        "beta_genotype": b,
        "se_genotype": se,
        "t_genotype": t,
        "p_genotype": two_sided_p(t, np.where(s["ok_g"], df, np.nan)),
        "beta_interaction": bi,
        "se_interaction": se_int,
        "t_interaction": t_int,
        "p_interaction": two_sided_p(t_int, np.where(s["ok_int"], df, np.nan)),
        "beta_genotype_interaction_model": b - s["ratio"][:, None] * bi,
    }


def _empty_block(m: int, n_features: int) -> dict[str, np.ndarray]:
    out = {"n": np.zeros(m, int), "n_households": np.zeros(m, int),
           "allele_frequency": np.full(m, np.nan)}
    out.update({name: np.full((m, n_features), np.nan) for name in VALUE_COLUMNS})
    return out


def clustered_block(cd: ClusteredDesign, dosage: np.ndarray) -> dict[str, np.ndarray]:
    """Results for a block of variants (m, n), NaN = missing; arrays per column.

    Variants with complete dosages go through :func:`_robust_block`
    :data:`BLOCK` at a time, the others :data:`MISSING_BLOCK` at a time with
    the corrections for their missing participants.
    """
    m, n_features = dosage.shape[0], cd.base.y_resid.shape[1]
    out = _empty_block(m, n_features)

    def put(rows, block):
        for name, values in block.items():
            out[name][rows] = values

    missing = np.isnan(dosage)
    incomplete = missing.any(axis=1)
    complete = np.flatnonzero(~incomplete)
    for start in range(0, complete.size, BLOCK):
        rows = complete[start:start + BLOCK]
        contiguous = rows.size and rows[-1] - rows[0] == rows.size - 1
        block = dosage[rows[0]:rows[-1] + 1] if contiguous else dosage[rows]
        put(rows, _robust_block(cd, block))
    rows = np.flatnonzero(incomplete)
    for start in range(0, rows.size, MISSING_BLOCK):
        these = rows[start:start + MISSING_BLOCK]
        put(these, _robust_block(cd, dosage[these], incomplete=True))
    return out
