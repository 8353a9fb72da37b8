# Diversity: alpha, beta, ordination, PERMANOVA and PERMDISP, with figures.

STAGE_OUTPUTS["diversity"] = {
    "alpha": out("diversity/alpha.tsv"),
    "alpha_tests": out("diversity/alpha_tests.tsv"),
    "permanova": out("diversity/permanova.tsv"),
    "permdisp": out("diversity/permdisp.tsv"),
    "alpha_figure": out("diversity/figures/alpha.png"),
    "distances": expand(out("diversity/beta_{metric}.tsv"), metric=diversity_metrics()),
    "pcoa_figures": expand(
        out("diversity/figures/pcoa_{metric}.png"), metric=diversity_metrics()
    ),
}


rule diversity_alpha:
    input:
        cohort=cohort_outputs(),
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
        mem_mb=job_mem_mb(2, extra=diversity_mb),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=as_json(diversity_settings()),
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.diversity.cli alpha --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --alpha {output.alpha:q}"
        " --alpha-tests {output.alpha_tests:q} --ledger {output.ledger:q}"
        " --figure {output.alpha_figure:q} --log {log:q}"


# One job per beta metric: a cluster runs them side by side.
rule diversity_beta:
    input:
        cohort=cohort_outputs(),
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
        mem_mb=job_mem_mb(2, extra=diversity_mb),
        runtime=job_runtime(extra=diversity_minutes),
    params:
        py=PY,
        settings=as_json(diversity_settings()),
        cohort_dir=cohort_dir,
    shell:
        "NUMBA_NUM_THREADS={threads} {params.py} workflow_scripts.diversity.cli beta"
        " --metric {wildcards.metric:q} --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --distances {output.beta:q}"
        " --ordination {output.pcoa:q} --permanova {output.permanova:q}"
        " --permdisp {output.permdisp:q} --figure {output.figure:q} --log {log:q}"


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
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
    shell:
        "{params.py} workflow_scripts.diversity.cli gather"
        " --permanova-parts {input.permanova:q} --permdisp-parts {input.permdisp:q}"
        " --permanova {output.permanova:q} --permdisp {output.permdisp:q} --log {log:q}"
