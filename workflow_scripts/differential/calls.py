"""The call rule on the primary test: which taxa differ between MS patients and controls.

One home for the rule, used on the observed cohort (``consensus.tsv``'s
``call``, which the classification reads) and on every replicate of the
calibration (:mod:`.calibration`), so the calibration measures the rule the
run applies. A taxon is called (``up`` = higher in MS, ``down``) when:

1. its primary q-value is below the level in force: half the configured
   ``differential.fdr_level`` (0.025 for 5%), or the stricter level the
   cohort's own calibration chose (``q_threshold_used`` in
   ``calibration.tsv``);
2. no two components are significant with opposite signs (``ambiguous``:
   "abundance and presence disagree in direction");
3. the effect of the stronger of B and C (A when neither is available) is at
   least the minimum effect (``below_min_effect``);
4. no single therapy carries the difference (``carried_by``).

Taxa that fail 2-4 get the failed condition as ``call_reason``; taxa above
the level get an empty reason (the classification says what the test could
and could not show).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CALLS = {1: "up", -1: "down", 0: "none"}


def decide(primary: pd.DataFrame, level: float) -> pd.DataFrame:
    """Calls of a primary table at a BH level.

    Parameters
    ----------
    primary : DataFrame
        ``differential/primary.tsv`` rows (``qvalue``, ``direction``,
        ``ambiguous``, ``below_min_effect``, ``carried_by``, ``driver``,
        ``effect_A``, ``effect_B``, ``effect_C``), or the same columns of a
        calibration replicate.
    level : float
        Call when the q-value is below it.

    Returns
    -------
    DataFrame
        Same index: ``call`` (+1, -1, 0) and ``call_reason``.
    """
    q = pd.to_numeric(primary["qvalue"], errors="coerce").fillna(1.0).to_numpy()
    direction = primary["direction"].to_numpy(dtype=float)
    significant = (q < level) & (direction != 0)
    ambiguous = primary["ambiguous"].astype(bool).to_numpy()
    small = primary["below_min_effect"].astype(bool).to_numpy()
    carried = primary["carried_by"].fillna("").astype(str).to_numpy()
    reason = np.full(len(primary), "", dtype=object)
    open_ = significant.copy()
    hit = open_ & ambiguous
    reason[hit] = "abundance and presence disagree in direction"
    open_ &= ~hit
    hit = open_ & small
    reason[hit] = [_small_text(row) for _, row in primary[hit].iterrows()]
    open_ &= ~hit
    hit = open_ & (carried != "")
    reason[hit] = [f"MS difference carried by {c}" for c in carried[hit]]
    open_ &= ~hit
    call = np.where(open_, np.sign(direction), 0).astype(int)
    return pd.DataFrame({"call": call, "call_reason": reason}, index=primary.index)


def _small_text(row) -> str:
    driver = row["driver"]
    effect = row[f"effect_{driver}"]
    unit = "ln odds ratio of presence" if driver == "C" else "log2"
    return f"difference below the minimum effect ({driver}: {effect:+.2f} {unit})"
