"""Genome-scale building blocks, shared by any stage: they know no stage and read no file.

- :mod:`.fdr` - Benjamini-Hochberg over all tests without holding them (exact).
- :mod:`.inflation` - genomic inflation (lambda GC) per group, streamed; QQ plot points.
- :mod:`.clump` - lead variants by distance clumping, per taxon.
- :mod:`.hurdle` - the MiBioGen-style hurdle model over variants x taxa.
- :mod:`.qc` - per-chunk imputation-quality filter and chunk planning.

Summary statistics on disk (Parquet) live in :mod:`workflow_scripts.io.sumstats`.
"""
