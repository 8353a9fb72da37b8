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
    benchmark:
        benchmark_path("ingest")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        # The dosage and abundance matrices parsed from the inputs: about 25x the size of a
        # bgzipped VCF plus a BIOM table (1.4 GB for 4,000 participants x 10,000 variants).
        mem_mb=lambda wildcards, input, attempt: mem_mb(
            1, attempt, extra_mb=25 * input.size_mb
        ),
        runtime=lambda wildcards, attempt: runtime(1, attempt),
    params:
        py=PY,
        settings=as_json(ingest_settings()),
        cohort_dir=lambda wildcards, output: Path(output.cohort[0]).parent,
    shell:
        "{params.py} workflow_scripts.ingest.cli --settings {params.settings:q}"
        " --ledger {output.ledger} --cohort {params.cohort_dir} --log {log}"
