"""QIIME 2-ready files: sample metadata, taxonomy and BIOM tables with both embedded.

- Sample metadata follows the QIIME 2 metadata format: first header
  ``sample-id``, a ``#q2:types`` row declaring every column ``categorical``
  or ``numeric`` (so numbers-as-labels stay labels), empty cells for missing.
- Taxonomy is ``TSVTaxonomyFormat``: ``Feature ID``, ``Taxon`` and
  ``Confidence`` only when the cohort carries one.
- BIOM 2.1 (HDF5) tables carry the sample metadata and a ``taxonomy``
  observation metadata list, as ``biom add-metadata --sc-separated taxonomy``
  writes them (numeric columns as numbers, as with ``--float-fields``), with a
  fixed creation date so the same cohort gives byte-identical files.

References
----------
QIIME 2 metadata format: https://docs.qiime2.org/ (Metadata in QIIME 2).
McDonald et al. (2012) The Biological Observation Matrix (BIOM) format.
GigaScience 1:7.
"""

from __future__ import annotations

from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd

from workflow_scripts.cohort import FIXED_DATE

ID_HEADER = "sample-id"
GENERATED_BY = "imsms-workflow export"
# Column names QIIME 2 reserves for the id column (case-insensitive), and the exact ones.
_RESERVED = {"id", "sampleid", "sample id", "sample-id", "featureid", "feature id", "feature-id"}
_RESERVED_EXACT = {"#SampleID", "#Sample ID", "#OTUID", "#OTU ID", "sample_name"}


def column_types(frame: pd.DataFrame) -> dict[str, str]:
    """``numeric`` for integer and float columns, ``categorical`` for everything else."""
    return {column: "numeric" if _is_numeric(dtype) else "categorical"
            for column, dtype in frame.dtypes.items()}


def sample_metadata(samples: pd.DataFrame) -> pd.DataFrame:
    """Kept stool samples (index sample id) with their participants' attributes, QIIME 2-safe.

    Booleans become the words ``True``/``False`` (categorical); a column whose
    name QIIME 2 reserves for the id column (``id``, ``sample_name``, ...)
    gets the suffix ``_value``.
    """
    frame = samples.copy()
    for column, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            frame[column] = frame[column].map({True: "True", False: "False"}).astype(object)
    frame.columns = [f"{c}_value" if _reserved(c) else c for c in frame.columns]
    frame.index = frame.index.astype(str).rename(ID_HEADER)
    return frame


def write_sample_metadata(metadata: pd.DataFrame, path: str | Path) -> None:
    """Write ``sample-metadata.tsv``: header, ``#q2:types`` row, one row per sample."""
    types = column_types(metadata)
    lines = ["\t".join([ID_HEADER, *metadata.columns]),
             "\t".join(["#q2:types", *(types[c] for c in metadata.columns)])]
    cells = {c: _cells(metadata[c]) for c in metadata.columns}
    for i, sample in enumerate(metadata.index):
        lines.append("\t".join([sample, *(cells[c][i] for c in metadata.columns)]))
    Path(path).write_text("\n".join(lines) + "\n")


def taxonomy_table(lineages: pd.Series, confidence: pd.Series | None = None) -> pd.DataFrame:
    """``Feature ID``, ``Taxon`` (and ``Confidence`` when given), one row per feature."""
    frame = pd.DataFrame({"Feature ID": lineages.index.astype(str), "Taxon": list(lineages)})
    if confidence is not None:
        frame["Confidence"] = confidence.reindex(lineages.index).to_numpy()
    return frame


def write_taxonomy(taxonomy: pd.DataFrame, path: str | Path) -> None:
    taxonomy.to_csv(path, sep="\t", index=False, lineterminator="\n", na_rep="")


def annotated_table(table: biom.Table, metadata: pd.DataFrame, taxonomy: pd.DataFrame) -> biom.Table:
    """A copy of ``table`` with sample metadata and observation taxonomy embedded.

    Parameters
    ----------
    table : biom.Table
        Features (or taxa) x samples.
    metadata : DataFrame
        :func:`sample_metadata` (index sample id); every sample of the table.
    taxonomy : DataFrame
        :func:`taxonomy_table`; every observation of the table.
    """
    out = table.copy()
    sample_ids = list(out.ids(axis="sample"))
    types = column_types(metadata)
    rows = metadata.reindex(sample_ids)
    sample_md = {}
    for sample, (_, row) in zip(sample_ids, rows.iterrows()):
        sample_md[sample] = {c: _metadata_value(row[c], types[c]) for c in metadata.columns}
    out.add_metadata(sample_md, axis="sample")
    by_id = taxonomy.set_index("Feature ID")
    observation_md = {}
    for feature in out.ids(axis="observation"):
        entry = {"taxonomy": [p.strip() for p in by_id.at[feature, "Taxon"].split(";")]}
        if "Confidence" in by_id.columns:
            entry["confidence"] = float(by_id.at[feature, "Confidence"])
        observation_md[feature] = entry
    out.add_metadata(observation_md, axis="observation")
    return out


def write_biom(table: biom.Table, path: str | Path) -> None:
    """BIOM 2.1 HDF5 with a fixed creation date (byte-identical for the same table)."""
    with h5py.File(path, "w") as handle:
        table.to_hdf5(handle, GENERATED_BY, creation_date=FIXED_DATE)


def _is_numeric(dtype) -> bool:
    return (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def _reserved(name: str) -> bool:
    return name.lower() in _RESERVED or name in _RESERVED_EXACT


def _cells(values: pd.Series) -> list[str]:
    """Text of each cell: empty for missing, shortest round-trip form for floats."""
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append("")
        elif isinstance(value, (float, np.floating)):
            out.append(repr(float(value)))
        else:
            out.append(str(value))
    return out


def _metadata_value(value, kind: str):
    missing = value is None or (isinstance(value, float) and np.isnan(value))
    if kind == "numeric":
        return float("nan") if missing else (int(value) if isinstance(value, (int, np.integer))
                                             else float(value))
    return "" if missing else str(value)
