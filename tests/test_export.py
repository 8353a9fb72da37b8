"""Exports for QIIME 2, phyloseq and MaAsLin: loaded by the tools' own readers.

The bundled synthetic cohort is ingested once; hand-made differential tables
stand in for the method outputs. References: scikit-bio's QIIME 2 metadata
reader, biom-format's reader and its ``add-metadata`` implementation, the
MaAsLin 2 output shipped in ../shared/data/real/hmp2_ibdmdb, and R's phyloseq
when it is installed.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import textwrap
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import pytest
import yaml
from skbio.metadata import SampleMetadata

from conftest import REPO, real_data
from workflow_scripts.cohort import read_cohort, write_cohort
from workflow_scripts.errors import InputError
from workflow_scripts.export import lineage, maaslin, phyloseq, qiime2
from workflow_scripts.export.bundle import export_files, write_exports
from workflow_scripts.export.cli import main as cli_main
from workflow_scripts.ingest.harmonise import Settings, ingest
from workflow_scripts.models.multiple_testing import bh


def method_table(features, seed: int, method: str) -> pd.DataFrame:
    """A differential/<method>.tsv-shaped table with random statistics."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=len(features)) ** 2
    table = pd.DataFrame({"feature": features, "method": method, "effect": rng.normal(size=len(features)),
                          "se": rng.uniform(0.1, 1, size=len(features)), "stat": 0.0, "pvalue": p,
                          "qvalue": bh(p), "n": 51, "n_nonzero": rng.integers(5, 51, size=len(features)),
                          "scale": f"{method} scale"})
    return table


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    """The bundled synthetic cohort, ingested as the workflow does, written and read back."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["inputs"] = {k: v if k == "abundance_kind" else str(REPO / v) for k, v in config["inputs"].items()}
    cohort, _ = ingest(Settings.from_config(config))
    directory = tmp_path_factory.mktemp("cohort")
    write_cohort(cohort, directory)
    return directory


@pytest.fixture(scope="module")
def cohort(cohort_dir):
    return read_cohort(cohort_dir)


@pytest.fixture(scope="module")
def tables(cohort):
    taxa = [t for t in cohort.taxa.ids(axis="observation") if not t.endswith("__unassigned")]
    out = {"linda": method_table(taxa, 1, "linda"),
           "paired_wilcoxon": method_table(taxa, 2, "paired_wilcoxon")}
    out["paired_wilcoxon"].loc[[0, 3], "se"] = np.nan  # as paired_wilcoxon leaves some
    return out


@pytest.fixture(scope="module")
def exported(cohort, tables, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("export")
    written = write_exports(cohort, tables, outdir)
    return outdir, written


@pytest.fixture(scope="module")
def mini_exported(tmp_path_factory):
    """conftest's MiniCohort: genus rank, no tree, relative abundances, numbers as household ids."""
    from conftest import MiniCohort

    mini = MiniCohort(tmp_path_factory.mktemp("mini"))
    mini.counts = mini.counts / mini.counts.sum(axis=0)
    mini.participants["household_id"] = [f"{int(h[1:]) + 1:03d}" if h else "" for h in
                                         mini.participants["household_id"]]
    cohort, _ = ingest(mini.write(abundance_kind="relative", min_depth=0))
    outdir = tmp_path_factory.mktemp("mini_export")
    write_exports(cohort, {}, outdir)
    return cohort, outdir


# --- QIIME 2 ---------------------------------------------------------------------------------

def test_sample_metadata_loads_in_scikit_bio(exported, cohort):
    outdir, _ = exported
    path = outdir / "qiime2" / "sample-metadata.tsv"
    lines = path.read_text().splitlines()
    assert lines[0].split("\t")[0] == "sample-id"
    assert lines[1].split("\t")[0] == "#q2:types"
    metadata = SampleMetadata.load(str(path))
    frame = metadata.to_dataframe()
    # One row per kept stool sample, in the cohort's order.
    assert list(frame.index) == list(cohort.samples.index)
    types = {name: column.type for name, column in metadata.columns.items()}
    assert types["age"] == types["edss"] == types["n_blood_samples"] == "numeric"
    assert types["status"] == types["household_id"] == types["paired"] == "categorical"
    assert set(types) == set(cohort.samples.columns)
    # Values survive: participant attributes of each sample, missing values missing.
    np.testing.assert_array_equal(frame["age"].to_numpy(), cohort.samples["age"].to_numpy())
    assert frame["edss"].isna().equals(cohort.samples["edss"].isna())
    assert frame["edss"].isna().any() and frame["edss"].notna().any()
    assert list(frame["status"]) == list(cohort.samples["status"])
    assert set(frame["paired"].dropna()) <= {"True", "False"}


def test_sample_metadata_reserved_and_empty_columns(tmp_path):
    samples = pd.DataFrame({"id": ["a", "b"], "sample_name": ["x", "y"], "score": [np.nan, np.nan],
                            "note": [None, None], "site": ["1", "2"]},
                           index=pd.Index(["S1", "S2"], name="sample_id"))
    with pytest.raises(Exception, match="reserved"):  # the reader rejects the raw names
        SampleMetadata(samples.rename_axis("sample-id"))
    metadata = qiime2.sample_metadata(samples)
    assert list(metadata.columns) == ["id_value", "sample_name_value", "score", "note", "site"]
    path = tmp_path / "m.tsv"
    qiime2.write_sample_metadata(metadata, path)
    loaded = SampleMetadata.load(str(path))
    assert loaded.columns["score"].type == "numeric"
    # Numbers used as labels stay labels because the #q2:types row says so.
    assert loaded.columns["site"].type == "categorical"
    assert list(loaded.to_dataframe()["site"]) == ["1", "2"]


def test_taxonomy_header_and_lineages(exported, cohort):
    outdir, _ = exported
    text = (outdir / "qiime2" / "taxonomy.tsv").read_text()
    assert text.startswith("Feature ID\tTaxon\n")
    frame = pd.read_csv(outdir / "qiime2" / "taxonomy.tsv", sep="\t", keep_default_na=False)
    assert list(frame["Feature ID"]) == list(cohort.taxonomy.index)
    assert (frame["Taxon"] != "").all()
    taxa = pd.read_csv(outdir / "qiime2" / "taxa-taxonomy.tsv", sep="\t", keep_default_na=False)
    assert list(taxa.columns) == ["Feature ID", "Taxon"]
    assert list(taxa["Feature ID"]) == list(cohort.taxa.ids(axis="observation"))
    akk = taxa.set_index("Feature ID").at["s__Akkermansia_muciniphila", "Taxon"]
    assert akk.startswith("k__Bacteria; p__Verrucomicrobia") and akk.endswith("g__Akkermansia; "
                                                                               "s__Akkermansia_muciniphila")


def test_taxonomy_confidence_only_when_known():
    lineages = pd.Series(["k__Bacteria|p__Firmicutes|s__Blautia_obeum", ""], index=["f1", "f2"])
    frame = qiime2.taxonomy_table(lineages.map(lineage.qiime_lineage))
    assert list(frame.columns) == ["Feature ID", "Taxon"]
    assert list(frame["Taxon"]) == ["k__Bacteria; p__Firmicutes; s__Blautia_obeum", "Unassigned"]
    confidence = pd.Series([0.9, 0.7], index=["f1", "f2"])
    with_conf = qiime2.taxonomy_table(lineages.map(lineage.qiime_lineage), confidence)
    assert list(with_conf.columns) == ["Feature ID", "Taxon", "Confidence"]


def _reference_annotation(outdir: Path, plain: biom.Table, numeric_columns):
    """What biom-format's ``add-metadata`` makes of our TSVs (QIIME 1 header, as it expects)."""
    from biom.cli.metadata_adder import _add_metadata

    lines = (outdir / "qiime2" / "sample-metadata.tsv").read_text().splitlines()
    mapping = ["#SampleID\t" + lines[0].split("\t", 1)[1]] + lines[2:]
    return _add_metadata(plain.copy(), sample_metadata=mapping,
                         observation_metadata=(outdir / "qiime2" / "taxonomy.tsv").read_text().splitlines(),
                         sc_separated=["taxonomy"], observation_header=["OTUID", "taxonomy"],
                         float_fields=numeric_columns)


def test_biom_has_metadata_and_taxonomy_as_add_metadata(exported, cohort):
    outdir, _ = exported
    table = biom.load_table(str(outdir / "qiime2" / "feature-table.biom"))
    assert list(table.ids(axis="sample")) == list(cohort.features.ids(axis="sample"))
    np.testing.assert_array_equal(table.matrix_data.toarray(), cohort.features.matrix_data.toarray())
    numeric = [c for c, t in qiime2.column_types(cohort.samples).items() if t == "numeric"]
    reference = _reference_annotation(outdir, cohort.features, numeric)
    for sample in table.ids(axis="sample"):
        ours, theirs = table.metadata(sample, "sample"), reference.metadata(sample, "sample")
        assert set(ours) == set(theirs)
        for key, value in theirs.items():
            if key in numeric and value == "":
                assert math.isnan(ours[key]), (sample, key)  # add-metadata leaves an empty cell as ""
            elif key in numeric:
                assert ours[key] == float(value), (sample, key)
            else:
                assert ours[key] == value, (sample, key)
    for feature in table.ids(axis="observation"):
        assert table.metadata(feature, "observation")["taxonomy"] == \
            reference.metadata(feature, "observation")["taxonomy"]


def test_taxa_biom_at_analysis_rank(exported, cohort):
    outdir, _ = exported
    table = biom.load_table(str(outdir / "qiime2" / "taxa-table.biom"))
    assert table.shape == cohort.taxa.shape
    np.testing.assert_array_equal(table.matrix_data.toarray(), cohort.taxa.matrix_data.toarray())
    taxonomy = table.metadata("s__Akkermansia_muciniphila", "observation")["taxonomy"]
    assert taxonomy[0] == "k__Bacteria" and taxonomy[-1] == "s__Akkermansia_muciniphila"
    assert table.metadata(table.ids(axis="sample")[0], "sample")["status"] in ("MS", "HHC")


def test_genus_rank_without_tree_relative_abundances(mini_exported):
    cohort, outdir = mini_exported
    assert cohort.info["rank"] == "genus" and cohort.tree is None
    assert SampleMetadata.load(str(outdir / "qiime2" / "sample-metadata.tsv")).id_count == len(cohort.samples)
    taxa = biom.load_table(str(outdir / "qiime2" / "taxa-table.biom"))
    assert taxa.metadata("g__Blautia", "observation")["taxonomy"] == [
        "k__Bacteria", "p__Firmicutes", "c__Clostridia", "o__Clostridiales", "f__Blautiaaceae", "g__Blautia"]  # conftest names families <genus>aceae
    assert not (outdir / "phyloseq" / "tree.nwk").exists()
    assert "read_tree" not in (outdir / "phyloseq" / "README.md").read_text()
    assert "FeatureTable[RelativeFrequency]" in (outdir / "README.md").read_text()
    otu = pd.read_csv(outdir / "phyloseq" / "otu_table.tsv", sep="\t", index_col=0)
    np.testing.assert_allclose(otu.sum(axis=0), 1.0, rtol=1e-12)


def test_feature_rank_taxa_equal_features(tmp_path):
    from conftest import MiniCohort

    cohort, _ = ingest(MiniCohort(tmp_path / "mini").write(rank="feature"))
    write_exports(cohort, {}, tmp_path / "export")
    q = tmp_path / "export" / "qiime2"
    assert (q / "taxa-taxonomy.tsv").read_bytes() == (q / "taxonomy.tsv").read_bytes()
    a, b = biom.load_table(str(q / "taxa-table.biom")), biom.load_table(str(q / "feature-table.biom"))
    assert list(a.ids(axis="observation")) == list(b.ids(axis="observation"))
    np.testing.assert_array_equal(a.matrix_data.toarray(), b.matrix_data.toarray())
    assert a.metadata(axis="observation") == b.metadata(axis="observation")


def test_same_cohort_same_bytes(cohort, tables, tmp_path):
    first = write_exports(cohort, tables, tmp_path / "a", shown_dir="results/export")
    write_exports(cohort, tables, tmp_path / "b", shown_dir="results/export")
    for name in first:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_export_files_lists_what_is_written(exported, cohort, tables):
    outdir, written = exported
    on_disk = sorted(str(p.relative_to(outdir)) for p in outdir.rglob("*") if p.is_file())
    assert sorted(written) == on_disk == sorted(export_files(cohort.tree is not None, tables))
    assert "phyloseq/tree.nwk" not in export_files(False, [])


# --- phyloseq --------------------------------------------------------------------------------

def test_tax_table_rank_split():
    lineages = pd.Series({
        "a": "k__Bacteria; p__Verrucomicrobia; c__Verrucomicrobiae; o__Verrucomicrobiales; "
             "f__Akkermansiaceae; g__Akkermansia; s__muciniphila",  # Greengenes: epithet only
        "b": "d__Bacteria;p__Firmicutes_A;c__Clostridia;o__Lachnospirales;f__Lachnospiraceae;"
             "g__Blautia;s__Blautia obeum",  # GTDB
        "c": "k__Bacteria; p__Bacteroidetes; c__; o__; f__; g__; s__",
        "d": "",
    })
    ranks = lineage.feature_ranks(lineages)
    assert list(ranks.columns) == ["Kingdom", "Phylum", "Class", "Order", "Family", "Genus", "Species"]
    assert ranks.loc["a", "Species"] == "Akkermansia_muciniphila"
    assert ranks.loc["b", "Genus"] == "Blautia" and ranks.loc["b", "Species"] == "Blautia_obeum"
    assert ranks.loc["c"].tolist() == ["Bacteria", "Bacteroidetes"] + [None] * 5
    assert ranks.loc["d"].isna().all()


def test_taxon_ranks_keep_what_members_agree_on():
    taxonomy = pd.DataFrame({
        "lineage": ["k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__Lachnospiraceae; "
                    "g__Blautia",
                    "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__Ruminococcaceae; "
                    "g__Blautia",
                    "k__Bacteria; p__Bacteroidetes; c__Bacteroidia",
                    "k__Bacteria; p__Firmicutes; c__Bacilli"],
        "taxon": ["g__Blautia", "g__Blautia", "g__unassigned", "g__unassigned"]},
        index=["f1", "f2", "f3", "f4"])
    ranks = lineage.taxon_ranks(taxonomy, "genus")
    assert ranks.loc["g__Blautia"].tolist() == ["Bacteria", "Firmicutes", "Clostridia", "Clostridiales",
                                                None, None, None]
    assert ranks.loc["g__unassigned"].tolist() == ["Bacteria"] + [None] * 6
    assert lineage.ranks_to_lineage(ranks.loc["g__unassigned"]) == "k__Bacteria"


def test_phyloseq_files(exported, cohort):
    outdir, _ = exported
    otu = pd.read_csv(outdir / "phyloseq" / "otu_table.tsv", sep="\t", index_col=0)
    np.testing.assert_array_equal(otu.to_numpy(), cohort.features.matrix_data.toarray())
    assert list(otu.columns) == list(cohort.samples.index)
    tax = pd.read_csv(outdir / "phyloseq" / "tax_table.tsv", sep="\t", index_col=0)
    assert list(tax.columns) == list(lineage.RANK_COLUMNS) and list(tax.index) == list(otu.index)
    data = pd.read_csv(outdir / "phyloseq" / "sample_data.tsv", sep="\t", index_col=0, keep_default_na=False,
                       dtype=str)
    assert set(data["paired"]) <= {"TRUE", "FALSE"}
    assert (outdir / "phyloseq" / "tree.nwk").exists() == (cohort.tree is not None)


def test_text_columns_protect_labels_r_would_convert():
    frame = pd.DataFrame({"sex": ["F", "F"], "household_id": ["001", "002"], "site": ["Oslo", "Rome"],
                          "age": [30.0, 40.0], "paired": [True, False]})
    assert phyloseq.text_columns(frame) == ["sex", "household_id"]
    assert 'colClasses = c("sex" = "character", "household_id" = "character")' in \
        phyloseq.snippet("x", False, ["sex", "household_id"])
    assert len(phyloseq.snippet("x", True).splitlines()) == 2


def _has_phyloseq() -> bool:
    if not shutil.which("Rscript"):
        return False
    done = subprocess.run(["Rscript", "-e", "library(phyloseq)"], capture_output=True)
    return done.returncode == 0


def _snippet(readme: Path) -> str:
    return readme.read_text().split("```r\n", 1)[1].split("```", 1)[0]


@pytest.mark.needs_r
def test_readme_snippet_loads_in_phyloseq(exported, cohort, mini_exported):
    if not _has_phyloseq():
        pytest.skip("Rscript with the phyloseq package is not available")
    outdir, _ = exported
    snippet = _snippet(outdir / "phyloseq" / "README.md")
    assert len(snippet.strip().splitlines()) == 2
    assert snippet in (outdir / "README.md").read_text()
    mini, mini_dir = mini_exported
    report = textwrap.dedent("""
        cat(ntaxa(ps), nsamples(ps), ncol(tax_table(ps)), ncol(sample_data(ps)),
            if (is.null(phy_tree(ps, errorIfNULL = FALSE))) 0 else ntaxa(phy_tree(ps)), "\\n")
        cat(sum(otu_table(ps)), class(sample_data(ps)$paired), class(sample_data(ps)$household_id), "\\n")
        cat(as.character(tax_table(ps)[1, "Genus"]), "\\n")
    """)
    script = snippet + report + _snippet(mini_dir / "phyloseq" / "README.md") + report
    done = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for (dims, sums, genus), (c, tree_tips) in zip((lines[:3], lines[3:]),
                                                   ((cohort, cohort.features.shape[0]), (mini, 0))):
        n_features, n_samples = c.features.shape
        assert dims.split() == [str(n_features), str(n_samples), "7", str(c.samples.shape[1]), str(tree_tips)]
        total, paired_class, household_class = sums.split()
        assert float(total) == pytest.approx(c.features.matrix_data.sum(), rel=1e-9)
        # Yes/no columns arrive as logicals; household ids such as 001 stay text.
        assert (paired_class, household_class) == ("logical", "character")
        # phyloseq orders taxa by the tree when there is one; check the genus of its first taxon.
        assert genus.strip() in set(lineage.feature_ranks(c.taxonomy["lineage"])["Genus"].dropna())


# --- MaAsLin ---------------------------------------------------------------------------------

def test_maaslin_header_matches_maaslin2_output():
    reference = real_data("hmp2_ibdmdb") / "metaphlan2_maaslin2" / "reference" / "expected_results_run1.tsv"
    header = reference.read_text().splitlines()[0].split("\t")
    assert maaslin.COLUMNS == header


def test_maaslin_all_results(exported, tables):
    outdir, _ = exported
    for method, table in tables.items():
        path = outdir / "maaslin" / method / "all_results.tsv"
        lines = path.read_text().splitlines()
        assert lines[0] == "feature\tmetadata\tvalue\tcoef\tstderr\tN\tN.not.0\tpval\tqval"
        assert '"' not in path.read_text()
        frame = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["NA"])
        assert len(frame) == len(table)
        assert (frame["metadata"] == "status").all() and (frame["value"] == "MS").all()
        assert frame["qval"].is_monotonic_increasing
        merged = frame.merge(table, on="feature")
        np.testing.assert_allclose(merged["coef"], merged["effect"], rtol=1e-14)
        np.testing.assert_allclose(merged["pval"], merged["pvalue"], rtol=1e-14)
        np.testing.assert_array_equal(merged["N.not.0"], merged["n_nonzero"])
        assert merged["stderr"].isna().equals(merged["se"].isna())
    assert "\tNA\t" in (outdir / "maaslin" / "paired_wilcoxon" / "all_results.tsv").read_text()


def test_maaslin_drops_rows_without_q_and_keeps_ties_in_order():
    table = pd.DataFrame({"feature": ["a", "b", "c", "d"], "effect": [1.0, 2.0, 3.0, 4.0],
                          "se": [0.1, 0.2, 0.3, 0.4], "pvalue": [0.5, 0.01, np.nan, 0.01],
                          "qvalue": [0.5, 0.02, np.nan, 0.02], "n": 10, "n_nonzero": [1, 2, 3, 4]})
    out = maaslin.all_results(table, "status", "MS")
    assert list(out["feature"]) == ["b", "d", "a"]


# --- command line ----------------------------------------------------------------------------

def test_cli_writes_and_reports_bad_tables(cohort_dir, tables, tmp_path, capsys):
    paths = []
    for method, table in tables.items():
        paths.append(tmp_path / f"{method}.tsv")
        table.to_csv(paths[-1], sep="\t", index=False)
    assert cli_main(["--cohort", str(cohort_dir), "--methods", *map(str, paths),
                     "--outdir", str(tmp_path / "export")]) == 0
    assert (tmp_path / "export" / "maaslin" / "linda" / "all_results.tsv").exists()
    tables["linda"].drop(columns="se").to_csv(tmp_path / "broken.tsv", sep="\t", index=False)
    assert cli_main(["--cohort", str(cohort_dir), "--methods", str(tmp_path / "broken.tsv"),
                     "--outdir", str(tmp_path / "export2")]) == 1
    err = capsys.readouterr().err
    assert "broken.tsv" in err and "missing column(s) se" in err


def test_method_names_cannot_leave_the_directory(cohort, tables, tmp_path):
    with pytest.raises(InputError, match="not a plain name"):
        write_exports(cohort, {"../x": tables["linda"]}, tmp_path)


def test_main_readme_shows_the_snippet():
    readme = (REPO / "README.md").read_text()
    for line in phyloseq.snippet("results/export/phyloseq", True).splitlines():
        assert line in readme


@pytest.mark.real_data
def test_real_imsms_cohort_exports(imsms_cohort, tmp_path):
    """The real iMSMS 16S cohort (genus rank, homonym genera, numeric household ids) loads back."""
    cohort, _ = imsms_cohort
    write_exports(cohort, {}, tmp_path)
    metadata = SampleMetadata.load(str(tmp_path / "qiime2" / "sample-metadata.tsv"))
    assert metadata.id_count == len(cohort.samples)
    assert metadata.columns["household_id"].type == "categorical"
    taxa = biom.load_table(str(tmp_path / "qiime2" / "taxa-table.biom"))
    np.testing.assert_array_equal(taxa.matrix_data.toarray(), cohort.taxa.matrix_data.toarray())
    homonyms = [t for t in taxa.ids(axis="observation") if " (" in t]
    assert homonyms  # e.g. g__Clostridium (f__Lachnospiraceae): the lineage names its family
    for taxon in homonyms:
        family = taxon.split(" (")[1].rstrip(")")
        assert family in taxa.metadata(taxon, "observation")["taxonomy"]
    assert "household_id" in phyloseq.text_columns(cohort.samples)
