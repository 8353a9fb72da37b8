# Classification: every taxon protective, neutral or high-risk, with its evidence. It reads
# the other stages' result files (never their code).

STAGE_OUTPUTS["classification"] = {
    "classification": out("classification/species_classification.tsv")
}


rule classification:
    input:
        consensus=out("differential/consensus.tsv"),
        primary=out("differential/primary.tsv"),
        calibration=out("differential/calibration.tsv"),
        site_effects=out("differential/site_effects.tsv"),
        treatment=out("differential/treatment_effects.tsv"),
        untested=out("differential/ledger.tsv"),
        # With genotypes: the genotype x MS interactions and the variants' labels.
        associations=(
            [out("association/genotype_species.tsv")] if HAS_GENOTYPES else []
        ),
        variants=[cohort_file("variants.tsv")] if HAS_GENOTYPES else [],
        # The clinical stage's progression_class per taxon.
        progression=out("clinical/progression.tsv"),
    output:
        out("classification/species_classification.tsv"),
    log:
        log_path("classification"),
    benchmark:
        benchmark_path("classification")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=as_json(config["classification"]),
    shell:
        "{params.py} workflow_scripts.classification.cli --consensus {input.consensus:q}"
        " --primary {input.primary:q} --calibration {input.calibration:q}"
        " --site-effects {input.site_effects:q}"
        " --treatment {input.treatment:q} --untested {input.untested:q}"
        " --associations {input.associations:q} --variants {input.variants:q}"
        " --progression {input.progression:q}"
        " --settings {params.settings:q} --out {output:q} --log {log:q}"
