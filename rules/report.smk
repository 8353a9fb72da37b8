# Provenance of the run, the self-contained HTML report and the results folder's README.md
# (they read every stage's declared outputs). Their input is a function (stage_outputs in
# common.smk), evaluated after every rule file is included, so they see every stage's outputs
# whatever the include order; the report finds each file by its path under outdir.

STAGE_OUTPUTS["report"] = {
    "provenance": out("provenance.json"),
    "report": out("report/report.html"),
    "readme": out("README.md"),
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
        files=stage_outputs,
        provenance=STAGE_OUTPUTS["report"]["provenance"],
    output:
        report=report(
            STAGE_OUTPUTS["report"]["report"],
            caption="../resources/report/report.rst",
            category="Report",
        ),
        readme=STAGE_OUTPUTS["report"]["readme"],
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
        # README.md sits at the top of the output directory.
        results=lambda wildcards, output: Path(output.readme).parent,
    shell:
        "{params.py} workflow_scripts.report.build --results {params.results:q}"
        " --files {input.files:q} {input.provenance:q} --out {output.report:q}"
        " --readme {output.readme:q} --log {log:q}"
