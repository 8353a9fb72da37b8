"""LinDA: linear models for differential abundance of compositional counts.

LinDA [1]_ fits an ordinary linear (or random-intercept mixed) model to the
centred log2-ratio (CLR) abundances of every feature, then removes the bias
that the CLR transformation and the compositional constraint add to every
coefficient: the bias is estimated as the mode of the coefficients across
features, because most features are assumed not to change.

The per-feature models are fitted all at once by
:func:`workflow_scripts.differential.mixed_model.fit_random_intercept`
(households as groups) or :func:`~workflow_scripts.differential.mixed_model.fit_ols`.

References
----------
.. [1] Zhou, H., He, K., Chen, J. & Zhang, X. (2022). LinDA: linear models
   for differential abundance analysis of microbiome compositional data.
   *Genome Biology* 23, 95. https://doi.org/10.1186/s13059-022-02655-5
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import ndtr

from workflow_scripts.differential.mixed_model import fit_ols, fit_random_intercept
from workflow_scripts.stats import bh

ZERO_HANDLING = ("pseudo-count", "imputation", "adaptive")


def impute_zeros(counts, method: str = "pseudo-count", pseudo_count: float = 0.5) -> np.ndarray:
    """Make counts strictly positive before taking logs.

    Parameters
    ----------
    counts : array_like, shape (n samples, p features)
        Non-negative counts.
    method : {"pseudo-count", "imputation"}
        ``"pseudo-count"`` adds ``pseudo_count`` to every count.
        ``"imputation"`` replaces each zero by the sample's depth relative to
        the deepest sample in which that feature is zero (LinDA's imputation).
    pseudo_count : float, default 0.5

    Returns
    -------
    ndarray, shape (n, p)

    Notes
    -----
    Imputation: with depth :math:`N_i = \\sum_j y_{ij}`, a zero :math:`y_{ij}`
    becomes :math:`N_i / \\max\\{N_{i'} : y_{i'j} = 0\\}`, a value in (0, 1]
    that is larger in deeper samples, so a zero in a deep sample counts as
    more evidence of absence than a zero in a shallow one [1]_.

    References
    ----------
    .. [1] Zhou, H., He, K., Chen, J. & Zhang, X. (2022). LinDA. *Genome
       Biology* 23, 95 (Methods, "zero handling").
    """
    Y = np.asarray(counts, dtype=float)
    if method == "pseudo-count":
        return Y + pseudo_count
    if method != "imputation":
        raise ValueError(f"method must be 'pseudo-count' or 'imputation', got {method!r}")
    depth = Y.sum(axis=1)
    zero = Y == 0
    deepest_zero = np.where(zero, depth[:, None], 0.0).max(axis=0)  # per feature
    with np.errstate(divide="ignore", invalid="ignore"):
        fill = depth[:, None] / deepest_zero[None, :]
    return np.where(zero, fill, Y)


def clr(positive, base: float = 2.0) -> np.ndarray:
    """Centred log-ratio of strictly positive abundances, per sample (row).

    Notes
    -----
    :math:`\\operatorname{clr}(y_i)_j = \\log_b y_{ij} - \\frac1p\\sum_{l} \\log_b y_{il}`;
    LinDA uses base 2, so model coefficients are log2 fold changes.

    References
    ----------
    .. [1] Aitchison, J. (1986). *The Statistical Analysis of Compositional
       Data*. Chapman & Hall.
    """
    logs = np.log(np.asarray(positive, dtype=float)) / np.log(base)
    return logs - logs.mean(axis=1, keepdims=True)


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


def linda(
    counts,
    X,
    groups=None,
    terms=None,
    zero_handling: str = "pseudo-count",
    pseudo_count: float = 0.5,
    corr_cut: float = 0.1,
    reml: bool = True,
) -> pd.DataFrame:
    """LinDA differential abundance for every feature and term.

    Parameters
    ----------
    counts : array_like or DataFrame, shape (n samples, p features)
        Raw counts, no missing values (filter features and samples first).
    X : array_like or DataFrame, shape (n, k)
        Design with an intercept column. LinDA standardises continuous
        covariates; do that in ``X`` to get per-SD effects for them (it does
        not change the effect of a binary status).
    groups : array_like, shape (n,), optional
        Household of each sample: fit a random intercept per household.
        Without it, OLS per feature.
    terms : list of int or str, optional
        Columns of ``X`` to test; default every non-constant column.
    zero_handling : {"pseudo-count", "imputation", "adaptive"}
        See :func:`impute_zeros`. ``"adaptive"`` uses imputation when log
        sequencing depth is associated (p <= ``corr_cut``) with any
        non-intercept column of ``X``, and the pseudo-count otherwise.
    pseudo_count : float, default 0.5
    corr_cut : float, default 0.1
    reml : bool, default True
        REML or ML for the mixed model.

    Returns
    -------
    DataFrame
        One row per (term, feature): ``term``, ``feature``, ``log2fc``
        (bias-corrected), ``lfc_se``, ``stat``, ``pvalue``, ``qvalue`` (BH
        within term), ``bias`` (the mode subtracted), ``df`` (inf = normal
        reference) and ``converged``. ``attrs["zero_handling"]`` records the
        zero treatment used.

    Notes
    -----
    With :math:`W = \\operatorname{clr}_2(Y^+)` and per feature
    :math:`W_j = X\\beta_j + \\dots`, LinDA shows that
    :math:`\\hat\\beta_{tj} \\to \\beta^*_{tj} + b_t`, a bias common to all
    features. The estimate :math:`\\hat b_t` is the mode of
    :math:`\\{\\hat\\beta_{tj}\\}_j` (:func:`kde_mode`), and

    .. math::

        \\tilde\\beta_{tj} = \\hat\\beta_{tj} - \\hat b_t,\\quad
        z_{tj} = \\tilde\\beta_{tj} / \\operatorname{se}(\\hat\\beta_{tj}),

    with p-values from Student t on :math:`n - k` df (OLS, as R ``lm``) or
    the normal (mixed model; R's LinDA uses lmerTest's Satterthwaite df, which
    for hundreds of households is practically the same).

    Differences from the R packages, on purpose:

    - ``MicrobiomeStat::linda(adaptive = TRUE)`` (its default) sets
      ``zero.handling <- "Imputation"`` but then tests
      ``zero.handling == 'imputation'``, so it never imputes, whatever the
      depth test says. Here ``"adaptive"`` does what the documentation
      says; the default is the plain pseudo-count, which is what R runs.
    - No winsorisation or prevalence filter here; those belong to the
      caller's feature filtering.

    References
    ----------
    .. [1] Zhou, H., He, K., Chen, J. & Zhang, X. (2022). LinDA: linear
       models for differential abundance analysis of microbiome
       compositional data. *Genome Biology* 23, 95.
    """
    if zero_handling not in ZERO_HANDLING:
        raise ValueError(f"zero_handling must be one of {ZERO_HANDLING}, got {zero_handling!r}")
    features = list(counts.columns) if isinstance(counts, pd.DataFrame) else list(range(np.shape(counts)[1]))
    Y = np.asarray(counts, dtype=float)
    if not np.isfinite(Y).all() or (Y < 0).any():
        raise ValueError(
            "counts must be finite and non-negative; drop samples or features with missing values"
        )
    if (Y.sum(axis=1) == 0).any():
        raise ValueError("some samples have no counts at all; drop them before LinDA")
    Xf = (X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))).rename(columns=str)
    constant = np.ptp(Xf.to_numpy(dtype=float), axis=0) == 0

    def fit(responses):
        if groups is None:
            return fit_ols(responses, Xf)
        return fit_random_intercept(responses, Xf, groups, reml=reml)

    used = zero_handling
    if zero_handling == "adaptive":
        depth_fit = fit(np.log(Y.sum(axis=1)))
        used = "imputation" if (depth_fit.pvalue[~constant, 0] <= corr_cut).any() else "pseudo-count"

    W = clr(impute_zeros(Y, used, pseudo_count))
    result = fit(W)

    if terms is None:
        terms = [c for c, const in zip(Xf.columns, constant) if not const]
    tables = []
    for term in terms:
        j = term if isinstance(term, (int, np.integer)) else list(Xf.columns).index(str(term))
        tables.append(_bias_corrected(result, j, Xf.columns[j], features))
    table = pd.concat(tables, ignore_index=True)
    table.attrs["zero_handling"] = used
    return table


def _bias_corrected(result, j, name, features) -> pd.DataFrame:
    """Subtract the KDE mode from one coefficient and redo the tests."""
    beta, se = result.beta[j], result.se[j]
    bias = kde_mode(beta)
    lfc = beta - bias
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = lfc / se
    if np.isinf(result.df):
        pvalue = 2.0 * ndtr(-np.abs(stat))
    else:
        pvalue = 2.0 * stats.t.sf(np.abs(stat), result.df)
    return pd.DataFrame(
        {
            "term": name,
            "feature": features,
            "log2fc": lfc,
            "lfc_se": se,
            "stat": stat,
            "pvalue": pvalue,
            "qvalue": bh(pvalue),
            "bias": bias,
            "df": result.df,
            "converged": result.converged,
        }
    )
