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


rule diversity_alpha:
    input:
        cohort_outputs(),
    output:
        alpha=out("diversity/alpha.tsv"),
        alpha_tests=out("diversity/alpha_tests.tsv"),
        ledger=out("diversity/ledger.tsv"),
        alpha_figure=report(
            out("diversity/figures/alpha.png"),
            caption="../resources/report/alpha.rst",
            category="Diversity",
        ),
    log:
        log_path("diversity_alpha"),
    benchmark:
        benchmark_path("diversity_alpha")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, input, attempt: mem_mb(
            2, attempt, extra_mb=diversity_mb(input)
        ),
        runtime=lambda wildcards, input, attempt: runtime(1, attempt),
    params:
        py=PY,
        settings=as_json(diversity_settings()),
        cohort_dir=lambda wildcards, input: Path(input[0]).parent,
        outdir=lambda wildcards, output: Path(output.alpha).parent,
    shell:
        "{params.py} workflow_scripts.diversity.cli alpha --cohort {params.cohort_dir}"
        " --settings {params.settings:q} --outdir {params.outdir} --log {log}"


# One job per beta metric: a cluster runs them side by side.
rule diversity_beta:
    input:
        cohort_outputs(),
    output:
        beta=out("diversity/beta_{metric}.tsv"),
        pcoa=out("diversity/pcoa_{metric}.txt"),
        permanova=out("diversity/parts/permanova_{metric}.tsv"),
        permdisp=out("diversity/parts/permdisp_{metric}.tsv"),
        figure=report(
            out("diversity/figures/pcoa_{metric}.png"),
            caption="../resources/report/pcoa.rst",
            category="Diversity",
        ),
    log:
        log_path("diversity_beta_{metric}"),
    benchmark:
        benchmark_path("diversity_beta_{metric}")
    wildcard_constraints:
        metric="|".join(diversity_metrics()) or "none",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        # A participants x participants distance matrix, its eigenvectors and
        # temporaries; time: see diversity_minutes.
        mem_mb=lambda wildcards, input, attempt: mem_mb(
            2, attempt, extra_mb=diversity_mb(input)
        ),
        runtime=lambda wildcards, input, attempt: runtime(
            1, attempt, extra_min=diversity_minutes(input)
        ),
    params:
        py=PY,
        settings=as_json(diversity_settings()),
        cohort_dir=lambda wildcards, input: Path(input[0]).parent,
        outdir=lambda wildcards, output: Path(output.beta).parent,
    shell:
        "NUMBA_NUM_THREADS={threads} {params.py} workflow_scripts.diversity.cli beta"
        " --metric {wildcards.metric} --cohort {params.cohort_dir}"
        " --settings {params.settings:q} --outdir {params.outdir} --log {log}"


rule diversity_tests:
    input:
        permanova=expand(
            out("diversity/parts/permanova_{metric}.tsv"), metric=diversity_metrics()
        ),
        permdisp=expand(
            out("diversity/parts/permdisp_{metric}.tsv"), metric=diversity_metrics()
        ),
    output:
        permanova=out("diversity/permanova.tsv"),
        permdisp=out("diversity/permdisp.tsv"),
    log:
        log_path("diversity_tests"),
    benchmark:
        benchmark_path("diversity_tests")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: mem_mb(1, attempt),
        runtime=lambda wildcards, attempt: runtime(1, attempt),
    params:
        py=PY,
        settings=as_json(diversity_settings()),
        outdir=lambda wildcards, output: Path(output.permanova).parent,
    shell:
        "{params.py} workflow_scripts.diversity.cli gather"
        " --settings {params.settings:q} --outdir {params.outdir} --log {log}"
