"""Beta diversity and ordination, with scikit-bio's implementations.

Metrics: Bray-Curtis (on relative abundances), Jaccard (presence/absence),
robust Aitchison (Euclidean distance on the robust CLR, zeros kept at 0, as
vegan's ``vegdist(method = "robust.aitchison")``), and weighted and unweighted
UniFrac when a tree is given (scikit-bio's own UniFrac).

References
----------
Martino C et al. (2019) mSystems 4:e00016-19 (robust Aitchison).
Lozupone C, Knight R (2005) AEM 71:8228-8235 (UniFrac).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from skbio import DistanceMatrix
from skbio.diversity import beta_diversity
from skbio.stats.composition import rclr
from skbio.stats.ordination import OrdinationResults, pcoa

METRICS = ("braycurtis", "jaccard", "robust_aitchison", "weighted_unifrac", "unweighted_unifrac")
TREE_METRICS = ("weighted_unifrac", "unweighted_unifrac")


def robust_clr(values: np.ndarray) -> np.ndarray:
    """rclr of each row with zeros left at 0 (scikit-bio's rclr marks them NaN)."""
    return np.nan_to_num(rclr(values), nan=0.0)


def distance_matrix(counts: pd.DataFrame, metric: str, tree=None) -> DistanceMatrix:
    """One beta-diversity distance matrix over the rows of ``counts`` (samples x features)."""
    values = counts.to_numpy(dtype=float)
    ids = [str(i) for i in counts.index]
    if metric == "braycurtis":
        totals = values.sum(axis=1, keepdims=True)
        return beta_diversity("braycurtis", values / totals, ids, validate=False)
    if metric == "jaccard":
        return beta_diversity("jaccard", values > 0, ids, validate=False)
    if metric == "robust_aitchison":
        return beta_diversity("euclidean", robust_clr(values), ids, validate=False)
    if metric in TREE_METRICS:
        if tree is None:
            raise ValueError(f"{metric} needs a tree")
        return beta_diversity(metric, values.astype(np.int64), ids, taxa=[str(c) for c in counts.columns],
                              tree=tree, validate=False)
    raise ValueError(f"unknown beta metric {metric!r}; choose from {', '.join(METRICS)}")


def ordination(distances: DistanceMatrix, dimensions: int = 10) -> OrdinationResults:
    """Principal coordinates (scikit-bio ``pcoa``), at most ``dimensions`` axes."""
    n = min(dimensions, distances.shape[0] - 1)
    return pcoa(distances, method="eigh", dimensions=n, warn_neg_eigval=False)
