"""PLINK 1 binary filesets (``.bed`` + ``.bim`` + ``.fam``) through bed-reader.

Dosage = number of copies of the ``.bim`` A1 allele (column 5), as PLINK
counts it (bed-reader's ``count_A1=True``); the variant table calls A1 ``alt``
and A2 ``ref`` (``plink2 --make-bed`` writes ALT as A1).  Sample ids are the
``.fam`` individual ids (column 2).  The ``.bim`` is streamed line by line and
bed-reader is given the counts up front, so it never loads the whole variant
metadata: a read costs ``O(variants read x samples)`` memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from bed_reader import open_bed

from ..errors import InputError, Problem
from .genotype_source import Chunk, GenotypeSource, variant_frame, check_samples, missing_file

BED_MAGIC = b"\x6c\x1b\x01"


def fileset(path) -> tuple[Path, Path, Path]:
    """The ``.bed``, ``.bim`` and ``.fam`` of a fileset named by any of them or by its prefix."""
    p = Path(path)
    prefix = p.with_suffix("") if p.suffix.lower() in (".bed", ".bim", ".fam") else p
    files = tuple(prefix.with_name(prefix.name + ext) for ext in (".bed", ".bim", ".fam"))
    for f in files:
        if not f.is_file():
            raise missing_file(f, "PLINK file", "a PLINK 1 fileset needs the .bed, .bim and .fam side by side "
                               "with the same prefix")
    return files  # type: ignore[return-value]


def skip_lines(fh, n: int) -> int:
    """Move a binary file handle past its first ``n`` lines (counting newlines in 1 MB blocks); returns ``n``
    (or the number of lines there were)."""
    seen = position = 0
    while seen < n:
        block = fh.read(1 << 20)
        if not block:
            return seen
        count = block.count(b"\n")
        if seen + count >= n:
            at = -1
            for _ in range(n - seen):
                at = block.index(b"\n", at + 1)
            fh.seek(position + at + 1)
            return n
        seen += count
        position += len(block)
    return seen


class PlinkSource(GenotypeSource):
    """A PLINK 1 fileset; see :mod:`workflow_scripts.io.plink`.

    Parameters
    ----------
    path : str or path-like
        The ``.bed``, ``.bim`` or ``.fam`` file, or the fileset's prefix.
    threads : int
        bed-reader threads.
    """

    format = "plink"
    dosage_field = "A1 count"

    def __init__(self, path, threads: int = 1):
        self.bed_path, self.bim_path, self.fam_path = fileset(path)
        super().__init__(self.bed_path)
        self.samples = self._read_fam()
        check_samples(str(self.fam_path), self.samples)
        n = len(self.samples)
        size = self.bed_path.stat().st_size
        with open(self.bed_path, "rb") as fh:
            magic = fh.read(3)
        if magic != BED_MAGIC:
            raise InputError([Problem(self.path, "is not a SNP-major PLINK 1 .bed (wrong first bytes)",
                                      "write it with plink --make-bed or plink2 --make-bed")])
        per_variant = -(-n // 4)
        self.n_records, rest = divmod(size - 3, per_variant)
        n_bim = self._count_bim()
        if rest or self.n_records != n_bim:
            raise InputError([Problem(self.path, f"holds {(size - 3) / per_variant:g} variants for the "
                                      f"{n} samples of {self.fam_path.name}, but {self.bim_path.name} lists "
                                      f"{n_bim}", "the three files do not belong together or one is "
                                      "truncated: write the fileset again")])
        self._bed = open_bed(self.bed_path, iid_count=n, sid_count=self.n_records, count_A1=True,
                             num_threads=int(threads), properties={"iid": self.samples},
                             fam_location=self.fam_path, bim_location=self.bim_path)

    def close(self) -> None:
        if getattr(self, "_bed", None) is not None:
            self._bed.__exit__(None, None, None)
            self._bed = None

    def _read_fam(self) -> list[str]:
        samples = []
        with open(self.fam_path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 6:
                    raise InputError([Problem(str(self.fam_path), f"has {len(fields)} fields, a .fam line "
                                              "has 6 (FID IID father mother sex phenotype)",
                                              "write the fileset with plink --make-bed", line=lineno)])
                samples.append(fields[1])
        return samples

    def _count_bim(self) -> int:
        """Records of the ``.bim``; blank lines are allowed only at its end (a record's number is its line)."""
        records = last = 0
        with open(self.bim_path, "rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    records += 1
                    last = lineno
        if records != last:
            raise InputError([Problem(str(self.bim_path), "has blank lines between its records",
                                      "remove them (a .bim has one line per variant)")])
        return records

    def _bim(self, first: int = 0) -> Iterator[tuple[int, int, list[str]]]:
        """(record, line number, fields) from record ``first`` on; the lines before are skipped at C speed."""
        with open(self.bim_path, "rb") as fh:
            lineno = skip_lines(fh, first)
            for index, raw in enumerate(fh, start=first):
                lineno += 1
                if raw.strip():
                    yield index, lineno, raw.decode("utf-8").split()

    def _records(self, first: int = 0) -> Iterator[tuple]:
        for index, lineno, fields in self._bim(first):
            if len(fields) != 6:
                raise InputError([Problem(str(self.bim_path), f"has {len(fields)} fields, a .bim line has 6 "
                                          "(chrom id cM position A1 A2)", "write the fileset with plink "
                                          "--make-bed", line=lineno)])
            chrom, vid, _, pos, a1, a2 = fields
            try:
                position = int(pos)
            except ValueError:
                raise InputError([Problem(str(self.bim_path), f"position {pos!r} is not an integer",
                                          "fix the .bim (column 4 is the base-pair position)",
                                          line=lineno, item=vid)]) from None
            if vid == ".":
                vid = f"{chrom}_{position}_{a2}_{a1}"
            yield (index, vid, chrom, position, a2, a1, False, np.nan, "")

    def _read_indices(self, indices: np.ndarray) -> Chunk:
        indices = np.asarray(indices, dtype=np.int64)
        indices = indices[indices < self.n_records]
        if not indices.size:
            return variant_frame([]), np.zeros((0, len(self.samples)), dtype=np.float32)
        first, stop = int(indices.min()), int(indices.max()) + 1
        wanted = set(indices.tolist())
        records = [rec for rec in itertools.islice(self._records(first), stop - first) if rec[0] in wanted]
        return self._chunk(records)

    def _chunk(self, records: list[tuple]) -> Chunk:
        variants = variant_frame(records)
        index = variants["index"].to_numpy()
        # bed-reader returns samples x variants in Fortran order: its transpose is C-contiguous.
        dosages = self._bed.read(index=np.s_[:, index], dtype="float32", order="F").T
        return variants, dosages

    def blocks(self, size: int = 10_000) -> Iterator[Chunk]:
        """The whole fileset, ``size`` variants at a time, streaming the ``.bim`` once."""
        batch = []
        for rec in self._records():
            batch.append(rec)
            if len(batch) == size:
                yield self._chunk(batch)
                batch = []
        if batch:
            yield self._chunk(batch)


__all__ = ["PlinkSource", "fileset", "skip_lines"]
