"""Synthetic iMSMS-style cohorts with planted truth, for tests, demos and calibration.

Typical use::

    from workflow_scripts.synthetic import generate, write
    cohort = generate(n_households=300, seed=7)
    paths = write(cohort, "cohort/", abundance_format="tsv", genotype_format="vcf")

or from the shell: ``imsms-synthetic --outdir cohort/ --households 300 --seed 7``
(``python -m workflow_scripts.synthetic`` works too).

The workflow's bundled cohort (``resources/synthetic/``) is :func:`bundled`, i.e.::

    imsms-synthetic --outdir resources/synthetic --households 24 --unpaired 4 --sites 3 \\
        --species 60 --variants 40 --seed 1 --edge-cases \\
        --abundance-format biom --genotype-format vcf.gz
"""

from .cli import main
from .model import CLASSES, LEDGER_REASONS, PROGRESSION_CLASSES, Cohort, generate
from .writers import ABUNDANCE_FILES, ABUNDANCE_FORMATS, GENOTYPE_FILES, GENOTYPE_FORMATS, write

#: Arguments of :func:`generate` for the cohort bundled with the workflow.
BUNDLED = dict(n_households=24, n_unpaired=4, n_sites=3, n_species=60, n_variants=40,
               repeat_fraction=0.2, seed=1, edge_cases=True)
#: Formats of the bundled cohort.
BUNDLED_FORMATS = dict(abundance_format="biom", genotype_format="vcf.gz")


def bundled(outdir=None):
    """The workflow's bundled cohort; written to ``outdir`` when given.

    Parameters
    ----------
    outdir : str or path-like, optional
        Where to write it (``resources/synthetic`` in the repository).

    Returns
    -------
    Cohort or dict of str to pathlib.Path
        The cohort, or the written paths when ``outdir`` is given.
    """
    cohort = generate(**BUNDLED)
    return cohort if outdir is None else write(cohort, outdir, **BUNDLED_FORMATS)


__all__ = [
    "ABUNDANCE_FILES", "ABUNDANCE_FORMATS", "BUNDLED", "BUNDLED_FORMATS", "CLASSES", "Cohort",
    "GENOTYPE_FILES", "GENOTYPE_FORMATS", "LEDGER_REASONS", "PROGRESSION_CLASSES", "bundled", "generate", "main",
    "write",
]
