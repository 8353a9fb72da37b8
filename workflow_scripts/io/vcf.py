"""VCF 4.x and BCF through htslib (cyvcf2): plain, bgzipped, with or without a tabix/CSI index.

Dosage is ``DS`` where the record has it, else the count of non-reference
alleles in ``GT`` (NaN when any allele of the call is missing; a haploid call
counts its one allele).  Region reads use the index (``<file>.tbi`` or
``<file>.csi``) when there is one, else a streaming pass that stops after the
region's chromosome.  The variant table is read with no sample columns
decoded (htslib then skips the FORMAT fields).
"""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Iterator
from pathlib import Path

import cyvcf2
import numpy as np

from ..errors import InputError, Problem, Problems
from .genotype_source import (MAX_REPORTED, QUALITY_FIELDS, Chunk, GenotypeSource, variant_frame, check_dosages,
                              check_samples, missing_file)


def _index_file(path: Path) -> Path | None:
    for suffix in (".csi", ".tbi"):
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _is_compressed(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


class VcfSource(GenotypeSource):
    """A VCF or BCF file; see :mod:`workflow_scripts.io.vcf`.

    Parameters
    ----------
    path : str or path-like
    threads : int
        htslib decompression threads (bgzipped VCF and BCF).
    index : str or path-like, optional
        A tabix/CSI index kept elsewhere (e.g. one :func:`build_index` wrote
        into the output directory); default: ``<file>.csi`` or ``<file>.tbi``
        beside the file, when there.
    """

    def __init__(self, path, threads: int = 1, index=None):
        super().__init__(path)
        p = Path(path)
        if not p.is_file():
            raise missing_file(path, "genotype file", "check inputs.genotypes in the config")
        self.threads = int(threads)
        self._vcf = self._open()
        self.samples = list(self._vcf.samples)
        check_samples(self.path, self.samples)
        self.format = "bcf" if _is_bcf(p) else "vcf"
        header = {(h.type, h.info().get("ID")): h.info() for h in self._vcf.header_iter()
                  if h.type in ("FORMAT", "INFO")}
        self.has_ds = ("FORMAT", "DS") in header
        self.has_gt = ("FORMAT", "GT") in header
        self.dosage_field = "DS" if self.has_ds else "GT"
        self.quality_field = next((f for f in QUALITY_FIELDS if ("INFO", f) in header), "")
        self.index_file = Path(index) if index is not None else _index_file(p) if _is_compressed(p) else None
        if self.index_file is not None and not self.index_file.is_file():
            raise missing_file(self.index_file, "VCF index", "give an existing .tbi/.csi or none")

    @property
    def indexed(self) -> bool:
        return self.index_file is not None

    def _open(self, sites_only: bool = False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cyvcf2.VCF(self.path, gts012=True, lazy=True, threads=self.threads,
                                  samples=[] if sites_only else None)
        except Exception as err:  # noqa: BLE001 - htslib reports any failure as a bare exception
            _raise_header_problems(self.path)
            raise InputError([Problem(self.path, f"cannot be read as VCF/BCF ({err})",
                                      "give a VCF 4.x or BCF file (plain or bgzipped); check that it is "
                                      "complete (bcftools view -h)")]) from err

    def close(self) -> None:
        if self._vcf is not None:
            self._vcf.close()
            self._vcf = None

    # ------------------------------------------------------------------ records

    def _walk(self, vcf, region: str | None = None) -> Iterator:
        """Records of a handle (or of a region query), htslib errors as InputError."""
        number = 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no intervals found": an empty region
                for rec in (vcf(region) if region else vcf):
                    number += 1
                    yield rec
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - htslib parse errors arrive as plain exceptions
            raise InputError([Problem(self.path, f"cannot be read after record {number} ({err})",
                                      "the file looks truncated or malformed: check it with bcftools view")]) \
                from err

    def _site(self, index: int, rec) -> tuple:
        chrom, pos, ref = rec.CHROM, int(rec.POS), rec.REF
        alts = rec.ALT
        alt = ",".join(alts) if alts else "."
        vid = rec.ID if rec.ID else f"{chrom}_{pos}_{ref}_{alt}"
        quality = np.nan
        if self.quality_field:
            value = rec.INFO.get(self.quality_field)
            if isinstance(value, tuple):
                value = value[0] if value else None
            quality = float(value) if value is not None else np.nan
        return (index, vid, chrom, pos, ref, alt, len(alts) > 1, quality, self.quality_field)

    def _records(self, first: int = 0) -> Iterator[tuple]:
        vcf = self._open(sites_only=True)
        try:
            for index, rec in enumerate(self._walk(vcf)):
                if index >= first:
                    yield self._site(index, rec)
        finally:
            vcf.close()

    def _dosage(self, rec, site: tuple, problems: Problems) -> np.ndarray | None:
        ds = rec.format("DS") if self.has_ds else None
        if ds is not None:
            return ds[:, 0].astype(np.float32, copy=False)
        gt = rec.genotype if self.has_gt else None
        if gt is None:
            problems.add(self.path, "record has neither DS nor GT", "give DS or GT for every sample",
                         item=site[1])
            return None
        alleles = gt.array()[:, :-1]          # last column: phased flag; -1 missing, -2 ploidy pad
        dosage = (alleles > 0).sum(axis=1).astype(np.float32)
        dosage[(alleles == -1).any(axis=1)] = np.nan
        return dosage

    def _rows(self, records, keep) -> Iterator[tuple[tuple, np.ndarray]]:
        """(site, dosage) of the biallelic records (``(index, rec)`` pairs) passing ``keep(site)``."""
        problems = Problems()
        for index, rec in records:
            site = self._site(index, rec)
            if site[6] or not keep(site):
                continue
            dosage = self._dosage(rec, site, problems)
            if problems:
                if len(problems.items) > MAX_REPORTED:
                    break
                continue
            yield site, dosage
        problems.raise_if_any()

    def _chunk(self, rows: list) -> Chunk:
        variants = variant_frame([r[0] for r in rows])
        dosages = np.vstack([r[1] for r in rows]) if rows else np.zeros((0, len(self.samples)), np.float32)
        check_dosages(self.path, variants, dosages, self.samples, "DS" if self.has_ds else "dosage")
        return variants, dosages

    def _collect(self, records, keep) -> Chunk:
        return self._chunk(list(self._rows(records, keep)))

    # ------------------------------------------------------------------ reads

    def read(self, chrom=None, start=None, end=None) -> Chunk:
        """See :meth:`GenotypeSource.read`; through the index when the file has one.

        Records read through the index have ``index`` -1 (their record
        number is not known without a scan).
        """
        def keep(site):
            return chrom is None or (site[2] == chrom and (start is None or site[3] >= start)
                                     and (end is None or site[3] <= end))

        if chrom is not None and self.indexed:
            region = str(chrom) if start is None and end is None else \
                f"{chrom}:{max(int(start or 1), 1)}-{int(end) if end is not None else ''}".rstrip("-")
            vcf = self._open()
            if self.index_file != _index_file(Path(self.path)):     # an index kept elsewhere
                vcf.set_index(str(self.index_file))
            try:
                return self._collect(((-1, rec) for rec in self._walk(vcf, region)), keep)
            finally:
                vcf.close()
        return self._collect(self._scan(chrom), keep)

    def _scan(self, chrom=None) -> Iterator[tuple[int, object]]:
        """All records with their numbers; stops after ``chrom``'s block when given."""
        vcf = self._open()
        try:
            seen = False
            for index, rec in enumerate(self._walk(vcf)):
                if chrom is not None:
                    if rec.CHROM == chrom:
                        seen = True
                    elif seen:
                        return   # records of a chromosome are contiguous in a valid VCF
                yield index, rec
        finally:
            vcf.close()

    def _read_indices(self, indices: np.ndarray) -> Chunk:
        if not indices.size:
            return self._collect(iter(()), lambda site: True)
        wanted = set(indices.tolist())
        stop = int(indices.max()) + 1

        def records():
            for index, rec in self._scan():
                if index >= stop:
                    return
                if index in wanted:
                    yield index, rec

        return self._collect(records(), lambda site: True)

    def blocks(self, size: int = 10_000) -> Iterator[Chunk]:
        """The whole file in one streaming pass, ``size`` biallelic records at a time."""
        batch = []
        for row in self._rows(self._scan(), lambda site: True):
            batch.append(row)
            if len(batch) == size:
                yield self._chunk(batch)
                batch = []
        if batch:
            yield self._chunk(batch)


def build_index(path, out_dir) -> tuple[Path, Path]:
    """A region-readable copy of a VCF: ``(vcf, index)`` with the index (and, if needed, the VCF) in ``out_dir``.

    A BGZF-compressed VCF or a BCF is indexed in place of reading (the
    index goes to ``out_dir``; the input directory may be read-only); a plain
    or plain-gzip VCF is first recompressed to BGZF in ``out_dir``.  Costs one
    pass over the file (htslib, through pysam); then every region read seeks.
    """
    import pysam

    src = Path(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bcf = _is_bcf(src)
    if not bcf and not _is_bgzf(src):
        target = out / (src.name.removesuffix(".gz").removesuffix(".bgz") + ".gz")
        pysam.tabix_compress(str(src), str(target), force=True) if not _is_compressed(src) else \
            _recompress(src, target)
        src = target
    index = out / (src.name + (".csi" if bcf else ".tbi"))
    quiet = pysam.set_verbosity(0)
    try:
        pysam.tabix_index(str(src), preset="bcf" if bcf else "vcf", force=True, keep_original=True, csi=bcf,
                          index=str(index))
    except (OSError, ValueError) as err:
        raise InputError([Problem(str(path), f"cannot be indexed ({err})",
                                  "sort it by chromosome and position (bcftools sort)")]) from err
    finally:
        pysam.set_verbosity(quiet)
    return src, index


def _is_bgzf(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(16)
    return head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"


def _recompress(src: Path, target: Path) -> None:
    import pysam

    plain = target.with_name(target.name + ".txt")
    try:
        with gzip.open(src, "rb") as fin, open(plain, "wb") as fout:
            while block := fin.read(1 << 24):
                fout.write(block)
        pysam.tabix_compress(str(plain), str(target), force=True)
    finally:
        plain.unlink(missing_ok=True)


def _raise_header_problems(path: str) -> None:
    """Say what is wrong with the ``#CHROM`` line of a text VCF that htslib refused (e.g. duplicate samples)."""
    from .genotypes import VCF_FIXED

    try:
        with open(path, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        opener = gzip.open if compressed else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.startswith("##"):
                    continue
                fields = line.rstrip("\r\n").split("\t")
                if fields[:len(VCF_FIXED)] != VCF_FIXED:
                    raise InputError([Problem(path, "the header line does not start with the 9 fixed VCF columns",
                                              "give a VCF 4.x file with a '#CHROM POS ID REF ALT QUAL FILTER "
                                              "INFO FORMAT <samples>' header", line=lineno)])
                check_samples(path, fields[len(VCF_FIXED):])
                return
    except (OSError, EOFError):
        return


def _is_bcf(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(4)
        except (OSError, EOFError):
            return False
    return head[:3] == b"BCF"


__all__ = ["VcfSource", "build_index"]
