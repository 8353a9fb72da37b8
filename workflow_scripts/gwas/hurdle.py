"""The MiBioGen-style hurdle model, vectorised over variants x taxa.

Two questions per variant and taxon, as MiBioGen asked them (Kurilshikov et
al. 2021):

presence (binary trait loci)
    For taxa present in ``presence_range`` (default 10-90 %) of the
    participants: logistic regression of presence (abundance > 0) on the
    dosage and the covariates, tested with the **score (Rao) test** of the
    dosage: the null model (covariates only) is fitted once per taxon, then
    every variant is one matrix product away.  ``beta``/``se`` are the
    one-step (score / information) estimate of the log-odds ratio and its
    standard error, accurate near the null.
abundance among carriers (quantitative trait loci)
    For each taxon, among the participants carrying it (abundance > 0; at
    least ``min_carriers`` of them): ordinary least squares of the
    transformed abundance (e.g. log relative abundance) on the dosage and the
    covariates, a t-test of the dosage; with ``households`` the standard
    error is household cluster-robust (CR1, as statsmodels
    ``cov_type="cluster", use_t=True``).  With clusters the presence score
    test is cluster-robust too (the robust score test of a GEE with
    independence working correlation, statsmodels ``GEE.compare_score_test``).

Missing dosages are replaced by the variant's mean dosage over the
participants analysed (the usual practice of score-test GWAS engines); a
variant without variance gets NaN.

References
----------
.. [1] Kurilshikov A et al. (2021). Large-scale association analyses identify
   host factors influencing human gut microbiome composition. Nature
   Genetics 53:156-165.
.. [2] Rao CR (1948). Large sample tests of statistical hypotheses concerning
   several parameters. Proc. Cambridge Philos. Soc. 44:50-57.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["CarrierModel", "PresenceModel", "carrier_abundance_test", "hurdle", "logistic_null",
           "presence_score_test"]


def _design(covariates, n: int) -> np.ndarray:
    X = np.ones((n, 1))
    if covariates is not None:
        C = np.asarray(covariates, dtype=float).reshape(n, -1)
        X = np.column_stack([X, C])
    return X


def _impute(G: np.ndarray) -> np.ndarray:
    G = np.array(G, dtype=float)
    mean = np.nanmean(np.where(np.isnan(G).all(axis=1, keepdims=True), 0.0, G), axis=1)
    return np.where(np.isnan(G), mean[:, None], G)


def logistic_null(y: np.ndarray, X: np.ndarray, tol: float = 1e-12, max_iter: int = 100,
                  return_converged: bool = False):
    """Fitted probabilities of the covariates-only logistic model (Newton-Raphson), one column per taxon.

    Parameters
    ----------
    y : (n, S) 0/1
    X : (n, k) design with intercept
    return_converged : bool
        Also return, per taxon, whether the fit converged.

    Returns
    -------
    (n, S) fitted probabilities [, (S,) bool].

    Notes
    -----
    Under separation (say a taxon present in every participant on a rare
    therapy) the maximum lies at infinity: Newton's steps then grow the
    separating coefficient until the separated participants' probabilities
    are 0 or 1 to machine precision, where their weight ``mu (1 - mu)`` is
    zero and they drop out of the score test, as in statsmodels (which only
    warns).  Such a fit counts as converged once the log-likelihood stops
    changing.
    """
    n, S = y.shape
    mu = np.empty((n, S))
    converged = np.zeros(S, bool)
    for s in range(S):
        beta = np.zeros(X.shape[1])
        mean = min(max(y[:, s].mean(), 1e-6), 1 - 1e-6)
        beta[0] = np.log(mean / (1 - mean))
        previous = -np.inf
        for _ in range(max_iter):
            eta = X @ beta
            m = 1 / (1 + np.exp(-eta))
            w = m * (1 - m)
            step = np.linalg.lstsq(X.T @ (w[:, None] * X), X.T @ (y[:, s] - m), rcond=None)[0]
            beta += step
            eta = X @ beta
            loglik = float(np.sum(y[:, s] * eta - np.logaddexp(0, eta)))
            if np.max(np.abs(step)) < tol or abs(loglik - previous) < tol * (1 + abs(loglik)):
                converged[s] = True
                break
            previous = loglik
        mu[:, s] = 1 / (1 + np.exp(-(X @ beta)))
        converged[s] &= bool(np.isfinite(mu[:, s]).all())
    return (mu, converged) if return_converged else mu


def _cluster_layout(clusters) -> tuple[np.ndarray, np.ndarray, int]:
    """(order, starts, H): participants sorted by cluster and where each cluster starts."""
    codes, labels = pd.factorize(np.asarray(clusters))
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    return order, starts, labels.size


class PresenceModel:
    """The presence part for fixed taxa and covariates: the null model fitted once, then any variants.

    Parameters
    ----------
    present : (n, S) bool
    covariates : (n, k) or None
    clusters : (n,) labels, optional
        Given, the score's variance is cluster-robust (see :func:`presence_score_test`).

    Notes
    -----
    Every per-variant quantity is a matrix product of the dosages with a
    matrix prepared here for all taxa at once (``W_s X`` and the
    cluster-spread ``r_s c_h(i)`` side by side, ``r^2``, the within-cluster
    pair products of ``r``), so a block of variants costs a few large
    products rather than a loop over taxa.  The cluster-robust variance
    ``sum_h (a_h - B c_h)^2`` (``a_h`` the cluster's sum of ``g_i r_i``,
    ``c_h`` of ``x_i r_i``, ``B`` the dosage's weighted projection on the
    covariates) is expanded into ``sum_h a_h^2 - 2 B sum_h a_h c_h + B
    (sum_h c_h c_h') B'``, and ``sum_h a_h^2`` into the squares plus twice
    the within-cluster pair products.
    """

    def __init__(self, present, covariates=None, clusters=None):
        y = np.asarray(present, dtype=float)
        self.n, self.S = y.shape
        self.X = _design(covariates, self.n)
        k = self.X.shape[1]
        self.mu, self.converged = logistic_null(y, self.X, return_converged=True)
        self.W = self.mu * (1 - self.mu)
        self.R = y - self.mu
        # pinv: covariates aliased among these rows (a site without the taxon...) leave X'WX singular
        self.inverse = np.stack([np.linalg.pinv(self.X.T @ (self.W[:, s, None] * self.X)) for s in range(self.S)])
        WX = (self.W[:, :, None] * self.X[:, None, :]).reshape(self.n, self.S * k)
        self.clustered = clusters is not None
        if self.clustered:
            codes = pd.factorize(np.asarray(clusters))[0]
            H = int(codes.max()) + 1 if codes.size else 0
            C = np.zeros((H, self.S, k))                           # per cluster: sums of x_i r_i
            np.add.at(C, codes, self.R[:, :, None] * self.X[:, None, :])
            self.CC = np.einsum("hsk,hsl->skl", C, C)
            spread = (self.R[:, :, None] * C[codes]).reshape(self.n, self.S * k)
            self.right = np.concatenate([WX, spread], axis=1)
            self.R2 = self.R ** 2
            order = np.argsort(codes, kind="stable")
            first, second = [], []
            bounds = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0, True])
            for a, b in zip(bounds[:-1], bounds[1:]):
                members = order[a:b]
                for i in range(members.size):
                    first.extend([members[i]] * (members.size - 1 - i))
                    second.extend(members[i + 1:])
            self.pairs = (np.asarray(first, dtype=np.intp), np.asarray(second, dtype=np.intp))
            self.RR = self.R[self.pairs[0]] * self.R[self.pairs[1]]
        else:
            self.right = WX

    def test(self, G) -> dict[str, np.ndarray]:
        """Score tests of every variant (rows of ``G``, NaN mean-imputed) x taxon; see :func:`presence_score_test`."""
        G = _impute(G)
        V, S, k = G.shape[0], self.S, self.X.shape[1]
        U = G @ self.R
        G2 = G ** 2
        naive = G2 @ self.W
        products = G @ self.right
        A = products[:, :S * k].reshape(V, S, k)                       # g' W_s X
        B = np.einsum("vsk,skl->vsl", A, self.inverse)                 # weighted projection of g on X
        info = naive - np.einsum("vsk,vsk->vs", B, A)
        if self.clustered:
            F = products[:, S * k:].reshape(V, S, k)
            squares = G2 @ self.R2
            if self.pairs[0].size:
                squares += 2 * ((G[:, self.pairs[0]] * G[:, self.pairs[1]]) @ self.RR)
            variance = squares - 2 * np.einsum("vsk,vsk->vs", B, F) + np.einsum("vsk,skl,vsl->vs", B, self.CC, B)
        else:
            variance = info
        with np.errstate(invalid="ignore", divide="ignore"):
            info = np.where((info > 1e-12 * np.maximum(naive, 1e-300)) & self.converged, info, np.nan)
            variance = np.where(np.isnan(info) | (variance <= 0), np.nan, variance)
            chi2 = U ** 2 / variance
            return {"score": U, "information": info, "variance": variance, "chi2": chi2,
                    "p": stats.chi2.sf(chi2, 1), "beta": U / info, "se": np.sqrt(variance) / info}


def presence_score_test(G, present, covariates=None, clusters=None) -> dict[str, np.ndarray]:
    """Score test of the dosage in ``logit P(present) ~ 1 + covariates + dosage``, every variant x taxon.

    Parameters
    ----------
    G : (V, n) dosages (NaN = missing, mean-imputed)
    present : (n, S) bool
    covariates : (n, k) or None
    clusters : (n,) labels, optional
        Households (or participants, for repeated samples): the score's
        variance is then cluster-robust.

    Returns
    -------
    dict of (V, S) arrays
        ``score`` (U), ``information`` (its model-based variance under the
        null), ``variance`` (the variance used: the information, or the
        cluster-robust one), ``chi2`` = U^2 / variance, ``p`` (chi-square,
        1 df), ``beta`` = U / information (one-step log-odds ratio) and
        ``se`` = sqrt(variance) / information.

    Notes
    -----
    With ``mu`` the null model's fitted probabilities, ``W = diag(mu(1-mu))``:
    ``U = g'(y - mu)`` and ``I = g'Wg - g'WX (X'WX)^{-1} X'Wg`` (the
    efficient information, profiling out the covariates' coefficients).
    This is statsmodels ``GLM(y, X, Binomial()).fit().score_test(exog_extra=g)``.

    Cluster-robust: with ``g~ = g - X (X'WX)^{-1} X'Wg`` (the dosage's
    weighted residual on the covariates, so that the score does not move
    with the covariates' estimated coefficients), ``V = sum_h (sum_{i in h}
    g~_i (y_i - mu_i))^2`` over clusters ``h``: the robust score test of a
    GEE with independence working correlation (statsmodels
    ``GEE.compare_score_test``, Guo and Pan 2002), which stays valid when
    the members of a household, or the repeated samples of a participant,
    are correlated.

    References
    ----------
    .. [1] Boos DD (1992). On generalized score tests. The American
       Statistician 46:327-333.
    .. [2] Guo X, Pan W (2002). Small sample performance of the score test in
       GEE. University of Minnesota Research Report 2002-013.
    """
    return PresenceModel(present, covariates, clusters).test(G)


class CarrierModel:
    """The carriers' abundance part for fixed taxa and covariates: per-taxon projections once, then any variants.

    Parameters are those of :func:`carrier_abundance_test` without ``G``.
    Each taxon's carriers are kept sorted by cluster, so the per-cluster
    sums of the sandwich are one ``reduceat`` over contiguous columns.
    """

    def __init__(self, values, present, covariates=None, households=None, min_carriers: int = 10):
        present = np.asarray(present, dtype=bool)
        values = np.asarray(values, dtype=float)
        self.n, self.S = present.shape
        X_all = _design(covariates, self.n)
        codes = pd.factorize(np.asarray(households))[0] if households is not None else None
        self.n_carriers = present.sum(axis=0)
        self.taxa = []
        for s in range(self.S):
            rows = np.flatnonzero(present[:, s])
            if codes is not None:
                rows = rows[np.argsort(codes[rows], kind="stable")]
            ns = rows.size
            X = X_all[rows]
            k = X.shape[1]
            if ns < max(min_carriers, k + 2) or np.linalg.matrix_rank(X) < k:
                self.taxa.append(None)
                continue
            Q, _ = np.linalg.qr(X)
            y = values[rows, s]
            starts = None
            if codes is not None:
                starts = np.flatnonzero(np.r_[True, np.diff(codes[rows]) != 0])
            self.taxa.append((rows, Q, y - Q @ (Q.T @ y), ns - k - 1, starts))

    def test(self, G) -> dict[str, np.ndarray]:
        """OLS t-tests of every variant (rows of ``G``) x taxon; see :func:`carrier_abundance_test`."""
        G = np.asarray(G, dtype=float)
        missing = np.isnan(G).any()
        V = G.shape[0]
        out = {k: np.full((V, self.S), np.nan) for k in ("beta", "se", "t", "p")}
        out["n"] = self.n_carriers
        for s, taxon in enumerate(self.taxa):
            if taxon is None:
                continue
            rows, Q, y_r, df, starts = taxon
            ns = rows.size
            Gs = _impute(G[:, rows]) if missing else G[:, rows]
            G_r = Gs - (Gs @ Q) @ Q.T
            gg = np.einsum("vi,vi->v", G_r, G_r)
            with np.errstate(invalid="ignore", divide="ignore"):
                gg = np.where(gg > 1e-10 * np.maximum(np.einsum("vi,vi->v", Gs, Gs), 1e-300), gg, np.nan)
                beta = (G_r @ y_r) / gg
                if starts is None:
                    rss = y_r @ y_r - beta ** 2 * gg
                    se = np.sqrt(rss / df / gg)
                    t = beta / se
                    p = 2 * stats.t.sf(np.abs(t), df)
                else:
                    H = starts.size
                    score = G_r * (y_r[None, :] - beta[:, None] * G_r)           # g~_i e_i
                    sums = np.add.reduceat(score, starts, axis=1)                  # (V, H) per-cluster sums
                    c = H / (H - 1) * (ns - 1) / df
                    se = np.sqrt(c * np.einsum("vh,vh->v", sums, sums)) / gg
                    t = beta / se
                    p = 2 * stats.t.sf(np.abs(t), H - 1)
            out["beta"][:, s], out["se"][:, s], out["t"][:, s], out["p"][:, s] = beta, se, t, p
        return out


def carrier_abundance_test(G, values, present, covariates=None, households=None,
                           min_carriers: int = 10) -> dict[str, np.ndarray]:
    """OLS t-test of the dosage on a taxon's abundance among the participants carrying it.

    Parameters
    ----------
    G : (V, n) dosages (NaN = missing; mean-imputed among each taxon's carriers)
    values : (n, S) transformed abundance (used only where ``present``)
    present : (n, S) bool
    covariates : (n, k) or None
    households : (n,) cluster labels, optional: CR1 cluster-robust errors
    min_carriers : int
        Taxa with fewer carriers are not tested (NaN).

    Returns
    -------
    dict of (V, S) arrays: ``beta``, ``se``, ``t``, ``p``, and ``n`` (S,) carriers per taxon.

    Notes
    -----
    Frisch-Waugh-Lovell: with ``y~`` and ``g~`` residualised on the
    covariates among carriers, ``beta = g~'y~ / g~'g~``, ``RSS = y~'y~ -
    beta^2 g~'g~``, ``se^2 = RSS / (n_s - k - 1) / g~'g~`` (``k`` columns of
    covariates with intercept), Student t with ``n_s - k - 1`` df.
    Cluster-robust: ``se^2 = c sum_h (sum_{i in h} g~_i e_i)^2 / (g~'g~)^2``,
    ``c = H/(H-1) (n_s-1)/(n_s-k-1)``, t with ``H - 1`` df (statsmodels
    ``cov_type="cluster", use_t=True``, as the association engine).
    """
    return CarrierModel(values, present, covariates, households, min_carriers).test(G)


def hurdle(G, abundance, covariates=None, values=None, households=None, presence_range=(0.1, 0.9),
           min_carriers: int = 10, variant_ids=None, feature_ids=None) -> pd.DataFrame:
    """Both parts of the hurdle model for every variant x taxon, as one long table.

    Parameters
    ----------
    G : (V, n) dosages
    abundance : (n, S) abundances (counts or relative); presence is ``> 0``
    covariates : (n, k), optional
    values : (n, S), optional
        The abundance scale of the carriers' model; default
        ``log(abundance / row total)`` (log relative abundance).
    households : (n,), optional
        Cluster-robust errors for both parts (the presence score's variance
        and the carriers' standard errors).
    presence_range : (low, high)
        Taxa whose prevalence lies in ``[low, high]`` get the presence test.
    min_carriers : int
    variant_ids, feature_ids : sequences, optional

    Returns
    -------
    DataFrame
        One row per variant x taxon (variant-major): ``variant_id``,
        ``feature``, ``prevalence``, ``beta_presence``, ``se_presence``,
        ``p_presence`` (NaN outside ``presence_range``), ``n_carriers``,
        ``beta_abundance``, ``se_abundance``, ``p_abundance``.
    """
    A = np.asarray(abundance, dtype=float)
    G = np.asarray(G, dtype=float)
    V, (n, S) = G.shape[0], A.shape
    present = A > 0
    prevalence = present.mean(axis=0)
    if values is None:
        with np.errstate(divide="ignore"):
            values = np.log(A / A.sum(axis=1, keepdims=True))
    binary = (prevalence >= presence_range[0]) & (prevalence <= presence_range[1])
    pres = {k: np.full((V, S), np.nan) for k in ("beta", "se", "p")}
    if binary.any():
        res = presence_score_test(G, present[:, binary], covariates, households)
        for k in pres:
            pres[k][:, binary] = res[k]
    ab = carrier_abundance_test(G, values, present, covariates, households, min_carriers)
    vid = np.asarray(variant_ids if variant_ids is not None else np.arange(V))
    fid = np.asarray(feature_ids if feature_ids is not None else np.arange(S))
    return pd.DataFrame({
        "variant_id": np.repeat(vid, S), "feature": np.tile(fid, V), "prevalence": np.tile(prevalence, V),
        "beta_presence": pres["beta"].ravel(), "se_presence": pres["se"].ravel(), "p_presence": pres["p"].ravel(),
        "n_carriers": np.tile(ab["n"], V), "beta_abundance": ab["beta"].ravel(), "se_abundance": ab["se"].ravel(),
        "p_abundance": ab["p"].ravel(),
    })
