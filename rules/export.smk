# Exports for QIIME 2, phyloseq and MaAsLin users: the harmonised cohort and the
# differential tables reshaped for those tools; nothing is recomputed.

from workflow_scripts.export.bundle import export_files

STAGE_OUTPUTS["export"] = {
    "files": [
        out(f"export/{name}")
        for name in export_files(HAS_TREE, config["differential"]["methods"])
    ]
}


rule export:
    input:
        cohort=cohort_outputs(),
        methods=expand(
            out("differential/{method}.tsv"), method=config["differential"]["methods"]
        ),
    output:
        STAGE_OUTPUTS["export"]["files"],
    log:
        log_path("export"),
    benchmark:
        benchmark_path("export")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        cohort_dir=cohort_dir,
        # export/README.md comes first: its directory is the export directory.
        outdir=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "{params.py} workflow_scripts.export.cli --cohort {params.cohort_dir:q}"
        " --methods {input.methods:q} --outdir {params.outdir:q} --log {log:q}"
