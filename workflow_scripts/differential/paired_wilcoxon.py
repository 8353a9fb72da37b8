"""An elementary check: Wilcoxon signed-rank test on within-household CLR differences.

For every household with a case and a control, the difference of centred
log2-ratios (over all taxa, pseudo-count 0.5 on counts) between the case and
the control (means over members when a household has several), then a
two-sided Wilcoxon signed-rank test per feature
(:func:`workflow_scripts.models.signed_rank.signed_rank_test`: exact null
distribution up to 50 pairs without ties, normal approximation otherwise;
zero differences dropped). The pairing
is the design; site is shared within a household and cancels.

Treatment: with ``paired_wilcoxon.untreated_only`` (default) only households
whose patient is untreated are used, so the test compares untreated MS with
household controls like the status term of the models (it has no covariates).

Without any pair (an unpaired cohort) every p-value is empty and ``note``
says the test was not run.

Output: ``effect`` is the Hodges-Lehmann estimate of the paired difference
(median of the Walsh averages, log2 units), ``stat`` the signed normal score
of the p-value, ``se`` the standard error the p-value implies
(``|effect| / |stat|``, for plots and meta-analysis only), ``w_statistic``
scipy's statistic and ``n_pairs`` the households used.

References
----------
.. [1] Wilcoxon, F. (1945). Individual comparisons by ranking methods.
   *Biometrics Bulletin* 1(6), 80-83.
.. [2] Hodges, J. L. & Lehmann, E. L. (1963). Estimates of location based on
   rank tests. *Ann. Math. Statist.* 34(2), 598-611.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.signed_rank import signed_rank_test
from .methods import MethodOutput
from .prepare import StageData, clr_features

SCALE = "log2 paired difference (Hodges-Lehmann, CLR)"
NOT_RUN = "not run: no household pairs (untreated pairs with paired_wilcoxon.untreated_only)"
USES_PSEUDO_COUNT = True


def run(data: StageData, pseudo_count: float | None = None) -> MethodOutput:
    """Paired signed-rank tests for the tested features (see the module docstring)."""
    options = data.settings.paired_wilcoxon
    pc = options["pseudo_count"] if pseudo_count is None else pseudo_count
    W = clr_features(data, pc)
    pairs = data.pairs
    keep = pairs.untreated if options["untreated_only"] else np.ones(len(pairs.households), bool)
    D = pairs.contrast(W.to_numpy())[keep]
    table = signed_rank_test(D)
    table.index = pd.Index(data.features, name="feature")
    table["n_pairs"] = int(keep.sum())
    table["note"] = "" if keep.any() else NOT_RUN
    participants = pairs.members(data.design.frame.index, keep)
    return MethodOutput(table, participants, SCALE)
