"""The second call per taxon, ``progression_class``, read from the clinical stage's file.

The clinical stage decides the call (``clinical/progression.tsv``, rule in
``workflow_scripts/clinical/progression.py``); the classification only carries
it next to the MS-risk ``class``, which it does not change:

- ``progression_class``: ``protective``, ``neutral`` or ``high-risk`` for
  severity and neuro-axonal damage within MS;
- ``progression_reason``: the clinical stage's reason;
- the per-axis evidence: ``clinical_effect_<axis>`` (CLR effect, log2 per unit of
  the axis), ``clinical_direction_<axis>`` (+1/-1 of the strongest test, 0 when
  ambiguous) and ``clinical_q_<axis>`` (q-value over every taxon x axis test).

A taxon the clinical stage did not test (its prevalence filter counts MS
patients only), and every taxon when there is no clinical result, is
``neutral`` with a reason that starts with ``not tested``.
"""

from __future__ import annotations

import pandas as pd

CLASSES = ("protective", "neutral", "high-risk")
#: Evidence columns of clinical/progression.tsv carried over, by prefix: new prefix.
EVIDENCE = {"effect_": "clinical_effect_", "direction_": "clinical_direction_", "q_": "clinical_q_"}
NOT_TESTED = "not tested: the taxon is not among the clinical stage's taxa (prevalence in MS patients below " \
             "clinical.min_prevalence, or the unassigned bucket)"
NO_RESULT = "not tested: no clinical stage result"


def merge_progression(table: pd.DataFrame, progression: pd.DataFrame | None) -> pd.DataFrame:
    """``table`` (one row per taxon, ``feature``) with the progression call and its evidence.

    Parameters
    ----------
    table : DataFrame
        The species classification.
    progression : DataFrame or None
        ``clinical/progression.tsv``; None when there is no clinical result.

    Returns
    -------
    DataFrame
        ``table`` with ``progression_class``, ``progression_reason`` and the
        evidence columns appended; rows and every existing column unchanged.
    """
    out = table.copy()
    if progression is None or progression.empty:
        calls = pd.DataFrame(columns=["feature", "progression_class", "progression_reason"])
        default = NO_RESULT if progression is None else NOT_TESTED
    else:
        calls = progression
        default = NOT_TESTED
    calls = calls.set_index("feature")
    out["progression_class"] = out["feature"].map(calls["progression_class"].astype(object)).astype(object) \
        .fillna("neutral")
    out["progression_reason"] = out["feature"].map(calls["progression_reason"].astype(object)).astype(object) \
        .fillna(default)
    evidence = [c for c in calls.columns if any(c.startswith(p) for p in EVIDENCE)]
    for column in evidence:
        prefix = next(p for p in EVIDENCE if column.startswith(p))
        out[EVIDENCE[prefix] + column[len(prefix):]] = out["feature"].map(calls[column])
    return out
