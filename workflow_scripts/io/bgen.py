"""BGEN 1.2/1.3 (layout 2) through cbgen, and a small BGEN 1.2 writer.

Reading
    cbgen (the C engine behind bgen-reader, by the same authors; bgen-reader
    itself pins pandas < 3) reads the genotype probabilities; a cbgen
    *metafile* (variant metadata and file offsets, written once by a pass over
    the variant headers that skips the genotype blocks) gives the variant
    table and random access.  Dosage = expected count of the second allele,
    ``P(het) + 2 P(hom second)`` for unphased diploid calls (the sum of the
    haplotype probabilities for phased ones; haploid calls count their one
    allele); the variant table calls the first allele ``ref`` and the second
    ``alt``.  Samples with the missing flag are NaN.  Sample ids come from the
    ``.sample`` file beside the BGEN (``ID_1``, or ``ID_2`` when every ``ID_1``
    is ``0``), else from the ids the BGEN embeds; when both exist they must
    agree.  The variant id is the rsid, else the BGEN variant id, else
    ``chrom_pos_ref_alt``.

Writing
    :func:`write_bgen` writes BGEN 1.2, layout 2, zlib-compressed,
    unphased diploid biallelic probabilities with 8, 16 or 32 bits, plus the
    ``.sample`` file (for the synthetic generator and the benchmarks).  A
    dosage ``d`` becomes the probabilities ``(1 - d, d, 0)`` when ``d <= 1``
    and ``(0, 2 - d, d - 1)`` otherwise, which have that expectation; read
    back, dosages differ from the written ones by at most ``1.5 / (2^bits - 1)``
    (hard calls are exact).

References
----------
.. [1] Band G, Marchini J (2018). BGEN: a binary file format for imputed
   genotype and haplotype data. bioRxiv 308296.  Format specification:
   https://www.well.ox.ac.uk/~gav/bgen_format/spec/v1.2.html
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, Problem
from .genotype_source import Chunk, GenotypeSource, variant_frame, check_samples, missing_file

#: cbgen creates a cache directory at import; keep it out of the user's home unless they chose one.
os.environ.setdefault("BGEN_CACHE_HOME", os.path.join(tempfile.gettempdir(), "cbgen-cache"))
import cbgen  # noqa: E402


def sample_file_for(path: Path) -> Path | None:
    """``x.sample`` or ``x.bgen.sample`` beside ``x.bgen``, when one exists."""
    for candidate in (path.with_suffix(".sample"), path.with_name(path.name + ".sample")):
        if candidate.is_file():
            return candidate
    return None


def read_sample_file(path: Path) -> list[str]:
    """Sample ids of an Oxford ``.sample`` file (header, type line, one line per sample)."""
    lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) < 2 or lines[0][:2] != ["ID_1", "ID_2"] or lines[1][:2] != ["0", "0"]:
        raise InputError([Problem(str(path), "is not an Oxford .sample file (first line 'ID_1 ID_2 ...', "
                                  "second line '0 0 ...')", "write it with plink2 --export bgen-1.2 or qctool")])
    rows = lines[2:]
    bad = [i for i, r in enumerate(rows) if len(r) != len(lines[0])]
    if bad:
        raise InputError([Problem(str(path), f"has {len(rows[bad[0]])} fields, the header has {len(lines[0])}",
                                  "the file may be truncated: copy it again", line=bad[0] + 3)])
    id1 = [r[0] for r in rows]
    return [r[1] for r in rows] if all(x == "0" for x in id1) else id1


class BgenSource(GenotypeSource):
    """A BGEN file with its sample file; see :mod:`workflow_scripts.io.bgen`.

    Parameters
    ----------
    path : str or path-like
    sample_file : str or path-like, optional
        Default: ``x.sample`` beside ``x.bgen``.
    metafile : str or path-like, optional
        cbgen metafile to use, or to create when it does not exist yet (share
        one between jobs: it costs a pass over the file).  Default: created
        in a temporary directory removed by :meth:`close`.
    """

    format = "bgen"
    dosage_field = "probabilities"

    def __init__(self, path, sample_file=None, metafile=None):
        super().__init__(path)
        p = Path(path)
        if not p.is_file():
            raise missing_file(path, "genotype file", "check inputs.genotypes in the config")
        try:
            self._bgen = cbgen.bgen_file(p)
        except RuntimeError as err:
            raise InputError([Problem(self.path, f"cannot be read as BGEN ({err})",
                                      "give a BGEN 1.2/1.3 file; check that it is complete")]) from err
        self.n_records = int(self._bgen.nvariants)
        embedded = [s.decode() for s in self._bgen.read_samples()] if self._bgen.contain_samples else None
        sample_path = Path(sample_file) if sample_file else sample_file_for(p)
        if sample_path is not None and not sample_path.is_file():
            raise missing_file(sample_path, "BGEN sample file", "give the .sample file of the BGEN")
        if sample_path is not None:
            self.samples = read_sample_file(sample_path)
            where = str(sample_path)
            if len(self.samples) != self._bgen.nsamples:
                raise InputError([Problem(where, f"lists {len(self.samples)} samples, {p.name} holds "
                                          f"{self._bgen.nsamples}", "give the sample file written with "
                                          "this BGEN")])
            if embedded is not None and embedded != self.samples:
                first = next(i for i, (a, b) in enumerate(zip(embedded, self.samples)) if a != b)
                raise InputError([Problem(where, f"sample {first + 1} is {self.samples[first]!r}, the BGEN "
                                          f"says {embedded[first]!r}", "give the sample file written with "
                                          "this BGEN")])
        elif embedded is not None:
            self.samples, where = embedded, self.path
        else:
            raise InputError([Problem(self.path, "has no sample ids and no .sample file beside it",
                                      "put the .sample file next to the BGEN with the same name")])
        check_samples(where, self.samples)
        self._tmpdir = None
        if metafile is None:
            self._tmpdir = tempfile.mkdtemp(prefix="bgen-")
            metafile = Path(self._tmpdir) / (p.name + ".metafile")
        metafile = Path(metafile)
        if not metafile.is_file():
            try:
                self._bgen.create_metafile(metafile)
            except RuntimeError as err:
                raise InputError([Problem(self.path, f"its variant headers cannot be read ({err})",
                                          "the file looks truncated or corrupt: copy it again")]) from err
        self._meta = cbgen.bgen_metafile(metafile)
        if self._meta.nvariants != self.n_records:
            raise InputError([Problem(str(metafile), f"describes {self._meta.nvariants} variants, the BGEN "
                                      f"has {self.n_records}", "delete the stale metafile")])

    def close(self) -> None:
        for name in ("_meta", "_bgen"):
            handle = getattr(self, name, None)
            if handle is not None:
                handle.close()
                setattr(self, name, None)
        if getattr(self, "_tmpdir", None):
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # ------------------------------------------------------------------ records

    def _partitions(self, first: int = 0) -> Iterator[tuple[int, object]]:
        """(index of the partition's first variant, cbgen Variants) from the one holding ``first``."""
        size = int(self._meta.partition_size)
        for part in range(first // size if size else 0, int(self._meta.npartitions)):
            yield part * size, self._meta.read_partition(part).variants

    def _records_with_offsets(self, first: int = 0) -> Iterator[tuple[tuple, int]]:
        for start, v in self._partitions(first):
            rsid, vid, chrom = v.rsid.astype(str), v.id.astype(str), v.chromosome.astype(str)
            alleles, nalleles, pos, offset = v.allele_ids.astype(str), v.nalleles, v.position, v.offset
            for k in range(max(first - start, 0), v.size):
                allele = alleles[k].split(",")
                ref, alt = allele[0], ",".join(allele[1:]) or "."
                name = rsid[k] if rsid[k] not in ("", ".") else vid[k] if vid[k] not in ("", ".") else \
                    f"{chrom[k]}_{int(pos[k])}_{ref}_{alt}"
                yield ((start + k, name, chrom[k], int(pos[k]), ref, alt, int(nalleles[k]) > 2, np.nan, ""),
                       int(offset[k]))

    def _records(self, first: int = 0) -> Iterator[tuple]:
        for rec, _ in self._records_with_offsets(first):
            yield rec

    # ------------------------------------------------------------------ dosages

    def _dosage(self, offset: int, vid: str) -> np.ndarray:
        try:
            gt = self._bgen.read_genotype(offset, precision=64)
        except RuntimeError as err:
            raise InputError([Problem(self.path, f"genotypes cannot be read ({err})",
                                      "the file looks truncated or corrupt: copy it again", item=vid)]) from err
        return dosage_from_probabilities(gt.probability, gt.phased, gt.ploidy, gt.missing)

    def _read_indices(self, indices: np.ndarray) -> Chunk:
        indices = np.asarray(indices, dtype=np.int64)
        indices = indices[indices < self.n_records]
        if not indices.size:
            return variant_frame([]), np.zeros((0, len(self.samples)), dtype=np.float32)
        first, stop = int(indices.min()), int(indices.max()) + 1
        wanted = set(indices.tolist())
        picked = []
        for rec, offset in self._records_with_offsets(first):
            if rec[0] >= stop:
                break
            if rec[0] in wanted and not rec[6]:
                picked.append((rec, offset))
        return self._chunk(picked)

    def _chunk(self, picked) -> Chunk:
        variants = variant_frame([rec for rec, _ in picked])
        dosages = np.empty((len(picked), len(self.samples)), dtype=np.float32)
        for i, (rec, offset) in enumerate(picked):
            dosages[i] = self._dosage(offset, rec[1])
        return variants, dosages

    def read(self, chrom=None, start=None, end=None) -> Chunk:
        picked = [(rec, offset) for rec, offset in self._records_with_offsets()
                  if not rec[6] and (chrom is None or (rec[2] == chrom and (start is None or rec[3] >= start)
                                                       and (end is None or rec[3] <= end)))]
        return self._chunk(picked)

    def blocks(self, size: int = 10_000) -> Iterator[Chunk]:
        batch = []
        for rec, offset in self._records_with_offsets():
            if rec[6]:
                continue
            batch.append((rec, offset))
            if len(batch) == size:
                yield self._chunk(batch)
                batch = []
        if batch:
            yield self._chunk(batch)


def dosage_from_probabilities(prob: np.ndarray, phased: bool, ploidy: np.ndarray,
                              missing: np.ndarray) -> np.ndarray:
    """Expected count of the second allele of a biallelic variant, per sample (float32, NaN missing).

    ``prob`` is cbgen's (samples x columns) array: for unphased calls column
    ``k`` is the probability of ``k`` copies of the second allele (columns past
    a sample's ploidy are padding); for phased calls columns ``2h`` and
    ``2h + 1`` are haplotype ``h``'s probabilities of the first and second
    allele.
    """
    if not phased and prob.shape[1] == 3 and (ploidy == 2).all():
        # the usual case, unphased diploid: P(het) + 2 P(hom second); missing samples are NaN already
        dosage = (prob[:, 1] + 2 * prob[:, 2]).astype(np.float32)
    else:
        cols = np.arange(prob.shape[1])
        ploidy = np.asarray(ploidy, dtype=np.int64)
        if phased:
            weight = ((cols % 2 == 1)[None, :] & (cols // 2 < ploidy[:, None])).astype(float)
        else:
            weight = np.where(cols[None, :] <= ploidy[:, None], cols[None, :], 0).astype(float)
        dosage = (np.nan_to_num(prob, nan=0.0) * weight).sum(axis=1).astype(np.float32)
    dosage[np.asarray(missing, dtype=bool)] = np.nan
    return dosage


# ---------------------------------------------------------------------- writer


def _probabilities(dosages: np.ndarray, bits: int) -> np.ndarray:
    """(variants, samples, 2) stored integers: P(hom first) and P(het), scaled to ``2^bits - 1``.

    Rounded as the specification asks: floor, then the remainder to the
    largest fractional parts, so the three probabilities sum to ``2^bits - 1``.
    """
    d = np.clip(np.nan_to_num(dosages, nan=0.0), 0.0, 2.0)
    p = np.stack([np.where(d <= 1, 1 - d, 0.0), np.where(d <= 1, d, 2 - d), np.where(d <= 1, 0.0, d - 1)],
                 axis=-1)
    scale = float(2 ** bits - 1)
    x = p * scale
    floor = np.floor(x)
    remainder = (scale - floor.sum(axis=-1)).round().astype(np.int64)
    rank = np.argsort(np.argsort(-(x - floor), axis=-1, kind="stable"), axis=-1, kind="stable")
    stored = floor + (rank < remainder[..., None])
    stored[np.isnan(dosages)] = 0
    return stored[..., :2]


def write_bgen(path, variants: pd.DataFrame, dosages: np.ndarray, samples, bits: int = 16,
               sample_file: bool = True, level: int = 6) -> Path:
    """Write BGEN 1.2 (layout 2, zlib) of biallelic unphased diploid dosages, and its ``.sample`` file.

    Parameters
    ----------
    path : str or path-like
        The ``.bgen`` to write; the sample file is ``path`` with suffix ``.sample``.
    variants : DataFrame
        ``variant_id`` (written as the rsid; the BGEN variant id is
        ``chrom:pos:ref:alt``), ``chrom``, ``pos``, ``ref``, ``alt``.
    dosages : array (variants x samples)
        Expected count of ``alt`` (0-2), NaN = missing.
    samples : sequence of str
        Also embedded in the BGEN.
    bits : {8, 16, 32}
        Bits per stored probability.
    level : int
        zlib compression level.

    Returns
    -------
    pathlib.Path
        ``path``.  The bytes depend only on the arguments.
    """
    if bits not in (8, 16, 32):
        raise ValueError(f"bits must be 8, 16 or 32, not {bits}")
    out = Path(path)
    dosages = np.asarray(dosages, dtype=float)
    samples = [str(s) for s in samples]
    n, m = len(samples), len(variants)
    if dosages.shape != (m, n):
        raise ValueError(f"dosages have shape {dosages.shape}, expected {(m, n)}")
    ids = b"".join(struct.pack("<H", len(s.encode())) + s.encode() for s in samples)
    sample_block = struct.pack("<II", 8 + len(ids), n) + ids
    flags = 1 | (2 << 2) | (1 << 31)           # zlib, layout 2, sample ids stored
    header = struct.pack("<III", 20, m, n) + b"bgen" + struct.pack("<I", flags)
    dtype = {8: "<u1", 16: "<u2", 32: "<u4"}[bits]
    block_head = struct.pack("<IHBB", n, 2, 2, 2)

    def text(value) -> bytes:
        return str(value).encode()

    columns = {c: variants[c].astype(str).tolist() for c in ("variant_id", "chrom", "ref", "alt")}
    positions = variants["pos"].astype(np.int64).tolist()
    with open(out, "wb") as fh:
        fh.write(struct.pack("<I", len(header) + len(sample_block)) + header + sample_block)
        step = max(1, 2_000_000 // max(n, 1))
        for lo in range(0, m, step):
            part = dosages[lo:lo + step]
            stored = _probabilities(part, bits).astype(dtype)
            missing = np.isnan(part)
            for i in range(part.shape[0]):
                j = lo + i
                chrom, pos, ref, alt = (text(columns["chrom"][j]), positions[j], text(columns["ref"][j]),
                                        text(columns["alt"][j]))
                rsid = text(columns["variant_id"][j])
                varid = b":".join([chrom, text(pos), ref, alt])
                ploidy = np.where(missing[i], 0x82, 0x02).astype(np.uint8).tobytes()
                raw = block_head + ploidy + struct.pack("<BB", 0, bits) + stored[i].tobytes()
                packed = zlib.compress(raw, level)
                fh.write(struct.pack("<H", len(varid)) + varid + struct.pack("<H", len(rsid)) + rsid
                         + struct.pack("<H", len(chrom)) + chrom + struct.pack("<IH", pos, 2)
                         + struct.pack("<I", len(ref)) + ref + struct.pack("<I", len(alt)) + alt
                         + struct.pack("<II", len(packed) + 4, len(raw)) + packed)
    if sample_file:
        lines = ["ID_1 ID_2 missing", "0 0 0", *(f"{s} {s} 0" for s in samples)]
        out.with_suffix(".sample").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


__all__ = ["BgenSource", "dosage_from_probabilities", "read_sample_file", "sample_file_for", "write_bgen"]
