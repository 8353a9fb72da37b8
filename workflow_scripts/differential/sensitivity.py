"""Pseudo-count sensitivity: does a consensus call survive other zero replacements?

Log-ratio methods need a value for the zeros, and the choice can move rare
features. The methods listed in ``sensitivity.methods`` (default the fast
log-ratio ones: linda, ancombc, paired_wilcoxon; any method that adds a
pseudo-count may be listed) are rerun with every pseudo-count in
``sensitivity.pseudo_counts`` (default 0.1 and 1; for relative abundances, that
multiple of the participant's smallest non-zero value), the other methods keep
their main results, and the consensus rule is applied again. A feature is
``pseudocount_robust`` when every alternative gives its main call.

LinDA is rerun with the plain pseudo-count (no depth-based imputation), so the
alternatives differ from the main run only in the zero replacement.
"""

from __future__ import annotations

import pandas as pd

from .consensus import ConsensusRule, consensus
from .methods import run_method, uses_pseudo_count

COLUMNS = ["feature", "pseudo_count", "method", "effect", "se", "pvalue", "qvalue"]


def rerun(data, methods=None, pseudo_counts=None) -> pd.DataFrame:
    """Every listed method with every alternative pseudo-count.

    Parameters
    ----------
    data : StageData
    methods, pseudo_counts : list, optional
        Default from ``data.settings.sensitivity``; methods that do not use a
        pseudo-count or are not configured are skipped.

    Returns
    -------
    DataFrame
        Long table with :data:`COLUMNS`, sorted by feature, pseudo-count, method.
    """
    options = data.settings.sensitivity
    methods = options["methods"] if methods is None else methods
    pseudo_counts = options["pseudo_counts"] if pseudo_counts is None else pseudo_counts
    chosen = [m for m in methods if m in data.settings.methods and uses_pseudo_count(m)]
    parts = []
    for pc in pseudo_counts:
        for method in chosen:
            table = run_method(method, data, pseudo_count=float(pc))
            table = table.assign(pseudo_count=float(pc))
            parts.append(table[COLUMNS])
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["feature", "pseudo_count", "method"], kind="stable", ignore_index=True)


def call_column(pseudo_count: float) -> str:
    return f"call_pc{pseudo_count:g}"


def alternative_calls(tables: dict[str, pd.DataFrame], alternatives: pd.DataFrame,
                      rule: ConsensusRule) -> pd.DataFrame:
    """The consensus call under every alternative pseudo-count.

    Parameters
    ----------
    tables : dict of str to DataFrame
        The main per-method results.
    alternatives : DataFrame
        From :func:`rerun` (or read back from ``sensitivity.tsv``).
    rule : ConsensusRule

    Returns
    -------
    DataFrame
        Index feature; one ``call_pc<value>`` column per pseudo-count.
    """
    calls = {}
    for pc, part in alternatives.groupby("pseudo_count", sort=True):
        replaced = dict(tables)
        for method, table in part.groupby("method", sort=True):
            if method in replaced:
                replaced[method] = table
        calls[call_column(pc)] = consensus(replaced, rule).set_index("feature")["call"]
    features = sorted(set().union(*(set(t["feature"]) for t in tables.values()))) if tables else []
    return pd.DataFrame(calls, index=pd.Index(features, name="feature"))
