"""Streaming genotype readers: every format of one planted cohort reads back the same variants and dosages.

The reference is the generator's own arrays (``cohort.dosages``: DS; ``cohort.genotypes``: hard calls),
not another reader.  PLINK 1 holds hard calls only, so it is compared with the hard calls; BGEN stores
probabilities (32 bits in the generator), so its dosages equal DS to 1e-6 (hard calls exactly).
"""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.errors import InputError
from workflow_scripts.io.bgen import write_bgen
from workflow_scripts.io.genotype_source import VARIANT_COLUMNS, detect_format, open_genotypes
from workflow_scripts.io.genotypes import read_genotypes
from workflow_scripts.synthetic import generate, write
from workflow_scripts.synthetic.writers import ALL_GENOTYPE_FORMATS, write_plink

SITE = ["variant_id", "chrom", "pos", "ref", "alt"]


@pytest.fixture(scope="module")
def cohort():
    return generate(n_households=12, n_unpaired=2, n_species=15, n_variants=120, seed=11)


@pytest.fixture(scope="module")
def files(cohort, tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    out = {}
    for fmt in ALL_GENOTYPE_FORMATS:
        out[fmt] = write(cohort, root / fmt, abundance_format="tsv", genotype_format=fmt)
    out["vcf.gz+tbi"] = write(cohort, root / "tbi", abundance_format="tsv", genotype_format="vcf.gz",
                              genotype_index=True)
    return out


def truth(cohort):
    info = cohort.variant_info
    sites = info[["variant_id", "chrom", "pos", "ref", "alt"]].astype({"chrom": str}).reset_index(drop=True)
    ds = cohort.dosages.loc[info["variant_id"]].to_numpy()
    calls = cohort.genotypes.loc[info["variant_id"]].to_numpy()
    return sites, ds, calls


@pytest.mark.parametrize("fmt", [*ALL_GENOTYPE_FORMATS, "vcf.gz+tbi"])
def test_every_format_reads_the_planted_cohort(cohort, files, fmt):
    sites, ds, calls = truth(cohort)
    with open_genotypes(files[fmt]["genotypes"]) as source:
        assert source.samples == list(cohort.dosages.columns)
        table = source.variant_table()
        variants, dosages = source.read()
    assert list(table.columns) == VARIANT_COLUMNS and list(variants.columns) == VARIANT_COLUMNS
    assert dosages.dtype == np.float32 and dosages.shape == ds.shape
    assert table["variant_id"].tolist() == sites["variant_id"].tolist()
    assert variants["variant_id"].tolist() == sites["variant_id"].tolist()
    if fmt == "dosage":   # the TSV has no positions
        assert (table["chrom"] == "").all() and (table["pos"] == 0).all()
    else:
        pd.testing.assert_frame_equal(table[SITE], sites, check_dtype=False)
        pd.testing.assert_frame_equal(variants[SITE].reset_index(drop=True), sites, check_dtype=False)
    if fmt == "plink":
        np.testing.assert_array_equal(dosages, calls.astype(np.float32))
    elif fmt == "bgen":
        np.testing.assert_allclose(dosages, ds, rtol=0, atol=1e-6)
        hard = (ds % 1) == 0
        np.testing.assert_array_equal(dosages[hard], ds[hard].astype(np.float32))
    else:
        np.testing.assert_array_equal(dosages, ds.astype(np.float32))
    assert (ds % 1 != 0).any()   # imputed dosages are in the cohort, so DS is really read


def test_formats_agree_with_the_whole_file_reader(files):
    """The existing ingest reader (whole file as text) and the streaming one give the same numbers."""
    for fmt in ("vcf", "vcf.gz", "dosage"):
        old = read_genotypes(files[fmt]["genotypes"])
        with open_genotypes(files[fmt]["genotypes"]) as source:
            variants, dosages = source.read()
        assert old.variant_ids == variants["variant_id"].tolist()
        np.testing.assert_array_equal(dosages, old.dosages.astype(np.float32))


@pytest.mark.parametrize("fmt", ["vcf.gz", "vcf.gz+tbi", "bcf", "plink", "bgen"])
def test_regions_partition_each_chromosome(cohort, files, fmt):
    sites, ds, _ = truth(cohort)
    with open_genotypes(files[fmt]["genotypes"]) as source:
        counts = source.count_by_chromosome()
        assert counts["n_variants"].sum() == len(sites)
        assert counts["chrom"].tolist() == list(dict.fromkeys(sites["chrom"]))
        for row in counts.itertuples():
            middle = int(sites.loc[sites["chrom"] == row.chrom, "pos"].median())
            low = source.read(row.chrom, None, middle)
            high = source.read(row.chrom, middle + 1, None)
            both = pd.concat([low[0], high[0]])["variant_id"].tolist()
            assert both == sites.loc[sites["chrom"] == row.chrom, "variant_id"].tolist()
            rows = sites.index[sites["variant_id"].isin(both)]
            np.testing.assert_allclose(np.vstack([low[1], high[1]]), np.rint(ds[rows]) if fmt == "plink"
                                       else ds[rows], atol=1e-6)
        assert len(source.read("nonexistent")[0]) == 0


@pytest.mark.parametrize("fmt", ["vcf", "bcf", "plink", "bgen", "dosage"])
def test_ranges_and_blocks_cover_the_file_once(cohort, files, fmt):
    sites, _, _ = truth(cohort)
    with open_genotypes(files[fmt]["genotypes"]) as source:
        variants, dosages = source.read_range(30, 47)
        assert variants["index"].tolist() == list(range(30, 47))
        assert variants["variant_id"].tolist() == sites["variant_id"][30:47].tolist()
        whole = source.read()[1]
        np.testing.assert_array_equal(dosages, whole[30:47])
        blocks = list(source.blocks(50))
        assert [len(b[0]) for b in blocks] == [50, 50, 20]
        np.testing.assert_array_equal(np.vstack([b[1] for b in blocks]), whole)
        assert len(source.read_range(500, 600)[0]) == 0


def test_region_reads_with_and_without_index_agree(files):
    with open_genotypes(files["vcf.gz+tbi"]["genotypes"]) as indexed, \
            open_genotypes(files["vcf.gz"]["genotypes"]) as plain:
        assert indexed.indexed and not plain.indexed
        for region in [("6", 30_000_000, 33_000_000), ("1", None, None), ("22", 1, 10)]:
            a, b = indexed.read(*region), plain.read(*region)
            assert a[0]["variant_id"].tolist() == b[0]["variant_id"].tolist()
            np.testing.assert_array_equal(a[1], b[1])
            assert (a[0]["index"] == -1).all() and (b[0]["index"] >= 0).all()


def test_detect_format(files, tmp_path):
    assert detect_format(files["bcf"]["genotypes"]) == "bcf"
    assert detect_format(files["plink"]["genotypes_bim"]) == "plink"
    assert detect_format(files["bgen"]["genotypes"]) == "bgen"
    # by content when the suffix says nothing
    for fmt, expected in (("vcf.gz", "vcf"), ("bcf", "bcf"), ("plink", "plink"), ("bgen", "bgen")):
        anonymous = tmp_path / f"{fmt}.data"
        shutil.copy(files[fmt]["genotypes"], anonymous)
        assert detect_format(anonymous) == expected
    prefix = files["plink"]["genotypes"].with_suffix("")
    assert detect_format(prefix) == "plink"
    with open_genotypes(prefix) as source:
        assert source.format == "plink"


def test_writers_are_deterministic(cohort, tmp_path):
    for fmt in ("bcf", "plink", "bgen"):
        a = write(cohort, tmp_path / f"{fmt}a", abundance_format="tsv", genotype_format=fmt)
        b = write(cohort, tmp_path / f"{fmt}b", abundance_format="tsv", genotype_format=fmt)
        for name in a:
            if name.startswith("genotypes"):
                assert a[name].read_bytes() == b[name].read_bytes(), (fmt, name)


# ----------------------------------------------------------------------------- PLINK: what A1 means


def test_plink_dosage_counts_a1_by_the_bed_specification(tmp_path):
    """Decode the .bed bytes by hand (00 = hom A1, 01 = missing, 10 = het, 11 = hom A2)."""
    rng = np.random.default_rng(3)
    calls = rng.integers(0, 3, size=(7, 9)).astype(float)
    calls[2, 4] = np.nan
    variants = pd.DataFrame({"variant_id": [f"v{i}" for i in range(7)], "chrom": "1",
                             "pos": np.arange(7) * 100 + 1, "ref": "A", "alt": "G"})
    path = write_plink(tmp_path / "x.bed", variants, calls, [f"s{j}" for j in range(9)])
    raw = np.frombuffer(path.read_bytes()[3:], dtype=np.uint8).reshape(7, -1)
    codes = np.stack([(raw >> (2 * k)) & 3 for k in range(4)], axis=2).reshape(7, -1)[:, :9]
    a1_count = np.select([codes == 0, codes == 2, codes == 3], [2.0, 1.0, 0.0], np.nan)
    np.testing.assert_array_equal(a1_count, calls)
    bim = path.with_suffix(".bim").read_text().split()
    assert bim[4:6] == ["G", "A"]     # A1 = alt, A2 = ref
    with open_genotypes(path) as source:
        variants_read, dosages = source.read()
    np.testing.assert_array_equal(dosages, a1_count.astype(np.float32))
    assert variants_read["alt"].tolist() == ["G"] * 7 and variants_read["ref"].tolist() == ["A"] * 7


# ----------------------------------------------------------------------------- VCF details


VCF = """##fileformat=VCFv4.2
##contig=<ID=1,length=1000>
##contig=<ID=2,length=1000>
##INFO=<ID=R2,Number=1,Type=Float,Description="imputation r2">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DS,Number=1,Type=Float,Description="Dosage">
#CHROM	POS	ID	REF	ALT	QUAL	FILTER	INFO	FORMAT	S1	S2	S3	S4
1	10	rs1	A	G	.	PASS	R2=0.9	GT:DS	0/0:0.1	0/1:.	1/1:1.9	./.:.
1	20	rs2	A	G,T	.	PASS	R2=0.5	GT	0/0	0/2	1/1	./.
1	30	.	C	T	.	PASS	.	GT	0|0	0|1	1	./1
2	5	rs4	A	G	.	PASS	R2=0.3	GT:DS	0/0	0/1:1	1/1:2	0/0:0
"""


def test_vcf_missing_haploid_multiallelic_and_quality(tmp_path):
    path = tmp_path / "x.vcf"
    path.write_text(VCF)
    with open_genotypes(path) as source:
        table = source.variant_table()
        variants, dosages = source.read()
        assert source.quality_field == "R2" and source.dosage_field == "DS"
    assert table["variant_id"].tolist() == ["rs1", "rs2", "1_30_C_T", "rs4"]
    assert table["multiallelic"].tolist() == [False, True, False, False]
    np.testing.assert_allclose(table["quality"], [0.9, 0.5, np.nan, 0.3], rtol=1e-6)
    assert variants["variant_id"].tolist() == ["rs1", "1_30_C_T", "rs4"]      # multi-allelic not read
    expected = np.array([[0.1, np.nan, 1.9, np.nan],       # DS, '.' is missing
                         [0, 1, 1, np.nan],                # GT: haploid '1' counts one allele; './1' missing
                         [np.nan, 1, 2, 0]], dtype=np.float32)  # DS absent for S1: missing
    np.testing.assert_array_equal(dosages, expected)
    old = read_genotypes(path)     # the whole-file reader agrees, call by call
    np.testing.assert_array_equal(dosages, old.dosages.astype(np.float32))
    counts = open_genotypes(path).count_by_chromosome()
    assert counts[["chrom", "n_variants", "n_multiallelic"]].values.tolist() == [["1", 2, 1], ["2", 1, 0]]


def test_vcf_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_genotypes(tmp_path / "absent.vcf.gz")
    bad_ds = tmp_path / "ds.vcf"
    bad_ds.write_text(VCF.replace("1/1:1.9", "1/1:2.7"))
    with pytest.raises(InputError, match=r"rs1.*'S3'.*outside 0-2"):
        open_genotypes(bad_ds).read()
    bad_ids = tmp_path / "ids.vcf"
    bad_ids.write_text(VCF.replace("\tS4\n", "\tS1\n"))
    with pytest.raises(InputError, match="duplicate blood sample id 'S1'"):
        open_genotypes(bad_ids)
    dup = tmp_path / "dup.vcf"
    dup.write_text(VCF.replace("\trs4\t", "\trs1\t"))
    with pytest.raises(InputError, match="duplicate variant id 'rs1'"):
        open_genotypes(dup).variant_table()
    truncated = tmp_path / "cut.vcf.gz"
    data = gzip.compress(VCF.encode() * 1)
    truncated.write_bytes(data[: len(data) - 30])
    with pytest.raises(InputError, match="cut.vcf.gz"):
        with open_genotypes(truncated) as source:
            source.read()


# ----------------------------------------------------------------------------- BGEN details


def test_bgen_sample_file_and_missing_calls(tmp_path):
    variants = pd.DataFrame({"variant_id": ["a", "b"], "chrom": ["1", "1"], "pos": [5, 9], "ref": ["A", "C"],
                             "alt": ["G", "T"]})
    dosages = np.array([[0.0, 0.25, 1.5, np.nan], [2.0, 1.0, np.nan, 0.75]])
    for bits, atol in ((8, 1.5 / 255), (16, 1.5 / 65535)):
        path = write_bgen(tmp_path / f"g{bits}.bgen", variants, dosages, ["s1", "s2", "s3", "s4"], bits=bits)
        with open_genotypes(path) as source:
            got = source.read()[1]
        assert np.array_equal(np.isnan(got), np.isnan(dosages))
        np.testing.assert_allclose(got, dosages, atol=atol)
    sample = path.with_suffix(".sample")
    sample.write_text("ID_1 ID_2 missing\n0 0 0\ns1 s1 0\ns2 s2 0\nsX sX 0\ns4 s4 0\n")
    with pytest.raises(InputError, match="sample 3 is 'sX', the BGEN says 's3'"):
        open_genotypes(path)
    sample.write_text("ID_1 ID_2 missing\n0 0 0\ns1 s1 0\n")
    with pytest.raises(InputError, match="lists 1 samples"):
        open_genotypes(path)
    sample.unlink()
    with open_genotypes(path) as source:       # ids embedded in the BGEN
        assert source.samples == ["s1", "s2", "s3", "s4"]
    metafile = tmp_path / "shared.metafile"
    with open_genotypes(path, metafile=metafile) as source:
        first = source.read()[1]
    assert metafile.is_file()
    with open_genotypes(path, metafile=metafile) as source:   # reused, not rebuilt
        np.testing.assert_array_equal(source.read()[1], first)


def test_plink_fileset_mismatch_is_reported(files, tmp_path):
    for ext in (".bed", ".bim", ".fam"):
        shutil.copy(files["plink"]["genotypes"].with_suffix(ext), tmp_path / f"g{ext}")
    fam = tmp_path / "g.fam"
    fam.write_text("".join(fam.read_text().splitlines(keepends=True)[:-4]))   # one byte per variant fewer
    with pytest.raises(InputError, match="do not belong together"):
        open_genotypes(tmp_path / "g.bed")
    (tmp_path / "g.bim").unlink()
    with pytest.raises(InputError, match=r"g\.bim.*does not exist"):
        open_genotypes(tmp_path / "g.bed")


def test_bgen_dosage_of_phased_haploid_and_missing_calls():
    from workflow_scripts.io.bgen import dosage_from_probabilities

    nan = np.nan
    unphased = np.array([[0.1, 0.3, 0.6], [0.2, 0.8, nan], [nan, nan, nan]])   # diploid, haploid, missing
    got = dosage_from_probabilities(unphased, False, np.array([2, 1, 2]), np.array([False, False, True]))
    np.testing.assert_allclose(got, [0.3 + 1.2, 0.8, nan], rtol=1e-6)
    phased = np.array([[0.9, 0.1, 0.4, 0.6], [0.3, 0.7, nan, nan]])             # diploid, haploid
    got = dosage_from_probabilities(phased, True, np.array([2, 1]), np.array([False, False]))
    np.testing.assert_allclose(got, [0.1 + 0.6, 0.7], rtol=1e-6)


@pytest.mark.parametrize("fmt", ["vcf", "vcf.gz", "bcf", "gzip"])
def test_build_index_into_another_directory(files, tmp_path, fmt):
    """Unindexed inputs (even plain or plain-gzip VCF) get an index in a writable directory."""
    from workflow_scripts.io.vcf import build_index

    source_file = files["vcf" if fmt == "gzip" else fmt]["genotypes"]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    if fmt == "gzip":       # gzip, not BGZF: htslib cannot index it as it is
        path = inputs / "g.vcf.gz"
        path.write_bytes(gzip.compress(source_file.read_bytes(), mtime=0))
    else:
        path = inputs / source_file.name
        shutil.copy(source_file, path)
    vcf, index = build_index(path, tmp_path / "work")
    assert sorted(p.name for p in inputs.iterdir()) == [path.name]          # the input directory untouched
    assert index.parent == tmp_path / "work"
    with open_genotypes(vcf, index=index) as indexed, open_genotypes(path) as plain:
        assert indexed.indexed
        a, b = indexed.read("6", 1, 40_000_000), plain.read("6", 1, 40_000_000)
        assert len(a[0]) > 0 and (a[0]["index"] == -1).all()
        assert a[0]["variant_id"].tolist() == b[0]["variant_id"].tolist()
        np.testing.assert_array_equal(a[1], b[1])
