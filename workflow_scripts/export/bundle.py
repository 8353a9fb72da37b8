"""Write every export file from the harmonised cohort and the differential tables."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from workflow_scripts.cohort import Cohort
from workflow_scripts.errors import InputError, Problem
from workflow_scripts.export import lineage, maaslin, phyloseq, qiime2, readme

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
STATUS_VARIABLE = "status"


def export_files(has_tree: bool, methods) -> list[str]:
    """Paths (relative to ``export/``) that :func:`write_exports` writes, for the rule's outputs."""
    names = ["README.md", "qiime2/sample-metadata.tsv", "qiime2/taxonomy.tsv",
             "qiime2/feature-table.biom", "qiime2/taxa-taxonomy.tsv", "qiime2/taxa-table.biom"]
    names += [f"phyloseq/{name}" for name in phyloseq.FILES]
    names += [f"phyloseq/{phyloseq.TREE}"] if has_tree else []
    names += ["phyloseq/README.md"]
    names += [f"maaslin/{method}/all_results.tsv" for method in methods]
    return names


def write_exports(cohort: Cohort, method_tables: dict[str, pd.DataFrame], outdir: str | Path,
                  shown_dir: str | None = None) -> list[str]:
    """Write the QIIME 2, phyloseq and MaAsLin files and the README under ``outdir``.

    Parameters
    ----------
    cohort : Cohort
        The harmonised cohort (:func:`workflow_scripts.cohort.read_cohort`).
    method_tables : dict
        Method name -> ``differential/<method>.tsv`` as read.
    outdir : path
        The ``export`` directory.
    shown_dir : str, optional
        How the R snippet names the export directory (default ``outdir``).

    Returns
    -------
    list of str
        The files written, relative to ``outdir`` (:func:`export_files`).
    """
    bad = [m for m in method_tables if not _SAFE_NAME.match(m)]
    if bad:
        raise InputError([Problem("differential methods", f"method name {m!r} is not a plain name",
                                  "name methods with letters, digits, '_', '.' and '-'") for m in bad])
    outdir = Path(outdir)
    for sub in ("qiime2", "phyloseq", "maaslin"):
        (outdir / sub).mkdir(parents=True, exist_ok=True)

    # QIIME 2: metadata, taxonomy and annotated tables, feature level and analysis rank.
    metadata = qiime2.sample_metadata(cohort.samples)
    qiime2.write_sample_metadata(metadata, outdir / "qiime2/sample-metadata.tsv")
    # Taxonomy rows in the tables' feature order.
    taxonomy = cohort.taxonomy.reindex(cohort.features.ids(axis="observation")).fillna({"lineage": ""})
    feature_taxonomy = qiime2.taxonomy_table(taxonomy["lineage"].map(lineage.qiime_lineage),
                                             _confidence(taxonomy))
    if cohort.info["rank"] == "feature":
        taxa_taxonomy = feature_taxonomy
    else:
        taxa_ranks = lineage.taxon_ranks(taxonomy, cohort.info["rank"])
        taxa_taxonomy = qiime2.taxonomy_table(taxa_ranks.apply(lineage.ranks_to_lineage, axis=1))
    for table, lineages, table_name, lineages_name in (
            (cohort.features, feature_taxonomy, "feature-table.biom", "taxonomy.tsv"),
            (cohort.taxa, taxa_taxonomy, "taxa-table.biom", "taxa-taxonomy.tsv")):
        qiime2.write_taxonomy(lineages, outdir / "qiime2" / lineages_name)
        qiime2.write_biom(qiime2.annotated_table(table, metadata, lineages), outdir / "qiime2" / table_name)

    # phyloseq: feature level, so the tree's tips are the OTU table's rows.
    samples = phyloseq.sample_data(cohort.samples)
    phyloseq.write_table(phyloseq.otu_table(cohort.features), outdir / "phyloseq/otu_table.tsv")
    phyloseq.write_table(lineage.feature_ranks(taxonomy["lineage"]).rename_axis("feature_id"),
                         outdir / "phyloseq/tax_table.tsv")
    phyloseq.write_table(samples, outdir / "phyloseq/sample_data.tsv")
    if cohort.tree is not None:
        phyloseq.write_tree(cohort.tree, outdir / f"phyloseq/{phyloseq.TREE}")
    snippet = phyloseq.snippet(f"{shown_dir or outdir}/phyloseq", cohort.tree is not None,
                               phyloseq.text_columns(cohort.samples))
    (outdir / "phyloseq/README.md").write_text(readme.phyloseq_readme(snippet))

    # MaAsLin 2 layout, one folder per method.
    for method, table in sorted(method_tables.items()):
        (outdir / "maaslin" / method).mkdir(exist_ok=True)
        maaslin.write_all_results(maaslin.all_results(table, STATUS_VARIABLE, cohort.case_label),
                                  outdir / "maaslin" / method / "all_results.tsv")

    (outdir / "README.md").write_text(readme.export_readme(
        cohort.info, metadata, method_tables, snippet, cohort.tree is not None))
    return export_files(cohort.tree is not None, sorted(method_tables))


def _confidence(taxonomy: pd.DataFrame) -> pd.Series | None:
    """The cohort taxonomy's confidence column, if ingest kept one (QIIME 2 input)."""
    for column in taxonomy.columns:
        if column.lower() == "confidence":
            return taxonomy[column]
    return None
