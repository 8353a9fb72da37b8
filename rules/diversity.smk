# Diversity: alpha, beta, ordination, PERMANOVA and PERMDISP, within-participant stability,
# with figures. Per-metric test parts are hand-offs under intermediate/diversity/.

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
    "stability": out("diversity/stability.tsv"),
    "stability_summary": out("diversity/stability.json"),
    "stability_figure": out("diversity/figures/stability.png"),
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
        permanova=out("intermediate/diversity/permanova_{metric}.tsv"),
        permdisp=out("intermediate/diversity/permdisp_{metric}.tsv"),
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
            out("intermediate/diversity/permanova_{metric}.tsv"),
            metric=diversity_metrics(),
        ),
        permdisp=expand(
            out("intermediate/diversity/permdisp_{metric}.tsv"),
            metric=diversity_metrics(),
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


# Every stool sample of the participants who gave several: ICC and presence agreement per taxon
# (skipped with a note in stability.json when no participant has two samples).
rule diversity_stability:
    input:
        cohort=cohort_outputs(),
    output:
        stability=out("diversity/stability.tsv"),
        summary=out("diversity/stability.json"),
        figure=report(
            out("diversity/figures/stability.png"),
            caption="../resources/report/stability.rst",
            category="Diversity",
        ),
    log:
        log_path("diversity_stability"),
    benchmark:
        benchmark_path("diversity_stability")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(2),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=as_json(diversity_settings()),
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.diversity.cli stability --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --stability {output.stability:q}"
        " --summary {output.summary:q} --figure {output.figure:q} --log {log:q}"
