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
    feature at once (:func:`workflow_scripts.differential.stage.fit_status_model`).

Bias correction
    The status coefficients of all tested features are shifted by their
    mode (:func:`workflow_scripts.differential.linda.kde_mode`), the
    compositional bias LinDA estimates; ``effect`` is the corrected log2 fold
    change, ``se`` the model's standard error, p-values from the normal.

Therapy terms
    :func:`treatment_effects` reports the DMT coefficients of the same fit
    (``differential/treatment_effects.tsv``), so a species moved by a drug
    is visible as such and not as disease-associated.

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

from workflow_scripts.differential.linda import impute_zeros, kde_mode
from workflow_scripts.differential.methods import MethodOutput
from workflow_scripts.differential.mixed_model import test_term
from workflow_scripts.differential.stage import StageData, clr_features, clr_log2, fit_status_model

#: How the output columns' scale reads in the report.
SCALE = "log2 fold change (CLR, bias-corrected)"
USES_PSEUDO_COUNT = True


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
    values = clr_log2(positive)
    frame = pd.DataFrame(values, index=data.profiles.index, columns=data.profiles.columns)
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
    from workflow_scripts.stats import bh

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
