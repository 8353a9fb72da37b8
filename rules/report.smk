# Provenance of the run and the self-contained HTML report (both read every stage's outputs).
# Their inputs are functions (stage_outputs, report_inputs in common.smk), evaluated after
# every rule file is included, so they see every stage's outputs whatever the include order.

STAGE_OUTPUTS["report"] = {
    "provenance": out("provenance.json"),
    "report": out("report/report.html"),
}


rule provenance:
    input:
        stage_outputs,
    output:
        STAGE_OUTPUTS["report"]["provenance"],
    log:
        log_path("provenance"),
    benchmark:
        benchmark_path("provenance")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        config=as_json(config),
        outdir=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "{params.py} workflow_scripts.provenance --config {params.config:q}"
        " --outdir {params.outdir:q} --out {output:q} --log {log:q} {input:q}"


rule report:
    input:
        unpack(report_inputs),
    output:
        report(
            STAGE_OUTPUTS["report"]["report"],
            caption="../resources/report/report.rst",
            category="Report",
        ),
    log:
        log_path("report"),
    benchmark:
        benchmark_path("report")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
    shell:
        "{params.py} workflow_scripts.report.build --cohort-info {input.cohort_info:q}"
        " --participants {input.participants:q} --ledger {input.ledger:q}"
        " --alpha-tests {input.alpha_tests:q} --permanova {input.permanova:q}"
        " --permdisp {input.permdisp:q} --alpha-figure {input.alpha_figure:q}"
        " --pcoa-figures {input.pcoa_figures:q} --consensus {input.consensus:q}"
        " --differential-figures {input.differential_figures:q}"
        " --associations {input.associations:q}"
        " --association-summary {input.association_summary:q}"
        " --association-figures {input.association_figures:q}"
        " --classification {input.classification:q} --provenance {input.provenance:q}"
        " --out {output:q} --log {log:q}"
