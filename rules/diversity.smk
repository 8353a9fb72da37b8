# Diversity: alpha, beta, ordination, PERMANOVA and PERMDISP, with figures.


validate_section("diversity")


FINAL_OUTPUTS.extend(
    [
        out("diversity/alpha.tsv"),
        out("diversity/alpha_tests.tsv"),
        out("diversity/permanova.tsv"),
        out("diversity/permdisp.tsv"),
        out("diversity/figures/alpha.png"),
    ]
    + expand(out("diversity/beta_{metric}.tsv"), metric=diversity_metrics())
    + expand(out("diversity/figures/pcoa_{metric}.png"), metric=diversity_metrics())
)


rule diversity:
    input:
        cohort_outputs(),
    output:
        alpha=out("diversity/alpha.tsv"),
        alpha_tests=out("diversity/alpha_tests.tsv"),
        permanova=out("diversity/permanova.tsv"),
        permdisp=out("diversity/permdisp.tsv"),
        ledger=out("diversity/ledger.tsv"),
        beta=expand(out("diversity/beta_{metric}.tsv"), metric=diversity_metrics()),
        pcoa=expand(out("diversity/pcoa_{metric}.txt"), metric=diversity_metrics()),
        alpha_figure=report(
            out("diversity/figures/alpha.png"),
            caption="../resources/report/alpha.rst",
            category="Diversity",
        ),
        pcoa_figures=report(
            expand(
                out("diversity/figures/pcoa_{metric}.png"), metric=diversity_metrics()
            ),
            caption="../resources/report/pcoa.rst",
            category="Diversity",
        ),
    log:
        log_path("diversity"),
    conda:
        "../envs/workflow.yaml"
    threads: 2
    resources:
        # One participants x participants distance matrix per metric, 8 bytes a cell, kept
        # with its ordination (1.3 GB at 4,000 participants); time: see diversity_minutes.
        mem_mb=lambda wildcards, input, attempt: mem_mb(
            2, attempt, extra_mb=16e-6 * diversity_cells(input)
        ),
        runtime=lambda wildcards, input, attempt: runtime(
            1, attempt, extra_min=diversity_minutes(input)
        ),
    params:
        py=PY,
        settings=as_json(diversity_settings()),
        cohort_dir=lambda wildcards, input: Path(input[0]).parent,
        outdir=lambda wildcards, output: Path(output.alpha).parent,
    shell:
        "{params.py} workflow_scripts.diversity.cli --cohort {params.cohort_dir}"
        " --settings {params.settings:q} --outdir {params.outdir} --log {log}"
