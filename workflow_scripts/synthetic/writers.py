"""Write a synthetic :class:`~workflow_scripts.synthetic.model.Cohort` to disk, byte-for-byte reproducibly.

Every writer avoids wall-clock time and random identifiers: BIOM files carry a
fixed creation date, the gzip (BGZF) and zip containers fixed timestamps, and the
QIIME 2 artifact a UUID derived from the generator parameters.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import struct
import uuid
import zipfile
import zlib
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd

from . import taxa
from .model import Cohort

ABUNDANCE_FORMATS = ("biom", "biom-json", "tsv", "csv", "qza", "metaphlan")
GENOTYPE_FORMATS = ("vcf", "vcf.gz", "dosage")
#: Written through field libraries (pysam, bed-reader) or :func:`~workflow_scripts.io.bgen.write_bgen`.
BINARY_GENOTYPE_FORMATS = ("bcf", "plink", "bgen")
ALL_GENOTYPE_FORMATS = GENOTYPE_FORMATS + BINARY_GENOTYPE_FORMATS
ABUNDANCE_FILES = {
    "biom": "abundance.biom",
    "biom-json": "abundance.json.biom",
    "tsv": "abundance.tsv",
    "csv": "abundance.csv",
    "qza": "abundance.qza",
    "metaphlan": "abundance.metaphlan.tsv",
}
GENOTYPE_FILES = {"vcf": "genotypes.vcf", "vcf.gz": "genotypes.vcf.gz", "dosage": "genotypes.dosage.tsv",
                  "bcf": "genotypes.bcf", "plink": "genotypes.bed", "bgen": "genotypes.bgen"}
#: Bits per stored probability in the synthetic BGEN: dosages read back within 2e-10.
BGEN_BITS = 32
GENERATED_BY = "imsms-synthetic"
CREATION_DATE = datetime.datetime(2000, 1, 1)
ZIP_TIME = (2000, 1, 1, 0, 0, 0)
METAPHLAN_HEADER = "#mpa_vJan21_CHOCOPhlAnSGB_202103"
# BGZF: at most this many uncompressed bytes per block (bgzip's own limit).
BGZF_BLOCK = 0xFF00
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def write(cohort: Cohort, outdir, abundance_format: str = "biom", genotype_format: str = "vcf.gz",
          genotype_index: bool = False) -> dict[str, Path]:
    """Write every input file and the truth tables of ``cohort`` into ``outdir``.

    Parameters
    ----------
    cohort : Cohort
        From :func:`~workflow_scripts.synthetic.generate`.
    outdir : str or path-like
        Created if missing; existing files of the same names are replaced.
    abundance_format : {"biom", "biom-json", "tsv", "csv", "qza", "metaphlan"}
        BIOM 2.1 HDF5, BIOM 1.0 JSON, delimited tables, a QIIME 2
        ``FeatureTable[Frequency]`` artifact, or a MetaPhlAn merged profile (percent).
    genotype_format : {"vcf", "vcf.gz", "dosage", "bcf", "plink", "bgen"}
        VCF 4.2 (plain or BGZF-compressed) with ``GT:DS``, a dosage TSV, BCF
        with ``GT:DS`` and a CSI index, a PLINK 1 fileset of the hard calls
        (A1 = alternate allele), or BGEN 1.2 (32-bit probabilities of the DS
        dosages) with its ``.sample`` file.
    genotype_index : bool
        With ``vcf.gz``: also write the tabix index ``genotypes.vcf.gz.tbi``.

    Returns
    -------
    dict of str to pathlib.Path
        Keys ``participants``, ``stool_manifest``, ``blood_manifest``, ``abundance``,
        ``taxonomy``, ``tree``, ``genotypes``, ``variants``, ``truth_species``,
        ``truth_associations``, ``truth`` and, with edge cases, ``truth_ledger``;
        the genotype format's companion files as ``genotypes_index`` (``.tbi``/``.csi``),
        ``genotypes_bim`` and ``genotypes_fam`` (PLINK), ``genotypes_sample`` (BGEN).
    """
    if abundance_format not in ABUNDANCE_FORMATS:
        raise ValueError(f"abundance_format {abundance_format!r}: use one of {', '.join(ABUNDANCE_FORMATS)}")
    if genotype_format not in ALL_GENOTYPE_FORMATS:
        raise ValueError(f"genotype_format {genotype_format!r}: use one of {', '.join(ALL_GENOTYPE_FORMATS)}")
    if genotype_index and genotype_format != "vcf.gz":
        raise ValueError("genotype_index applies to genotype_format 'vcf.gz' (BCF always gets its CSI index)")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.tsv" for name in ("participants", "stool_manifest", "blood_manifest", "taxonomy",
                                                     "variants", "truth_species", "truth_associations")}
    comment = f"# synthetic iMSMS-style cohort (imsms-synthetic), seed {cohort.params['seed']}\n"
    _write_table(_participants_text(cohort.participants), paths["participants"],
                 comment if cohort.params["edge_cases"] else "")
    _write_table(cohort.stool_manifest, paths["stool_manifest"])
    _write_table(_fixed(cohort.blood_manifest, {"snfl": "%.2f", "gfap": "%.2f"}, na="NA"), paths["blood_manifest"])
    _write_table(cohort.taxonomy, paths["taxonomy"])
    _write_table(cohort.variants, paths["variants"])
    _write_table(_fixed(cohort.truth_species, dict.fromkeys(
        ["log_fold_change", "dmt_log_fold_change", "severity_effect", "prevalence", "mean_relative_abundance"],
        "%.6g")),
        paths["truth_species"])
    _write_table(_fixed(cohort.truth_associations, {"beta": "%.6g"}), paths["truth_associations"])
    if cohort.truth_ledger is not None:
        paths["truth_ledger"] = out / "truth_ledger.tsv"
        _write_table(cohort.truth_ledger, paths["truth_ledger"])

    paths["abundance"] = out / ABUNDANCE_FILES[abundance_format]
    _ABUNDANCE_WRITERS[abundance_format](cohort, paths["abundance"])
    paths["tree"] = out / "tree.nwk"
    paths["tree"].write_text(cohort.tree + "\n", encoding="utf-8")
    paths["genotypes"] = out / GENOTYPE_FILES[genotype_format]
    _GENOTYPE_WRITERS[genotype_format](cohort, paths["genotypes"])
    paths.update(_companions(paths["genotypes"], genotype_format, genotype_index))
    paths["truth"] = out / "truth.json"
    paths["truth"].write_text(_truth_json(cohort, abundance_format, genotype_format, paths), encoding="utf-8")
    return paths


# --------------------------------------------------------------------------- tables


def _write_table(df: pd.DataFrame, path: Path, comment: str = "") -> None:
    text = df.to_csv(sep="\t", index=False, lineterminator="\n", na_rep="")
    path.write_text(comment + text, encoding="utf-8")


def _fixed(df: pd.DataFrame, formats: dict[str, str], na: str = "") -> pd.DataFrame:
    """Copy of ``df`` with the named float columns as text in a fixed format (so
    ``2.0`` stays ``2.0`` and floats never print as ``1e-05`` surprises)."""
    out = df.copy()
    for col, fmt in formats.items():
        values = out[col].to_numpy(float)
        text = np.char.mod(fmt, np.nan_to_num(values)).astype(object)
        text[np.isnan(values)] = na
        out[col] = text
    return out


def _participants_text(df: pd.DataFrame) -> pd.DataFrame:
    return _fixed(df, {"bmi": "%.1f", "edss": "%.1f", "disease_duration": "%.1f", "age_at_onset": "%.1f"})


# --------------------------------------------------------------------------- abundance


def _biom_table(cohort: Cohort) -> biom.Table:
    lineages = cohort.taxonomy.set_index("feature_id").loc[cohort.counts.index, "taxonomy"].str.split("; ")
    metadata = [{"taxonomy": list(x)} for x in lineages]
    return biom.Table(cohort.counts.to_numpy(dtype=float), list(cohort.counts.index),
                      list(cohort.counts.columns), observation_metadata=metadata, type="OTU table")


def _biom_hdf5_bytes(cohort: Cohort) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        _biom_table(cohort).to_hdf5(h5, GENERATED_BY, creation_date=CREATION_DATE)
    return buffer.getvalue()


def _write_biom(cohort: Cohort, path: Path) -> None:
    path.write_bytes(_biom_hdf5_bytes(cohort))


def _write_biom_json(cohort: Cohort, path: Path) -> None:
    path.write_text(_biom_table(cohort).to_json(GENERATED_BY, creation_date=CREATION_DATE), encoding="utf-8")


def _write_delimited(sep: str):
    def writer(cohort: Cohort, path: Path) -> None:
        path.write_text(cohort.counts.to_csv(sep=sep, lineterminator="\n"), encoding="utf-8")
    return writer


def artifact_uuid(cohort: Cohort) -> str:
    """Version-4 UUID derived from the generator parameters (same cohort, same UUID)."""
    digest = hashlib.sha256(json.dumps(cohort.params, sort_keys=True).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _write_qza(cohort: Cohort, path: Path) -> None:
    """A QIIME 2 ``FeatureTable[Frequency]`` artifact: a zip of ``<uuid>/...``.

    Holds ``VERSION``, ``metadata.yaml``, ``checksums.md5`` and
    ``data/feature-table.biom`` (BIOM 2.1 HDF5). Provenance is left out: the
    workflow reads only the BIOM file inside.
    """
    uid = artifact_uuid(cohort)
    members = {
        "VERSION": b"QIIME 2\narchive: 5\nframework: 2024.10.0\n",
        "metadata.yaml": f"uuid: {uid}\ntype: FeatureTable[Frequency]\nformat: BIOMV210DirFmt\n".encode(),
        "data/feature-table.biom": _biom_hdf5_bytes(cohort),
    }
    members["checksums.md5"] = "".join(
        f"{hashlib.md5(data).hexdigest()}  {name}\n" for name, data in members.items()).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("VERSION", "checksums.md5", "metadata.yaml", "data/feature-table.biom"):
            info = zipfile.ZipInfo(f"{uid}/{name}", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name])


def metaphlan_profile(cohort: Cohort) -> pd.DataFrame:
    """MetaPhlAn-style merged profile: every clade at every rank, percent per sample.

    Computed from the species-level read counts with the *true* lineage (MetaPhlAn
    carries its own lineage), so each rank's rows sum to 100 in every sample with
    reads (all-zero columns stay zero). Clades absent from every sample are left out.
    """
    species = cohort.species_counts()
    totals = species.sum(axis=0).to_numpy(float)
    rel = species.to_numpy(float) * (100.0 / np.where(totals > 0, totals, 1.0))
    lineage = cohort.lineage.loc[species.index]
    prefix = lineage.iloc[:, 0].to_numpy().astype(str)
    blocks = []
    for j in range(lineage.shape[1]):  # seven ranks
        if j:
            prefix = np.char.add(np.char.add(prefix, "|"), lineage.iloc[:, j].to_numpy().astype(str))
        blocks.append(pd.DataFrame(rel, columns=species.columns).groupby(prefix, sort=True).sum())
    profile = pd.concat(blocks)
    profile.index.name = "clade_name"
    return profile[profile.to_numpy().any(1)]


def _write_metaphlan(cohort: Cohort, path: Path) -> None:
    text = metaphlan_profile(cohort).to_csv(sep="\t", lineterminator="\n", float_format="%.5f")
    path.write_text(METAPHLAN_HEADER + "\n" + text, encoding="utf-8")


_ABUNDANCE_WRITERS = {
    "biom": _write_biom,
    "biom-json": _write_biom_json,
    "tsv": _write_delimited("\t"),
    "csv": _write_delimited(","),
    "qza": _write_qza,
    "metaphlan": _write_metaphlan,
}


# --------------------------------------------------------------------------- genotypes


def _dosage_text(dosages: np.ndarray) -> np.ndarray:
    """DS values as text via a lookup table (all DS are multiples of 0.001 in [0, 2])."""
    lookup = np.array([f"{i / 1000:g}" for i in range(2001)])
    return lookup[np.rint(dosages * 1000).astype(int)]


def _rows(first: list[np.ndarray], cells: np.ndarray) -> str:
    """Tab-joined lines: the leading columns, then one cell per sample."""
    lead = first[0].astype(str)
    for col in first[1:]:
        lead = np.char.add(np.char.add(lead, "\t"), np.asarray(col).astype(str))
    return "".join(f"{a}\t{chr(9).join(b)}\n" for a, b in zip(lead, cells))


def vcf_text(cohort: Cohort) -> str:
    """VCF 4.2 text: ``GT:DS`` per sample, unphased genotypes, fixed header date."""
    info = cohort.variant_info
    calls = cohort.genotypes.to_numpy()
    gt = np.array(["0/0", "0/1", "1/1"])[calls]
    cells = np.char.add(np.char.add(gt, ":"), _dosage_text(cohort.dosages.to_numpy()))
    af = np.char.mod("AF=%.4f", info["af_hhc"].to_numpy())
    info_col = np.where(info["imputed"].to_numpy(), np.char.add(af, ";IMP"), af)
    chroms = sorted(set(info["chrom"]), key=int)
    header = [
        "##fileformat=VCFv4.2",
        "##fileDate=20000101",
        f"##source={GENERATED_BY}",
        "##reference=GRCh37",
        *(f"##contig=<ID={c},length={taxa.CHROM_LENGTHS[c]}>" for c in chroms),
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Alternate allele frequency in household controls (planted)">',
        '##INFO=<ID=IMP,Number=0,Type=Flag,Description="Imputed: DS is an expected dosage">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Alternate allele dosage">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                   *cohort.genotypes.columns]),
    ]
    n = len(info)
    lead = [info["chrom"].to_numpy(), info["pos"].to_numpy(), info["variant_id"].to_numpy(),
            info["ref"].to_numpy(), info["alt"].to_numpy(), np.full(n, "."), np.full(n, "PASS"),
            info_col, np.full(n, "GT:DS")]
    return "\n".join(header) + "\n" + _rows(lead, cells)


def bgzf_compress(data: bytes) -> bytes:
    """BGZF (blocked gzip, as ``bgzip`` writes): readable by any gzip reader and by
    htslib/tabix; MTIME is 0 in every block, so the bytes are reproducible."""
    blocks = []
    for start in range(0, len(data), BGZF_BLOCK):
        chunk = data[start:start + BGZF_BLOCK]
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        deflated = packer.compress(chunk) + packer.flush()
        # Header: gzip magic, FLG.FEXTRA, MTIME 0, XFL 0, OS 255, one 'BC' subfield = block size - 1.
        header = struct.pack("<BBBBIBBHBBHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, len(deflated) + 25)
        blocks.append(header + deflated + struct.pack("<II", zlib.crc32(chunk), len(chunk)))
    return b"".join(blocks) + BGZF_EOF


def _write_vcf(cohort: Cohort, path: Path) -> None:
    path.write_text(vcf_text(cohort), encoding="utf-8")


def _write_vcf_gz(cohort: Cohort, path: Path) -> None:
    path.write_bytes(bgzf_compress(vcf_text(cohort).encode()))


def _write_dosage(cohort: Cohort, path: Path) -> None:
    header = "\t".join(["variant_id", *cohort.dosages.columns]) + "\n"
    body = _rows([cohort.dosages.index.to_numpy()], _dosage_text(cohort.dosages.to_numpy()))
    path.write_text(header + body, encoding="utf-8")


def index_vcf(path: Path) -> Path:
    """Write the tabix index of a bgzipped VCF (``.tbi``) or the CSI index of a BCF (``.csi``)."""
    import pysam

    bcf = str(path).endswith(".bcf")
    pysam.tabix_index(str(path), preset="bcf" if bcf else "vcf", force=True, keep_original=True, csi=bcf)
    return Path(str(path) + (".csi" if bcf else ".tbi"))


def vcf_to_bcf(vcf: Path, bcf: Path) -> Path:
    """Copy a VCF (plain or bgzipped) to BCF through htslib (pysam), and index it (CSI)."""
    import pysam

    quiet = pysam.set_verbosity(0)   # htslib would say the staging VCF has no index: it needs none
    try:
        with pysam.VariantFile(str(vcf)) as src, pysam.VariantFile(str(bcf), "wb", header=src.header) as dst:
            for record in src:
                dst.write(record)
    finally:
        pysam.set_verbosity(quiet)
    index_vcf(bcf)
    return bcf


def _write_bcf(cohort: Cohort, path: Path) -> None:
    staging = path.with_name(path.name + ".staging.vcf.gz")
    try:
        _write_vcf_gz(cohort, staging)
        vcf_to_bcf(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def write_plink(path: Path, variants: pd.DataFrame, calls: np.ndarray, samples) -> Path:
    """PLINK 1 fileset of hard calls (variants x samples, 0-2 copies of ``alt``, NaN missing).

    ``alt`` is written as A1, the allele the ``.bed`` counts, and ``ref`` as A2.
    """
    from bed_reader import to_bed

    to_bed(path, np.asarray(calls, dtype=np.float32).T,
           properties={"iid": [str(s) for s in samples], "sid": variants["variant_id"].astype(str).tolist(),
                       "chromosome": variants["chrom"].astype(str).tolist(),
                       "bp_position": variants["pos"].astype(int).tolist(),
                       "allele_1": variants["alt"].astype(str).tolist(),
                       "allele_2": variants["ref"].astype(str).tolist()},
           count_A1=True, num_threads=1)
    return path


def _write_plink(cohort: Cohort, path: Path) -> None:
    info = cohort.variant_info
    write_plink(path, info, cohort.genotypes.loc[info["variant_id"]].to_numpy(), cohort.genotypes.columns)


def _write_bgen(cohort: Cohort, path: Path) -> None:
    from ..io.bgen import write_bgen

    info = cohort.variant_info
    write_bgen(path, info, cohort.dosages.loc[info["variant_id"]].to_numpy(), list(cohort.dosages.columns),
               bits=BGEN_BITS)


def _companions(path: Path, genotype_format: str, index: bool) -> dict[str, Path]:
    """The files a genotype format keeps beside the main one (written by its writer or here)."""
    if genotype_format == "vcf.gz" and index:
        return {"genotypes_index": index_vcf(path)}
    if genotype_format == "bcf":
        return {"genotypes_index": path.with_name(path.name + ".csi")}
    if genotype_format == "plink":
        return {"genotypes_bim": path.with_suffix(".bim"), "genotypes_fam": path.with_suffix(".fam")}
    if genotype_format == "bgen":
        return {"genotypes_sample": path.with_suffix(".sample")}
    return {}


_GENOTYPE_WRITERS = {"vcf": _write_vcf, "vcf.gz": _write_vcf_gz, "dosage": _write_dosage, "bcf": _write_bcf,
                     "plink": _write_plink, "bgen": _write_bgen}


# --------------------------------------------------------------------------- truth.json


def _truth_json(cohort: Cohort, abundance_format: str, genotype_format: str, paths: dict[str, Path]) -> str:
    doc = {
        "generator": "workflow_scripts.synthetic",
        "format_version": 1,
        "seed": cohort.params["seed"],
        "parameters": cohort.params,
        "formats": {"abundance": abundance_format, "genotypes": genotype_format},
        "files": {name: path.name for name, path in sorted(paths.items())} | {"truth": "truth.json"},
        "sizes": {
            "participants": len(cohort.participants),
            "stool_samples": len(cohort.stool_manifest),
            "blood_samples": len(cohort.blood_manifest),
            "features": len(cohort.counts),
            "species": len(cohort.lineage),
            "variants": len(cohort.variants),
        },
        "notes": cohort.notes,
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
