"""The harmonised cohort: what ingest writes and every later stage reads.

Layout of ``<outdir>/ingest/cohort/``:

- ``participants.tsv``  kept participants with their attributes, ``paired``,
  sample counts and per-participant sNfL/GFAP (mean over blood samples);
- ``samples.tsv``       kept stool samples, participant attributes joined on;
- ``features.biom``     feature-level table (kept features x kept samples);
- ``taxa.biom``         the same aggregated to the configured rank;
- ``taxonomy.tsv``      feature -> lineage -> taxon at the rank;
- ``tree.nwk``          the tree pruned to kept features (only with a tree);
- ``genotypes.npy``     dosages, variants x participants (rows of
  ``participants.tsv``), NaN = not genotyped (only with genotypes);
- ``variants.tsv``      variant ids and annotation (only with genotypes);
- ``cohort.json``       labels, kinds, column types, counts and input checksums.

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

FIXED_DATE = datetime.datetime(2000, 1, 1)
GENERATED_BY = "imsms-workflow ingest"


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
    genotypes: np.ndarray | None = None
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
        np.save(directory / "genotypes.npy", cohort.genotypes.astype(np.float32))
        _write_tsv(cohort.variants, directory / "variants.tsv")
    (directory / "cohort.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_cohort(directory: str | Path, mmap_genotypes: bool = True) -> Cohort:
    """Read what :func:`write_cohort` wrote. Genotypes are memory-mapped by default."""
    directory = Path(directory)
    info = json.loads((directory / "cohort.json").read_text())
    participants = _read_tsv(directory / "participants.tsv", info["participant_columns"], "participant_id")
    samples = _read_tsv(directory / "samples.tsv", info["sample_columns"], "sample_id")
    taxonomy = pd.read_csv(directory / "taxonomy.tsv", sep="\t", dtype=str,
                           keep_default_na=False).set_index("feature_id")
    tree = skbio.TreeNode.read(str(directory / "tree.nwk")) if info["has_tree"] else None
    genotypes = variants = None
    if info["has_genotypes"]:
        genotypes = np.load(directory / "genotypes.npy", mmap_mode="r" if mmap_genotypes else None)
        variants = pd.read_csv(directory / "variants.tsv", sep="\t", dtype=str, keep_default_na=False)
    return Cohort(participants, samples, read_biom(directory / "features.biom"),
                  read_biom(directory / "taxa.biom"), taxonomy, info, tree, genotypes, variants)


def cohort_files(has_tree: bool, has_genotypes: bool) -> list[str]:
    """The file names :func:`write_cohort` writes, for the Snakemake rule's outputs."""
    names = ["participants.tsv", "samples.tsv", "features.biom", "taxa.biom", "taxonomy.tsv",
             "cohort.json"]
    names += ["tree.nwk"] if has_tree else []
    names += ["genotypes.npy", "variants.tsv"] if has_genotypes else []
    return names
