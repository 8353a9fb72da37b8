"""The harmonised cohort: what ingest writes and every later stage reads.

Layout of ``<outdir>/ingest/cohort/``:

- ``participants.tsv``  kept participants with their attributes, ``paired``,
  sample counts, per-participant sNfL/GFAP (mean over blood samples) and
  ``has_genotype``;
- ``samples.tsv``       kept stool samples, participant attributes joined on;
- ``features.biom``     feature-level table (kept features x kept samples);
- ``taxa.biom``         the same aggregated to the configured rank;
- ``taxonomy.tsv``      feature -> lineage -> taxon at the rank;
- ``tree.nwk``          the tree pruned to kept features (only with a tree);
- ``variants.tsv``      one row per biallelic variant of the genotype file, in
  file order: ``index`` (record number in the file), ``variant_id``,
  ``chrom``, ``pos``, ``ref``, ``alt``, ``quality``/``quality_field`` (the
  imputation quality the file states), ``gene_or_locus``, ``label`` (only
  with genotypes);
- ``genotype_samples.tsv`` the genotyped blood samples that are analysed:
  ``sample_id``, ``column`` (its position among the file's samples),
  ``participant_id`` (only with genotypes);
- ``genotype_access/``  files ingest builds once so that every job reads only
  its own part of the genotype file (see below; only when needed);
- ``cohort.json``       labels, kinds, column types, counts, input checksums
  and, under ``genotypes``, the genotype source.

Genotypes: the source file, never a copy of its dosages
    A genome-wide file (millions of imputed variants) is never loaded or
    copied: the cohort records where it is and how to read it
    (``cohort.json`` ``genotypes``: ``path`` as configured, ``format``,
    ``dosage_field``, ``index``, ``metafile``, ``sample_file``,
    ``n_samples``, ``n_records``; access files relative to the cohort
    directory).  Each association job opens it (:meth:`CohortGenotypes.open`)
    and reads one region or record range.  Ingest builds, once, what makes
    those reads cheap: a tabix/CSI index for a VCF/BCF that has none beside
    it (a plain or plain-gzip VCF is first recompressed to BGZF there, the
    one case where the data are copied), and the BGEN offsets (cbgen
    metafile).  PLINK filesets are read in place; a dosage TSV (small
    candidate sets) too, streamed up to each job's records.
Sample -> participant
    ``genotype_samples.tsv`` maps file columns to participants.  A
    participant with two blood samples whose genotypes agree (checked by
    ingest on the first variants of the file) has two rows: their dosages
    are averaged where both are called (:func:`participant_dosages`), as
    before.  Columns not in the blood manifest, and samples of dropped
    participants, have no row (they are ledger rows).

Tables are BIOM 2.1 (HDF5) written with a fixed creation date so that the same
inputs give byte-identical files.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd
import skbio

from . import runner
from .io.genotype_source import GenotypeSource, open_genotypes

FIXED_DATE = datetime.datetime(2000, 1, 1)
GENERATED_BY = "imsms-workflow ingest"


#: Directory (in the cohort directory) of the files that make reads of the genotype file cheap.
ACCESS_DIR = "genotype_access"


@dataclass
class CohortGenotypes:
    """Where the cohort's genotypes are and whose they are (never the dosages themselves).

    Attributes
    ----------
    source : dict
        ``path``, ``format``, ``dosage_field``, ``n_samples``, ``n_records``,
        and the access files ``index`` (VCF/BCF), ``metafile`` (BGEN),
        ``sample_file`` (BGEN), relative to the cohort directory when ingest
        built them.
    samples : DataFrame
        ``sample_id``, ``column``, ``participant_id``: the analysed blood
        samples (two rows for a merged concordant duplicate).
    directory : Path or None
        The cohort directory (set when read back), for the access files.
    """

    source: dict
    samples: pd.DataFrame
    directory: Path | None = None

    @property
    def format(self) -> str:
        return self.source["format"]

    @property
    def region_reads(self) -> bool:
        """True when jobs read regions through an index (VCF/BCF), False when they read record ranges."""
        return self.format in ("vcf", "bcf")

    def _resolve(self, name):
        value = self.source.get(name)
        if not value:
            return None
        path = Path(value)
        return path if path.is_absolute() or self.directory is None else self.directory / path

    def open(self, threads: int = 1) -> GenotypeSource:
        """The genotype file opened for streaming reads, through the access files ingest built."""
        options = {}
        if self.region_reads:
            copy, index = self._resolve("bgzf_copy"), self._resolve("index")
            path = copy or self.source["path"]
            options = {"index": index, "threads": threads} if index else {"threads": threads}
        else:
            path = self.source["path"]
            if self.format == "bgen":
                options = {"metafile": self._resolve("metafile"), "sample_file": self.source.get("sample_file")}
        return open_genotypes(path, format=self.format, **options)

    def columns_of(self, participant_ids) -> list[np.ndarray]:
        """File columns of each participant (one, or several for merged duplicates; empty if none)."""
        groups = self.samples.groupby("participant_id", sort=False)["column"].apply(
            lambda c: np.asarray(c, dtype=np.int64))
        return [groups.get(pid, np.zeros(0, np.int64)) for pid in participant_ids]

    def dosage_matrix(self, participant_ids, block: int = 10_000) -> tuple[pd.DataFrame, np.ndarray]:
        """Every biallelic variant x the given participants, in memory: for small files and tests only.

        Returns the variants read and a (variants x participants) float64 array.
        """
        columns = self.columns_of(participant_ids)
        parts, tables = [], []
        with self.open() as source:
            for variants, dosages in source.blocks(block):
                tables.append(variants)
                parts.append(participant_dosages(dosages, columns))
        if not parts:
            return pd.DataFrame(), np.zeros((0, len(columns)))
        return pd.concat(tables, ignore_index=True), np.concatenate(parts)

    def build_access(self, directory: Path) -> None:
        """Build, once, the index/offset files jobs need (see the module docstring)."""
        access = directory / ACCESS_DIR
        if self.region_reads and not self.source.get("indexed"):
            from .io.vcf import build_index

            vcf, index = build_index(self.source["path"], access, declare=self.source.get("undeclared", []))
            if Path(vcf) != Path(self.source["path"]):
                self.source["bgzf_copy"] = str(Path(vcf).relative_to(directory))
            self.source["index"] = str(Path(index).relative_to(directory))
        elif self.format == "bgen":
            access.mkdir(parents=True, exist_ok=True)
            metafile = access / (Path(self.source["path"]).name + ".metafile")
            metafile.unlink(missing_ok=True)
            with open_genotypes(self.source["path"], format="bgen", metafile=metafile,
                                sample_file=self.source.get("sample_file")):
                pass
            self.source["metafile"] = str(metafile.relative_to(directory))


def participant_dosages(dosages: np.ndarray, columns: list[np.ndarray]) -> np.ndarray:
    """Dosages of participants (variants x participants) from the file's (variants x samples).

    A participant's dosage is their sample's column; with several concordant
    blood samples, the mean of those that are called (NaN when none is);
    with none, NaN.
    """
    dosages = np.asarray(dosages)
    out = np.full((dosages.shape[0], len(columns)), np.nan, dtype=np.float64)
    single = np.array([c.size == 1 for c in columns], dtype=bool)
    if single.any():
        out[:, single] = dosages[:, [int(c[0]) for c, s in zip(columns, single) if s]]
    for j in np.flatnonzero(~single):
        if columns[j].size:
            block = dosages[:, columns[j]].astype(np.float64)
            called = (~np.isnan(block)).sum(axis=1)
            with np.errstate(invalid="ignore"):
                out[:, j] = np.where(called > 0, np.nansum(block, axis=1) / np.maximum(called, 1), np.nan)
    return out


@dataclass
class Cohort:
    """A validated, harmonised cohort."""

    participants: pd.DataFrame  # index participant_id
    samples: pd.DataFrame  # index sample_id
    features: biom.Table
    taxa: biom.Table
    taxonomy: pd.DataFrame  # index feature_id: lineage, taxon
    info: dict
    tree: skbio.TreeNode | None = None
    genotypes: CohortGenotypes | None = None
    variants: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)

    @property
    def case_label(self) -> str:
        return self.info["case_label"]

    @property
    def control_label(self) -> str:
        return self.info["control_label"]

    def table(self, level: str = "taxa") -> pd.DataFrame:
        """Dense samples x features (``level='features'``) or x taxa (``'taxa'``)."""
        table = self.taxa if level == "taxa" else self.features
        data = table.matrix_data.toarray().T if table.shape[0] else np.zeros(table.shape[::-1])
        return pd.DataFrame(data, index=table.ids(axis="sample"), columns=table.ids(axis="observation"))


def _column_types(frame: pd.DataFrame) -> dict[str, str]:
    types = {}
    for column, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            types[column] = "bool"
        elif pd.api.types.is_integer_dtype(dtype):
            types[column] = "int"
        elif pd.api.types.is_float_dtype(dtype):
            types[column] = "float"
        else:
            types[column] = "str"
    return types


def _write_tsv(frame: pd.DataFrame, path: Path, index_label: str | None = None) -> None:
    """Exact floats (:func:`workflow_scripts.runner.write_table`), the index named ``index_label``."""
    if index_label is not None:
        frame = frame.rename_axis(index_label)
    runner.write_table(frame, path, index=index_label is not None, exact=True)


def _read_tsv(path: Path, types: dict[str, str], index: str | None = None) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    for column, kind in types.items():
        values = frame[column]
        if kind == "float":
            frame[column] = pd.to_numeric(values.replace("", np.nan), errors="raise").astype(float)
        elif kind == "int":
            frame[column] = values.astype(int)
        elif kind == "bool":
            frame[column] = values.map({"True": True, "False": False}).astype(bool)
        else:
            frame[column] = pd.Series([v if v != "" else None for v in values], index=frame.index,
                                      dtype=object)
    return frame.set_index(index) if index else frame


def write_biom(table: biom.Table, path: Path) -> None:
    with h5py.File(path, "w") as handle:
        table.to_hdf5(handle, GENERATED_BY, creation_date=FIXED_DATE)


def read_biom(path: Path) -> biom.Table:
    with h5py.File(path, "r") as handle:
        return biom.Table.from_hdf5(handle)


def write_cohort(cohort: Cohort, directory: str | Path) -> None:
    """Write every cohort file (see the module docstring)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info = dict(cohort.info)
    info["participant_columns"] = _column_types(cohort.participants.reset_index())
    info["sample_columns"] = _column_types(cohort.samples.reset_index())
    _write_tsv(cohort.participants, directory / "participants.tsv", "participant_id")
    _write_tsv(cohort.samples, directory / "samples.tsv", "sample_id")
    _write_tsv(cohort.taxonomy, directory / "taxonomy.tsv", "feature_id")
    write_biom(cohort.features, directory / "features.biom")
    write_biom(cohort.taxa, directory / "taxa.biom")
    if cohort.tree is not None:
        cohort.tree.write(str(directory / "tree.nwk"), format="newick")
    if cohort.genotypes is not None:
        cohort.genotypes.build_access(directory)
        cohort.genotypes.directory = directory
        info["genotypes"] = cohort.genotypes.source
        _write_tsv(cohort.genotypes.samples, directory / "genotype_samples.tsv")
        _write_tsv(cohort.variants, directory / "variants.tsv")
    (directory / "cohort.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


#: dtypes of ``variants.tsv`` (the cohort's variant table).
VARIANT_DTYPES = {"index": np.int64, "variant_id": str, "chrom": str, "pos": np.int64, "ref": str, "alt": str,
                  "quality": float, "quality_field": str, "gene_or_locus": str, "label": str}


def read_variants(directory: str | Path, columns=None, chunksize: int | None = None):
    """The cohort's variant table (``variants.tsv``), or an iterator of pieces with ``chunksize``."""
    usecols = list(columns) if columns is not None else None
    dtype = {k: v for k, v in VARIANT_DTYPES.items() if usecols is None or k in usecols}
    frames = pd.read_csv(Path(directory) / "variants.tsv", sep="\t", usecols=usecols, dtype=dtype,
                         keep_default_na=False, na_values={"quality": [""]}, chunksize=chunksize)
    return frames


def read_cohort_genotypes(directory: str | Path) -> CohortGenotypes | None:
    """Only the genotype source of a cohort (what a job reading genotypes needs; no table is loaded)."""
    directory = Path(directory)
    info = json.loads((directory / "cohort.json").read_text())
    if not info.get("has_genotypes"):
        return None
    samples = pd.read_csv(directory / "genotype_samples.tsv", sep="\t", dtype={"sample_id": str, "column": np.int64,
                                                                              "participant_id": str})
    return CohortGenotypes(info["genotypes"], samples, directory)


def read_cohort(directory: str | Path, with_variants: bool = False, mmap_genotypes: bool | None = None) -> Cohort:
    """Read what :func:`write_cohort` wrote (the genotype source, not dosages; see the module docstring).

    ``with_variants=True`` also reads the variant table (one row per variant
    of a genome-wide file: only the stages that use it should).
    ``mmap_genotypes`` is accepted for older callers and ignored: no dosage
    matrix is loaded any more.
    """
    directory = Path(directory)
    info = json.loads((directory / "cohort.json").read_text())
    participants = _read_tsv(directory / "participants.tsv", info["participant_columns"], "participant_id")
    samples = _read_tsv(directory / "samples.tsv", info["sample_columns"], "sample_id")
    taxonomy = pd.read_csv(directory / "taxonomy.tsv", sep="\t", dtype=str,
                           keep_default_na=False).set_index("feature_id")
    tree = skbio.TreeNode.read(str(directory / "tree.nwk")) if info["has_tree"] else None
    genotypes = read_cohort_genotypes(directory)
    variants = read_variants(directory) if genotypes is not None and with_variants else None
    return Cohort(participants, samples, read_biom(directory / "features.biom"),
                  read_biom(directory / "taxa.biom"), taxonomy, info, tree, genotypes, variants)


def cohort_files(has_tree: bool, has_genotypes: bool) -> list[str]:
    """The file names :func:`write_cohort` writes, for the Snakemake rule's outputs.

    The access files under ``genotype_access/`` depend on the genotype file
    (an index only when it has none beside it, ...) and are named in
    ``cohort.json`` ``genotypes``.
    """
    names = ["participants.tsv", "samples.tsv", "features.biom", "taxa.biom", "taxonomy.tsv",
             "cohort.json"]
    names += ["tree.nwk"] if has_tree else []
    names += ["genotype_samples.tsv", "variants.tsv"] if has_genotypes else []
    return names
