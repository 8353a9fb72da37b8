"""LinDA in its plain formulation, the reference the workflow's LinDA must equal.

:func:`linda` takes counts, a design matrix and optional households and
returns one table: impute or add a pseudo-count, centred log2-ratios, one
linear (mixed) model per feature, the mode of the coefficients subtracted
(Zhou et al. 2022). The workflow runs the same statistics on its household
design (:mod:`workflow_scripts.differential.linda`);
``tests/test_differential_methods.py`` checks that the two agree and
``tests/test_linda.py`` checks this one on planted data.

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

from workflow_scripts.differential.linda import kde_mode
from workflow_scripts.models.mixed_model import fit_ols, fit_random_intercept
from workflow_scripts.models.multiple_testing import bh
from workflow_scripts.transforms import clr, impute_zeros

ZERO_HANDLING = ("pseudo-count", "imputation", "adaptive")


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
