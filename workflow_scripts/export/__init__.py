"""Exports: the cohort and the results shaped for QIIME 2, phyloseq and MaAsLin users.

Layout of ``<outdir>/export/`` (:func:`~workflow_scripts.export.bundle.export_files`):

- ``README.md``                       what each file is and how to load it;
- ``qiime2/sample-metadata.tsv``      QIIME 2 metadata (``sample-id``, ``#q2:types``);
- ``qiime2/taxonomy.tsv``             ``Feature ID``, ``Taxon`` (``Confidence`` when known);
- ``qiime2/feature-table.biom``       BIOM 2.1, sample metadata and taxonomy embedded;
- ``qiime2/taxa-taxonomy.tsv``, ``qiime2/taxa-table.biom``  the same at the analysis rank;
- ``phyloseq/otu_table.tsv``, ``tax_table.tsv``, ``sample_data.tsv``, ``tree.nwk``
  (with a tree) and ``README.md`` with the two R lines that load them;
- ``maaslin/<method>/all_results.tsv``  each differential method in MaAsLin 2's layout.

The package reads nothing itself: :func:`~workflow_scripts.export.bundle.write_exports`
takes the cohort and the method tables; :mod:`workflow_scripts.export.cli` reads them.
"""
