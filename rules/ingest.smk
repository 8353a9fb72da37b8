# Ingest: validate every input in one pass, write the ledger and the harmonised cohort.

STAGE_OUTPUTS["ingest"] = {
    "ledger": out("ingest/ledger.tsv"),
    "cohort": cohort_outputs(),
}


rule ingest:
    input:
        **INPUTS,
        genotype_companions=genotype_companions(),
    output:
        **STAGE_OUTPUTS["ingest"],
    log:
        log_path("ingest"),
    benchmark:
        benchmark_path("ingest")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        # The abundance matrix and the genotype file's variant table (its dosages are not
        # loaded): a few times the BIOM table, plus about 500 bytes per variant.
        mem_mb=job_mem_mb(extra=lambda input: ingest_mb(input)),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=as_json(ingest_settings()),
        cohort_dir=lambda wildcards, output: Path(output.cohort[0]).parent,
    shell:
        "{params.py} workflow_scripts.ingest.cli --settings {params.settings:q}"
        " --ledger {output.ledger:q} --cohort {params.cohort_dir:q} --log {log:q}"
