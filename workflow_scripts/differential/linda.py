"""LinDA on the household design: CLR, linear mixed model, bias correction by the mode.

Abundances
    Counts: zeros handled as configured (``linda.zero_handling``): a
    pseudo-count (default 0.5), LinDA's depth-aware imputation, or
    ``adaptive`` (the default), which imputes when log sequencing depth is
    associated (p <= ``corr_cut``) with any term of the design and adds the
    pseudo-count otherwise. This is what LinDA's documentation describes; the
    R package (MicrobiomeStat) sets ``"Imputation"`` but tests for
    ``"imputation"``, so it never imputes. Relative abundances: zeros become
    half the participant's smallest non-zero value (no depth to test).
    Then the centred log2-ratio over all taxa; the tested features are kept.

Model
    ``clr ~ status + covariates + DMT indicators [+ site] + (1 | household)``
    (site random and nested when ``site_effect: random``), fitted for every
    feature at once (:func:`workflow_scripts.differential.prepare.fit_status_model`).

Bias correction
    The status coefficients of all tested features are shifted by their
    mode (:func:`kde_mode`), the compositional bias LinDA estimates;
    ``effect`` is the corrected log2 fold change, ``se`` the model's standard
    error, p-values from the normal.

Therapy terms
    :func:`treatment_effects` reports the DMT coefficients of the same fit
    (``differential/treatment_effects.tsv``), so a species moved by a drug
    is visible as such and not as disease-associated.

This is the one LinDA of the workflow, vectorised over features (one mixed
model fit for all of them); ``tests/linda_reference.py`` keeps the plain
formulation (counts and a design matrix in, one table out) that it must equal.

References
----------
.. [1] Zhou, H., He, K., Chen, J. & Zhang, X. (2022). LinDA: linear models for
   differential abundance analysis of microbiome compositional data.
   *Genome Biology* 23, 95. https://doi.org/10.1186/s13059-022-02655-5
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..models.mixed_model import test_term
from ..models.multiple_testing import bh
from ..transforms import clr, impute_zeros
from .methods import MethodOutput
from .prepare import StageData, clr_features, fit_status_model

#: How the output columns' scale reads in the report.
SCALE = "log2 fold change (CLR, bias-corrected)"
USES_PSEUDO_COUNT = True


def bandwidth_nrd0(x) -> float:
    """Silverman's rule-of-thumb bandwidth, R's ``bw.nrd0`` (``density()`` default).

    Notes
    -----
    :math:`h = 0.9\\,\\min(s, \\mathrm{IQR}/1.34)\\,n^{-1/5}`, with the sample
    SD :math:`s` and the type-7 (linear) quantiles R and numpy share; if that
    is 0, R falls back to :math:`s`, then :math:`|x_1|`, then 1.

    References
    ----------
    .. [1] Silverman, B. W. (1986). *Density Estimation for Statistics and
       Data Analysis*, eq. (3.31). Chapman & Hall.
    """
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        raise ValueError("need at least 2 values to choose a bandwidth")
    sd = x.std(ddof=1)
    q75, q25 = np.percentile(x, [75, 25])
    lo = min(sd, (q75 - q25) / 1.34)
    if not lo:
        lo = sd or abs(x[0]) or 1.0
    return 0.9 * lo * x.size ** -0.2


def shorth(x) -> float:
    """Mean of the shortest interval holding half of the values (+1).

    References
    ----------
    .. [1] Andrews, D. F. et al. (1972). *Robust Estimates of Location*.
       Princeton University Press.
    """
    x = np.sort(np.asarray(x, dtype=float))
    h = x.size // 2 + 1
    widths = x[h - 1 :] - x[: x.size - h + 1]
    start = int(np.argmin(widths))
    return float(x[start : start + h].mean())


def kde_mode(x, bandwidth: float | None = None, tol: float = 1e-10, max_iter: int = 10_000) -> float:
    """Mode of a Gaussian kernel density estimate, by mean-shift.

    Parameters
    ----------
    x : array_like
        Values (e.g. one coefficient across all features); NaNs are ignored.
    bandwidth : float, optional
        Kernel SD; default :func:`bandwidth_nrd0` (R ``density()``'s default).
    tol : float
        Stop when a step is below ``tol * bandwidth``.

    Returns
    -------
    float

    Notes
    -----
    The Gaussian KDE :math:`\\hat f(t) = \\frac1{nh}\\sum_i \\phi((t - x_i)/h)`
    has stationary points where :math:`t = \\sum_i w_i x_i / \\sum_i w_i`,
    :math:`w_i = \\phi((t - x_i)/h)`. Iterating that map (mean-shift) climbs
    :math:`\\hat f` monotonically [1]_. As LinDA (``modeest::mlv(...,
    method = "meanshift", kernel = "gaussian")``, bandwidth ``bw.nrd0``), the
    ascent starts at the :func:`shorth`, which lies in the densest half of the
    data. LinDA applies it to :math:`\\sqrt n\\,\\hat\\beta` and divides by
    :math:`\\sqrt n`; the estimator is scale-equivariant, so that makes no
    difference. It is the mode of the same density R's ``density(x)`` draws;
    ``density`` evaluates it on a 512-point grid by binning and FFT, so its
    ``x[which.max(y)]`` differs from this value by at most about one grid step.

    References
    ----------
    .. [1] Fukunaga, K. & Hostetler, L. (1975). The estimation of the
       gradient of a density function, with applications in pattern
       recognition. *IEEE Trans. Information Theory* 21(1), 32-40.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    h = bandwidth_nrd0(x) if bandwidth is None else float(bandwidth)
    t = shorth(x)
    for _ in range(max_iter):
        w = np.exp(-0.5 * ((x - t) / h) ** 2)
        new = float(w @ x / w.sum())
        if abs(new - t) < tol * h:
            return new
        t = new
    return t


def zero_handling_used(data: StageData, requested: str, corr_cut: float) -> str:
    """Resolve ``adaptive``: imputation if log depth is associated with the design.

    Notes
    -----
    Log depth is fitted with the same model as the abundances; if any
    non-intercept term has p <= ``corr_cut``, zeros are imputed (LinDA,
    Methods). Relative abundances have no depth: always the pseudo-count.
    """
    if data.kind != "counts":
        return "pseudo-count"
    if requested != "adaptive":
        return requested
    depth = np.log(data.profiles.sum(axis=1).to_numpy(dtype=float))
    result, X, _ = fit_status_model(depth[:, None], data.design, data.settings.site_effect)
    terms = [i for i, c in enumerate(X.columns) if c != "intercept"]
    return "imputation" if (result.pvalue[terms, 0] <= corr_cut).any() else "pseudo-count"


def linda_clr(data: StageData, zero_handling: str, pseudo_count: float) -> pd.DataFrame:
    """CLR (log2) of the whole composition after LinDA's zero handling, tested features."""
    if data.kind != "counts" or zero_handling == "pseudo-count":
        return clr_features(data, pseudo_count)
    positive = impute_zeros(data.profiles.to_numpy(dtype=float), "imputation", pseudo_count)
    frame = pd.DataFrame(clr(positive), index=data.profiles.index, columns=data.profiles.columns)
    return frame[data.features]


def _corrected(result, column: str) -> pd.DataFrame:
    """One term of the fit with LinDA's mode correction, Wald z tests."""
    table = test_term(result, column)
    finite = np.isfinite(table["effect"])
    bias = kde_mode(table["effect"].to_numpy()) if finite.sum() >= 2 else 0.0
    effect = table["effect"] - bias
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = effect / table["se"]
    return pd.DataFrame({"effect": effect, "se": table["se"], "stat": stat, "pvalue": 2.0 * ndtr(-np.abs(stat)),
                         "bias": bias, "converged": table["converged"]})


def treatment_effects(data: StageData) -> pd.DataFrame:
    """The therapy terms of the LinDA model: what each drug does, for every tested feature.

    The same fit as :func:`run` (main zero handling); every ``dmt_<therapy>``
    coefficient (treated patients on that therapy vs untreated patients,
    household and covariates held) gets LinDA's mode correction and a Wald
    test, with Benjamini-Hochberg q-values within each term. A species moved
    only by a drug shows here and not in the status effect.

    Returns
    -------
    DataFrame
        ``feature``, ``term``, ``effect`` (log2 fold change), ``se``,
        ``stat``, ``pvalue``, ``qvalue``, ``n_treated`` (patients on it);
        sorted by feature and term. Empty (with those columns) without
        therapy terms.
    """
    options = data.settings.linda
    used = zero_handling_used(data, options["zero_handling"], options["corr_cut"])
    W = linda_clr(data, used, options["pseudo_count"])
    result, X, _ = fit_status_model(W, data.design, data.settings.site_effect)
    columns = ["feature", "term", "effect", "se", "stat", "pvalue", "qvalue", "n_treated"]
    parts = []
    for term in [c for c in X.columns if c.startswith("dmt_")]:
        table = _corrected(result, term)
        table["qvalue"] = bh(table["pvalue"].to_numpy())
        table["term"] = term
        table["n_treated"] = int(X[term].sum())
        parts.append(table.reset_index())
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)[columns]
    return out.sort_values(["feature", "term"], kind="stable", ignore_index=True)


def run(data: StageData, pseudo_count: float | None = None) -> MethodOutput:
    """LinDA status effects for the tested features (see the module docstring).

    Parameters
    ----------
    data : StageData
    pseudo_count : float, optional
        Overrides ``linda.pseudo_count`` (sensitivity analysis); zero handling
        is then the plain pseudo-count.
    """
    options = data.settings.linda
    if pseudo_count is None:
        pseudo_count = options["pseudo_count"]
        used = zero_handling_used(data, options["zero_handling"], options["corr_cut"])
    else:
        used = "pseudo-count"
    W = linda_clr(data, used, pseudo_count)
    result, _, _ = fit_status_model(W, data.design, data.settings.site_effect)
    out = _corrected(result, "status")
    out.insert(5, "zero_handling", used)
    return MethodOutput(out, data.design.frame.index, SCALE)
