"""Lineages shaped for other tools: one string per feature, or one column per rank.

The cohort keeps each feature's lineage as the input gave it
(``taxonomy.tsv``: ``lineage``, ``taxon``). QIIME 2 wants one ``;``-separated
string per feature; phyloseq wants one column per rank. At the analysis rank
(``taxa.biom``) a taxon is the sum of its features, so its lineage is what all
of them agree on.
"""

from __future__ import annotations

import re

import pandas as pd

from workflow_scripts.io.taxonomy import PREFIX, RANKS, parse_lineage, taxon_label

#: phyloseq's rank column names, in order.
RANK_COLUMNS = tuple(rank.capitalize() for rank in RANKS)
#: The ``Taxon`` of a feature without any named rank (QIIME 2's classifiers write the same).
UNASSIGNED = "Unassigned"


def qiime_lineage(text: str) -> str:
    """A lineage as QIIME 2 writes it: levels separated by ``"; "``.

    MetaPhlAn's ``|`` separators become ``;`` so that ``qiime taxa collapse``
    splits the levels; an empty lineage is ``Unassigned``.
    """
    parts = [p.strip() for p in re.split(r"[;|]", text or "")]
    return "; ".join(parts) if any(parts) else UNASSIGNED


def feature_ranks(lineages: pd.Series) -> pd.DataFrame:
    """Feature id -> one column per rank (``Kingdom`` ... ``Species``), None where unnamed.

    Names carry no ``k__``-style prefix; a species is ``Genus_epithet``, as in
    the workflow's taxon labels (a Greengenes species field holds only the
    epithet).
    """
    rows = [_names(parse_lineage(text)) for text in lineages]
    return pd.DataFrame(rows, index=lineages.index, columns=list(RANK_COLUMNS), dtype=object)


def taxon_ranks(taxonomy: pd.DataFrame, rank: str) -> pd.DataFrame:
    """Taxon (the cohort's ``taxon`` labels) -> one column per rank.

    A rank is named when every feature of the taxon gives it the same name;
    ranks below the analysis rank are None, as phyloseq's ``tax_glom`` leaves
    them. With ``rank == "feature"`` the taxa are the features.
    """
    features = feature_ranks(taxonomy["lineage"])
    if rank == "feature":
        return features
    depth = RANKS.index(rank) + 1
    agreed = {}
    for taxon, members in features.groupby(taxonomy["taxon"], sort=True):
        row = []
        for column in RANK_COLUMNS[:depth]:
            values = set(members[column])
            # Stop at the first rank the members disagree on (or leave unnamed).
            if len(values) != 1 or None in values or (row and row[-1] is None):
                row.append(None)
            else:
                row.append(values.pop())
        agreed[taxon] = row + [None] * (len(RANKS) - depth)
    return pd.DataFrame.from_dict(agreed, orient="index", columns=list(RANK_COLUMNS), dtype=object)


def ranks_to_lineage(row: pd.Series) -> str:
    """``k__Bacteria; p__...`` from a row of rank names; ``Unassigned`` when none is named."""
    parts = [f"{PREFIX[rank]}__{name}" for rank, name in zip(RANKS, row) if name is not None]
    return "; ".join(parts) if parts else UNASSIGNED


def _names(ranks: dict[str, str]) -> list[str | None]:
    names = []
    for rank in RANKS:
        label = taxon_label(ranks, rank)
        names.append(None if label is None else label.split("__", 1)[1])
    return names
