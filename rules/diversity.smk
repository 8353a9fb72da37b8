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
        # Distance matrices grow with the square of the number of samples.
        mem_mb=lambda wildcards, attempt: mem_mb(2, attempt),
        runtime=config["resources"]["runtime"],
    params:
        py=PY,
        settings=as_json(diversity_settings()),
        cohort_dir=lambda wildcards, input: Path(input[0]).parent,
        outdir=lambda wildcards, output: Path(output.alpha).parent,
    shell:
        "{params.py} workflow_scripts.diversity.cli --cohort {params.cohort_dir}"
        " --settings {params.settings:q} --outdir {params.outdir} --log {log}"
