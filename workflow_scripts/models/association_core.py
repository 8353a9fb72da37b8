"""Genotype x microbiome association: the shared OLS algebra (Matrix eQTL / tensorQTL style).

For every variant ``v`` and every microbial feature ``s`` (one abundance value
per participant, e.g. CLR) two ordinary least-squares models are fitted:

(a) main effect      ``y_s = g_v b_g + C c + e``
(b) interaction      ``y_s = g_v b_g + (g_v * status) b_int + C c + e``

where ``C = [1, status, covariates]``; status (MS = 1) is part of ``C``, so
model (b) is the usual ``y = g b_g + status b_st + (g * status) b_int +
covariates + e``.

Nothing is fitted one test at a time.  The covariates are projected out of the
abundances once (Frisch-Waugh-Lovell, :func:`project_covariates`); a block of
variants then needs only its coefficients on the covariate basis and one
matrix product with the projected abundances to give the cross products that
both models need for every variant x feature pair
(:func:`sufficient_statistics`).  Model (b) adds one small 2 x 2 system per
variant; that system is the same for every feature, so it is solved in closed
form for all variants of the block at once (:func:`solve_models`).

Missing dosages (NaN) are handled exactly: the variant's test uses only the
participants whose dosage is observed, with the covariates projected out of
those participants alone.  No imputation enters the estimates; see
:func:`workflow_scripts.models.association.associate` (Notes) for how this
stays vectorised.

Standard errors: :func:`model_based_errors` (classical OLS) here, household
cluster-robust ones in :mod:`workflow_scripts.models.cluster_robust`; the one
entry point is :func:`workflow_scripts.models.association.associate`.  No file
I/O: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import sparse, special

from ..errors import Problems

#: Columns of the model-based results (:func:`workflow_scripts.models.association.associate`
#: without households), in order.
RESULT_COLUMNS = [
    "variant_id",
    "feature",
    "n",
    "allele_frequency",
    "beta_genotype",
    "se_genotype",
    "t_genotype",
    "p_genotype",
    "beta_interaction",
    "se_interaction",
    "t_interaction",
    "p_interaction",
    "beta_genotype_interaction_model",
]

#: A variant (or its interaction term) whose residual sum of squares after
#: projecting out the other columns is below this fraction of its raw sum of
#: squares is collinear with them; its estimates are reported as NaN.
COLLINEARITY_TOL = 1e-10

# Eigenvalues of Q_O'Q_O (Q orthonormal, so they lie in [0, 1]) at or below
# this are zero: the direction lives only on participants with a missing dosage.
_RANK_TOL = 1e-10

_INPUT = "association input"


# --------------------------------------------------------------------------
# Shared covariates, projected out once
# --------------------------------------------------------------------------


def covariate_basis(status, covariates) -> np.ndarray:
    """Orthonormal basis of the shared design ``C = [1, status, covariates]``.

    Parameters
    ----------
    status : array_like, shape (n,)
        Disease status, 1 = MS, 0 = healthy (household) control.
    covariates : array_like, shape (n, k) or None
        Further covariates, without an intercept.

    Returns
    -------
    numpy.ndarray, shape (n, r)
        Columns spanning the column space of ``C``; ``r = rank(C)``.

    Notes
    -----
    Covariate columns are centred and scaled before the singular value
    decomposition ``C = U S V'``; with the intercept present this does not
    change the column space, only the conditioning.  ``Q = U[:, S > tol]``
    with ``tol = max(S) * max(n, p) * eps`` (the rule of
    :func:`numpy.linalg.matrix_rank`, which statsmodels also uses), so a
    duplicated or constant covariate lowers the rank instead of breaking the
    fit, and the residual degrees of freedom are ``n - rank``.
    """
    status = np.asarray(status, dtype=float)
    n = status.shape[0]
    cov = np.empty((n, 0)) if covariates is None else np.asarray(covariates, dtype=float)
    cov = cov.reshape(n, -1)
    centred = cov - cov.mean(axis=0)
    scale = centred.std(axis=0)
    centred = np.divide(centred, scale, out=np.zeros_like(centred), where=scale > 0)
    design = np.column_stack([np.ones(n), status, centred])
    u, sv, _ = np.linalg.svd(design, full_matrices=False)
    tol = sv.max() * max(design.shape) * np.finfo(float).eps
    return np.ascontiguousarray(u[:, sv > tol])


@dataclass(frozen=True)
class Projection:
    """Everything about the participants that every variant chunk shares.

    Built once by :func:`project_covariates`.

    Participant-indexed arrays are stored with the cases first (``order``),
    so that products restricted to cases are contiguous slices; dosage chunks
    are put in the same order on arrival.

    Attributes
    ----------
    order : numpy.ndarray, shape (n,)
        Permutation of the input participants: cases, then controls.
    n_cases : int
        Number of participants with status 1.
    basis : numpy.ndarray, shape (n, r)
        Orthonormal basis ``Q`` of ``[1, status, covariates]``.
    status : numpy.ndarray, shape (n,)
        Disease status as float 0/1.
    y_resid : numpy.ndarray, shape (n, S)
        Abundances with the covariates projected out, ``(I - QQ')Y``.
    yy : numpy.ndarray, shape (S,)
        Residual sums of squares ``diag(Y'(I - QQ')Y)``.
    feature_ids : pandas.Index
        Feature names, length S.
    """

    order: np.ndarray
    n_cases: int
    basis: np.ndarray
    status: np.ndarray
    y_resid: np.ndarray
    yy: np.ndarray
    feature_ids: pd.Index

    @property
    def n(self) -> int:
        return self.y_resid.shape[0]

    @property
    def rank(self) -> int:
        return self.basis.shape[1]

    @cached_property
    def missing_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-participant outer products used when dosages are missing.

        ``(QQ, QY, Y2)`` with rows ``vec(q_i q_i')``, ``vec(q_i y_i')`` and
        ``y_i**2`` (``q_i``, ``y_i`` row i of ``Q`` and of the residualised
        abundances); built on first use.
        """
        q, y = self.basis, self.y_resid
        qq = (q[:, :, None] * q[:, None, :]).reshape(self.n, -1)
        qy = (q[:, :, None] * y[:, None, :]).reshape(self.n, -1)
        return qq, qy, y * y


def _validate_design(Y, status, covariates, feature_ids) -> None:
    problems = Problems()
    if Y.ndim != 2:
        problems.add(_INPUT, f"abundance matrix Y has {Y.ndim} dimension(s)",
                     "pass Y as participants x features")
        problems.raise_if_any()
    n, n_features = Y.shape
    if status.shape != (n,):
        problems.add(_INPUT, f"status has shape {status.shape}, Y has {n} participants",
                     "pass one status value per row of Y")
    elif not np.isin(status, (0, 1)).all():
        bad = np.unique(status[~np.isin(status, (0, 1))])[:5]
        problems.add(_INPUT, f"status holds values other than 0/1, e.g. {bad.tolist()}",
                     "code MS as 1 and healthy controls as 0")
    if covariates is not None and covariates.shape[0] != n:
        problems.add(_INPUT, f"covariates have {covariates.shape[0]} rows, Y has {n}",
                     "pass one covariate row per participant, in the order of Y")
    if not np.isfinite(Y).all():
        problems.add(_INPUT, "Y contains NaN or infinite values",
                     "transform abundances (e.g. CLR with a pseudocount) before association")
    if covariates is not None and not np.isfinite(covariates).all():
        problems.add(_INPUT, "covariates contain NaN or infinite values",
                     "impute or drop participants with missing covariates at ingest")
    if len(feature_ids) != n_features:
        problems.add(_INPUT, f"{len(feature_ids)} feature ids for {n_features} columns of Y",
                     "pass one feature id per column of Y")
    problems.raise_if_any()


def project_covariates(Y, status, covariates, feature_ids) -> Projection:
    """Project the shared covariates out of the abundances, once.

    Parameters
    ----------
    Y : array_like, shape (n, S)
        Abundances (e.g. CLR), participants x features. No missing values.
    status : array_like, shape (n,)
        1 = MS, 0 = control.
    covariates : array_like, shape (n, k) or None
        Covariates without intercept.
    feature_ids : sequence of str, length S

    Returns
    -------
    Projection

    Raises
    ------
    workflow_scripts.errors.InputError
        If shapes disagree, status is not 0/1, or Y/covariates are not finite.

    Notes
    -----
    ``Y~ = (I - QQ')Y`` with ``Q`` from :func:`covariate_basis`.  By the
    Frisch-Waugh-Lovell theorem the coefficient of any column ``x`` in the
    regression of ``y`` on ``[x, C]`` equals the coefficient of
    ``x~ = (I - QQ')x`` in the regression of ``y~`` on ``x~``, with the same
    residuals.
    """
    Y = np.asarray(Y, dtype=float)
    status = np.asarray(status, dtype=float)
    cov = None if covariates is None else np.asarray(covariates, dtype=float)
    if cov is not None and cov.ndim == 1:
        cov = cov[:, None]
    feature_ids = pd.Index(feature_ids)
    _validate_design(Y, status, cov, feature_ids)
    order = np.argsort(-status, kind="stable")
    Y, status = Y[order], status[order]
    cov = None if cov is None else cov[order]
    q = covariate_basis(status, cov)
    y_resid = Y - q @ (q.T @ Y)
    return Projection(order=order, n_cases=int(status.sum()), basis=q, status=status,
                  y_resid=y_resid, yy=np.einsum("is,is->s", y_resid, y_resid),
                  feature_ids=feature_ids)


# --------------------------------------------------------------------------
# Sufficient statistics per chunk
# --------------------------------------------------------------------------


@dataclass
class SufficientStatistics:
    """Cross products of the projected g, h = g*status and y, per variant."""

    n: np.ndarray          # (m,) participants with an observed dosage
    af: np.ndarray         # (m,) allele frequency among them
    rank: np.ndarray       # (m,) rank of the shared design on those participants
    gg: np.ndarray         # (m,)
    gh: np.ndarray         # (m,)
    hh: np.ndarray         # (m,)
    ss_g: np.ndarray       # (m,) sum of squares of g centred within status groups
    ss_h: np.ndarray       # (m,) the same for h (cases only)
    gy: np.ndarray         # (m, S)
    hy: np.ndarray         # (m, S)
    yy: np.ndarray         # (m, S) or (1, S)
    # The centred dosages x (m, n; design order, 0 where missing) and their
    # coefficients a = Q'x, c = Q'(x * status), kept for callers that need the
    # projected genotypes themselves (household-robust errors).
    x: np.ndarray | None = None
    a: np.ndarray | None = None
    c: np.ndarray | None = None


def sufficient_statistics(design: Projection, dosage: np.ndarray) -> SufficientStatistics:
    """Sufficient statistics of both models for one chunk of variants.

    Notes
    -----
    With ``P = I - QQ'`` and ``h = g * status``, the models need
    ``gg = g'Pg``, ``gh = g'Ph``, ``hh = h'Ph``, ``gy = g'PY``, ``hy = h'PY``
    and ``yy = diag(Y'PY)``.  ``P`` annihilates ``1`` and ``status``, so ``g``
    may be replaced by ``x = g`` centred within cases and within controls,
    and ``h`` by ``x * status`` (both then have small components in the span
    of ``Q``, which keeps the subtractions below accurate).  With ``a = Q'x``
    and ``c = Q'(x * status)``:

    ``gg = x'x - a'a``, ``gh = x_cases'x_cases - a'c``,
    ``hh = x_cases'x_cases - c'c``,

    and, since ``PY = Y~``, ``hy = X_cases Y~_cases``,
    ``gy = hy + X_controls Y~_controls``: one matrix product per chunk, in
    two halves (participants are stored cases first).  Missing dosages are
    set to 0 in ``x``; :func:`_correct_missing` then turns every statistic
    into the exact one of the observed participants.
    """
    m, n = dosage.shape
    q, nc = design.basis, design.n_cases
    dosage = dosage[:, design.order]
    missing = np.isnan(dosage)
    partial = np.flatnonzero(missing.any(axis=1))
    if partial.size:
        dosage = np.where(missing, 0.0, dosage)
        obs_cases = nc - missing[:, :nc].sum(axis=1)
        obs_controls = (n - nc) - missing[:, nc:].sum(axis=1)
    else:
        obs_cases, obs_controls = np.full(m, nc), np.full(m, n - nc)
    sum_cases = dosage[:, :nc].sum(axis=1)
    sum_controls = dosage[:, nc:].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_cases = np.nan_to_num(sum_cases / obs_cases)
        mean_controls = np.nan_to_num(sum_controls / obs_controls)
        af = (sum_cases + sum_controls) / (2.0 * (obs_cases + obs_controls))
    x = np.empty_like(dosage)
    np.subtract(dosage[:, :nc], mean_cases[:, None], out=x[:, :nc])
    np.subtract(dosage[:, nc:], mean_controls[:, None], out=x[:, nc:])
    if partial.size:
        x[missing] = 0.0
    x_cases = x[:, :nc]

    hy = x_cases @ design.y_resid[:nc]
    gy = hy + x[:, nc:] @ design.y_resid[nc:]
    a = x @ q
    c = x_cases @ q[:nc]
    ss_g = np.einsum("vi,vi->v", x, x)
    ss_h = np.einsum("vi,vi->v", x_cases, x_cases)
    stats = SufficientStatistics(
        n=obs_cases + obs_controls,
        af=af,
        rank=np.full(m, design.rank),
        gg=ss_g - np.einsum("vr,vr->v", a, a),
        gh=ss_h - np.einsum("vr,vr->v", a, c),
        hh=ss_h - np.einsum("vr,vr->v", c, c),
        ss_g=ss_g,
        ss_h=ss_h,
        gy=gy,
        hy=hy,
        yy=design.yy[None, :],
        x=x,
        a=a,
        c=c,
    )
    if partial.size:
        _correct_missing(design, stats, missing[partial], a[partial], c[partial], partial)
    return stats


def observed_gram(design, missing):
    """``K+``, ``u = Q_O'Y~_O``, the missing-call indicator and ``rank(K)`` for each variant.

    ``K = Q_O'Q_O = I - Q_M'Q_M`` and ``u = -Q_M'Y~_M`` are sums over the
    missing participants only (``Y~`` is orthogonal to ``Q``); eigenvalues of
    ``K`` at or below ``_RANK_TOL`` count as zero.

    Returns
    -------
    gram_pinv : (k, r, r); u : (k, r, S); indicator : sparse (k, n); rank : (k,)
    """
    k, r = missing.shape[0], design.rank
    qq, qy, _ = design.missing_terms
    indicator = sparse.csr_matrix(missing.astype(float))
    gram = np.eye(r) - (indicator @ qq).reshape(k, r, r)
    eigval, eigvec = np.linalg.eigh(gram)
    nonzero = eigval > _RANK_TOL
    inv = np.where(nonzero, 1.0 / np.where(nonzero, eigval, 1.0), 0.0)
    gram_pinv = (eigvec * inv[:, None, :]) @ eigvec.transpose(0, 2, 1)
    u = -(indicator @ qy).reshape(k, r, design.y_resid.shape[1])
    return gram_pinv, u, indicator, nonzero.sum(axis=1)


def _correct_missing(design: Projection, stats: SufficientStatistics, missing, a, c, rows) -> None:
    """Make the statistics of variants with missing dosages exact (in place).

    Parameters
    ----------
    missing : (k, n) bool, dosage missing
    a, c : (k, r) ``Q'x`` and ``Q'(x * status)``, ``x`` zero where missing
    rows : (k,) positions of these variants in the chunk

    Notes
    -----
    For a variant observed on participants ``O`` (missing on ``M``), the right
    projection is onto the shared design restricted to ``O``.  With
    ``K = Q_O'Q_O = I - Q_M'Q_M`` and ``K+`` its pseudo-inverse,
    ``P_O = I - Q_O K+ Q_O'`` projects the covariates out of the observed
    rows.  For vectors ``x``, ``z`` that are zero on ``M``,
    ``x_O'P_O z_O = x'z - (Q'x)'K+(Q'z)``, so ``gg = x'x - a'K+a``,
    ``gh = x_cases'x_cases - c'K+a``, ``hh = x_cases'x_cases - c'K+c``
    (``K = I`` without missing dosages).  Because ``Y~`` is already orthogonal to ``Q``,
    ``u = Q_O'Y~_O = -Q_M'Y~_M``, so

    ``gy_O = x'Y~ - a'K+u``, ``hy_O = (x * status)'Y~ - c'K+u``,
    ``yy_O = sum_O Y~^2 - diag(u'K+u)``.

    ``K``, ``u`` and ``sum_M Y~^2`` are sums over the missing participants
    only: one sparse (k x n) indicator matrix times precomputed per-participant
    outer products, so the cost grows with the number of missing calls, not
    with ``n``.  ``rank(C_O) = rank(K)`` (eigenvalues above ``_RANK_TOL``)
    gives the exact residual degrees of freedom.
    """
    n_features = design.y_resid.shape[1]
    y2 = design.missing_terms[2]
    gram_pinv, u, indicator, rank = observed_gram(design, missing)
    w = gram_pinv @ u                                        # K+ u, (k, r, S)
    ka = np.einsum("kij,kj->ki", gram_pinv, a)              # K+ a
    kc = np.einsum("kij,kj->ki", gram_pinv, c)

    yy = np.broadcast_to(stats.yy, (stats.gy.shape[0], n_features)).copy()
    yy[rows] = design.yy - indicator @ y2 - np.einsum("krs,krs->ks", u, w)
    stats.yy = yy
    stats.gy[rows] -= np.einsum("kr,krs->ks", a, w)
    stats.hy[rows] -= np.einsum("kr,krs->ks", c, w)
    stats.gg[rows] = stats.ss_g[rows] - np.einsum("kr,kr->k", a, ka)
    stats.gh[rows] = stats.ss_h[rows] - np.einsum("kr,kr->k", c, ka)
    stats.hh[rows] = stats.ss_h[rows] - np.einsum("kr,kr->k", c, kc)
    stats.rank[rows] = rank


# --------------------------------------------------------------------------
# Both OLS models from the sufficient statistics
# --------------------------------------------------------------------------


def _two_sided_p(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """``2 * P(T_df > |t|)``; NaN where t or df is NaN."""
    return 2.0 * special.stdtr(df[:, None], -np.abs(t))


def solve_models(stats: SufficientStatistics) -> dict[str, np.ndarray]:
    """Point estimates of both models and what their standard errors need.

    Returns a dict of arrays: per variant (m,) ``gg``, ``df_a``, ``ok_g``,
    ``ratio``, ``hh_perp``, ``df_b``, ``ok_int``; per variant x feature (m, S)
    ``beta``, ``rss_a``, ``beta_int``, ``hy_perp``, ``rss_b``.  Unidentified
    entries are NaN (see :func:`model_based_errors` for the formulas).  Shared by
    :func:`model_based_errors` (model-based OLS errors) and
    :mod:`workflow_scripts.models.cluster_robust` (household-robust errors).
    """
    df_a = (stats.n - stats.rank - 1).astype(float)
    df_b = df_a - 1.0
    ok_g = (stats.ss_g > 0) & (stats.gg > COLLINEARITY_TOL * stats.ss_g) & (df_a > 0)
    gg = np.where(ok_g, stats.gg, np.nan)
    df_a = np.where(ok_g, df_a, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = stats.gy / gg[:, None]
        rss_a = np.maximum(stats.yy - beta * stats.gy, 0.0)
        ratio = stats.gh / gg
        hh_perp = stats.hh - ratio * stats.gh
        ok_int = ok_g & (stats.ss_h > 0) & (hh_perp > COLLINEARITY_TOL * stats.ss_h) & (df_b > 0)
        hh_perp = np.where(ok_int, hh_perp, np.nan)
        df_b = np.where(ok_int, df_b, np.nan)
        hy_perp = stats.hy - ratio[:, None] * stats.gy
        beta_int = hy_perp / hh_perp[:, None]
        rss_b = np.maximum(rss_a - beta_int * hy_perp, 0.0)
    return {"gg": gg, "df_a": df_a, "ok_g": ok_g, "ratio": ratio, "hh_perp": hh_perp,
            "df_b": df_b, "ok_int": ok_int, "beta": beta, "rss_a": rss_a,
            "beta_int": beta_int, "hy_perp": hy_perp, "rss_b": rss_b}


def model_based_errors(stats: SufficientStatistics) -> dict[str, np.ndarray]:
    """Estimates, standard errors, t and p of both models, all (m, S).

    Notes
    -----
    Main effect (model a), ``df_a = n - rank(C) - 1``:
    ``b_g = gy / gg``, ``RSS_a = yy - b_g gy``, ``se = sqrt(RSS_a / df_a / gg)``.

    Interaction (model b), ``df_b = n - rank(C) - 2``.  The 2 x 2 normal
    equations ``[[gg, gh], [gh, hh]] [b_g, b_int]' = [gy, hy]'`` are shared by
    all features of a variant and solved in closed form, written as a
    Gram-Schmidt step (better conditioned than the determinant form):
    ``r = gh / gg``, ``hh_perp = hh - r gh``, ``hy_perp = hy - r gy``,
    ``b_int = hy_perp / hh_perp``, ``b_g|b = b_g - r b_int``,
    ``RSS_b = RSS_a - b_int hy_perp``, ``se_int = sqrt(RSS_b / df_b / hh_perp)``
    (``hh_perp = det / gg`` is ``1 / [M^-1]_22``).

    Two-sided p-values from Student's t with the residual df, as statsmodels'
    ``OLS`` reports them.  A genotype collinear with ``C`` on the observed
    participants (e.g. monomorphic), or an interaction term collinear with
    ``[C, g]`` (e.g. no carrier among cases, or every carrier a case), gives
    NaN rather than an estimate of an unidentified coefficient.
    """
    s = solve_models(stats)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(s["rss_a"] / (s["df_a"] * s["gg"])[:, None])
        t = s["beta"] / se
        se_int = np.sqrt(s["rss_b"] / (s["df_b"] * s["hh_perp"])[:, None])
        t_int = s["beta_int"] / se_int
    return {
        "beta_genotype": s["beta"],
        "se_genotype": se,
        "t_genotype": t,
        "p_genotype": _two_sided_p(t, s["df_a"]),
        "beta_interaction": s["beta_int"],
        "se_interaction": se_int,
        "t_interaction": t_int,
        "p_interaction": _two_sided_p(t_int, s["df_b"]),
        "beta_genotype_interaction_model": s["beta"] - s["ratio"][:, None] * s["beta_int"],
    }


def check_dosage_block(ids, dosage: np.ndarray, n: int) -> None:
    """Raise one :class:`~workflow_scripts.errors.InputError` if a dosage block does not fit ``n`` participants."""
    problems = Problems()
    if dosage.ndim != 2 or dosage.shape[1] != n:
        problems.add(_INPUT, f"dosage block has shape {dosage.shape}, expected (variants, {n})",
                     "orient G as variants x participants, participants in the order of Y")
    elif len(ids) != dosage.shape[0]:
        problems.add(_INPUT, f"{len(ids)} variant ids for a block of {dosage.shape[0]} variants",
                     "pass one variant id per dosage row")
    else:
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(dosage) & ((dosage < 0) | (dosage > 2) | ~np.isfinite(dosage))
        if bad.any():
            v = np.flatnonzero(bad.any(axis=1))[0]
            problems.add(_INPUT, "dosages outside [0, 2]",
                         "pass ALT allele dosages 0-2, NaN for missing", item=str(ids[v]))
    problems.raise_if_any()
