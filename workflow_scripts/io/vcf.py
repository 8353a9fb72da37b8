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
import shutil
import tempfile
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
        self._read_path = self.path
        self._tmpdir = None
        self._vcf = self._open(sites_only=True)
        self.format = "bcf" if _is_bcf(p) else "vcf"
        lines = list(self._vcf.header_iter())
        header = {(h.type, h.info().get("ID")): h.info() for h in lines if h.type in ("FORMAT", "INFO")}
        #: What a hand-made text VCF uses without declaring it in its header: the FORMAT fields GT/DS,
        #: or any contig.  cyvcf2 can crash (not raise) on a malformed record of such a file, so it is
        #: read through a BGZF copy with the declarations added (:func:`declared_copy`), made once here.
        self.undeclared = [] if self.format == "bcf" else \
            [f for f in ("GT", "DS") if ("FORMAT", f) not in header] + \
            (["contig"] if not any(h.type == "CONTIG" for h in lines) else [])
        if self.undeclared:
            self._tmpdir = tempfile.mkdtemp(prefix="vcf-")
            self._read_path = str(declared_copy(self.path, Path(self._tmpdir) / "declared.vcf.gz",
                                                self.undeclared))
        self.samples = self._open_samples()
        check_samples(self.path, self.samples)
        self.has_ds = self.has_gt = True    # per record: DS when the record has it, else GT
        self.dosage_field = "DS" if ("FORMAT", "DS") in header else "GT" if ("FORMAT", "GT") in header \
            else self._first_format()
        self.quality_field = next((f for f in QUALITY_FIELDS if ("INFO", f) in header), "")
        self.index_file = Path(index) if index is not None else \
            _index_file(p) if _is_compressed(p) and not self.undeclared else None
        if self.index_file is not None and not self.index_file.is_file():
            raise missing_file(self.index_file, "VCF index", "give an existing .tbi/.csi or none")

    @property
    def indexed(self) -> bool:
        return self.index_file is not None

    def _open_samples(self) -> list[str]:
        vcf = self._open()
        try:
            return list(vcf.samples)
        finally:
            vcf.close()

    def _first_format(self) -> str:
        """DS or GT, from the FORMAT column of the first record (read as text: the header names neither)."""
        opener = gzip.open if _is_compressed(Path(self.path)) else open
        with opener(self.path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.startswith("#"):
                    fields = line.split("\t", 9)
                    return "DS" if len(fields) > 8 and "DS" in fields[8].split(":") else "GT"
        return "GT"

    def _open(self, sites_only: bool = False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cyvcf2.VCF(self._read_path, gts012=True, lazy=True, threads=self.threads,
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
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # ------------------------------------------------------------------ records

    def _walk(self, vcf, region: str | None = None) -> Iterator:
        """Records of a handle (or of a region query), htslib errors as InputError.

        When a whole-file walk of a text VCF fails on a record, the record's
        line is read again as text to say which call is wrong (htslib only
        says that it could not parse it).
        """
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
            found = None if region or self.format == "bcf" else explain_record(self.path, number)
            raise InputError([found or Problem(self.path, f"cannot be read after record {number} ({err})",
                                               "the file looks truncated or malformed: check it with "
                                               "bcftools view")]) from err

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
            vcf = self._indexed_handle()
            try:
                return self._collect(((-1, rec) for rec in self._walk(vcf, _region(chrom, start, end))), keep)
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
        yield from self._batches(self._rows(self._scan(), lambda site: True), size)

    def _batches(self, rows, size: int) -> Iterator[Chunk]:
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == size:
                yield self._chunk(batch)
                batch = []
        if batch:
            yield self._chunk(batch)

    def _indexed_handle(self):
        vcf = self._open()
        if self.index_file != _index_file(Path(self.path)):     # an index kept elsewhere
            vcf.set_index(str(self.index_file))
        return vcf

    def iter_region(self, chrom: str, start: int | None = None, end: int | None = None,
                    size: int = 2_000) -> Iterator[Chunk]:
        """:meth:`read` of one region, ``size`` biallelic records at a time (memory of one block).

        Through the index when the file has one (records then have ``index``
        -1), else by a streaming pass that stops after the chromosome.
        """
        def keep(site):
            return site[2] == chrom and (start is None or site[3] >= start) and (end is None or site[3] <= end)

        if not self.indexed:
            yield from self._batches(self._rows(self._scan(chrom), keep), size)
            return
        vcf = self._indexed_handle()
        try:
            records = ((-1, rec) for rec in self._walk(vcf, _region(chrom, start, end)))
            yield from self._batches(self._rows(records, keep), size)
        finally:
            vcf.close()

    def read_sites(self, sites) -> Chunk:
        """The records of given variants (a variant table's rows: ``index``, ``variant_id``, ``chrom``, ``pos``).

        With an index, one small region query per site on one handle (a
        thinned set of variants over the genome costs a seek each, not a pass
        over the file); without, the record numbers are read by a scan.
        Returned in the order of ``sites``' rows that are found.
        """
        if not self.indexed:
            return super().read_sites(sites)
        vcf = self._indexed_handle()
        rows = []
        try:
            for index, vid, chrom, pos in zip(sites["index"], sites["variant_id"], sites["chrom"], sites["pos"]):
                records = ((int(index), rec) for rec in self._walk(vcf, _region(str(chrom), int(pos), int(pos))))
                rows.extend(self._rows(records, lambda site, vid=vid: site[1] == vid and site[3] == int(pos)))
        finally:
            vcf.close()
        return self._chunk(rows)


def _region(chrom, start=None, end=None) -> str:
    """An htslib region string (1-based, inclusive)."""
    if start is None and end is None:
        return str(chrom)
    return f"{chrom}:{max(int(start or 1), 1)}-{int(end) if end is not None else ''}".rstrip("-")


def explain_record(path, number: int) -> Problem | None:
    """What is wrong with data record ``number`` (0-based) of a text VCF, as the old text reader says it.

    htslib reports a record it cannot parse without naming the call; this
    reads that one line again and checks its ``GT``/``DS`` values.  None when
    the line looks fine (then the caller's generic message stands).
    """
    from .genotypes import GT_SPLIT, VCF_FIXED, gt_dosage

    try:
        opener = gzip.open if _is_compressed(Path(path)) else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            samples, seen = None, -1
            for lineno, line in enumerate(fh, start=1):
                if line.startswith("##"):
                    continue
                fields = line.rstrip("\r\n").split("\t")
                if line.startswith("#"):
                    samples = fields[len(VCF_FIXED):]
                    continue
                seen += 1
                if seen < number:
                    continue
                vid = fields[2] if len(fields) > 2 and fields[2] != "." else f"record {number + 1}"
                if samples is None or len(fields) != len(VCF_FIXED) + len(samples):
                    return Problem(str(path), f"has {len(fields)} fields, the header has "
                                   f"{len(VCF_FIXED) + len(samples or [])}", "the file may be truncated: copy "
                                   "it again", line=lineno, item=vid)
                keys = fields[8].split(":")
                for j, call in enumerate(fields[9:]):
                    values = call.split(":")
                    for key, value in zip(keys, values):
                        if key == "GT" and gt_dosage(value) is None and not all(
                                a.isdigit() or a == "." for a in GT_SPLIT.split(value)):
                            return Problem(str(path), f"unreadable GT {value!r}", "GT must be a biallelic "
                                           "call like 0/0, 0|1, 1/1 or ./.", line=lineno, item=vid,
                                           column=samples[j])
                        if key == "DS" and value != ".":
                            try:
                                float(value)
                            except ValueError:
                                return Problem(str(path), f"DS {value!r} is not a number",
                                               "DS must be a dosage 0-2 or '.'", line=lineno, item=vid,
                                               column=samples[j])
                return None
    except (OSError, EOFError):
        return None
    return None


def declared_copy(path, target, fields) -> Path:
    """A BGZF copy of a text VCF with declarations added to its header.

    ``fields``: ``GT`` and ``DS`` add their ``##FORMAT`` lines; ``contig`` adds
    a ``##contig`` line for every chromosome of the records (one more pass).
    """
    import pysam

    lines = {"GT": '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype (not declared in the file)">',
             "DS": '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Dosage (not declared in the file)">'}
    opener = gzip.open if _is_compressed(Path(path)) else open
    extra = [lines[f] for f in fields if f in lines]
    if "contig" in fields:
        contigs: dict[str, None] = {}
        with opener(path, "rb") as fin:
            for line in fin:
                if not line.startswith(b"#"):
                    contigs.setdefault(line.split(b"\t", 1)[0].decode("utf-8", "replace"), None)
        extra += [f"##contig=<ID={c}>" for c in contigs if c.strip()]
    with opener(path, "rb") as fin, pysam.BGZFile(str(target), "wb") as fout:
        for line in fin:
            if line.startswith(b"#CHROM"):
                fout.write("".join(e + "\n" for e in extra).encode())
                fout.write(line)
                break
            fout.write(line)
        while block := fin.read(1 << 24):
            fout.write(block)
    return Path(target)


def build_index(path, out_dir, declare=()) -> tuple[Path, Path]:
    """A region-readable copy of a VCF: ``(vcf, index)`` with the index (and, if needed, the VCF) in ``out_dir``.

    A BGZF-compressed VCF or a BCF is indexed in place of reading (the
    index goes to ``out_dir``; the input directory may be read-only); a plain
    or plain-gzip VCF is first recompressed to BGZF in ``out_dir``, as is a
    VCF whose header does not declare the FORMAT fields ``declare`` (they
    are declared in the copy; see :func:`declared_copy`).  Costs one
    pass over the file (htslib, through pysam); then every region read seeks.
    """
    import pysam

    src = Path(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bcf = _is_bcf(src)
    if declare:
        src = declared_copy(src, out / (src.name.removesuffix(".gz").removesuffix(".bgz") + ".gz"), declare)
    elif not bcf and not _is_bgzf(src):
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


__all__ = ["VcfSource", "build_index", "declared_copy", "explain_record"]
