"""The iMSMS consortium's model: arcsine-square-root abundance, household and site random intercepts.

Model, for every tested feature,

.. math::

    \\arcsin\\sqrt{p_{ij}} = \\beta_0 + \\beta_{status} s_i + \\gamma^\\top z_i
    + \\delta^\\top d_i + u_{household(i)} + v_{site(i)} + e_{ij},

with :math:`p_{ij}` the relative abundance (over all taxa, before the
prevalence filter), :math:`z_i` the configured covariates (default sex, age,
BMI) and :math:`d_i` the DMT indicators (zero for controls and untreated
patients; the consortium's own MS-vs-HHC model had no treatment term, here the
status effect is untreated MS vs household control like every other method).
It is the consortium's ``lmerTest::lmer(abundance ~ disease + sex + age + bmi +
(1|household) + (1|site))`` with BH-FDR across species, REML. The fit is
:func:`workflow_scripts.models.nested_model.fit_nested_random_intercepts`,
all features at once and equal to lme4; tests are Wald z tests (lmerTest's
Satterthwaite df are in the hundreds at iMSMS size). With one site the site
term is dropped; ``effect`` is on the arcsine-square-root scale (radians).

References
----------
.. [1] iMSMS Consortium (2022). Gut microbiome of multiple sclerosis patients
   and paired household healthy controls reveal associations with disease risk
   and course. *Cell* 185(19), 3467-3486. https://doi.org/10.1016/j.cell.2022.08.021
.. [2] Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting linear
   mixed-effects models using lme4. *J. Statistical Software* 67(1), 1-48.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.mixed_model import test_term
from .methods import MethodOutput
from .prepare import StageData, fit_status_model

SCALE = "difference in arcsine-square-root relative abundance"
USES_PSEUDO_COUNT = False


def arcsine_sqrt(data: StageData) -> pd.DataFrame:
    """arcsin(sqrt(relative abundance)) of the tested features."""
    return np.arcsin(np.sqrt(data.relative()[data.features]))


def run(data: StageData, pseudo_count: float | None = None) -> MethodOutput:
    """The consortium's model for the tested features (``pseudo_count`` is not used)."""
    result, _, random = fit_status_model(arcsine_sqrt(data), data.design, "random")
    table = test_term(result, "status")
    out = table[["effect", "se", "stat", "pvalue"]].copy()
    nothing = np.full(len(out), np.nan)
    out["household_var"] = result.group_var if "household" in random else nothing
    if random == ("household", "site"):
        out["site_var"] = result.cluster_var
    else:
        out["site_var"] = result.group_var if random == ("site",) else nothing
    out["residual_var"] = result.sigma2
    out["converged"] = table["converged"]
    return MethodOutput(out, data.design.frame.index, SCALE)
