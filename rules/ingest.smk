# Ingest: validate every input in one pass, write the ledger and the harmonised cohort.


rule ingest:
    input:
        **INPUTS,
    output:
        ledger=out("ingest/ledger.tsv"),
        cohort=cohort_outputs(),
    params:
        settings=as_json(ingest_settings()),
        cohort_dir=out("ingest/cohort"),
    log:
        log_path("ingest"),
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: mem_mb(1, attempt),
        runtime=config["resources"]["runtime"],
    conda:
        "../envs/workflow.yaml"
    shell:
        "python -m workflow_scripts.ingest.cli --settings {params.settings:q}"
        " --ledger {output.ledger} --cohort {params.cohort_dir} --log {log}"
