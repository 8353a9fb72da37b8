"""MaAsLin2-style linear model on log2 total-sum-scaled abundance.

MaAsLin2's defaults are total-sum scaling (TSS), the ``LOG`` transform and a
linear model (a linear mixed model with ``random_effects``), BH-FDR. Its
``LOG`` transform replaces the zeros of each feature by half the feature's
smallest non-zero relative abundance, then takes log2; ``maaslin.zero_fraction``
(default 0.5) is that half. Here the model is the stage's household model:

``log2(TSS) ~ status + covariates + DMT indicators [+ site] + (1 | household)``

for every tested feature at once
(:func:`workflow_scripts.differential.prepare.fit_status_model`). There is no
compositional bias correction (MaAsLin2 has none); ``effect`` is the log2
fold change of relative abundance.

References
----------
.. [1] Mallick, H., Rahnavard, A., McIver, L. J. et al. (2021). Multivariable
   association discovery in population-scale meta-omics studies. *PLoS
   Computational Biology* 17(11), e1009442.
   https://doi.org/10.1371/journal.pcbi.1009442
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.mixed_model import test_term
from .methods import MethodOutput
from .prepare import StageData, fit_status_model

SCALE = "log2 fold change of relative abundance (TSS, no bias correction)"
USES_PSEUDO_COUNT = False


def log_tss(relative: pd.DataFrame, zero_fraction: float = 0.5) -> pd.DataFrame:
    """log2 relative abundance, zeros -> ``zero_fraction`` x the feature's smallest non-zero value.

    Notes
    -----
    MaAsLin2 ``transformFeatures(method = "LOG")``:
    ``y[y == 0] <- min(y[y > 0]) / 2; log2(y)``, feature by feature.
    """
    values = relative.to_numpy(dtype=float)
    smallest = np.where(values > 0, values, np.inf).min(axis=0, keepdims=True)
    filled = np.where(values > 0, values, zero_fraction * smallest)
    return pd.DataFrame(np.log2(filled), index=relative.index, columns=relative.columns)


def run(data: StageData, pseudo_count: float | None = None) -> MethodOutput:
    """MaAsLin2-style effects for the tested features (``pseudo_count`` is not used)."""
    Y = log_tss(data.relative()[data.features], data.settings.maaslin["zero_fraction"])
    result, _, _ = fit_status_model(Y, data.design, data.settings.site_effect)
    table = test_term(result, "status")
    out = table[["effect", "se", "stat", "pvalue", "converged"]].copy()
    return MethodOutput(out, data.design.frame.index, SCALE)
