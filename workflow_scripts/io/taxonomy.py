"""Lineage strings and aggregation of features to a taxonomic rank.

Accepts Greengenes (``k__Bacteria; p__Firmicutes; ...; s__``), SILVA
(``D_0__Bacteria;D_1__...`` or ``d__Bacteria; ...``), GTDB (``d__Bacteria;...;
s__Akkermansia muciniphila``) and MetaPhlAn (``k__Bacteria|...|s__...``) strings,
separated by ``;`` or ``|``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import InputError, Problem
from .tables import check_ids, read_table

RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
PREFIX = dict(zip(RANKS, "kpcofgs"))
RANK_OF_PREFIX = {v: k for k, v in PREFIX.items()} | {"d": "kingdom"}
PLACEHOLDERS = ("", "unidentified", "uncultured", "unknown", "unassigned", "unclassified",
                "metagenome", "gut metagenome", "human gut metagenome")
_PREFIXED = re.compile(r"^([A-Za-z])__(.*)$")
_SILVA_LEVEL = re.compile(r"^D_(\d)__(.*)$")


def parse_lineage(text: str | None) -> dict[str, str]:
    """Rank -> name for the ranks a lineage string names (unassigned ranks left out).

    Examples
    --------
    >>> parse_lineage("k__Bacteria; p__Verrucomicrobia; g__Akkermansia; s__muciniphila")["species"]
    'muciniphila'
    """
    ranks: dict[str, str] = {}
    if not text:
        return ranks
    for position, part in enumerate(p.strip() for p in re.split(r"[;|]", text)):
        if m := _SILVA_LEVEL.match(part):
            level, name = int(m.group(1)), m.group(2)
            rank = RANKS[level] if level < len(RANKS) else None
        elif m := _PREFIXED.match(part):
            rank, name = RANK_OF_PREFIX.get(m.group(1).lower()), m.group(2)
        else:
            rank = RANKS[position] if position < len(RANKS) else None
            name = part
        name = name.strip()
        if rank and name.lower() not in PLACEHOLDERS and not name.lower().startswith("uncultured"):
            ranks[rank] = name
    return ranks


def taxon_label(ranks: dict[str, str], rank: str) -> str | None:
    """The label of a lineage at ``rank`` (``g__Akkermansia``), or None if unassigned.

    Species are named ``s__Genus_epithet``: a Greengenes species field holds
    only the epithet, so the genus is put in front; GTDB's space becomes ``_``.
    """
    name = ranks.get(rank)
    if name is None:
        return None
    name = name.replace(" ", "_")
    if rank == "species":
        genus = ranks.get("genus", "").replace(" ", "_").strip("[]")
        if genus and not name.startswith(genus) and not name.startswith("[" + genus):
            name = f"{genus}_{name}"
    return f"{PREFIX[rank]}__{name}"


def unassigned_label(rank: str) -> str:
    """The bucket for features that have no name at ``rank`` (``g__unassigned``)."""
    return f"{PREFIX[rank]}__unassigned"


def assign(lineages: pd.Series, rank: str) -> pd.Series:
    """Feature id -> taxon label at ``rank``; unnamed features go to the unassigned bucket.

    Two taxa with the same name under different parents (homonyms such as a
    genus placed in two families) are told apart by their parent:
    ``g__Clostridium (f__Peptostreptococcaceae)``.
    """
    if rank == "feature":
        return pd.Series(lineages.index, index=lineages.index, dtype=object)
    parsed = {fid: parse_lineage(text) for fid, text in lineages.items()}
    labels = {fid: taxon_label(r, rank) for fid, r in parsed.items()}
    parent_rank = RANKS[RANKS.index(rank) - 1] if rank != "kingdom" else None
    parents: dict[str, set] = {}
    for fid, label in labels.items():
        if label is not None and parent_rank:
            parents.setdefault(label, set()).add(taxon_label(parsed[fid], parent_rank))
    out = {}
    for fid, label in labels.items():
        if label is None:
            out[fid] = unassigned_label(rank)
        elif len(parents.get(label, ())) > 1:
            parent = taxon_label(parsed[fid], parent_rank) or unassigned_label(parent_rank)
            out[fid] = f"{label} ({parent})"
        else:
            out[fid] = label
    return pd.Series(out, dtype=object).reindex(lineages.index)


def aggregate(data: np.ndarray, assignment: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Sum feature rows (features x samples) into taxa; taxa sorted by label.

    Returns
    -------
    taxa_data : ndarray, taxa x samples
    taxa : list of str
    """
    taxa, codes = np.unique(assignment.to_numpy(dtype=str), return_inverse=True)
    indicator = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))),
                                  shape=(len(taxa), len(codes)))
    return np.asarray(indicator @ data), [str(t) for t in taxa]


def read_taxonomy(path) -> pd.Series:
    """Read a taxonomy TSV (``feature_id``, ``taxonomy``) into feature id -> lineage.

    QIIME 2's exported ``taxonomy.tsv`` (``Feature ID``, ``Taxon``, ``Confidence``)
    is accepted too.
    """
    frame = read_table(path)
    aliases = {"Feature ID": "feature_id", "FeatureID": "feature_id", "#OTU ID": "feature_id",
               "Taxon": "taxonomy"}
    frame = frame.rename(columns={k: v for k, v in aliases.items() if k in frame.columns})
    missing = [c for c in ("feature_id", "taxonomy") if c not in frame.columns]
    if missing:
        raise InputError([Problem(str(path), f"missing required column {c!r}",
                                  "the taxonomy file needs columns feature_id and taxonomy",
                                  column=c) for c in missing])
    problems = check_ids(frame["feature_id"].tolist(), path, "feature_id",
                         lines=frame["_line"].tolist(), what="feature id")
    if problems:
        raise InputError(problems)
    return pd.Series(frame["taxonomy"].fillna("").to_numpy(), index=frame["feature_id"].to_numpy(),
                     dtype=object)
