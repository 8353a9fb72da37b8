# Provenance of the run and the self-contained HTML report (both read every stage's outputs).


rule provenance:
    input:
        list(FINAL_OUTPUTS),
    output:
        out("provenance.json"),
    log:
        log_path("provenance"),
    benchmark:
        benchmark_path("provenance")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: mem_mb(1, attempt),
        runtime=lambda wildcards, attempt: runtime(1, attempt),
    params:
        py=PY,
        config=as_json(config),
        outdir=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "{params.py} workflow_scripts.provenance --config {params.config:q}"
        " --outdir {params.outdir} --out {output} {input} > {log} 2>&1"


FINAL_OUTPUTS.append(out("provenance.json"))


rule report:
    input:
        list(FINAL_OUTPUTS),
    output:
        report(
            out("report/report.html"),
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
        mem_mb=lambda wildcards, attempt: mem_mb(1, attempt),
        runtime=lambda wildcards, attempt: runtime(1, attempt),
    params:
        py=PY,
        outdir=lambda wildcards, output: Path(output[0]).parent.parent,
    shell:
        "{params.py} workflow_scripts.report.build --outdir {params.outdir} --out {output} > {log} 2>&1"


FINAL_OUTPUTS.append(out("report/report.html"))
