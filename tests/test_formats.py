"""Every input format of the contract is read, with the values it holds."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import skbio

from workflow_scripts.io.abundance import check_values, read_abundance
from workflow_scripts.io.genotypes import read_genotypes
from workflow_scripts.io.tables import read_table
from workflow_scripts.io.taxonomy import aggregate, assign, parse_lineage, taxon_label

from conftest import write_abundance, write_genotypes


@pytest.mark.parametrize("fmt", ["tsv", "csv", "biom", "biom-json", "qza"])
def test_abundance_formats_round_trip(mini, fmt):
    mini.root.mkdir(parents=True)
    path = write_abundance(mini.counts, mini.root, fmt)
    table = read_abundance(path)
    got = pd.DataFrame(table.data, index=table.feature_ids, columns=table.sample_ids)
    pd.testing.assert_frame_equal(got, mini.counts.astype(float), check_names=False)
    data, scale = check_values(table, "counts")
    assert scale == "counts" and data.sum() == mini.counts.to_numpy().sum()


def test_biom_convert_tsv_with_hash_header_and_taxonomy_column(tmp_path):
    path = tmp_path / "otus.txt"
    path.write_text("# Constructed from biom file\n#OTU ID\tS1\tS2\ttaxonomy\n"
                    "otu1\t5\t0\tk__Bacteria; g__Akkermansia\notu2\t1\t7\tk__Bacteria; g__Blautia\n")
    table = read_abundance(path)
    assert table.sample_ids == ["S1", "S2"]
    assert table.data.tolist() == [[5, 0], [1, 7]]
    assert table.lineages["otu2"] == "k__Bacteria; g__Blautia"


def test_metaphlan_merged_profile(tmp_path):
    path = tmp_path / "merged_abundance_table.txt"
    path.write_text(
        "#mpa_vJan21_CHOCOPhlAnSGB_202103\n"
        "clade_name\tA\tB\n"
        "k__Bacteria\t100.0\t100.0\n"
        "k__Bacteria|p__Verrucomicrobia\t30.0\t10.0\n"
        "k__Bacteria|p__Verrucomicrobia|c__Verrucomicrobiae|o__Verrucomicrobiales|f__Akkermansiaceae"
        "|g__Akkermansia|s__Akkermansia_muciniphila\t30.0\t10.0\n"
        "k__Bacteria|p__Verrucomicrobia|c__Verrucomicrobiae|o__Verrucomicrobiales|f__Akkermansiaceae"
        "|g__Akkermansia|s__Akkermansia_muciniphila|t__SGB9226\t30.0\t10.0\n"
        "k__Bacteria|p__Firmicutes|c__Clostridia|o__Eubacteriales|f__Oscillospiraceae"
        "|g__Faecalibacterium|s__Faecalibacterium_prausnitzii\t70.0\t90.0\n"
        "UNCLASSIFIED\t0.0\t0.0\n")
    table = read_abundance(path)
    assert table.format == "metaphlan"
    assert table.feature_ids == ["s__Akkermansia_muciniphila", "s__Faecalibacterium_prausnitzii"]
    data, scale = check_values(table, "relative")
    assert scale == "percentages"
    np.testing.assert_allclose(data, [[0.3, 0.1], [0.7, 0.9]])
    reasons = {fid: reason for fid, reason, _ in table.dropped_rows}
    assert reasons["t__SGB9226"] == "metaphlan_below_species"
    assert reasons["UNCLASSIFIED"] == "metaphlan_unclassified"
    assert reasons["p__Verrucomicrobia"] == "metaphlan_summary_row"
    genus = assign(pd.Series(table.lineages), "genus")
    assert genus["s__Akkermansia_muciniphila"] == "g__Akkermansia"


def test_relative_proportions_are_kept_as_proportions(tmp_path):
    path = tmp_path / "rel.tsv"
    path.write_text("feature_id\tS1\tS2\nf1\t0.25\t0.5\nf2\t0.75\t0.25\n")
    data, scale = check_values(read_abundance(path), "relative")
    assert scale == "proportions"
    np.testing.assert_allclose(data, [[0.25, 0.5], [0.75, 0.25]])


def test_table_reader_accepts_bom_crlf_comments_and_na(tmp_path):
    path = tmp_path / "participants.csv"
    path.write_bytes("\ufeff# exported 2024\r\nparticipant_id,site,bmi\r\nP1,Boston,NA\r\n"
                     "\r\nP2,\"San Francisco, CA\",24.1\r\n".encode("utf-8"))
    frame = read_table(path)
    assert frame.columns[0] == "participant_id"  # BOM stripped
    assert frame["participant_id"].tolist() == ["P1", "P2"]
    assert frame["site"].tolist() == ["Boston", "San Francisco, CA"]
    assert frame["bmi"].tolist() == [None, "24.1"]
    assert frame["_line"].tolist() == [3, 5]  # comment and blank lines counted


@pytest.mark.parametrize("fmt", ["dosage", "vcf", "vcf.gz", "vcf-gt"])
def test_genotype_formats(mini, fmt):
    mini.root.mkdir(parents=True)
    dosages = mini.dosages.copy()
    dosages.iloc[1, 2] = np.nan  # a missing call
    geno = read_genotypes(write_genotypes(dosages, mini.root, fmt))
    got = pd.DataFrame(geno.dosages, index=geno.variant_ids, columns=geno.sample_ids)
    pd.testing.assert_frame_equal(got, dosages, check_names=False)
    assert geno.source == {"dosage": "dosage", "vcf": "DS", "vcf.gz": "DS", "vcf-gt": "GT"}[fmt]


def test_vcf_prefers_ds_over_gt_and_handles_bgzip_members(tmp_path):
    header = "##fileformat=VCFv4.3\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tB1\tB2\n"
    body = ("6\t100\trs1\tC\tT\t.\tPASS\t.\tGT:DS\t0/1:0.83\t1|1:1.97\n"
            "6\t200\t.\tA\tG\t.\tPASS\t.\tGT\t0/0\t./.\n"
            "6\t300\trs3\tA\tG,T\t.\tPASS\t.\tGT\t0/1\t1/2\n")
    path = tmp_path / "g.vcf.bgz"
    # bgzip writes several gzip members; a reader that stops after the first loses data.
    path.write_bytes(gzip.compress(header.encode(), mtime=0) + gzip.compress(body.encode(), mtime=0))
    geno = read_genotypes(path)
    assert geno.variant_ids == ["rs1", "6_200_A_G"]
    np.testing.assert_allclose(geno.dosages[0], [0.83, 1.97])
    assert geno.dosages[1, 0] == 0 and np.isnan(geno.dosages[1, 1])
    assert geno.dropped == [("rs3", "multiallelic", "ALT G,T: split with bcftools norm -m- to analyse")]


@pytest.mark.parametrize("lineage, genus, species", [
    ("k__Bacteria; p__Verrucomicrobia; c__Verrucomicrobiae; o__Verrucomicrobiales; "
     "f__Verrucomicrobiaceae; g__Akkermansia; s__muciniphila", "g__Akkermansia", "s__Akkermansia_muciniphila"),
    ("D_0__Bacteria;D_1__Firmicutes;D_2__Clostridia;D_3__Clostridiales;D_4__Ruminococcaceae;"
     "D_5__Faecalibacterium;D_6__uncultured bacterium", "g__Faecalibacterium", None),
    ("d__Bacteria; p__Firmicutes_A; c__Clostridia; o__Lachnospirales; f__Lachnospiraceae; g__Blautia_A; "
     "s__Blautia_A obeum", "g__Blautia_A", "s__Blautia_A_obeum"),
    ("k__Bacteria|p__Firmicutes|c__Clostridia|o__Clostridiales|f__Lachnospiraceae|g__Blautia|"
     "s__Blautia_wexlerae", "g__Blautia", "s__Blautia_wexlerae"),
    ("k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__Lachnospiraceae; g__; s__", None, None),
])
def test_lineage_styles(lineage, genus, species):
    ranks = parse_lineage(lineage)
    assert taxon_label(ranks, "genus") == genus
    assert taxon_label(ranks, "species") == species


def test_aggregation_sums_features_and_buckets_unassigned():
    lineages = pd.Series({"a": "k__B; g__X; s__x1", "b": "k__B; g__X; s__x2", "c": "k__B; g__; s__",
                          "d": "k__B; g__Y; s__"})
    data = np.array([[1, 2], [3, 4], [5, 6], [7, 8]], dtype=float)
    genus = assign(lineages, "genus")
    taxa_data, taxa = aggregate(data, genus)
    assert taxa == ["g__X", "g__Y", "g__unassigned"]
    np.testing.assert_array_equal(taxa_data, [[4, 6], [7, 8], [5, 6]])
    species = assign(lineages, "species")
    assert species.tolist() == ["s__X_x1", "s__X_x2", "s__unassigned", "s__unassigned"]


def test_homonyms_are_told_apart_by_parent():
    lineages = pd.Series({"a": "k__B; f__Clostridiaceae; g__Clostridium",
                          "b": "k__B; f__Peptostreptococcaceae; g__Clostridium",
                          "c": "k__B; f__Clostridiaceae; g__Clostridium"})
    genus = assign(lineages, "genus")
    assert genus.tolist() == ["g__Clostridium (f__Clostridiaceae)", "g__Clostridium (f__Peptostreptococcaceae)",
                              "g__Clostridium (f__Clostridiaceae)"]


def test_tree_is_pruned_to_kept_features(mini):
    tree = skbio.TreeNode.read(["((" + ",".join(f"{f}:0.1" for f in mini.counts.index[:6]) + "):0.2,(" +
                                ",".join(f"{f}:0.3" for f in mini.counts.index[6:]) + ",extra:0.5):0.1);"])
    settings = mini.write()
    tree.write(str(mini.path("tree.nwk")))
    settings.tree = str(mini.path("tree.nwk"))
    from workflow_scripts.ingest.harmonise import ingest

    cohort, _ = ingest(settings)
    assert sorted(t.name for t in cohort.tree.tips()) == sorted(mini.counts.index)
    assert cohort.tree.find("asv00").length == pytest.approx(0.1)
