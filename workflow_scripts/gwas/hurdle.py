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
    ``cov_type="cluster", use_t=True``).  The presence score test is
    model-based only (statsmodels has no cluster-robust score test to check
    one against).

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

__all__ = ["hurdle", "logistic_null", "presence_score_test", "carrier_abundance_test"]


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


def logistic_null(y: np.ndarray, X: np.ndarray, tol: float = 1e-12, max_iter: int = 100) -> np.ndarray:
    """Fitted probabilities of the covariates-only logistic model (Newton-Raphson), one column per taxon.

    Parameters
    ----------
    y : (n, S) 0/1
    X : (n, k) design with intercept

    Returns
    -------
    (n, S) fitted probabilities.
    """
    n, S = y.shape
    mu = np.empty((n, S))
    for s in range(S):
        beta = np.zeros(X.shape[1])
        beta[0] = np.log(y[:, s].mean() / (1 - y[:, s].mean()))
        for _ in range(max_iter):
            eta = X @ beta
            m = 1 / (1 + np.exp(-eta))
            w = m * (1 - m)
            step = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (y[:, s] - m))
            beta += step
            if np.max(np.abs(step)) < tol:
                break
        mu[:, s] = 1 / (1 + np.exp(-(X @ beta)))
    return mu


def presence_score_test(G, present, covariates=None) -> dict[str, np.ndarray]:
    """Score test of the dosage in ``logit P(present) ~ 1 + covariates + dosage``, every variant x taxon.

    Parameters
    ----------
    G : (V, n) dosages (NaN = missing, mean-imputed)
    present : (n, S) bool
    covariates : (n, k) or None

    Returns
    -------
    dict of (V, S) arrays
        ``score`` (U), ``information`` (its variance under the null),
        ``chi2`` = U^2 / information, ``p`` (chi-square, 1 df), ``beta`` =
        U / information and ``se`` = information^-1/2.

    Notes
    -----
    With ``mu`` the null model's fitted probabilities, ``W = diag(mu(1-mu))``:
    ``U = g'(y - mu)`` and ``I = g'Wg - g'WX (X'WX)^{-1} X'Wg`` (the
    efficient information, profiling out the covariates' coefficients).
    This is statsmodels ``GLM(y, X, Binomial()).fit().score_test(exog_extra=g)``.
    """
    G = _impute(G)
    y = np.asarray(present, dtype=float)
    n, S = y.shape
    X = _design(covariates, n)
    mu = logistic_null(y, X)
    W = mu * (1 - mu)
    U = G @ (y - mu)
    info = (G ** 2) @ W
    for s in range(S):
        WX = W[:, s, None] * X
        A = G @ WX                                   # (V, k): g' W X
        info[:, s] -= np.einsum("vk,vk->v", A @ np.linalg.inv(X.T @ WX), A)
    with np.errstate(invalid="ignore", divide="ignore"):
        info = np.where(info > 1e-12 * np.maximum((G ** 2) @ W, 1e-300), info, np.nan)
        chi2 = U ** 2 / info
        return {"score": U, "information": info, "chi2": chi2, "p": stats.chi2.sf(chi2, 1),
                "beta": U / info, "se": 1 / np.sqrt(info)}


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
    G = np.asarray(G, dtype=float)
    V = G.shape[0]
    present = np.asarray(present, dtype=bool)
    values = np.asarray(values, dtype=float)
    n, S = present.shape
    X_all = _design(covariates, n)
    out = {k: np.full((V, S), np.nan) for k in ("beta", "se", "t", "p")}
    out["n"] = present.sum(axis=0)
    for s in range(S):
        rows = present[:, s]
        ns = int(rows.sum())
        X = X_all[rows]
        k = X.shape[1]
        if ns < max(min_carriers, k + 2) or np.linalg.matrix_rank(X) < k:
            continue
        Q, _ = np.linalg.qr(X)
        y = values[rows, s]
        y_r = y - Q @ (Q.T @ y)
        Gs = _impute(G[:, rows])
        G_r = Gs - (Gs @ Q) @ Q.T
        gg = np.einsum("vi,vi->v", G_r, G_r)
        with np.errstate(invalid="ignore", divide="ignore"):
            gg = np.where(gg > 1e-10 * np.maximum(np.einsum("vi,vi->v", Gs, Gs), 1e-300), gg, np.nan)
            beta = (G_r @ y_r) / gg
            df = ns - k - 1
            if households is None:
                rss = y_r @ y_r - beta ** 2 * gg
                se = np.sqrt(rss / df / gg)
                t = beta / se
                p = 2 * stats.t.sf(np.abs(t), df)
            else:
                codes, labels = pd.factorize(np.asarray(households)[rows])
                H = labels.size
                E = y_r[None, :] - beta[:, None] * G_r
                order = np.argsort(codes, kind="stable")
                starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
                sums = np.add.reduceat((G_r * E)[:, order], starts, axis=1)   # (V, H) per-household sums
                c = H / (H - 1) * (ns - 1) / df
                se = np.sqrt(c * (sums ** 2).sum(axis=1)) / gg
                t = beta / se
                p = 2 * stats.t.sf(np.abs(t), H - 1)
        out["beta"][:, s], out["se"][:, s], out["t"][:, s], out["p"][:, s] = beta, se, t, p
    return out


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
        Cluster-robust errors for the carriers' model.
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
        res = presence_score_test(G, present[:, binary], covariates)
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
