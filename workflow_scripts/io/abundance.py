"""Reading the abundance table (features x stool samples) in every contract format.

Formats: BIOM 2.1 (HDF5) and BIOM 1.0 (JSON) via biom-format; a QIIME 2 ``.qza``
FeatureTable (the BIOM file inside the zip; QIIME 2 itself is not needed); a
TSV/CSV with feature ids in the first column; a MetaPhlAn merged profile.

Every reader returns an :class:`Abundance`; :func:`check_values` then applies
the rules that do not depend on the format (non-negative, finite, integer
counts, proportions or percentages).
"""

from __future__ import annotations

import gzip
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import biom
import h5py
import numpy as np
import yaml

from ..errors import InputError, Problem, Problems
from .tables import ID_PATTERN, check_ids, read_raw

FORMATS = ("auto", "biom", "qza", "table", "metaphlan")
QZA_TYPES = ("FeatureTable[Frequency]", "FeatureTable[RelativeFrequency]")
LINEAGE_COLUMNS = ("taxonomy", "Taxon", "Taxonomy")
METAPHLAN_FIRST = ("clade_name", "#clade_name", "ID")
METAPHLAN_TAXID = ("NCBI_tax_id", "clade_taxid")
METAPHLAN_UNCLASSIFIED = ("UNCLASSIFIED", "UNKNOWN", "unclassified")


@dataclass
class Abundance:
    """An abundance table as read, before validation against the manifests.

    ``data`` is features x samples. ``lineages`` maps feature id to a lineage
    string when the file carries one (MetaPhlAn names, BIOM ``taxonomy``
    metadata, a ``taxonomy`` column). ``dropped_rows`` lists rows the format
    itself says are not features (MetaPhlAn summary rows), as
    ``(feature, reason, detail)`` for the ledger.
    """

    path: str
    format: str
    data: np.ndarray
    feature_ids: list[str]
    sample_ids: list[str]
    feature_lines: list[int] | None = None
    lineages: dict[str, str] = field(default_factory=dict)
    dropped_rows: list[tuple[str, str, str]] = field(default_factory=list)


def detect_format(path: str | Path) -> str:
    """Guess the format from the suffix, and for text tables from the header."""
    name = str(path).lower()
    if name.endswith(".biom"):
        return "biom"
    if name.endswith(".qza"):
        return "qza"
    first = first_cell(path)
    return "metaphlan" if first in ("clade_name", "#clade_name") else "table"


def first_cell(path) -> str:
    """First cell of the header of a text table, reading only its first lines."""
    with open(path, "rb") as handle:
        gz = handle.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
            for line in handle:
                if line.strip() and (not line.startswith("#") or line.startswith("#clade_name")):
                    return line.replace(",", "\t").split("\t")[0].strip().strip('"')
    except (OSError, EOFError):
        return ""  # the full read reports the damage with its fix
    return ""


def read_abundance(path: str | Path, fmt: str = "auto") -> Abundance:
    """Read an abundance table in any contract format.

    Raises
    ------
    InputError
        Naming the file for an unreadable, truncated or malformed table, or
        a format that was asked for but does not match the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError([Problem(str(path), "file does not exist",
                                  "check inputs.abundance in the config")])
    fmt = detect_format(path) if fmt == "auto" else fmt
    reader = {"biom": read_biom, "qza": read_qza, "table": read_text_table,
              "metaphlan": read_metaphlan}[fmt]
    table = reader(path)
    empty = _emptiness(table)
    if empty:
        raise InputError(empty)
    problems = check_ids(table.sample_ids, path, "sample_id", what="sample id")
    problems += check_ids(table.feature_ids, path, "feature_id", lines=table.feature_lines,
                          what="feature id")
    if problems:
        raise InputError(problems)
    return table


def _emptiness(table: Abundance) -> list[Problem]:
    """Problems for a table without sample columns or without feature rows."""
    problems = []
    if not table.sample_ids:
        problems.append(Problem(table.path, "has no sample columns",
                                "give one column per stool sample after the feature id column; if "
                                "the samples are there, check the delimiter (.tsv: tabs, .csv: commas)"))
    if not table.feature_ids:
        what = "species rows (s__...)" if table.format == "metaphlan" else "feature rows"
        problems.append(Problem(table.path, f"has no {what}, only a header",
                                "give the complete table, one row per feature (the file may have been "
                                "cut short when it was copied or exported)"))
    return problems


def _from_biom_table(table: biom.Table, path, fmt) -> Abundance:
    data = table.matrix_data.toarray() if table.shape[0] * table.shape[1] else np.zeros(table.shape)
    lineages = {}
    metadata = table.metadata(axis="observation")
    if metadata is not None:
        for fid, meta in zip(table.ids(axis="observation"), metadata):
            if meta and meta.get("taxonomy") is not None:
                tax = meta["taxonomy"]
                lineages[str(fid)] = "; ".join(tax) if isinstance(tax, (list, tuple)) else str(tax)
    return Abundance(str(path), fmt, np.asarray(data, dtype=float),
                     [str(i) for i in table.ids(axis="observation")],
                     [str(i) for i in table.ids(axis="sample")], lineages=lineages)


def read_biom(path) -> Abundance:
    """BIOM 2.1 (HDF5) or BIOM 1.0 (JSON), told apart by their first bytes."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(8)
        if magic == b"\x89HDF\r\n\x1a\n":
            with h5py.File(path, "r") as h5:
                table = biom.Table.from_hdf5(h5)
        else:
            with open(path, encoding="utf-8-sig") as handle:
                table = biom.Table.from_json(__import__("json").load(handle))
    except Exception as err:  # biom/h5py/json raise many types for a bad file
        raise InputError([Problem(str(path), f"is not a readable BIOM file ({type(err).__name__}: {err})",
                                  "the file may be truncated or not BIOM: re-export it with "
                                  "`biom convert --to-hdf5` or give a TSV table")]) from err
    return _from_biom_table(table, path, "biom")


def read_qza(path) -> Abundance:
    """The BIOM table inside a QIIME 2 FeatureTable artifact (a zip file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            meta_name = next((n for n in names if n.count("/") == 1 and n.endswith("/metadata.yaml")), None)
            biom_name = next((n for n in names if "/data/" in n and n.endswith(".biom")), None)
            if meta_name is None or biom_name is None:
                raise InputError([Problem(str(path), "is not a QIIME 2 FeatureTable artifact "
                                          "(no metadata.yaml or data/*.biom inside)",
                                          "export a FeatureTable[Frequency] artifact from QIIME 2")])
            kind = yaml.safe_load(archive.read(meta_name)).get("type", "")
            if kind not in QZA_TYPES:
                raise InputError([Problem(str(path), f"holds a {kind}, not a FeatureTable[Frequency]",
                                          "give the feature table artifact (table.qza)")])
            with h5py.File(io.BytesIO(archive.read(biom_name)), "r") as h5:
                table = biom.Table.from_hdf5(h5)
    except InputError:
        raise
    except Exception as err:
        raise InputError([Problem(str(path), f"is not a readable .qza ({type(err).__name__}: {err})",
                                  "the file may be truncated: copy it again")]) from err
    return _from_biom_table(table, path, "qza")


def _parse_numbers(cells: list[list[str]], path, lines, features, samples) -> np.ndarray:
    """Strings to floats; every unparseable cell is reported with its row and column."""
    try:
        return np.array(cells, dtype=float) if cells else np.zeros((0, len(samples)))
    except ValueError:
        pass
    problems = Problems()
    values = np.zeros((len(cells), len(samples)))
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                what = "an empty cell" if cell in ("", "NA") else f"non-numeric value {cell!r}"
                problems.add(path, f"{what} for sample {samples[j]!r}",
                             "every cell must be a number (0 for absent)",
                             line=lines[i], item=features[i], column=samples[j])
    problems.raise_if_any()
    return values


def read_text_table(path) -> Abundance:
    """TSV/CSV: feature ids in the first column, one column per sample.

    A last column named ``taxonomy`` (as QIIME 1 / biom-format export it) is
    taken as the feature lineages.
    """
    raw = read_raw(path, hash_header=True)
    header = raw.header
    lineage_col = len(header) - 1 if header[-1] in LINEAGE_COLUMNS else None
    sample_ids = header[1:lineage_col] if lineage_col else header[1:]
    feature_ids = [r[0] for r in raw.rows]
    cells = [r[1:lineage_col] if lineage_col else r[1:] for r in raw.rows]
    data = _parse_numbers(cells, path, raw.lines, feature_ids, sample_ids)
    lineages = {r[0]: r[lineage_col] for r in raw.rows} if lineage_col else {}
    return Abundance(str(path), "table", data, feature_ids, sample_ids, raw.lines, lineages)


def read_metaphlan(path) -> Abundance:
    """A MetaPhlAn merged profile (``merge_metaphlan_tables.py`` output).

    The species rows (last lineage element ``s__``) are the features, named by
    that element (``s__Akkermansia_muciniphila``); the higher-rank summary rows,
    strain/SGB rows and the unclassified row are not features and are listed in
    ``dropped_rows`` for the ledger. Values are percentages as MetaPhlAn writes them.
    """
    raw = read_raw(path, hash_header=False)
    header = raw.header
    if header[0].lstrip("#") not in ("clade_name", "ID"):
        raise InputError([Problem(str(path), f"first column is {header[0]!r}, not 'clade_name'",
                                  "give the table written by merge_metaphlan_tables.py")])
    first_sample = 2 if len(header) > 1 and header[1] in METAPHLAN_TAXID else 1
    sample_ids = header[first_sample:]
    keep, dropped, lineages = [], [], {}
    for i, row in enumerate(raw.rows):
        clade = row[0]
        last = clade.split("|")[-1]
        if clade in METAPHLAN_UNCLASSIFIED:
            dropped.append((clade, "metaphlan_unclassified", "unclassified fraction, not a taxon"))
        elif last.startswith("s__"):
            keep.append(i)
            lineages[last] = clade
        elif last.startswith("t__"):
            dropped.append((last, "metaphlan_below_species", f"strain/SGB row {clade} (species rows are used)"))
        else:
            dropped.append((last, "metaphlan_summary_row", f"higher-rank total {clade} (species rows are used)"))
    feature_ids = [raw.rows[i][0].split("|")[-1] for i in keep]
    lines = [raw.lines[i] for i in keep]
    cells = [raw.rows[i][first_sample:] for i in keep]
    data = _parse_numbers(cells, path, lines, feature_ids, sample_ids)
    return Abundance(str(path), "metaphlan", data, feature_ids, sample_ids, lines, lineages, dropped)


def check_values(table: Abundance, kind: str) -> tuple[np.ndarray, str]:
    """Apply the value rules; return the data (relative as proportions) and a note.

    Parameters
    ----------
    table : Abundance
    kind : {"counts", "relative"}

    Returns
    -------
    data : ndarray
        Counts unchanged; relative abundances as proportions (percentages are
        divided by 100).
    scale : str
        ``"counts"``, ``"proportions"`` or ``"percentages"``: what was found.

    Notes
    -----
    Relative abundances are proportions or percentages as
    :func:`relative_scale` decides for the whole table; a table that mixes the
    two is an error naming the samples that do not fit.
    """
    data, path = table.data, table.path
    problems = Problems()

    def report(mask, message, fix, limit=50):
        rows, cols = np.nonzero(mask)
        if len(rows) > limit:
            problems.add(path, f"{len(rows)} cells break this rule: " + message.format(
                v=data[rows[0], cols[0]], s=table.sample_ids[cols[0]]) + " (first shown below)", fix)
        for i, j in zip(rows[:limit], cols[:limit]):
            line = table.feature_lines[i] if table.feature_lines else None
            problems.add(path, message.format(v=data[i, j], s=table.sample_ids[j]), fix,
                         line=line, item=table.feature_ids[i], column=table.sample_ids[j])

    finite = np.isfinite(data)
    report(~finite, "value {v} for sample {s!r} is not a finite number", "give a number (0 for absent)")
    report(finite & (data < 0), "negative abundance {v} for sample {s!r}",
           "abundances must be non-negative: check how the table was made")
    if problems:
        problems.raise_if_any()
    if kind == "counts":
        if table.format == "metaphlan":
            problems.add(path, "a MetaPhlAn profile holds relative abundances, not counts",
                         "set inputs.abundance_kind: relative")
        else:
            report(data != np.round(data), "non-integer count {v} for sample {s!r}",
                   "counts must be whole numbers; if the table holds relative abundances "
                   "set inputs.abundance_kind: relative")
        problems.raise_if_any()
        return data, "counts"
    scale, offending = relative_scale(data.sum(axis=0), table.format)
    if scale is not None:
        return (data / 100.0 if scale == "percentages" else data), scale
    for j, message in offending:
        problems.add(path, f"relative abundances of sample {table.sample_ids[j]!r} {message}",
                     "give every sample on one scale (proportions summing to at most 1, or "
                     "percentages summing to at most 100); if the table holds read counts set "
                     "inputs.abundance_kind: counts", item=table.sample_ids[j])
    problems.raise_if_any()
    raise AssertionError("unreachable")


TOLERANCE = 1e-3  # relative rounding slack on a sample's total (0.1%)


def relative_scale(sums: np.ndarray, fmt: str = "table") -> tuple[str | None, list[tuple[int, str]]]:
    """Decide whether relative abundances are proportions or percentages, from sample totals.

    Parameters
    ----------
    sums : ndarray
        Total of each sample (column sums).
    fmt : str
        The table's format: a MetaPhlAn profile is percentages by definition.

    Returns
    -------
    scale : {"proportions", "percentages"} or None
        None when the table does not say unambiguously.
    offending : list of (column index, message)
        The samples that make it ambiguous, each with why.

    Notes
    -----
    The scale is decided for the whole table, and only when every sample
    agrees: proportions when every total is at most 1 (+0.1%), percentages when
    every total is at most 100 (+0.1%) and no non-empty sample totals 1 or
    less. A table that mixes both (say 40 samples summing to 1 and one summing
    to 1.3) has no safe reading: dividing all by 100 would shrink every proper
    profile a hundredfold, and keeping it would leave one sample above 1. The
    samples on the minority side are named instead.
    """
    upper = {"proportions": 1.0 + TOLERANCE, "percentages": 100.0 * (1.0 + TOLERANCE)}
    over_100 = np.nonzero(sums > upper["percentages"])[0]
    offending = [(j, f"sum to {sums[j]:.6g}, more than 100, so they are neither proportions (<= 1) "
                     "nor percentages (<= 100)") for j in over_100]
    if offending:
        return None, offending
    if fmt == "metaphlan" or sums.size == 0:
        return ("percentages" if fmt == "metaphlan" else "proportions"), []
    small = (sums > 0) & (sums <= upper["proportions"])
    large = sums > upper["proportions"]
    if not large.any():
        return "proportions", []
    if not small.any():
        return "percentages", []
    n_small, n_large = int(small.sum()), int(large.sum())
    if n_large <= n_small:
        return None, [(j, f"sum to {sums[j]:.6g}, more than 1, while {n_small} other sample(s) sum to "
                          "at most 1 as proportions do; the table mixes scales")
                      for j in np.nonzero(large)[0]]
    return None, [(j, f"sum to {sums[j]:.6g}, at most 1, while {n_large} other sample(s) sum to more "
                      "than 1 as percentages do; the table mixes scales")
                  for j in np.nonzero(small)[0]]


__all__ = ["Abundance", "FORMATS", "read_abundance", "check_values", "relative_scale", "detect_format",
           "ID_PATTERN"]
