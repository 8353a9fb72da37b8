# Classification: every taxon protective, neutral or high-risk, with its evidence.


validate_section("classification")


rule classification:
    input:
        cohort=cohort_outputs(),
        consensus=out("differential/consensus.tsv"),
        primary=out(f"differential/{config['classification']['primary_method']}.tsv"),
        sites=out("differential/site_effects.tsv"),
        treatment=out("differential/treatment_effects.tsv"),
        ledger=out("differential/ledger.tsv"),
        associations=(
            [out("association/genotype_species.tsv")] if HAS_GENOTYPES else []
        ),
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
        mem_mb=lambda wildcards, attempt: mem_mb(1, attempt),
        runtime=lambda wildcards, attempt: runtime(1, attempt),
    params:
        py=PY,
        settings=as_json(config["classification"]),
        cohort_dir=lambda wildcards, input: Path(input.cohort[0]).parent,
        differential=lambda wildcards, input: Path(input.consensus).parent,
        association=lambda wildcards, input: (
            f"--association {Path(input.associations[0]).parent}"
            if input.associations
            else ""
        ),
    shell:
        "{params.py} workflow_scripts.classification.cli --differential {params.differential}"
        " --cohort {params.cohort_dir} {params.association} --settings {params.settings:q}"
        " --out {output} --log {log}"


FINAL_OUTPUTS.append(out("classification/species_classification.tsv"))
