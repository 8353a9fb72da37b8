"""Per-site effects and a random-effects meta-analysis across sites.

A species whose MS association comes from one recruitment site should look
different from one seen everywhere. For every site with at least
``site_meta.min_households`` paired households, the LinDA model
(:mod:`.linda`: CLR of the whole composition, pseudo-count 0.5,
``status + covariates + DMT indicators + (1 | household)``, bias correction
by the mode within the site) is fitted to that site's participants alone;
terms with no variation in the site are dropped. The per-site status effects
are then pooled per feature by DerSimonian-Laird (:func:`dersimonian_laird`):
``meta_effect``/``meta_se``/``meta_pvalue`` (random effects), the
between-site variance ``tau2`` and ``i2``; a species seen in one site only
has a large :math:`I^2` and a weak random-effects p-value. Then every site
is left out in turn from the inverse-variance (fixed-effect) pool, the one
closest to the pooled models of the methods: ``loo_max_pvalue`` is its
largest p-value with one site left out, ``loo_site`` that site, and
``site_driven`` is True when the fixed-effect pool is significant (p < 0.05)
but leaving one site out makes it non-significant or flips its sign: the
pooled signal rests on that site.

Sites too small for the model are listed in the stage ledger
(``too_few_households_for_site_model``) and left out.

References
----------
.. [1] DerSimonian, R. & Laird, N. (1986). Meta-analysis in clinical trials.
   *Controlled Clinical Trials* 7(3), 177-188.
.. [2] Higgins, J. P. T. & Thompson, S. G. (2002). Quantifying heterogeneity in
   a meta-analysis. *Statistics in Medicine* 21(11), 1539-1558.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..ledger import Ledger
from . import linda
from .prepare import STAGE, StageData, make_pairs, status_design

ALPHA = 0.05


def dersimonian_laird(effects, ses) -> dict[str, np.ndarray]:
    """DerSimonian-Laird random-effects pooling of every row of ``effects``.

    Parameters
    ----------
    effects, ses : array_like, shape (p, k)
        Per-study (site) estimates and standard errors, one row per feature;
        NaN (or a non-positive SE) marks a missing study.

    Returns
    -------
    dict of ndarray (p,)
        ``effect``, ``se``, ``z``, ``pvalue`` (random effects), ``tau2``,
        ``q`` (Cochran's Q), ``i2``, ``k`` (studies used) and the
        inverse-variance fixed-effect ``fixed_effect``, ``fixed_se``,
        ``fixed_pvalue``. Rows with one study return that study (``tau2`` 0,
        ``i2`` 0); rows with none, NaN.

    Notes
    -----
    With :math:`w_i = 1/s_i^2`, :math:`\\bar\\theta_F = \\sum w_i\\theta_i / \\sum w_i`,
    :math:`Q = \\sum w_i(\\theta_i - \\bar\\theta_F)^2`,

    .. math::

        \\hat\\tau^2 = \\max\\left(0, \\frac{Q - (k - 1)}{\\sum w_i - \\sum w_i^2 / \\sum w_i}\\right),
        \\quad w_i^* = \\frac1{s_i^2 + \\hat\\tau^2},\\quad
        \\hat\\theta = \\frac{\\sum w_i^*\\theta_i}{\\sum w_i^*},\\quad
        \\operatorname{se} = \\Big(\\sum w_i^*\\Big)^{-1/2},

    and :math:`I^2 = \\max(0, (Q - (k - 1))/Q)`. :math:`\\hat\\tau^2` is truncated at 0
    (statsmodels' ``combine_effects(method_re="dl")`` is not; where its
    :math:`\\tau^2 < 0` the two differ and this function returns the fixed-effect
    estimate, as DerSimonian and Laird define it).
    """
    theta = np.asarray(effects, dtype=float)
    s = np.asarray(ses, dtype=float)
    if theta.ndim == 1:
        theta, s = theta[None, :], s[None, :]
    use = np.isfinite(theta) & np.isfinite(s) & (s > 0)
    t = np.where(use, theta, 0.0)
    w = np.where(use, 1.0 / np.where(use, s, 1.0) ** 2, 0.0)
    k = use.sum(axis=1)
    sw = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fixed = (w * t).sum(axis=1) / sw
        q = (w * (t - fixed[:, None]) ** 2).sum(axis=1)
        c = sw - (w**2).sum(axis=1) / sw
        tau2 = np.where(k > 1, np.maximum(0.0, (q - (k - 1)) / c), 0.0)
        tau2 = np.where(np.isfinite(tau2), tau2, 0.0)
        ws = np.where(use, 1.0 / (np.where(use, s, 1.0) ** 2 + tau2[:, None]), 0.0)
        effect = (ws * t).sum(axis=1) / ws.sum(axis=1)
        se = 1.0 / np.sqrt(ws.sum(axis=1))
        z = effect / se
        i2 = np.where((k > 1) & (q > 0), np.maximum(0.0, (q - (k - 1)) / q), 0.0)
        fixed_se = 1.0 / np.sqrt(sw)
    none = k == 0
    for arr in (effect, se, z, q, fixed, fixed_se):
        arr[none] = np.nan
    i2 = np.where(none, np.nan, i2)
    tau2 = np.where(none, np.nan, tau2)
    return {"effect": effect, "se": se, "z": z, "pvalue": 2.0 * ndtr(-np.abs(z)), "tau2": tau2,
            "q": q, "i2": i2, "k": k, "fixed_effect": fixed, "fixed_se": fixed_se,
            "fixed_pvalue": 2.0 * ndtr(-np.abs(fixed / fixed_se))}


def site_data(data: StageData, site: str) -> StageData:
    """The stage data restricted to one site's participants (no site terms)."""
    design = data.design
    keep = design.frame.index[design.frame["site"] == site]
    frame = design.frame.loc[keep].copy()
    sub = replace(design, frame=frame, covariates=design.covariates.loc[keep],
                  site=pd.DataFrame(index=keep), dmt=design.dmt.loc[keep],
                  excluded=design.excluded.iloc[:0])
    settings = replace(data.settings, site_effect="fixed",
                       linda={**data.settings.linda, "zero_handling": "pseudo-count"})
    return replace(data, design=sub, profiles=data.profiles.loc[keep], pairs=make_pairs(sub),
                   settings=settings)


def _site_problem(sub: StageData, minimum: int) -> str | None:
    """Why a site cannot get its own model (None when it can)."""
    n_households = len(sub.pairs.households)
    if n_households < max(minimum, 1):
        return f"{n_households} paired households < site_meta.min_households = {minimum}"
    n = len(sub.design.frame)
    k = status_design(sub.design, "fixed").shape[1]
    if n - k < 3:
        return f"{n} participants for {k} model terms"
    return None


def site_exclusions(data: StageData) -> pd.DataFrame:
    """Ledger rows for the sites left out of the per-site models (see :func:`per_site`)."""
    minimum = int(data.settings.site_meta["min_households"])
    ledger = Ledger()
    for site in sorted(data.design.frame["site"].unique()):
        reason = _site_problem(site_data(data, site), minimum)
        if reason:
            ledger.dropped("site", [site], reason="too_few_households_for_site_model",
                           detail=f"{STAGE}: left out of the per-site effects and meta-analysis: {reason}")
    return ledger.frame()


def per_site(data: StageData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LinDA status effects within every site large enough.

    Returns
    -------
    effects : DataFrame
        Long table: ``feature``, ``site``, ``effect``, ``se``, ``pvalue``,
        ``n`` (participants), ``n_households`` (paired households), sorted by
        feature then site.
    ledger : DataFrame
        One row per site left out (:func:`site_exclusions`).
    """
    minimum = int(data.settings.site_meta["min_households"])
    rows = []
    for site in sorted(data.design.frame["site"].unique()):
        sub = site_data(data, site)
        if _site_problem(sub, minimum):
            continue
        table = linda.run(sub).table.reindex(data.features)
        rows.append(pd.DataFrame({
            "feature": list(data.features), "site": site, "effect": table["effect"].to_numpy(),
            "se": table["se"].to_numpy(), "pvalue": table["pvalue"].to_numpy(),
            "n": len(sub.design.frame), "n_households": len(sub.pairs.households)}))
    columns = ["feature", "site", "effect", "se", "pvalue", "n", "n_households"]
    effects = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    effects = effects.sort_values(["feature", "site"], kind="stable", ignore_index=True)
    return effects, site_exclusions(data)


def meta_analysis(effects: pd.DataFrame, features) -> pd.DataFrame:
    """DerSimonian-Laird across sites per feature, with leave-one-site-out.

    Parameters
    ----------
    effects : DataFrame
        From :func:`per_site`.
    features : list-like
        Every tested feature (features without site estimates get NaN).

    Returns
    -------
    DataFrame
        ``feature``, ``meta_effect``, ``meta_se``, ``meta_pvalue``, ``tau2``,
        ``q``, ``i2``, ``n_sites``, ``loo_max_pvalue``, ``loo_site``,
        ``site_driven``; sorted by feature.
    """
    features = sorted(features)
    if len(effects):
        E = effects.pivot(index="feature", columns="site", values="effect").reindex(features)
        S = effects.pivot(index="feature", columns="site", values="se").reindex(features)
    else:
        E = S = pd.DataFrame(index=features, dtype=float)
    sites = list(E.columns)
    full = dersimonian_laird(E.to_numpy(), S.to_numpy()) if sites else None
    out = pd.DataFrame({"feature": features})
    if full is None:
        for column in ("meta_effect", "meta_se", "meta_pvalue", "tau2", "q", "i2", "loo_max_pvalue"):
            out[column] = np.nan
        out["n_sites"] = 0
        out["loo_site"] = ""
        out["site_driven"] = False
        return out
    out["meta_effect"], out["meta_se"], out["meta_pvalue"] = full["effect"], full["se"], full["pvalue"]
    out["tau2"], out["q"], out["i2"], out["n_sites"] = full["tau2"], full["q"], full["i2"], full["k"]
    loo_p = np.full((len(features), len(sites)), np.nan)
    loo_flip = np.zeros((len(features), len(sites)), bool)
    for j in range(len(sites)):
        keep = [i for i in range(len(sites)) if i != j]
        if not keep:
            continue
        part = dersimonian_laird(E.to_numpy()[:, keep], S.to_numpy()[:, keep])
        present = np.isfinite(E.to_numpy()[:, j]) & (part["k"] > 0)
        loo_p[present, j] = part["fixed_pvalue"][present]
        loo_flip[:, j] = present & (np.sign(part["fixed_effect"]) != np.sign(full["fixed_effect"]))
    any_loo = np.isfinite(loo_p).any(axis=1)
    filled = np.where(np.isfinite(loo_p), loo_p, -1.0)
    out["loo_max_pvalue"] = np.where(any_loo, filled.max(axis=1), np.nan)
    out["loo_site"] = np.where(any_loo, np.array(sites, dtype=object)[np.argmax(filled, axis=1)], "")
    significant = full["fixed_pvalue"] < ALPHA
    fragile = (out["loo_max_pvalue"].to_numpy() >= ALPHA) | loo_flip.any(axis=1)
    out["site_driven"] = significant & any_loo & fragile
    return out
