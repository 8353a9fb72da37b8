"""Streaming host-genotype readers: one small interface over VCF/BCF, PLINK 1, BGEN and dosage TSV.

:func:`open_genotypes` opens a genotype file of any supported format and
returns a :class:`GenotypeSource`:

``source.samples``
    the blood sample ids, in file order;
``source.variant_table()``
    one row per record of the file (:data:`VARIANT_COLUMNS`), read without
    decoding any dosage;
``source.count_by_chromosome()``
    variants per chromosome (:data:`COUNT_COLUMNS`), streamed;
``source.read(chrom, start, end)`` / ``source.read_range(first, stop)``
    one region (1-based, inclusive positions) or one range of record numbers:
    ``(variants, dosages)`` with ``dosages`` a float32 array of variants x
    samples, NaN = missing;
``source.blocks(size)``
    the whole file, ``size`` records at a time.

Dosage is the number of copies of the allele the ``alt`` column names, 0-2:
``DS`` (else counted from ``GT``) for VCF/BCF, the ``.bim`` A1 allele for
PLINK (``alt`` = A1, ``ref`` = A2), the expected count of the second allele
for BGEN (``ref`` = first allele, ``alt`` = second).  Memory of a read is
``O(variants read x samples)``, never ``O(variants in the file)``.

Multi-allelic records are listed by :meth:`GenotypeSource.variant_table`
(``multiallelic`` True) but never returned by a read: the dosage of which
allele?  Split them with ``bcftools norm -m-`` (or ``plink2
--max-alleles 2``) to analyse them.

Bad input raises :class:`~workflow_scripts.errors.InputError` naming the file,
the record or variant, and the fix.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, Problems
from .tables import ID_PATTERN, check_ids

#: Variant ids often carry ':' (chr1:12345:A:G); sample ids follow the strict rule.
VARIANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]+$")
#: Columns of :meth:`GenotypeSource.variant_table` and of the variants of a read.
VARIANT_COLUMNS = ["index", "variant_id", "chrom", "pos", "ref", "alt", "multiallelic",
                   "quality", "quality_field"]
#: Columns of :meth:`GenotypeSource.count_by_chromosome`.
COUNT_COLUMNS = ["chrom", "n_variants", "n_multiallelic", "first_pos", "last_pos", "first_index",
                 "stop_index"]
#: Imputation-quality fields read from a VCF INFO column, in order of preference.
QUALITY_FIELDS = ("R2", "DR2", "INFO")
#: Problems listed before a reader stops collecting more.
MAX_REPORTED = 50
FORMATS = ("vcf", "bcf", "plink", "bgen", "dosage")

Chunk = tuple[pd.DataFrame, np.ndarray]


class GenotypeSource:
    """A genotype file opened for streaming reads; see the module docstring.

    Subclasses implement :meth:`_records` (variant rows without dosages, in
    file order, from record ``first`` on), :meth:`_read_indices` (dosages of
    given record numbers) and, when they can do better than a scan,
    :meth:`read`.
    """

    format: str = ""
    #: Where the dosages come from ("DS", "GT", "A1 count", "probabilities", "dosage").
    dosage_field: str = ""

    def __init__(self, path):
        self.path = str(path)
        self.samples: list[str] = []

    # ------------------------------------------------------------------ metadata

    def variant_table(self) -> pd.DataFrame:
        """Every record of the file (:data:`VARIANT_COLUMNS`), without reading dosages.

        ``index`` is the record number (0-based, file order; the unit of
        :meth:`read_range`); ``quality`` the imputation quality the file
        states (``quality_field``: ``R2``, ``DR2`` or ``INFO``; NaN and ""
        when absent).  Variant ids are checked (valid and unique) here,
        since this is the one pass that sees them all.
        """
        frame = variant_frame(list(self._records()))
        _check_variant_ids(self.path, frame)
        return frame

    def count_by_chromosome(self) -> pd.DataFrame:
        """Records per chromosome in file order (:data:`COUNT_COLUMNS`), streamed.

        ``n_variants`` counts the biallelic records (the ones a read returns),
        ``n_multiallelic`` the others; ``first_index``/``stop_index`` bound
        the chromosome's record numbers (a chromosome split over the file
        is a :class:`~workflow_scripts.errors.InputError`: sort the file).
        """
        rows: dict[str, list] = {}
        order: list[str] = []
        last = None
        for rec in self._records():
            index, chrom, pos, multi = rec[0], rec[2], rec[3], rec[6]
            if chrom != last and chrom in rows:
                raise InputError([Problem(self.path, f"chromosome {chrom!r} appears in two separate blocks "
                                          "of records", "sort the file by chromosome and position "
                                          "(bcftools sort, plink2 --sort-vars)", line=None,
                                          item=str(rec[1]))])
            if chrom not in rows:
                rows[chrom] = [chrom, 0, 0, pos, pos, index, index + 1]
                order.append(chrom)
            row = rows[chrom]
            row[2 if multi else 1] += 1
            row[3], row[4] = min(row[3], pos), max(row[4], pos)
            row[6] = index + 1
            last = chrom
        return pd.DataFrame([rows[c] for c in order], columns=COUNT_COLUMNS).astype(
            {"n_variants": np.int64, "n_multiallelic": np.int64, "first_pos": np.int64,
             "last_pos": np.int64, "first_index": np.int64, "stop_index": np.int64})

    # ------------------------------------------------------------------ dosages

    def read(self, chrom: str | None = None, start: int | None = None, end: int | None = None) -> Chunk:
        """Variants whose position lies in ``chrom:start-end`` (1-based, inclusive) and their dosages.

        ``chrom=None`` reads the whole file (use :meth:`blocks` for large
        ones); ``start``/``end`` default to the chromosome's ends.  Only
        records that *start* in the region are returned, so adjacent regions
        never share a variant.  This default scans the records' metadata
        and reads the matching ones; indexed formats override it.
        """
        wanted = [rec[0] for rec in self._records() if _in_region(rec, chrom, start, end)]
        return self._read_indices(np.asarray(wanted, dtype=np.int64))

    def read_range(self, first: int, stop: int) -> Chunk:
        """Records ``first <= index < stop`` (file order) that are biallelic, and their dosages."""
        first, stop = int(first), int(stop)
        if first < 0 or stop < first:
            raise ValueError(f"record range {first}:{stop} is not a range")
        return self._read_indices(np.arange(first, stop, dtype=np.int64))

    def blocks(self, size: int = 10_000) -> Iterator[Chunk]:
        """The whole file, ``size`` records at a time (multi-allelic records left out)."""
        start = 0
        while True:
            variants, dosages = self.read_range(start, start + size)
            if not len(variants) and not self._has_record(start):
                return
            if len(variants):
                yield variants, dosages
            start += size

    def iter_range(self, first: int, stop: int, size: int = 2_000) -> Iterator[Chunk]:
        """:meth:`read_range` of ``first:stop``, ``size`` records at a time (memory of one block)."""
        for start in range(int(first), int(stop), int(size)):
            variants, dosages = self.read_range(start, min(start + int(size), int(stop)))
            if len(variants):
                yield variants, dosages

    def iter_region(self, chrom: str, start: int | None = None, end: int | None = None,
                    size: int = 2_000) -> Iterator[Chunk]:
        """:meth:`read` of one region in blocks of ``size`` records (indexed formats stream them)."""
        variants, dosages = self.read(chrom, start, end)
        for first in range(0, len(variants), int(size)):
            yield variants.iloc[first:first + int(size)].reset_index(drop=True), dosages[first:first + int(size)]

    def read_sites(self, sites: pd.DataFrame) -> Chunk:
        """The records of given variants (rows of :meth:`variant_table`: ``index``, ``variant_id``,
        ``chrom``, ``pos``), in file order; formats with an index override it to seek each one."""
        return self._read_indices(np.sort(np.asarray(sites["index"], dtype=np.int64)))

    # ------------------------------------------------------------------ for subclasses

    def _records(self, first: int = 0) -> Iterator[tuple]:
        """(index, variant_id, chrom, pos, ref, alt, multiallelic, quality, quality_field) from ``first`` on."""
        raise NotImplementedError

    def _read_indices(self, indices: np.ndarray) -> Chunk:
        raise NotImplementedError

    def _has_record(self, index: int) -> bool:
        return next(self._records(index), None) is not None

    def close(self) -> None:
        """Release the file handles."""

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, {len(self.samples)} samples)"


# ---------------------------------------------------------------------- shared helpers


def _in_region(rec, chrom, start, end) -> bool:
    if rec[6]:
        return False
    if chrom is None:
        return True
    return rec[2] == chrom and (start is None or rec[3] >= start) and (end is None or rec[3] <= end)


def variant_frame(records: list[tuple]) -> pd.DataFrame:
    """The variant table of reader records (``VARIANT_COLUMNS``), with fixed dtypes."""
    frame = pd.DataFrame(records, columns=VARIANT_COLUMNS)
    return frame.astype({"index": np.int64, "variant_id": object, "chrom": object, "pos": np.int64,
                         "ref": object, "alt": object, "multiallelic": bool, "quality": float,
                         "quality_field": object})


def _check_variant_ids(path: str, frame: pd.DataFrame) -> None:
    ids = frame["variant_id"].tolist()
    problems = check_ids(ids, path, "variant_id", lines=None, pattern=VARIANT_ID_PATTERN, what="variant id")
    if problems:
        raise InputError(problems[:MAX_REPORTED] + ([Problem(path, f"{len(problems)} variant id problems "
                                                             "in all", "fix the ids (bcftools annotate "
                                                             "--set-id, plink2 --set-all-var-ids)")]
                                                    if len(problems) > MAX_REPORTED else []))


def check_samples(path: str, samples: list[str]) -> None:
    """Blood sample ids: valid and unique (the contract's id rule)."""
    problems = check_ids(samples, path, "sample_id", what="blood sample id")
    if not samples:
        problems.append(Problem(path, "has no samples", "give a genotype file with one column per blood sample"))
    if problems:
        raise InputError(problems)


def check_dosages(path: str, variants: pd.DataFrame, dosages: np.ndarray, samples: list[str],
                  what: str = "dosage") -> None:
    """Every dosage within 0-2 (NaN is missing); the first offenders are listed."""
    with np.errstate(invalid="ignore"):
        bad = np.nonzero((dosages < 0) | (dosages > 2))
    if not bad[0].size:
        return
    problems = Problems()
    ids = variants["variant_id"].to_numpy()
    for i, j in list(zip(*bad))[:MAX_REPORTED]:
        problems.add(path, f"{what} {dosages[i, j]:g} is outside 0-2",
                     "dosages count alternate alleles: 0, 1 or 2 (decimals for imputed)",
                     item=str(ids[i]), column=samples[j])
    if bad[0].size > MAX_REPORTED:
        problems.add(path, f"{bad[0].size} dosages in all are outside 0-2", "fix the genotype export")
    problems.raise_if_any()


def missing_file(path, what: str, fix: str) -> InputError:
    return InputError([Problem(str(path), f"{what} does not exist", fix)])


# ---------------------------------------------------------------------- dosage TSV


class DosageTableSource(GenotypeSource):
    """The dosage TSV (``variant_id`` then one column per blood sample, 0-2, ``NA``/``.``/empty missing).

    Streamed line by line (plain or gzipped); it has no positions, so
    ``chrom`` is ``""`` and ``pos`` 0 for every variant and region reads
    by chromosome return nothing.  Meant for small candidate sets.
    """

    format = "dosage"
    dosage_field = "dosage"

    def __init__(self, path):
        super().__init__(path)
        if not Path(path).is_file():
            raise missing_file(path, "genotype file", "check inputs.genotypes in the config")
        header, self._header_line = self._header()
        if header[0] != "variant_id":
            raise InputError([Problem(self.path, f"first column is {header[0]!r}, not 'variant_id'",
                                      "name the first column variant_id", line=self._header_line,
                                      column=header[0])])
        self.samples = header[1:]
        check_samples(self.path, self.samples)

    def _open(self):
        with open(self.path, "rb") as fh:
            magic = fh.read(2)
        if magic == b"\x1f\x8b":
            return gzip.open(self.path, "rt", encoding="utf-8-sig", newline="")
        return open(self.path, encoding="utf-8-sig", newline="")

    def _lines(self) -> Iterator[tuple[int, str]]:
        try:
            with self._open() as fh:
                for lineno, line in enumerate(fh, start=1):
                    line = line.rstrip("\r\n")
                    if line.strip() and not line.startswith("#"):
                        yield lineno, line
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise InputError([Problem(self.path, f"cannot be read ({err})",
                                      "the file looks truncated, corrupt or not UTF-8: copy it again")]) from err

    def _header(self) -> tuple[list[str], int]:
        for lineno, line in self._lines():
            return [f.strip() for f in line.split("\t")], lineno
        raise InputError([Problem(self.path, "is empty (no header row)",
                                  "give variant_id then one column per blood sample")])

    def _rows(self, first: int = 0) -> Iterator[tuple[int, int, str]]:
        """(record index, line number, line) of the data rows from ``first`` on."""
        index = -1
        for lineno, line in self._lines():
            if index >= 0 and index >= first:
                yield index, lineno, line
            index += 1

    def _records(self, first: int = 0) -> Iterator[tuple]:
        for index, _, line in self._rows(first):
            yield (index, line.split("\t", 1)[0].strip(), "", 0, "", "", False, np.nan, "")

    def _parse(self, rows) -> Iterator[tuple[tuple, np.ndarray]]:
        """(record, dosage row) of ``(index, line number, line)`` rows; problems raised at the end."""
        problems = Problems()
        n = len(self.samples)
        for index, lineno, line in rows:
            fields = [f.strip() for f in line.split("\t")]
            if len(fields) != n + 1:
                problems.add(self.path, f"has {len(fields)} fields but the header has {n + 1}",
                             "the file may be truncated: copy it again", line=lineno)
                continue
            row = np.full(n, np.nan, dtype=np.float32)
            for j, value in enumerate(fields[1:]):
                if value in ("", "NA", "."):
                    continue
                try:
                    row[j] = float(value)
                except ValueError:
                    problems.add(self.path, f"dosage {value!r} is not a number", "give a dosage 0-2 or NA",
                                 line=lineno, item=fields[0], column=self.samples[j])
                    continue
                if not 0 <= row[j] <= 2:
                    problems.add(self.path, f"dosage {row[j]:g} is outside 0-2",
                                 "dosages count alternate alleles: 0, 1 or 2 (decimals for imputed)",
                                 line=lineno, item=fields[0], column=self.samples[j])
            if len(problems.items) > MAX_REPORTED:
                break
            if not problems:
                yield (index, fields[0], "", 0, "", "", False, np.nan, ""), row
        problems.raise_if_any()

    def _chunk(self, parsed: list) -> Chunk:
        variants = variant_frame([r[0] for r in parsed])
        dosages = np.vstack([r[1] for r in parsed]) if parsed else np.zeros((0, len(self.samples)), np.float32)
        check_dosages(self.path, variants, dosages, self.samples)
        return variants, dosages

    def _read_indices(self, indices: np.ndarray) -> Chunk:
        wanted = set(indices.tolist())
        stop = int(indices.max()) + 1 if indices.size else 0

        def rows():
            for index, lineno, line in self._rows(int(indices.min()) if indices.size else 0):
                if index >= stop:
                    return
                if index in wanted:
                    yield index, lineno, line

        return self._chunk(list(self._parse(rows())))

    def iter_range(self, first: int, stop: int, size: int = 2_000) -> Iterator[Chunk]:
        """Records ``first:stop`` in one streaming pass, ``size`` at a time."""
        def rows():
            for index, lineno, line in self._rows(int(first)):
                if index >= int(stop):
                    return
                yield index, lineno, line

        yield from self._batches(self._parse(rows()), size)

    def blocks(self, size: int = 10_000) -> Iterator[Chunk]:
        """The whole table in one streaming pass, ``size`` variants at a time."""
        yield from self._batches(self._parse(self._rows()), size)

    def _batches(self, items, size: int) -> Iterator[Chunk]:
        """Parsed rows as chunks of ``size`` variants (the last one shorter)."""
        batch = []
        for item in items:
            batch.append(item)
            if len(batch) == size:
                yield self._chunk(batch)
                batch = []
        if batch:
            yield self._chunk(batch)


# ---------------------------------------------------------------------- opening


def detect_format(path) -> str:
    """The genotype format of ``path``: by suffix, then by the file's first bytes.

    A PLINK fileset may be named by its ``.bed``, ``.bim`` or ``.fam`` file
    or by the common prefix.
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".bcf"):
        return "bcf"
    if re.search(r"\.vcf(\.b?gz)?$", name):
        return "vcf"
    if name.endswith((".bed", ".bim", ".fam")) or (not p.exists() and p.with_name(p.name + ".bed").exists()):
        return "plink"
    if name.endswith(".bgen"):
        return "bgen"
    if not p.is_file():
        raise missing_file(path, "genotype file", "check inputs.genotypes in the config")
    with open(p, "rb") as fh:
        head = fh.read(64)
    if head[:3] == b"\x6c\x1b\x01":
        return "plink"
    if head[16:20] == b"bgen" or head[:4] == b"bgen":
        return "bgen"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(p, "rb") as fh:
                head = fh.read(64)
        except (OSError, EOFError):
            head = b""
    if head.startswith(b"BCF"):
        return "bcf"
    if head.startswith(b"##fileformat=VCF"):
        return "vcf"
    return "dosage"


def companion_files(path) -> list[str]:
    """The files a genotype file is read with, beside it: PLINK's ``.bed``/``.bim``/``.fam`` (named by any
    of them or the prefix), BGEN's ``.sample``, a VCF/BCF's tabix/CSI index (when there).

    For Snakemake rules to declare as inputs (cheap: no file is opened).
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".bed", ".bim", ".fam")) or (not p.exists() and p.with_name(p.name + ".bed").exists()):
        prefix = p.with_suffix("") if name.endswith((".bed", ".bim", ".fam")) else p
        return [str(prefix.with_name(prefix.name + ext)) for ext in (".bed", ".bim", ".fam")]
    if name.endswith(".bgen"):
        candidates = [p.with_suffix(".sample"), p.with_name(p.name + ".sample")]
    else:
        candidates = [p.with_name(p.name + ".csi"), p.with_name(p.name + ".tbi")]
    return [str(c) for c in candidates if c.is_file()][:1]


def open_genotypes(path, format: str = "auto", **options) -> GenotypeSource:
    """Open a genotype file for streaming reads.

    Parameters
    ----------
    path : str or path-like
        VCF/BCF (plain or bgzipped; regions are read through a tabix/CSI
        index when one sits beside it, else by a streaming pass), a PLINK 1
        fileset (``.bed``, ``.bim``, ``.fam`` or their prefix), a BGEN
        file (its ``.sample`` file beside it), or a dosage TSV.
    format : {"auto", "vcf", "bcf", "plink", "bgen", "dosage"}
        ``auto`` decides by suffix, then by content (:func:`detect_format`).
    **options
        Passed to the format's reader: ``threads`` (VCF/BCF decompression
        threads), ``sample_file`` and ``metafile`` (BGEN).

    Returns
    -------
    GenotypeSource

    Raises
    ------
    InputError
        For a missing or unreadable file, bad sample ids, or a format this
        reader does not know.
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt in ("vcf", "bcf"):
        from .vcf import VcfSource
        return VcfSource(path, **options)
    if fmt == "plink":
        from .plink import PlinkSource
        return PlinkSource(path, **options)
    if fmt == "bgen":
        from .bgen import BgenSource
        return BgenSource(path, **options)
    if fmt == "dosage":
        return DosageTableSource(path, **options)
    raise InputError([Problem(str(path), f"genotype format {format!r} is not known",
                              f"use one of {', '.join(FORMATS)} or auto")])


__all__ = ["COUNT_COLUMNS", "Chunk", "DosageTableSource", "companion_files", "FORMATS", "GenotypeSource", "ID_PATTERN",
           "QUALITY_FIELDS", "VARIANT_COLUMNS", "VARIANT_ID_PATTERN", "check_dosages", "check_samples",
           "detect_format", "open_genotypes"]
