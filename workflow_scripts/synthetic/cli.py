"""Command line: ``imsms-synthetic --outdir DIR [options]``."""

from __future__ import annotations

import argparse

from .model import generate
from .writers import ABUNDANCE_FORMATS, ALL_GENOTYPE_FORMATS, write


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="imsms-synthetic",
        description="Write a synthetic iMSMS-style cohort (MS patients with household controls) "
                    "with planted truth tables.",
    )
    p.add_argument("--outdir", required=True, help="directory to write into (created if missing)")
    p.add_argument("--households", type=int, default=24, help="MS/HHC households (default 24)")
    p.add_argument("--unpaired", type=int, default=4, help="participants without household (default 4)")
    p.add_argument("--sites", type=int, default=3, help="recruitment sites (default 3)")
    p.add_argument("--species", type=int, default=60, help="species, >= 10 (default 60)")
    p.add_argument("--variants", type=int, default=40, help="host variants (default 40)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--repeat-fraction", type=float, default=0.2,
                   help="fraction of participants with repeated stool samples (default 0.2)")
    p.add_argument("--samples-per-participant", type=int, default=None, metavar="K",
                   help="give every participant K stool samples, a few months apart (overrides --repeat-fraction)")
    p.add_argument("--within-sd", type=float, default=0.3,
                   help="SD of each stool sample's within-person noise on the latent log scale (default 0.3)")
    p.add_argument("--time-correlation", type=float, default=0.0,
                   help="lag-one correlation of the within-person noise over visits, AR(1) (default 0)")
    p.add_argument("--presence-turnover", type=float, default=0.0,
                   help="probability that a species' presence is drawn anew in each sample (default 0)")
    p.add_argument("--effect-size", type=float, default=1.0,
                   help="natural-log disease effect of planted species (default 1.0)")
    p.add_argument("--severity-effect", type=float, default=0.8,
                   help="natural-log change of severity-linked species per unit of latent severity "
                        "(MS only; default 0.8)")
    p.add_argument("--abundance-format", choices=ABUNDANCE_FORMATS, default="biom")
    p.add_argument("--genotype-format", choices=ALL_GENOTYPE_FORMATS, default="vcf.gz",
                   help="vcf, vcf.gz, dosage (TSV), bcf (with CSI index), plink (.bed/.bim/.fam of the hard "
                        "calls) or bgen (with .sample); default vcf.gz")
    p.add_argument("--genotype-index", action="store_true", help="with vcf.gz: also write the tabix index")
    p.add_argument("--null", action="store_true", help="no disease, DMT, severity or genotype effects (calibration)")
    p.add_argument("--edge-cases", action="store_true", help="plant the exclusions listed in truth_ledger.tsv")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success)."""
    args = _parser().parse_args(argv)
    if args.genotype_index and args.genotype_format != "vcf.gz":
        _parser().error("--genotype-index applies to --genotype-format vcf.gz (bcf always gets its CSI index)")
    try:
        cohort = generate(
            n_households=args.households, n_unpaired=args.unpaired, n_sites=args.sites,
            n_species=args.species, n_variants=args.variants, repeat_fraction=args.repeat_fraction,
            seed=args.seed, null=args.null, edge_cases=args.edge_cases, effect_size=args.effect_size,
            severity_effect=args.severity_effect, samples_per_participant=args.samples_per_participant,
            within_sd=args.within_sd, time_correlation=args.time_correlation,
            presence_turnover=args.presence_turnover,
        )
    except ValueError as err:
        _parser().error(str(err))
    paths = write(cohort, args.outdir, abundance_format=args.abundance_format,
                  genotype_format=args.genotype_format, genotype_index=args.genotype_index)
    for name, path in sorted(paths.items()):
        print(f"{name}\t{path}")
    return 0
