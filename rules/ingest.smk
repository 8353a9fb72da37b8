# Ingest: validate every input in one pass, write the ledger and the harmonised cohort.

STAGE_OUTPUTS["ingest"] = {
    "ledger": out("ingest/ledger.tsv"),
    "cohort": cohort_outputs(),
}


rule ingest:
    input:
        **INPUTS,
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
        # The dosage and abundance matrices parsed from the inputs: about 25x the size of a
        # bgzipped VCF plus a BIOM table (1.4 GB for 4,000 participants x 10,000 variants).
        mem_mb=job_mem_mb(extra=lambda input: 25 * input.size_mb),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=as_json(ingest_settings()),
        cohort_dir=lambda wildcards, output: Path(output.cohort[0]).parent,
    shell:
        "{params.py} workflow_scripts.ingest.cli --settings {params.settings:q}"
        " --ledger {output.ledger:q} --cohort {params.cohort_dir:q} --log {log:q}"
