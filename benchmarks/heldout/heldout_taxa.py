"""Taxon catalogue of the held-out world: Greengenes 13_8-style lineages of common gut genera.

The genera and epithets are real gut taxa (as they appear in Greengenes 13_8 labels of 16S V4
data such as the iMSMS), so lineage strings look like what a workflow meets in practice: the
epithet alone in ``s__`` (``s__prausnitzii``), bracketed reclassified names (``g__[Ruminococcus]``),
lineages that stop at family or order (no genus) and genera without species labels.
Which taxa carry planted effects is drawn at random per seed; the names carry no truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ORDERS = {
    "Bacteroidales": "k__Bacteria; p__Bacteroidetes; c__Bacteroidia; o__Bacteroidales",
    "Clostridiales": "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales",
    "Erysipelotrichales": "k__Bacteria; p__Firmicutes; c__Erysipelotrichi; o__Erysipelotrichales",
    "Lactobacillales": "k__Bacteria; p__Firmicutes; c__Bacilli; o__Lactobacillales",
    "Bifidobacteriales": "k__Bacteria; p__Actinobacteria; c__Actinobacteria; o__Bifidobacteriales",
    "Coriobacteriales": "k__Bacteria; p__Actinobacteria; c__Coriobacteriia; o__Coriobacteriales",
    "Verrucomicrobiales": "k__Bacteria; p__Verrucomicrobia; c__Verrucomicrobiae; o__Verrucomicrobiales",
    "Burkholderiales": "k__Bacteria; p__Proteobacteria; c__Betaproteobacteria; o__Burkholderiales",
    "Desulfovibrionales": "k__Bacteria; p__Proteobacteria; c__Deltaproteobacteria; o__Desulfovibrionales",
    "Enterobacteriales": "k__Bacteria; p__Proteobacteria; c__Gammaproteobacteria; o__Enterobacteriales",
    "Pasteurellales": "k__Bacteria; p__Proteobacteria; c__Gammaproteobacteria; o__Pasteurellales",
    "Aeromonadales": "k__Bacteria; p__Proteobacteria; c__Gammaproteobacteria; o__Aeromonadales",
    "Methanobacteriales": "k__Archaea; p__Euryarchaeota; c__Methanobacteria; o__Methanobacteriales",
    "RF39": "k__Bacteria; p__Tenericutes; c__Mollicutes; o__RF39",
}

# (order, family, genus, epithets). An empty genus is a lineage that stops above genus.
GENERA = [
    ("Bacteroidales", "Bacteroidaceae", "Bacteroides",
     ["uniformis", "ovatus", "fragilis", "caccae", "eggerthii", "plebeius", "coprophilus", "massiliensis"]),
    ("Bacteroidales", "Prevotellaceae", "Prevotella", ["copri", "stercorea"]),
    ("Bacteroidales", "Prevotellaceae", "Paraprevotella", ["clara"]),
    ("Bacteroidales", "Rikenellaceae", "Alistipes", ["putredinis", "indistinctus", "onderdonkii"]),
    ("Bacteroidales", "Porphyromonadaceae", "Parabacteroides", ["distasonis", "merdae"]),
    ("Bacteroidales", "Porphyromonadaceae", "Butyricimonas", ["virosa"]),
    ("Bacteroidales", "Odoribacteraceae", "Odoribacter", ["splanchnicus"]),
    ("Bacteroidales", "[Barnesiellaceae]", "Barnesiella", ["intestinihominis"]),
    ("Clostridiales", "Lachnospiraceae", "Blautia", ["obeum", "producta", "wexlerae", "luti"]),
    ("Clostridiales", "Lachnospiraceae", "Coprococcus", ["eutactus", "catus", "comes"]),
    ("Clostridiales", "Lachnospiraceae", "Roseburia", ["faecis", "inulinivorans", "intestinalis"]),
    ("Clostridiales", "Lachnospiraceae", "Dorea", ["longicatena", "formicigenerans"]),
    ("Clostridiales", "Lachnospiraceae", "Lachnospira", ["pectinoschiza"]),
    ("Clostridiales", "Lachnospiraceae", "[Ruminococcus]", ["gnavus", "torques"]),
    ("Clostridiales", "Lachnospiraceae", "Anaerostipes", ["hadrus"]),
    ("Clostridiales", "Lachnospiraceae", "Fusicatenibacter", ["saccharivorans"]),
    ("Clostridiales", "Lachnospiraceae", "Eisenbergiella", ["tayi"]),
    ("Clostridiales", "Lachnospiraceae", "Hungatella", ["hathewayi"]),
    ("Clostridiales", "Lachnospiraceae", "Lachnoclostridium", []),
    ("Clostridiales", "Ruminococcaceae", "Faecalibacterium", ["prausnitzii"]),
    ("Clostridiales", "Ruminococcaceae", "Ruminococcus", ["bromii", "callidus", "flavefaciens"]),
    ("Clostridiales", "Ruminococcaceae", "Oscillospira", ["guilliermondii"]),
    ("Clostridiales", "Ruminococcaceae", "Gemmiger", ["formicilis"]),
    ("Clostridiales", "Ruminococcaceae", "Subdoligranulum", ["variabile"]),
    ("Clostridiales", "Ruminococcaceae", "Ruthenibacterium", ["lactatiformans"]),
    ("Clostridiales", "Ruminococcaceae", "Oscillibacter", []),
    ("Clostridiales", "Christensenellaceae", "Christensenella", ["minuta"]),
    ("Clostridiales", "Veillonellaceae", "Dialister", ["invisus"]),
    ("Clostridiales", "Veillonellaceae", "Veillonella", ["parvula", "dispar"]),
    ("Clostridiales", "Veillonellaceae", "Phascolarctobacterium", ["faecium"]),
    ("Clostridiales", "Veillonellaceae", "Megasphaera", []),
    ("Clostridiales", "Clostridiaceae", "Clostridium", ["perfringens", "celatum"]),
    ("Clostridiales", "Clostridiaceae", "SMB53", []),
    ("Clostridiales", "Peptostreptococcaceae", "Romboutsia", ["ilealis"]),
    ("Clostridiales", "Eubacteriaceae", "Eubacterium", ["rectale", "hallii", "eligens"]),
    ("Erysipelotrichales", "Erysipelotrichaceae", "Holdemania", []),
    ("Erysipelotrichales", "Erysipelotrichaceae", "Catenibacterium", []),
    ("Erysipelotrichales", "Erysipelotrichaceae", "Coprobacillus", ["cateniformis"]),
    ("Lactobacillales", "Streptococcaceae", "Streptococcus", ["salivarius", "thermophilus"]),
    ("Lactobacillales", "Lactobacillaceae", "Lactobacillus", ["ruminis", "rogosae"]),
    ("Bifidobacteriales", "Bifidobacteriaceae", "Bifidobacterium", ["adolescentis", "longum", "bifidum"]),
    ("Coriobacteriales", "Coriobacteriaceae", "Collinsella", ["aerofaciens"]),
    ("Coriobacteriales", "Coriobacteriaceae", "Eggerthella", ["lenta"]),
    ("Coriobacteriales", "Coriobacteriaceae", "Adlercreutzia", []),
    ("Verrucomicrobiales", "Verrucomicrobiaceae", "Akkermansia", ["muciniphila"]),
    ("Burkholderiales", "Alcaligenaceae", "Sutterella", ["wadsworthensis"]),
    ("Desulfovibrionales", "Desulfovibrionaceae", "Bilophila", ["wadsworthia"]),
    ("Desulfovibrionales", "Desulfovibrionaceae", "Desulfovibrio", ["piger"]),
    ("Enterobacteriales", "Enterobacteriaceae", "Escherichia", ["coli"]),
    ("Pasteurellales", "Pasteurellaceae", "Haemophilus", ["parainfluenzae"]),
    ("Aeromonadales", "Succinivibrionaceae", "Succinivibrio", []),
    ("Methanobacteriales", "Methanobacteriaceae", "Methanobrevibacter", ["smithii"]),
]
# Lineages without a genus (Greengenes ends them with an empty g__): a fifth of real reads.
GENUSLESS = [
    ("Clostridiales", "Lachnospiraceae"), ("Clostridiales", "Ruminococcaceae"), ("Clostridiales", ""),
    ("Bacteroidales", "S24-7"), ("RF39", ""), ("Clostridiales", "Christensenellaceae"),
]
# Taxa whose baseline is pinned to what the iMSMS shows (prevalence, abundance tier 0 = top).
PINNED = {
    ("Faecalibacterium", "prausnitzii"): (0.97, 1),
    ("Bacteroides", "uniformis"): (0.96, 0),
    ("Blautia", "obeum"): (0.95, 3),
    ("Prevotella", "copri"): (0.30, 2),
    ("Akkermansia", "muciniphila"): (0.45, 6),
    ("Methanobrevibacter", "smithii"): (0.30, 25),
    ("Escherichia", "coli"): (0.40, 40),
}
ENTEROTYPE_UP = [("Prevotella", "copri"), ("Prevotella", "stercorea"), ("Paraprevotella", "clara")]
ENTEROTYPE_DOWN_GENUS = "Bacteroides"
# Extra epithets for genera that need more named species than the catalogue lists.
EXTRA_EPITHETS = ["hominis", "faecis", "intestinalis", "stercoris", "merdae", "caccae", "timonensis",
                  "massiliensis", "gallinarum", "avium", "ventri", "coli"]


def lineage(order: str, family: str, genus: str, epithet: str) -> str:
    """Greengenes 13_8 string with all seven ranks (empty names as ``x__``)."""
    return f"{ORDERS[order]}; f__{family}; g__{genus}; s__{epithet}"


def species_name(genus: str, epithet: str) -> str:
    """Species name as the input contract builds it from a Greengenes epithet."""
    return f"s__{genus}_{epithet}" if genus and epithet else "s__unassigned"


def genus_name(genus: str) -> str:
    return f"g__{genus}" if genus else "g__unassigned"


def build_catalogue(n_species: int, genusless: int, unassigned_fraction: float,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Choose ``n_species`` species: named, genus-only (no epithet) and genus-less ones.

    Returns one row per species with ``order``, ``family``, ``genus``, ``epithet`` (empty when
    unassigned), ``lineage``, ``species`` and ``genus_label`` (the names at species and genus rank).
    """
    in_genera = n_species - genusless
    if in_genera < 1 or genusless < 0:
        raise ValueError(f"species={n_species} must exceed genusless_species={genusless}")
    n_named = int(round(in_genera * (1.0 - unassigned_fraction)))
    genera = list(GENERA)
    order = rng.permutation(len(genera))
    rows = []
    # every genus first gets one species (named when the catalogue has an epithet), in a seeded order
    named_pool = []
    for gi in order:
        o, f, g, eps = genera[gi]
        eps = list(eps)
        named_pool.extend((gi, e) for e in eps[1:])
        rows.append((gi, eps[0] if eps else ""))
        if len(rows) == in_genera:
            break
    n_named_now = sum(1 for _, e in rows if e)
    # fill named species from the catalogue, then invented epithets, then genus-only species
    named_pool = [named_pool[i] for i in rng.permutation(len(named_pool))]
    extra_i = 0
    while len(rows) < in_genera and n_named_now < n_named:
        if named_pool:
            rows.append(named_pool.pop())
        else:
            gi = int(order[extra_i % len(order)])
            used = {e for g2, e in rows if g2 == gi}
            epithet = next(e for e in EXTRA_EPITHETS + [f"sp{k}" for k in range(1000)] if e not in used)
            rows.append((gi, epithet))
            extra_i += 1
        n_named_now += 1
    while len(rows) < in_genera:
        rows.append((int(order[rng.integers(len(order))]), ""))
    out = []
    for gi, e in rows:
        o, f, g, _ = genera[gi]
        out.append({"order": o, "family": f, "genus": g, "epithet": e})
    for k in range(genusless):
        o, f = GENUSLESS[k % len(GENUSLESS)]
        out.append({"order": o, "family": f, "genus": "", "epithet": ""})
    cat = pd.DataFrame(out)
    cat["lineage"] = [lineage(r.order, r.family, r.genus, r.epithet) for r in cat.itertuples()]
    cat["species"] = [species_name(r.genus, r.epithet) for r in cat.itertuples()]
    cat["genus_label"] = [genus_name(g) for g in cat["genus"]]
    return cat.reset_index(drop=True)
