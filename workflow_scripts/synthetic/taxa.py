"""Reference names for the synthetic cohort: gut genera, lineages, epithets, loci.

Only names live here, no randomness. The generator draws species from the
genus × epithet grid below, always starting with the *anchor* species, whose
published iMSMS directions (Cell 2022) the planted truth mirrors.
"""

from __future__ import annotations

#: Greengenes-style ranks, in order, with their prefixes.
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
PREFIXES = ("k__", "p__", "c__", "o__", "f__", "g__", "s__")

# genus -> (kingdom, phylum, class, order, family, sampling weight). Weights make
# the big gut genera (Bacteroides, Blautia, ...) carry more species, as in real data.
GENERA: dict[str, tuple[str, str, str, str, str, float]] = {
    "Blautia": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 3.0),
    "Dorea": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 1.5),
    "Roseburia": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 2.0),
    "Coprococcus": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 1.5),
    "Lachnospira": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 1.0),
    "Anaerostipes": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 1.0),
    "Fusicatenibacter": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 0.5),
    "Eisenbergiella": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 0.5),
    "Hungatella": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 0.5),
    "Lachnoclostridium": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", 1.0),
    "Faecalibacterium": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Ruminococcaceae", 1.0),
    "Ruminococcus": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Ruminococcaceae", 2.5),
    "Oscillibacter": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Ruminococcaceae", 1.5),
    "Ruthenibacterium": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Ruminococcaceae", 0.5),
    "Subdoligranulum": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Ruminococcaceae", 1.0),
    "Gemmiger": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Ruminococcaceae", 0.5),
    "Eubacterium": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Eubacteriaceae", 2.0),
    "Clostridium": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Clostridiaceae", 2.0),
    "Romboutsia": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Peptostreptococcaceae", 0.5),
    "Christensenella": ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Christensenellaceae", 0.5),
    "Holdemanella": ("Bacteria", "Firmicutes", "Erysipelotrichi", "Erysipelotrichales", "Erysipelotrichaceae", 0.5),
    "Turicibacter": ("Bacteria", "Firmicutes", "Erysipelotrichi", "Erysipelotrichales", "Erysipelotrichaceae", 0.5),
    "Veillonella": ("Bacteria", "Firmicutes", "Negativicutes", "Selenomonadales", "Veillonellaceae", 1.0),
    "Dialister": ("Bacteria", "Firmicutes", "Negativicutes", "Selenomonadales", "Veillonellaceae", 1.0),
    "Megasphaera": ("Bacteria", "Firmicutes", "Negativicutes", "Selenomonadales", "Veillonellaceae", 0.5),
    "Streptococcus": ("Bacteria", "Firmicutes", "Bacilli", "Lactobacillales", "Streptococcaceae", 1.0),
    "Lactobacillus": ("Bacteria", "Firmicutes", "Bacilli", "Lactobacillales", "Lactobacillaceae", 1.0),
    "Bacteroides": ("Bacteria", "Bacteroidetes", "Bacteroidia", "Bacteroidales", "Bacteroidaceae", 4.0),
    "Prevotella": ("Bacteria", "Bacteroidetes", "Bacteroidia", "Bacteroidales", "Prevotellaceae", 2.0),
    "Alistipes": ("Bacteria", "Bacteroidetes", "Bacteroidia", "Bacteroidales", "Rikenellaceae", 2.0),
    "Parabacteroides": ("Bacteria", "Bacteroidetes", "Bacteroidia", "Bacteroidales", "Porphyromonadaceae", 1.5),
    "Barnesiella": ("Bacteria", "Bacteroidetes", "Bacteroidia", "Bacteroidales", "Barnesiellaceae", 0.5),
    "Odoribacter": ("Bacteria", "Bacteroidetes", "Bacteroidia", "Bacteroidales", "Odoribacteraceae", 0.5),
    "Bifidobacterium": ("Bacteria", "Actinobacteria", "Actinobacteria", "Bifidobacteriales", "Bifidobacteriaceae", 1.5),
    "Collinsella": ("Bacteria", "Actinobacteria", "Coriobacteriia", "Coriobacteriales", "Coriobacteriaceae", 1.0),
    "Eggerthella": ("Bacteria", "Actinobacteria", "Coriobacteriia", "Coriobacteriales", "Eggerthellaceae", 0.5),
    "Akkermansia": ("Bacteria", "Verrucomicrobia", "Verrucomicrobiae", "Verrucomicrobiales", "Akkermansiaceae", 0.5),
    "Escherichia": ("Bacteria", "Proteobacteria", "Gammaproteobacteria", "Enterobacteriales", "Enterobacteriaceae", 0.5),
    "Sutterella": ("Bacteria", "Proteobacteria", "Betaproteobacteria", "Burkholderiales", "Sutterellaceae", 0.5),
    "Bilophila": ("Bacteria", "Proteobacteria", "Deltaproteobacteria", "Desulfovibrionales", "Desulfovibrionaceae", 0.5),
    "Desulfovibrio": ("Bacteria", "Proteobacteria", "Deltaproteobacteria", "Desulfovibrionales", "Desulfovibrionaceae", 0.5),
    # An archaeon, so that the MetaPhlAn output has two kingdoms.
    "Methanobrevibacter": ("Archaea", "Euryarchaeota", "Methanobacteria", "Methanobacteriales", "Methanobacteriaceae", 0.5),
}

#: Species epithets. Real gut epithets; the generator pairs them freely with
#: genera, so most combinations are made up (names only need to look right).
EPITHETS: tuple[str, ...] = (
    "hominis", "intestinalis", "faecis", "coli", "caccae", "stercoris", "massiliensis",
    "obeum", "longum", "gnavus", "torques", "bromii", "rectale", "uniformis", "ovatus",
    "vulgatus", "fragilis", "copri", "putredinis", "distasonis", "adolescentis",
    "formicigenerans", "inulinivorans", "comes", "eutactus", "hallii", "wexlerae",
    "longicatena", "faecalis", "callidus", "catus", "eligens", "siraeum", "ventriosum",
    "hydrogenotrophica", "producta", "luti", "hadrus", "bifidum", "dentium", "shahii",
    "finegoldii", "onderdonkii", "merdae", "stercorea", "thetaiotaomicron", "caccogenes",
    "plebeius", "dorei", "cellulosilyticus", "clarus", "faecicola", "butyricus",
    "saccharolyticus", "mucosae", "lactatiformans", "propionicus", "minutus",
    "gallinarum", "nexilis", "variabile", "siccus", "formicilis", "parvulus",
    "aerofaciens", "lenta", "smithii", "wadsworthia", "piger",
)

#: Species always generated first (when n_species allows), with their roles.
#: High-risk and protective lists follow the iMSMS shotgun results (Cell 2022):
#: taken in order when planting disease species.
HIGH_RISK_ANCHORS = (
    "Akkermansia_muciniphila",
    "Eisenbergiella_tayi",
    "Ruthenibacterium_lactatiformans",
    "Hungatella_hathewayi",
    "Ruminococcus_torques",
)
PROTECTIVE_ANCHORS = (
    "Faecalibacterium_prausnitzii",
    "Blautia_wexlerae",
    "Dorea_longicatena",
    "Roseburia_intestinalis",
    "Fusicatenibacter_saccharivorans",
    "Eubacterium_rectale",
    "Prevotella_copri",
)
# Targets of the named genotype main effects (LCT: Bifidobacterium; FUT2: Bacteroides).
NEUTRAL_ANCHORS = ("Bifidobacterium_longum", "Bacteroides_vulgatus", "Blautia_obeum")
ANCHORS = HIGH_RISK_ANCHORS[:2] + PROTECTIVE_ANCHORS[:3] + NEUTRAL_ANCHORS + HIGH_RISK_ANCHORS[2:] + PROTECTIVE_ANCHORS[3:]

#: Recruitment sites: the iMSMS cities first, then numbered sites.
SITES = ("SanFrancisco", "Edinburgh", "BuenosAires", "NewYork", "Boston", "SanSebastian", "Pittsburgh")

#: Disease-modifying therapies drawn for treated MS patients.
DRUGS = ("interferon_beta", "glatiramer_acetate", "dimethyl_fumarate", "fingolimod", "ocrelizumab")

#: Named variants: (rsid, chrom, GRCh37 position, gene_or_locus, label).
HLA_TAG = "rs3135388"
NAMED_VARIANTS = (
    (HLA_TAG, "6", 32413051, "HLA-DRB1", "HLA-DRB1*15:01 tag"),
    ("rs4988235", "2", 136608646, "LCT", "lactase persistence"),
    ("rs601338", "19", 49206674, "FUT2", "FUT2 secretor status"),
)

#: GRCh37 autosome lengths, for positions and ##contig lines.
CHROM_LENGTHS = {
    "1": 249250621, "2": 243199373, "3": 198022430, "4": 191154276, "5": 180915260,
    "6": 171115067, "7": 159138663, "8": 146364022, "9": 141213431, "10": 135534747,
    "11": 135006516, "12": 133851895, "13": 115169878, "14": 107349540, "15": 102531392,
    "16": 90354753, "17": 81195210, "18": 78077248, "19": 59128983, "20": 63025520,
    "21": 48129895, "22": 51304566,
}
