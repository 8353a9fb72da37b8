"""The method registry: run one method and shape its table to the output contract.

Every ``differential/<method>.tsv`` has, one row per tested feature sorted by
feature: ``feature``, ``method``, ``effect``, ``se``, ``stat``, ``pvalue``,
``qvalue`` (Benjamini-Hochberg over the method's features,
:func:`workflow_scripts.models.multiple_testing.bh`), ``n`` (participants the method used),
``n_nonzero`` (of them, with the feature), ``prevalence_case``,
``prevalence_control``, ``mean_abundance_case``, ``mean_abundance_control``
(mean relative abundance), ``scale`` (what ``effect`` measures), then the
method's own columns.

========================  ===================================================
method                    module
========================  ===================================================
``linda``                 :mod:`~workflow_scripts.differential.linda`        
``ancombc``               :mod:`~workflow_scripts.differential.ancombc`
``imsms_lmm``             :mod:`~workflow_scripts.differential.imsms_lmm`
``paired_wilcoxon``       :mod:`~workflow_scripts.differential.paired_wilcoxon`
``maaslin``               :mod:`~workflow_scripts.differential.maaslin`
``aldex``                 :mod:`~workflow_scripts.differential.aldex`
========================  ===================================================
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import runner
from ..models.multiple_testing import bh

MODULES = {
    "linda": "linda",
    "ancombc": "ancombc",
    "imsms_lmm": "imsms_lmm",
    "paired_wilcoxon": "paired_wilcoxon",
    "maaslin": "maaslin",
    "aldex": "aldex",
}

CONTRACT = ["feature", "method", "effect", "se", "stat", "pvalue", "qvalue", "n", "n_nonzero",
            "prevalence_case", "prevalence_control", "mean_abundance_case", "mean_abundance_control",
            "scale"]


@dataclass
class MethodOutput:
    """What a method returns.

    Attributes
    ----------
    table : DataFrame
        Index feature; ``effect``, ``se``, ``stat``, ``pvalue`` and the
        method's own columns.
    participants : Index
        The participants the method used (for ``n`` and the descriptives).
    scale : str
        What ``effect`` measures.
    """

    table: pd.DataFrame
    participants: pd.Index
    scale: str


def module(name: str):
    if name not in MODULES:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(MODULES)}")
    return importlib.import_module(f"workflow_scripts.differential.{MODULES[name]}")


def uses_pseudo_count(name: str) -> bool:
    """Whether the method adds a pseudo-count (and so is rerun by the sensitivity analysis)."""
    return bool(getattr(module(name), "USES_PSEUDO_COUNT", False))


def run_method(name: str, data, pseudo_count: float | None = None) -> pd.DataFrame:
    """Run one method on the stage data; the contract table (see the module docstring).

    Parameters
    ----------
    name : str
        A key of :data:`MODULES`.
    data : workflow_scripts.differential.prepare.StageData
    pseudo_count : float, optional
        Zero replacement other than the method's configured one (sensitivity).
    """
    from .prepare import describe

    output = module(name).run(data, pseudo_count=pseudo_count)
    table = output.table.reindex(data.features)
    used = data.profiles.loc[output.participants]
    status = data.design.frame.loc[output.participants, "status"].to_numpy()
    stats = describe(used, status, data.features)
    table["qvalue"] = bh(table["pvalue"].to_numpy(dtype=float))
    table["method"] = name
    table["scale"] = output.scale
    table = table.join(stats)
    extras = [c for c in table.columns if c not in CONTRACT]
    table = table.reset_index().rename(columns={"index": "feature"})
    table = table[CONTRACT + extras].sort_values("feature", kind="stable", ignore_index=True)
    return table


def read_method_table(path) -> pd.DataFrame:
    """A ``<method>.tsv`` back as a frame (floats as floats, features as strings)."""
    table = runner.read_table(path, dtype={"feature": str, "method": str, "scale": str})
    for column in ("effect", "se", "stat", "pvalue", "qvalue"):
        table[column] = table[column].astype(float)
    return table


def significant(table: pd.DataFrame, q_threshold: float) -> np.ndarray:
    """Boolean: q below the threshold (NaN is never significant)."""
    q = table["qvalue"].to_numpy(dtype=float)
    return np.where(np.isnan(q), False, q < q_threshold)
