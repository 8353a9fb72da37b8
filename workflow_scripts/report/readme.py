"""``README.md`` of a results folder: what each file is, for the files this run wrote.

:data:`DESCRIPTIONS` is the one table of what every output is (a glob under
outdir and a sentence); a stage that adds an output adds its line here
(``tests/test_report.py`` fails on a file of the bundled run without one).
Only files that exist are listed; ``logs/``, ``benchmarks/`` and
``intermediate/`` (job-to-job hand-offs) are described as folders.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

#: Folders described once rather than file by file.
FOLDERS = {
    "logs": "one log per job: what it read and wrote, warnings, and for a failed job the error",
    "benchmarks": "per-job wall time, memory and CPU time (Snakemake `benchmark:`)",
    "intermediate": "files one job hands to the next, not meant for reading; safe to delete after the run",
}

DESCRIPTIONS = (
    ("README.md", "this file"),
    ("provenance.json", "the configuration, seed, package versions and the checksum of every input and output"),
    ("report/report.html", "**the report**: findings first, one self-contained page (opens offline)"),
    ("ingest/ledger.tsv", "every input participant, sample, feature and variant: kept, or dropped with the reason"),
    ("ingest/cohort/cohort.json", "the harmonised cohort: labels, counts, settings and input checksums"),
    ("ingest/cohort/participants.tsv", "kept participants with their attributes (`paired`: the household has a "
                                       "patient and a control)"),
    ("ingest/cohort/samples.tsv", "kept stool samples with their participant's attributes"),
    ("ingest/cohort/features.biom", "abundance of every kept feature (BIOM 2.1)"),
    ("ingest/cohort/taxa.biom", "abundance at the analysis rank (BIOM 2.1)"),
    ("ingest/cohort/taxonomy.tsv", "lineage and analysis-rank taxon of every feature"),
    ("ingest/cohort/tree.nwk", "the phylogeny pruned to the kept features"),
    ("ingest/cohort/genotypes.npy", "dosages, variants x participants (NumPy)"),
    ("ingest/cohort/variants.tsv", "variant annotation"),
    ("ingest/cohort/genotype_samples.tsv", "the genotyped blood samples analysed: file column and participant"),
    ("ingest/cohort/genotype_access/*", "what ingest built once so every association job reads only its part of "
                                        "the genotype file (an index, BGEN offsets); not meant for reading"),
    ("diversity/alpha.tsv", "alpha diversity of every kept stool sample"),
    ("diversity/alpha_tests.tsv", "alpha diversity, patients vs household controls (paired Wilcoxon, mixed model)"),
    ("diversity/beta_*.tsv", "distance matrix of one beta-diversity metric (scikit-bio DistanceMatrix layout)"),
    ("diversity/pcoa_*.txt", "principal coordinates of one metric (scikit-bio OrdinationResults)"),
    ("diversity/permanova.tsv", "PERMANOVA per metric and term"),
    ("diversity/permdisp.tsv", "PERMDISP (dispersion by status) per metric"),
    ("diversity/stability.tsv", "within-participant stability of every taxon over repeated stool samples "
                                "(ICC, presence agreement)"),
    ("diversity/stability.json", "the stability report's summary (participants with repeated samples, medians)"),
    ("diversity/ledger.tsv", "samples the diversity stage set aside, with the reason"),
    ("diversity/parts/*", "a job-to-job hand-off (one metric's PERMANOVA or PERMDISP before they are gathered); "
                          "not meant for reading"),
    ("diversity/figures/*", "diversity figures (alpha by status with household pairs, ordinations)"),
    ("differential/primary.tsv", "the primary test of every taxon (components A, B, C, their combination, q), "
                                 "with the design, the repeated-samples policy and the samples it used"),
    ("differential/consensus.tsv", "one call per taxon across methods, with every method's effect and q, the site "
                                   "meta-analysis and the pseudo-count check"),
    ("differential/calibration.tsv", "the stage's error rates measured on this cohort: null type-I error, "
                                     "false-discovery rate and power on implanted effects"),
    ("differential/features.tsv", "the tested taxa with prevalence and mean abundance by status"),
    ("differential/ledger.tsv", "taxa and participants the stage left out or treated specially, with the reason"),
    ("differential/sensitivity.tsv", "effects refitted with other pseudo-counts"),
    ("differential/site_effects.tsv", "LinDA effect of every taxon within every site"),
    ("differential/site_meta.tsv", "random-effects meta-analysis over sites, I², leave-one-site-out"),
    ("differential/treatment_effects.tsv", "effect of every therapy on every taxon"),
    ("differential/figures/*", "differential-abundance figures (volcano per method, agreement between methods)"),
    ("differential/*.tsv", "one differential-abundance method: effect, SE, p, q per taxon"),
    ("classification/species_classification.tsv", "every taxon's class (high-risk, protective, neutral), the "
                                                  "reason and the evidence"),
    ("association/genotype_species.tsv", "genotype main effect and genotype x MS interaction per variant x taxon"),
    ("association/sumstats/*", "complete summary statistics, one parquet file per chunk"),
    ("association/variant_qc.tsv", "every variant's QC (MAF, call rate, Hardy-Weinberg)"),
    ("association/variant_summary.tsv", "per variant: its strongest taxon and number of significant taxa"),
    ("association/heatmap.tsv", "the variant x taxon pairs drawn in the heatmap"),
    ("association/inflation.tsv", "genomic inflation (lambda) per test kind and taxon"),
    ("association/lead_variants.tsv", "the lead variant of every associated locus per taxon (clumped by distance)"),
    ("association/sumstats.tsv", "the index of the summary-statistics Parquet files: chunk, regions, tests, checksum"),
    ("association/summary.json", "the association stage's summary (counts, settings, warnings)"),
    ("association/summary.md", "the association stage's summary in words"),
    ("association/ledger.tsv", "participants and variants the association stage left out, with the reason"),
    ("association/prepared/*", "a job-to-job hand-off (the prepared association inputs); not meant for reading"),
    ("association/figures/*", "association figures (Manhattan, QQ, heatmap)"),
    ("clinical/associations.tsv", "within patients: every taxon against every clinical axis"),
    ("clinical/scores.tsv", "EDSS, ARMSS and MSSS of every patient"),
    ("clinical/summary.json", "the clinical stage's summary: axes tested or skipped and why, reference models, "
                              "calls"),
    ("clinical/summary.md", "the clinical stage's summary in words"),
    ("clinical/*.tsv", "a table of the clinical stage"),
    ("clinical/figures/*", "clinical figures"),
    ("export/README.md", "what each export file is and how to load it"),
    ("export/qiime2/*", "for QIIME 2: sample metadata, taxonomy and BIOM tables with metadata"),
    ("export/phyloseq/*", "for phyloseq (R): OTU table, tax table, sample data, tree"),
    ("export/maaslin/*/all_results.tsv", "one differential method in MaAsLin 2's all_results.tsv layout"),
)

TITLES = {"": "Run", "report": "Report", "ingest": "Ingest: validated, harmonised cohort", "diversity": "Diversity",
          "differential": "Differential abundance", "classification": "Classification",
          "association": "Genotype x microbiota association", "clinical": "Clinical severity", "export": "Exports"}


def describe(rel: str) -> str | None:
    """The description of the output at ``rel`` (posix, relative to outdir), or None."""
    for pattern, text in DESCRIPTIONS:
        if fnmatch.fnmatchcase(rel, pattern):
            return text
    return None


def readme_text(root: Path) -> str:
    """The README of the results folder ``root`` as it is now."""
    root = Path(root)
    files = sorted({p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} | {"README.md"})
    groups: dict[str, list[str]] = {}
    folders = {}
    for rel in files:
        top = rel.split("/", 1)[0] if "/" in rel else ""
        if top in FOLDERS:
            folders[top] = folders.get(top, 0) + 1
            continue
        groups.setdefault(top, []).append(rel)
    lines = ["# Results", "",
             "Written by the workflow at the end of the run; it lists the files this run wrote. Start with "
             "[`report/report.html`](report/report.html). Tables are tab-separated UTF-8 with a header; an empty "
             "cell is a missing value.", ""]
    order = [t for t in TITLES if t in groups] + sorted(t for t in groups if t not in TITLES)
    for top in order:
        lines += [f"## {TITLES.get(top, top)}", "", "| file | what it is |", "|---|---|"]
        for rel in groups[top]:
            lines.append(f"| [`{rel}`]({rel}) | {describe(rel) or 'no description yet'} |")
        lines.append("")
    if folders:
        lines += ["## Folders", "", "| folder | what it holds |", "|---|---|"]
        for name, count in sorted(folders.items()):
            lines.append(f"| `{name}/` ({count} files) | {FOLDERS[name]} |")
        lines.append("")
    return "\n".join(lines)


def write_readme(root: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(readme_text(root), encoding="utf-8")
