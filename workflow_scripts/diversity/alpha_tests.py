"""Alpha diversity, MS vs household controls: a paired test and a mixed model.

Each participant contributes one value per metric: the mean over their stool
samples (repeated samples are not counted as independent observations).

- ``paired_wilcoxon``: Wilcoxon signed-rank test of the within-household
  difference (case minus control) over the paired households
  (:func:`workflow_scripts.models.signed_rank.signed_rank_test`).
- ``mixed_model``: metric ~ status + covariates + site + DMT indicators +
  (1 | household), REML, Wald z test of status, fitted for all metrics at once.

References
----------
Wilcoxon F (1945) Biometrics Bulletin 1:80-83.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design import Design
from ..models.mixed_model import fit_random_intercept, test_term
from ..models.signed_rank import signed_rank_test

COLUMNS = ["metric", "test", "effect", "se", "statistic", "p_value", "n", "n_pairs", "model"]


def participant_means(alpha: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over a participant's stool samples (participants x metrics)."""
    return alpha.groupby(samples.loc[alpha.index, "participant_id"].to_numpy()).mean()


def household_differences(values: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Case minus control per paired household (means within status if a household has more)."""
    frame = design.frame[design.frame["paired"]]
    joined = values.loc[frame.index].assign(_household=frame["household"], _status=frame["status"])
    means = joined.groupby(["_household", "_status"]).mean()
    return means.xs(1, level="_status") - means.xs(0, level="_status")


def paired_wilcoxon(values: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Wilcoxon signed-rank test of within-household differences, per metric."""
    diffs = household_differences(values, design)
    rows = []
    for metric in values.columns:
        d = diffs[metric].dropna().to_numpy()
        result = signed_rank_test(d[:, None]).iloc[0] if np.any(d != 0) else None
        rows.append({"metric": metric, "test": "paired_wilcoxon", "effect": float(np.median(d)),
                     "se": np.nan, "statistic": result["w_statistic"] if result is not None else np.nan,
                     "p_value": result["pvalue"] if result is not None else 1.0, "n": 2 * len(d),
                     "n_pairs": len(d), "model": "median within-household difference (case - control)"})
    return pd.DataFrame(rows, columns=COLUMNS)


def mixed_model(values: pd.DataFrame, design: Design, model_text: str) -> pd.DataFrame:
    """Status effect from a household random-intercept model, all metrics at once."""
    x = design.matrix()
    y = values.loc[x.index].to_numpy(dtype=float)
    fit = fit_random_intercept(y, x.to_numpy(), design.households)
    term = test_term(fit, list(x.columns).index("status"))
    return pd.DataFrame({"metric": values.columns, "test": "mixed_model", "effect": term["effect"].to_numpy(),
                         "se": term["se"].to_numpy(), "statistic": term["stat"].to_numpy(),
                         "p_value": term["pvalue"].to_numpy(), "n": len(x),
                         "n_pairs": int(design.frame["paired"].sum() // 2),
                         "model": model_text + (f"; aliased, dropped: {', '.join(x.attrs['aliased'])}"
                                                if x.attrs["aliased"] else "")},
                        columns=COLUMNS)
