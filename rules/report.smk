# Provenance of the run (and, later, the classification and the HTML report).


rule provenance:
    input:
        list(FINAL_OUTPUTS),
    output:
        out("provenance.json"),
    params:
        py=PY,
        config=as_json(config),
        outdir=lambda wildcards, output: Path(output[0]).parent,
    log:
        log_path("provenance"),
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: mem_mb(1, attempt),
        runtime=config["resources"]["runtime"],
    conda:
        "../envs/workflow.yaml"
    shell:
        "{params.py} workflow_scripts.provenance --config {params.config:q}"
        " --outdir {params.outdir} --out {output} {input} > {log} 2>&1"


FINAL_OUTPUTS.append(out("provenance.json"))
