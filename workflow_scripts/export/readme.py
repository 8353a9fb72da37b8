"""The READMEs written beside the exports: what each file is and how to load it."""

from __future__ import annotations

import pandas as pd

from workflow_scripts.export import maaslin, qiime2


def phyloseq_readme(snippet: str) -> str:
    """``phyloseq/README.md``: the files and the R lines that load them."""
    return (
        "# phyloseq-ready files\n\n"
        "- `otu_table.tsv`: features x kept stool samples (first column the feature id)\n"
        "- `tax_table.tsv`: one column per rank, Kingdom to Species (`NA` where unnamed)\n"
        "- `sample_data.tsv`: one row per kept stool sample with its participant's attributes\n"
        "- `tree.nwk`: the phylogeny pruned to the kept features (only when the cohort has one)\n\n"
        "Load them into a phyloseq object `ps` (run R in the export directory, e.g. `setwd(\"results/export\")`;\n"
        "the paths are relative to it so that the files do not depend on where the results were written):\n\n"
        f"```r\n{snippet}\n```\n"
    )


def export_readme(info: dict, metadata: pd.DataFrame, method_tables: dict[str, pd.DataFrame],
                  snippet: str, has_tree: bool) -> str:
    """``export/README.md``: every file of the export directory, one line each, and how to use it."""
    counts = info.get("abundance_kind", "counts") == "counts"
    table_type = "FeatureTable[Frequency]" if counts else "FeatureTable[RelativeFrequency]"
    rank = info["rank"]
    types = qiime2.column_types(metadata)
    columns = ", ".join(f"`{c}` ({types[c]})" for c in metadata.columns)
    lines = [
        "# Exports for QIIME 2, phyloseq and MaAsLin users",
        "",
        f"The harmonised cohort ({info.get('n_samples', len(metadata))} kept stool samples, "
        f"{info.get('n_features', '?')} features, {info.get('n_taxa', '?')} taxa at rank `{rank}`; "
        f"values are {'counts' if counts else 'relative abundances'}) and the differential-abundance "
        "results, shaped for the tools people already use. Ingest's ledger "
        "(`ingest/ledger.tsv`) says why any sample or feature is not here.",
        "",
        "## QIIME 2 (`qiime2/`)",
        "",
        "| file | content |",
        "|---|---|",
        "| `sample-metadata.tsv` | QIIME 2 sample metadata: `sample-id`, a `#q2:types` row, one row per "
        "kept stool sample with its participant's attributes |",
        "| `taxonomy.tsv` | `Feature ID`, `Taxon` (the input lineage, levels separated by `; `; "
        "`Unassigned` when the input had none) |",
        "| `feature-table.biom` | BIOM 2.1 (HDF5), features x samples, with the sample metadata and "
        "a `taxonomy` observation metadata embedded |",
        f"| `taxa-taxonomy.tsv` | the same for the taxa at rank `{rank}` (the ranks all of a taxon's "
        "features agree on) |",
        f"| `taxa-table.biom` | BIOM 2.1, taxa at rank `{rank}` x samples (the table every statistic "
        "of the workflow uses), metadata and taxonomy embedded |",
        "",
        f"Metadata columns: {columns}. Missing values are empty cells. Import with",
        "",
        "```bash",
        f"qiime tools import --type '{table_type}' --input-format BIOMV210Format \\",
        "  --input-path qiime2/feature-table.biom --output-path feature-table.qza",
        "qiime tools import --type 'FeatureData[Taxonomy]' --input-format TSVTaxonomyFormat \\",
        "  --input-path qiime2/taxonomy.tsv --output-path taxonomy.qza",
        "```",
        "",
        "and pass `--m-metadata-file qiime2/sample-metadata.tsv` to any action that takes metadata.",
        "",
        "## phyloseq (`phyloseq/`)",
        "",
        "| file | content |",
        "|---|---|",
        "| `otu_table.tsv` | features x samples (`taxa_are_rows = TRUE`) |",
        "| `tax_table.tsv` | Kingdom, Phylum, Class, Order, Family, Genus, Species; `NA` where unnamed |",
        "| `sample_data.tsv` | the sample metadata above; `NA` for missing, `TRUE`/`FALSE` for yes/no |",
    ]
    if has_tree:
        lines.append("| `tree.nwk` | Newick tree pruned to the kept features |")
    lines += [
        "| `README.md` | these files and the R lines below |",
        "",
        "```r",
        snippet,
        "```",
        "",
        "## MaAsLin (`maaslin/<method>/all_results.tsv`)",
        "",
        "Each differential-abundance method's results in MaAsLin 2's `all_results.tsv` layout "
        f"({', '.join(f'`{c}`' for c in maaslin.COLUMNS)}; tab-separated), one row per tested "
        f"taxon, ordered by q-value: `metadata` is `status` and `value` `{info['case_label']}` (vs "
        f"`{info['control_label']}`). `coef` is the method's own effect, on its scale:",
        "",
        "| method | `coef` is |",
        "|---|---|",
    ]
    for method, table in sorted(method_tables.items()):
        scale = str(table["scale"].iloc[0]) if "scale" in table.columns and len(table) else ""
        lines.append(f"| `{method}` | {scale} |")
    lines += [
        "",
        "The full tables, with every method's own columns, are `differential/<method>.tsv`.",
        "",
    ]
    return "\n".join(lines)
