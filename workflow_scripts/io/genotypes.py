"""Reading host genotypes: VCF 4.x (plain or bgzipped) or a dosage TSV.

Dosage = number of alternate alleles (0-2). From a VCF the ``DS`` field is used
when the FORMAT has it (imputed dosages), else it is counted from ``GT``.
Missing calls become NaN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, Problems
from .tables import ID_PATTERN, check_ids, open_text, read_raw, read_table

# Variant ids often carry ':' (chr1:12345:A:G); sample ids follow the strict rule.
VARIANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]+$")
VCF_FIXED = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
GT_SPLIT = re.compile(r"[/|]")
MAX_REPORTED = 50


@dataclass
class Genotypes:
    """Dosages (variants x blood samples, NaN = missing) and what the file says of each variant."""

    path: str
    dosages: np.ndarray
    variants: pd.DataFrame  # variant_id, chrom, pos, ref, alt
    sample_ids: list[str]
    source: str  # "DS", "GT" or "dosage"
    dropped: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def variant_ids(self) -> list[str]:
        return self.variants["variant_id"].tolist()


def gt_dosage(call: str) -> float | None:
    """Alternate-allele count of a biallelic GT; NaN for a missing call; None if unreadable."""
    alleles = GT_SPLIT.split(call)
    if any(a == "." for a in alleles):
        return np.nan
    if not alleles or any(a not in ("0", "1") for a in alleles) or len(alleles) > 2:
        return None
    return float(sum(a == "1" for a in alleles))


def read_vcf(path) -> Genotypes:
    """Read a VCF 4.x file (``DS`` preferred, else ``GT``) into dosages.

    Multi-allelic records are not analysed (the dosage of which allele?) and are
    returned in ``dropped`` for the ledger; split them with ``bcftools norm -m-``
    to analyse them.
    """
    text = open_text(path)
    problems = Problems()
    samples: list[str] | None = None
    records, values, sources, dropped = [], [], set(), []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line or line.startswith("##"):
            continue
        fields = line.split("\t")
        if line.startswith("#"):
            if fields[: len(VCF_FIXED)] != VCF_FIXED:
                problems.add(path, "header line does not start with the 9 fixed VCF columns",
                             "give a VCF 4.x file with a '#CHROM POS ID REF ALT QUAL FILTER INFO "
                             "FORMAT <samples>' header", line=lineno)
                problems.raise_if_any()
            samples = fields[len(VCF_FIXED):]
            continue
        if samples is None:
            problems.add(path, "data line before the #CHROM header", "check that this is a VCF file",
                         line=lineno)
            problems.raise_if_any()
        if len(fields) != len(VCF_FIXED) + len(samples):
            problems.add(path, f"has {len(fields)} fields, the header has {len(VCF_FIXED) + len(samples)}",
                         "the file may be truncated: copy it again", line=lineno)
            continue
        chrom, pos, vid, ref, alt = fields[:5]
        vid = vid if vid != "." else f"{chrom}_{pos}_{ref}_{alt}"
        if "," in alt:
            dropped.append((vid, "multiallelic", f"ALT {alt}: split with bcftools norm -m- to analyse"))
            continue
        keys = fields[8].split(":")
        calls = [c.split(":") for c in fields[9:]]
        if "DS" in keys:
            k, source = keys.index("DS"), "DS"
        elif "GT" in keys:
            k, source = keys.index("GT"), "GT"
        else:
            problems.add(path, f"FORMAT {fields[8]!r} has neither DS nor GT", "give DS or GT per sample",
                         line=lineno, item=vid)
            continue
        sources.add(source)
        row = np.full(len(samples), np.nan)
        for j, call in enumerate(calls):
            value = call[k] if k < len(call) else "."
            if source == "DS":
                if value == ".":
                    continue
                try:
                    row[j] = float(value)
                except ValueError:
                    problems.add(path, f"DS {value!r} is not a number", "DS must be a dosage 0-2 or '.'",
                                 line=lineno, item=vid, column=samples[j])
            else:
                dosage = gt_dosage(value)
                if dosage is None:
                    problems.add(path, f"unreadable GT {value!r}",
                                 "GT must be a biallelic call like 0/0, 0|1, 1/1 or ./.",
                                 line=lineno, item=vid, column=samples[j])
                else:
                    row[j] = dosage
        records.append((vid, chrom, pos, ref, alt, lineno))
        values.append(row)
        if len(problems.items) > MAX_REPORTED:
            break
    if samples is None and not problems:
        problems.add(path, "has no #CHROM header line", "give a VCF 4.x file")
    problems.raise_if_any()
    variants = pd.DataFrame(records, columns=["variant_id", "chrom", "pos", "ref", "alt", "_line"])
    dosages = np.vstack(values) if values else np.zeros((0, len(samples)))
    source = "DS" if sources == {"DS"} else "GT" if sources == {"GT"} else "DS+GT"
    return _checked(Genotypes(str(path), dosages, variants, samples, source, dropped))


def read_dosage_table(path) -> Genotypes:
    """Read a dosage TSV: ``variant_id`` then one column per blood sample, values 0-2."""
    raw = read_raw(path)
    if raw.header[0] != "variant_id":
        raise InputError([Problem(str(path), f"first column is {raw.header[0]!r}, not 'variant_id'",
                                  "name the first column variant_id", column=raw.header[0])])
    samples = raw.header[1:]
    cells = np.array([r[1:] for r in raw.rows], dtype=object).reshape(len(raw.rows), len(samples))
    missing = np.isin(cells, ["", "NA", "."])
    dosages = np.full(cells.shape, np.nan)
    problems = Problems()
    for (i, j) in zip(*np.nonzero(~missing)):
        try:
            dosages[i, j] = float(cells[i, j])
        except ValueError:
            problems.add(path, f"dosage {cells[i, j]!r} is not a number", "give a dosage 0-2 or NA",
                         line=raw.lines[i], item=raw.rows[i][0], column=samples[j])
            if len(problems.items) > MAX_REPORTED:
                break
    problems.raise_if_any()
    variants = pd.DataFrame({"variant_id": [r[0] for r in raw.rows], "chrom": None, "pos": None,
                             "ref": None, "alt": None, "_line": raw.lines})
    return _checked(Genotypes(str(path), dosages, variants, samples, "dosage"))


def _checked(geno: Genotypes) -> Genotypes:
    """Ids valid and unique, dosages within 0-2."""
    lines = geno.variants["_line"].tolist()
    problems = check_ids(geno.sample_ids, geno.path, "sample_id", what="blood sample id")
    problems += check_ids(geno.variant_ids, geno.path, "variant_id", lines=lines,
                          pattern=VARIANT_ID_PATTERN, what="variant id")
    bad = np.nonzero((geno.dosages < 0) | (geno.dosages > 2))
    for i, j in list(zip(*bad))[:MAX_REPORTED]:
        problems.append(Problem(geno.path, f"dosage {geno.dosages[i, j]:g} is outside 0-2",
                                "dosages count alternate alleles: 0, 1 or 2 (decimals for imputed)",
                                line=lines[i], item=geno.variant_ids[i], column=geno.sample_ids[j]))
    if len(bad[0]) > MAX_REPORTED:
        problems.append(Problem(geno.path, f"{len(bad[0])} dosages in all are outside 0-2",
                                "fix the genotype export"))
    if problems:
        raise InputError(problems)
    return geno


def read_genotypes(path) -> Genotypes:
    """The whole genotype file in memory, by suffix: VCF (``.vcf``, ``.vcf.gz``, ``.vcf.bgz``), BCF,
    PLINK 1 (``.bed``/``.bim``/``.fam``), BGEN (``.bgen``) or dosage TSV.

    BCF, PLINK and BGEN go through the streaming readers of
    :mod:`workflow_scripts.io.genotype_source`; for files too large to hold,
    use :func:`~workflow_scripts.io.genotype_source.open_genotypes` directly.
    """
    name = str(path).lower()
    if name.endswith((".bcf", ".bed", ".bim", ".fam", ".bgen")):
        return _read_whole(path)
    return read_vcf(path) if ".vcf" in name else read_dosage_table(path)


def _read_whole(path) -> Genotypes:
    from .genotype_source import open_genotypes

    with open_genotypes(path) as source:
        table = source.variant_table()
        variants, dosages = source.read()
        fmt, field, samples = source.format, source.dosage_field, list(source.samples)
    multi = table[table["multiallelic"]]
    dropped = [(vid, "multiallelic", f"ALT {alt}: split with bcftools norm -m- to analyse")
               for vid, alt in zip(multi["variant_id"], multi["alt"])]
    frame = variants[["variant_id", "chrom", "pos", "ref", "alt"]].copy()
    frame["pos"] = frame["pos"].astype(str)
    frame["_line"] = None
    source = field if fmt in ("vcf", "bcf") else {"plink": "PLINK", "bgen": "BGEN"}[fmt]
    return _checked(Genotypes(str(path), dosages.astype(float), frame, samples, source, dropped))


#: Variants whose dosages ingest reads to check a genotype file (values, duplicate concordance).
CHECK_VARIANTS = 2_000


@dataclass
class GenotypeScan:
    """What ingest learns of a genotype file without loading its dosages (:func:`scan_genotypes`).

    Attributes
    ----------
    path, format : str
        The file and its format (``vcf``, ``bcf``, ``plink``, ``bgen``, ``dosage``).
    dosage_field : str
        Where the dosages come from (``DS``, ``GT``, ``A1 count``, ``probabilities``, ``dosage``).
    samples : list of str
        Blood sample ids, in file order (a sample's position is its column).
    variants : DataFrame
        The biallelic records (:data:`~workflow_scripts.io.genotype_source.VARIANT_COLUMNS`
        without ``multiallelic``), in file order.
    dropped : list of (variant_id, reason, detail)
        Records that are not analysed (multi-allelic), for the ledger.
    check : (DataFrame, ndarray)
        The first :data:`CHECK_VARIANTS` biallelic records and their dosages
        (variants x samples): what ingest checks duplicate blood samples on.
    indexed : bool
        A VCF/BCF with a tabix/CSI index beside it.
    undeclared : list of str
        FORMAT fields (``GT``, ``DS``) a text VCF uses without declaring them
        in its header (it is then read through a copy that declares them).
    """

    path: str
    format: str
    dosage_field: str
    samples: list[str]
    variants: pd.DataFrame
    dropped: list[tuple[str, str, str]]
    check: tuple[pd.DataFrame, np.ndarray]
    indexed: bool = False
    undeclared: list[str] = field(default_factory=list)


def _check_sorted(path: str, table: pd.DataFrame) -> None:
    """Records grouped by chromosome and sorted by position within it (region reads need it)."""
    chrom = table["chrom"].astype(str).to_numpy()
    pos = table["pos"].to_numpy(np.int64)
    if not chrom.size:
        return
    change = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    starts = np.r_[0, change]
    seen = pd.Series(chrom[starts])
    again = seen.duplicated()
    if again.any():
        at = starts[np.flatnonzero(again.to_numpy())[0]]
        raise InputError([Problem(path, f"chromosome {chrom[at]!r} appears in two separate blocks of records",
                                  "sort the file by chromosome and position (bcftools sort, plink2 "
                                  "--sort-vars)", item=str(table["variant_id"].iloc[at]))])
    back = np.flatnonzero((pos[1:] < pos[:-1]) & (chrom[1:] == chrom[:-1]))
    if back.size:
        at = back[0] + 1
        raise InputError([Problem(path, f"position {pos[at]} on chromosome {chrom[at]!r} comes after "
                                  f"{pos[at - 1]}: the records are not sorted by position",
                                  "sort the file by chromosome and position (bcftools sort, plink2 "
                                  "--sort-vars)", item=str(table["variant_id"].iloc[at]))])


def scan_genotypes(path, check_variants: int | None = None) -> GenotypeScan:
    """Samples, variant table and the first variants' dosages of a genotype file, without loading it.

    One pass over the variant records (no dosage is decoded) gives the
    variant table, the multi-allelic records and the check that records are
    sorted; then the dosages of the first ``check_variants`` (default
    :data:`CHECK_VARIANTS`) biallelic records are read (they are what ingest compares duplicate blood samples on).  A
    dosage TSV, meant for candidate sets, is read in full, streamed, so
    every value is checked here; in the other formats each association job
    checks the dosages it reads.

    Raises
    ------
    InputError
        Missing or unreadable file, bad or duplicate sample or variant ids,
        unsorted records, bad dosages in the part read.
    """
    from .genotype_source import open_genotypes

    with open_genotypes(path) as source:
        table = source.variant_table()
        samples, fmt, dosage_field = list(source.samples), source.format, source.dosage_field
        multi = table["multiallelic"].to_numpy()
        variants = table[~multi].drop(columns="multiallelic").reset_index(drop=True)
        if fmt != "dosage":
            _check_sorted(str(path), variants)
        empty = (variants.iloc[:0], np.zeros((0, len(samples)), np.float32))
        blocks = source.blocks(check_variants or CHECK_VARIANTS)
        check = next(blocks, empty)
        if fmt == "dosage":
            for _ in blocks:        # every value of a candidate-set table is checked now
                pass
        blocks.close()
        indexed = bool(getattr(source, "indexed", False))
        undeclared = list(getattr(source, "undeclared", []))
    dropped = [(vid, "multiallelic", f"ALT {alt}: split with bcftools norm -m- to analyse")
               for vid, alt in zip(table.loc[multi, "variant_id"], table.loc[multi, "alt"])]
    return GenotypeScan(str(path), fmt, dosage_field, samples, variants, dropped, check, indexed, undeclared)


def read_variant_annotation(path) -> pd.DataFrame:
    """Variant annotation TSV: ``variant_id``, ``gene_or_locus``, ``label``."""
    frame = read_table(path)
    missing = [c for c in ("variant_id", "gene_or_locus", "label") if c not in frame.columns]
    problems = [Problem(str(path), f"missing required column {c!r}",
                        "the variant annotation needs variant_id, gene_or_locus and label",
                        column=c) for c in missing]
    if not missing:
        problems += check_ids(frame["variant_id"].tolist(), path, "variant_id",
                              lines=frame["_line"].tolist(), pattern=VARIANT_ID_PATTERN,
                              what="variant id")
    if problems:
        raise InputError(problems)
    return frame[["variant_id", "gene_or_locus", "label"]].reset_index(drop=True)


__all__ = ["CHECK_VARIANTS", "GenotypeScan", "Genotypes", "read_genotypes", "read_vcf", "read_dosage_table",
           "read_variant_annotation", "scan_genotypes", "ID_PATTERN"]
