"""Alpha diversity, MS vs controls: a rank test and a mixed model, for paired and unpaired designs.

``repeated_samples`` (:mod:`workflow_scripts.transforms`) decides what a
participant contributes:

- ``all`` (default): the mixed model takes every stool sample, with a
  participant random intercept nested in the household:
  metric ~ status + covariates + site + DMT indicators + (1 | household/participant),
  REML, Wald z test of status, all metrics at once
  (:func:`workflow_scripts.models.repeated_model.fit_repeated`). The rank test
  takes each participant's mean over their samples.
- ``first``: each participant's first sample, in both tests.
- ``mean`` and ``sum``: each participant's mean over their samples, in both
  tests (``sum`` pools counts for beta diversity only: the alpha diversity of
  pooled counts grows with the number of samples pooled, so it would compare
  people by how many samples they gave).

The random intercepts that cannot be told apart from the level below are left
out and the ``model`` column says which were fitted: no participant with two
samples, no participant level; fewer than 10 households with two participants
(an unpaired cohort), no household level; neither, ordinary least squares.

Rank test: with household pairs (a case and a control of one household),
``paired_wilcoxon``, the Wilcoxon signed-rank test of the within-household
difference (case minus control) over the paired households
(:func:`workflow_scripts.models.signed_rank.signed_rank_test`). Without any
pair (an unpaired cohort), ``rank_sum``: the Wilcoxon rank-sum (Mann-Whitney U)
test of cases against controls, with the Hodges-Lehmann shift as the effect.

References
----------
Wilcoxon F (1945) Biometrics Bulletin 1:80-83. Mann HB, Whitney DR (1947) Ann
Math Stat 18:50-60. Hodges JL, Lehmann EL (1963) Ann Math Stat 34:598-611.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..design import Design, first_samples
from ..models.mixed_model import test_term
from ..models.repeated_model import fit_repeated
from ..models.signed_rank import signed_rank_test
from ..transforms import sample_design

COLUMNS = ["metric", "test", "effect", "se", "statistic", "p_value", "n", "n_pairs", "model", "n_participants"]


def participant_values(values: pd.DataFrame, samples: pd.DataFrame, how: str) -> pd.DataFrame:
    """One row per participant (participants x metrics) from per-sample values.

    ``how``: ``first`` (the first sample's values) or ``mean`` (the mean over
    the participant's samples).
    """
    owner = samples.loc[values.index, "participant_id"].to_numpy()
    if how == "mean":
        return values.groupby(owner).mean()
    if how == "first":
        first = first_samples(samples.loc[values.index])
        out = values.loc[first.to_numpy()]
        out.index = first.index
        return out
    raise ValueError(f"how must be 'first' or 'mean', not {how!r}")


def household_differences(values: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Case minus control per paired household (means within status if a household has more)."""
    frame = design.frame[design.frame["paired"]]
    joined = values.loc[frame.index].assign(_household=frame["household"], _status=frame["status"])
    means = joined.groupby(["_household", "_status"]).mean()
    return means.xs(1, level="_status") - means.xs(0, level="_status")


def rank_test(values: pd.DataFrame, design: Design) -> pd.DataFrame:
    """The paired test when the cohort has household pairs, else the rank-sum test (participants x metrics in)."""
    return paired_wilcoxon(values, design) if design.frame["paired"].any() else rank_sum(values, design)


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
                     "n_pairs": len(d), "model": "median within-household difference (case - control)",
                     "n_participants": 2 * len(d)})
    return pd.DataFrame(rows, columns=COLUMNS)


def rank_sum(values: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Wilcoxon rank-sum (Mann-Whitney U) test of cases against controls, per metric.

    Notes
    -----
    The effect is the Hodges-Lehmann shift, the median of all case - control
    differences; ``statistic`` is U of the cases; p is two-sided (exact
    without ties for small groups, else the normal approximation with the
    tie correction, as ``scipy.stats.mannwhitneyu``'s ``method="auto"``).
    """
    status = design.frame["status"].reindex(values.index)
    rows = []
    for metric in values.columns:
        data = values[metric][status.notna()]
        cases = data[status == 1].dropna().to_numpy()
        controls = data[status == 0].dropna().to_numpy()
        if len(cases) and len(controls):
            result = stats.mannwhitneyu(cases, controls, alternative="two-sided")
            effect, statistic, p = float(np.median(np.subtract.outer(cases, controls))), result.statistic, \
                result.pvalue
        else:
            effect, statistic, p = np.nan, np.nan, np.nan
        rows.append({"metric": metric, "test": "rank_sum", "effect": effect, "se": np.nan,
                     "statistic": statistic, "p_value": p, "n": len(cases) + len(controls), "n_pairs": 0,
                     "model": "Hodges-Lehmann shift (case - control); no household pairs",
                     "n_participants": len(cases) + len(controls)})
    return pd.DataFrame(rows, columns=COLUMNS)


def mixed_model(values: pd.DataFrame, design: Design, owners, fixed_text: str) -> pd.DataFrame:
    """Status effect from the nested random-intercept model, all metrics at once.

    Parameters
    ----------
    values : DataFrame
        Rows x metrics: one row per sample (``repeated_samples: all``) or per participant.
    design : Design
        The participants' design; rows whose participant it excludes are left out.
    owners : array_like
        The participant of every row of ``values``.
    fixed_text : str
        The fixed part of the model, for the ``model`` column.
    """
    keep, x, participants, households = sample_design(design, owners)
    fit = fit_repeated(values.to_numpy(dtype=float)[keep], x, participants, households)
    term = test_term(fit, "status")
    random = {("participant", "household"): " + (1 | household/participant)",
              ("participant",): " + (1 | participant)", ("household",): " + (1 | household)",
              (): " (one row per participant, fewer than 10 households of two: OLS)"}[fit.levels]
    aliased = x.attrs["aliased"]
    text = fixed_text + random + (f"; aliased, dropped: {', '.join(aliased)}" if aliased else "")
    return pd.DataFrame({"metric": values.columns, "test": "mixed_model", "effect": term["effect"].to_numpy(),
                         "se": term["se"].to_numpy(), "statistic": term["stat"].to_numpy(),
                         "p_value": term["pvalue"].to_numpy(), "n": int(keep.sum()),
                         "n_pairs": int(design.frame["paired"].sum() // 2), "model": text,
                         "n_participants": fit.n_participants},
                        columns=COLUMNS)
