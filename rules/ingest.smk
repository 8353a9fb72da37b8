# Ingest: validate every input in one pass, write the ledger and the harmonised cohort.

FINAL_OUTPUTS.extend(ingest_outputs())


rule ingest:
    input:
        **INPUTS,
    output:
        ledger=out("ingest/ledger.tsv"),
        cohort=cohort_outputs(),
    log:
        log_path("ingest"),
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: mem_mb(1, attempt),
        runtime=config["resources"]["runtime"],
    params:
        py=PY,
        settings=as_json(ingest_settings()),
        cohort_dir=lambda wildcards, output: Path(output.cohort[0]).parent,
    shell:
        "{params.py} workflow_scripts.ingest.cli --settings {params.settings:q}"
        " --ledger {output.ledger} --cohort {params.cohort_dir} --log {log}"
