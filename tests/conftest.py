"""Shared fixtures: a small hand-made cohort that each test can break in one place."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.ingest.harmonise import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"
if not SHARED_REAL.is_dir():  # CI clones the repo next to shared/
    SHARED_REAL = Path(os.environ.get("IMSMS_SHARED", "/work/shared")) / "data" / "real"


def real_data(name: str) -> Path:
    """Path of a real dataset under ../shared/data/real, or skip the test."""
    path = SHARED_REAL / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name} not present at {path}")
    return path


@pytest.fixture
def cohort_tables():
    """Participants and samples tables with repeated samples, dates, an unpaired case and a missing age."""
    participants = pd.DataFrame({
        "household_id": ["H1", "H1", "H2", "H2", None, "H3", "H3"],
        "site": ["B", "B", "A", "A", "A", "C", "C"],
        "status": ["MS", "HHC", "MS", "HHC", "MS", "MS", "HHC"],
        "sex": ["F", "M", "F", "F", "M", "F", "M"],
        "age": [30.0, 31.0, 40.0, 41.0, 50.0, 60.0, np.nan],
        "dmt": ["untreated", None, "ocrelizumab", None, None, "Interferon beta", None],
    }, index=pd.Index(["p1", "c1", "p2", "c2", "p3", "p4", "c4"], name="participant_id"))
    samples = pd.DataFrame({
        "participant_id": ["p1", "p1", "c1", "p2", "c2", "p3", "p4", "c4"],
        "collection_date": ["2021-05-01", "2021-01-01", None, "2020-01-01", "2020-01-02", None, None, None],
        "sequencing_batch": ["r2", "r1", "r1", "r1", "r1", "r2", "r2", "r2"],
    }, index=pd.Index(["s1b", "s1a", "s2", "s3", "s4", "s5", "s6", "s7"], name="sample_id"))
    return participants, samples


@dataclass
class MiniCohort:
    """Six households (MS + HHC), one unpaired case; 12 features; 4 variants."""

    root: Path
    participants: pd.DataFrame = None
    stool: pd.DataFrame = None
    blood: pd.DataFrame = None
    counts: pd.DataFrame = None  # features x samples
    taxonomy: pd.DataFrame = None
    dosages: pd.DataFrame = None  # variants x blood samples
    variants: pd.DataFrame = None
    settings: dict = field(default_factory=dict)

    def __post_init__(self):
        rng = np.random.default_rng(7)
        n_hh = 6
        pids, rows = [], []
        for h in range(n_hh):
            for status, sex in (("MS", "F"), ("HHC", "M")):
                pid = f"P{h:02d}{status[0]}"
                pids.append(pid)
                rows.append({"participant_id": pid, "household_id": f"H{h:02d}",
                             "site": "SiteA" if h < 3 else "SiteB", "status": status, "sex": sex,
                             "age": str(40 + h), "bmi": "24.5",
                             "disease_course": "RRMS" if status == "MS" else "",
                             "dmt": ("untreated" if h % 2 else "ocrelizumab") if status == "MS" else "",
                             "edss": "2.5" if status == "MS" else ""})
        rows.append({"participant_id": "P99M", "household_id": "", "site": "SiteA", "status": "MS",
                     "sex": "F", "age": "50", "bmi": "", "disease_course": "PPMS", "dmt": "untreated",
                     "edss": "6"})
        pids.append("P99M")
        self.participants = pd.DataFrame(rows)
        self.stool = pd.DataFrame({"sample_id": [f"S{p}" for p in pids], "participant_id": pids,
                                   "collection_date": "2020-01-15", "sequencing_batch": "run1"})
        self.blood = pd.DataFrame({"sample_id": [f"B{p}" for p in pids], "participant_id": pids,
                                   "snfl": "10.5", "gfap": "90"})
        features = [f"asv{i:02d}" for i in range(12)]
        self.counts = pd.DataFrame(rng.integers(0, 400, size=(12, len(pids))) + 100 * (
            np.arange(12)[:, None] < 6), index=features, columns=self.stool["sample_id"])
        genera = ["Akkermansia", "Blautia", "Blautia", "Faecalibacterium", "Bacteroides", "Bacteroides",
                  "Prevotella", "Roseburia", "Dorea", "Alistipes", "", "Ruminococcus"]
        lineages = []
        for i, g in enumerate(genera):
            species = f"s__{g.lower()}_sp{i}" if g and i != 11 else "s__"
            lineages.append(f"k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; "
                            f"f__{g or 'Unnamed'}aceae; g__{g}; {species}")
        self.taxonomy = pd.DataFrame({"feature_id": features, "taxonomy": lineages})
        variants = ["rs3135388", "rs0001", "rs0002", "rs0003"]
        self.dosages = pd.DataFrame(rng.integers(0, 3, size=(4, len(pids))).astype(float),
                                    index=variants, columns=self.blood["sample_id"])
        self.variants = pd.DataFrame({"variant_id": variants,
                                      "gene_or_locus": ["HLA-DRB1", "G1", "G2", "G3"],
                                      "label": ["HLA-DRB1*15:01 tag", "", "", ""]})

    def path(self, name: str) -> Path:
        return self.root / name

    def write(self, abundance: str = "tsv", genotypes: str = "dosage", **overrides) -> Settings:
        """Write every file; return ingest Settings pointing at them."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.participants.to_csv(self.path("participants.tsv"), sep="\t", index=False)
        self.stool.to_csv(self.path("stool.tsv"), sep="\t", index=False)
        self.blood.to_csv(self.path("blood.tsv"), sep="\t", index=False)
        self.taxonomy.to_csv(self.path("taxonomy.tsv"), sep="\t", index=False)
        self.variants.to_csv(self.path("variants.tsv"), sep="\t", index=False)
        abundance_path = write_abundance(self.counts, self.root, abundance)
        geno_path = write_genotypes(self.dosages, self.root, genotypes)
        values = dict(participants=str(self.path("participants.tsv")),
                      stool_manifest=str(self.path("stool.tsv")), abundance=str(abundance_path),
                      blood_manifest=str(self.path("blood.tsv")), taxonomy=str(self.path("taxonomy.tsv")),
                      genotypes=str(geno_path), variants=str(self.path("variants.tsv")),
                      rank="genus", min_depth=100)
        values.update(overrides)
        return Settings(**values)


def write_abundance(counts: pd.DataFrame, root: Path, fmt: str) -> Path:
    """Write a features x samples table in one of the contract formats."""
    import biom
    import h5py
    import datetime
    import zipfile

    def table():
        return biom.Table(counts.to_numpy(dtype=float), list(counts.index), list(counts.columns))

    if fmt == "tsv":
        path = root / "abundance.tsv"
        counts.rename_axis("feature_id").to_csv(path, sep="\t")
    elif fmt == "csv":
        path = root / "abundance.csv"
        counts.rename_axis("feature_id").to_csv(path)
    elif fmt == "biom":
        path = root / "abundance.biom"
        with h5py.File(path, "w") as h5:
            table().to_hdf5(h5, "test", creation_date=datetime.datetime(2000, 1, 1))
    elif fmt == "biom-json":
        path = root / "abundance_json.biom"
        path.write_text(table().to_json("test"))
    elif fmt == "qza":
        path = root / "table.qza"
        inner = root / "inner.biom"
        with h5py.File(inner, "w") as h5:
            table().to_hdf5(h5, "test", creation_date=datetime.datetime(2000, 1, 1))
        uid = "0a1b2c3d-0000-4000-8000-000000000000"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{uid}/metadata.yaml",
                             f"uuid: {uid}\ntype: FeatureTable[Frequency]\nformat: BIOMV210DirFmt\n")
            archive.writestr(f"{uid}/VERSION", "QIIME 2\narchive: 5\nframework: 2023.5.0\n")
            archive.write(inner, f"{uid}/data/feature-table.biom")
        inner.unlink()
    else:
        raise ValueError(fmt)
    return path


def write_genotypes(dosages: pd.DataFrame, root: Path, fmt: str) -> Path:
    """Write variants x samples dosages as a dosage TSV or a VCF (GT or DS)."""
    import gzip

    if fmt == "dosage":
        path = root / "dosages.tsv"
        dosages.rename_axis("variant_id").to_csv(path, sep="\t", na_rep="NA")
        return path
    lines = ["##fileformat=VCFv4.2",
             "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
                             + list(dosages.columns))]
    for k, (vid, row) in enumerate(dosages.iterrows()):
        if fmt.startswith("vcf-gt"):
            gts = {0.0: "0/0", 1.0: "0|1", 2.0: "1/1"}
            calls = ["./." if np.isnan(v) else gts[v] for v in row]
            form = "GT"
        else:
            calls = [("./.:." if np.isnan(v) else f"{'0/0' if v < 0.5 else '0/1' if v < 1.5 else '1/1'}:{v:g}")
                     for v in row]
            form = "GT:DS"
        lines.append("\t".join(["6", str(32000000 + k), vid, "C", "T", ".", "PASS", ".", form] + calls))
    text = "\n".join(lines) + "\n"
    if fmt.endswith(".gz"):
        path = root / "genotypes.vcf.gz"
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path = root / "genotypes.vcf"
        path.write_text(text)
    return path


@pytest.fixture
def mini(tmp_path) -> MiniCohort:
    return MiniCohort(tmp_path / "mini")


@pytest.fixture(scope="session")
def imsms_cohort(tmp_path_factory):
    """The real iMSMS 16S cohort ingested at genus rank: (cohort, ledger). Skips without ../shared."""
    import yaml

    from workflow_scripts.examples import imsms
    from workflow_scripts.ingest.harmonise import ingest

    source = real_data("imsms_16s")
    config = yaml.safe_load(imsms.convert(source, tmp_path_factory.mktemp("imsms")).read_text())
    config.update(case_label="MS", control_label="HHC")
    return ingest(Settings.from_config(config))
