# Genotype x microbiota association (issue 5): variant QC, then both models for every
# variant x species (scatter over variant chunks), the global FDR (gather), figures.
#
# Scatter/gather: how many variants pass QC, and so how many chunks there are, is known
# only after `association_prepare` has run, so it is a checkpoint. The gather's input asks
# it for prepared/summary.json and requests chunk_0 .. chunk_<n-1>; each chunk is its own
# job (a cluster runs them in parallel, a single machine runs the same rules). Without
# genotypes (inputs.genotypes and inputs.blood_manifest) no rule is defined and nothing is
# written; the report says the stage was skipped.

from workflow_scripts.association.files import chunk_files, chunk_mem_mb, gather_mem_mb

validate_section("association")


if HAS_GENOTYPES:

    FINAL_OUTPUTS.extend(
        [
            out("association/ledger.tsv"),
            out("association/variant_qc.tsv"),
            out("association/genotype_species.tsv"),
            out("association/variant_summary.tsv"),
            out("association/summary.json"),
            out("association/summary.md"),
            out("association/figures/manhattan_interaction.png"),
            out("association/figures/heatmap_interaction.png"),
        ]
    )

    checkpoint association_prepare:
        input:
            cohort_outputs(),
        output:
            ledger=out("association/ledger.tsv"),
            variant_qc=out("association/variant_qc.tsv"),
            participants=out("association/prepared/participants.tsv"),
            abundance=out("association/prepared/abundance.tsv"),
            summary=out("association/prepared/summary.json"),
        log:
            log_path("association_prepare"),
        benchmark:
            benchmark_path("association_prepare")
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            # QC and genetic PCs stream the dosages in blocks; PCs need participants^2.
            # 1.9 GB at 4,000 participants x 10,000 variants: grows with their product.
            mem_mb=lambda wildcards, input, attempt: mem_mb(
                1,
                attempt,
                extra_mb=40e-6 * cohort_size(input, "n_participants", "n_variants"),
            ),
            runtime=lambda wildcards, attempt: runtime(1, attempt),
        params:
            py=PY,
            settings=as_json(
                dict(config["association"], covariates=config["covariates"])
            ),
            cohort_dir=lambda wildcards, input: Path(input[0]).parent,
            outdir=lambda wildcards, output: Path(output.ledger).parent,
        shell:
            "{params.py} workflow_scripts.association.cli prepare --cohort {params.cohort_dir}"
            " --settings {params.settings:q} --outdir {params.outdir} --log {log}"

    rule association_chunk:
        input:
            cohort=cohort_outputs(),
            participants=out("association/prepared/participants.tsv"),
            abundance=out("association/prepared/abundance.tsv"),
            variant_qc=out("association/variant_qc.tsv"),
            summary=out("association/prepared/summary.json"),
        output:
            temp(out("association/chunks/chunk_{chunk}.npy")),
        log:
            log_path("association_chunk_{chunk}"),
        benchmark:
            benchmark_path("association_chunk_{chunk}")
        wildcard_constraints:
            chunk=r"\d+",
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            # Grows with chunk_size x (participants + species); see files.chunk_mem_mb.
            mem_mb=lambda wildcards, input, attempt: chunk_mem_mb(
                input.summary, config["resources"]["mem_mb"], attempt
            ),
            runtime=lambda wildcards, attempt: runtime(1, attempt),
        params:
            py=PY,
            cohort_dir=lambda wildcards, input: Path(input.cohort[0]).parent,
            outdir=lambda wildcards, input: Path(input.variant_qc).parent,
        shell:
            "{params.py} workflow_scripts.association.cli chunk --cohort {params.cohort_dir}"
            " --outdir {params.outdir} --chunk {wildcards.chunk} --output {output} --log {log}"

    rule association_gather:
        input:
            chunks=lambda wildcards: chunk_files(
                checkpoints.association_prepare.get().output.summary,
                out("association/chunks/chunk_{}.npy"),
            ),
            participants=out("association/prepared/participants.tsv"),
            abundance=out("association/prepared/abundance.tsv"),
            variant_qc=out("association/variant_qc.tsv"),
            summary=out("association/prepared/summary.json"),
        output:
            table=out("association/genotype_species.tsv"),
            variant_summary=out("association/variant_summary.tsv"),
            heatmap=out("association/heatmap.tsv"),
            summary=out("association/summary.json"),
            markdown=out("association/summary.md"),
        log:
            log_path("association_gather"),
        benchmark:
            benchmark_path("association_gather")
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            # 32 bytes per variant x species test (both p- and q-values) plus one chunk.
            mem_mb=lambda wildcards, input, attempt: gather_mem_mb(
                input.summary, config["resources"]["mem_mb"], attempt
            ),
            runtime=lambda wildcards, attempt: runtime(1, attempt),
        params:
            py=PY,
            outdir=lambda wildcards, output: Path(output.table).parent,
            chunk_dir=lambda wildcards, output: Path(output.table).parent / "chunks",
        shell:
            "{params.py} workflow_scripts.association.cli gather --outdir {params.outdir}"
            " --chunk-dir {params.chunk_dir} --log {log}"

    rule association_figures:
        input:
            variant_summary=out("association/variant_summary.tsv"),
            heatmap=out("association/heatmap.tsv"),
            summary=out("association/summary.json"),
        output:
            manhattan=report(
                out("association/figures/manhattan_interaction.png"),
                caption="../resources/report/manhattan.rst",
                category="Genotype x microbiota",
            ),
            heatmap=report(
                out("association/figures/heatmap_interaction.png"),
                caption="../resources/report/heatmap.rst",
                category="Genotype x microbiota",
            ),
        log:
            log_path("association_figures"),
        benchmark:
            benchmark_path("association_figures")
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: mem_mb(1, attempt),
            runtime=lambda wildcards, attempt: runtime(1, attempt),
        params:
            py=PY,
            outdir=lambda wildcards, input: Path(input.summary).parent,
        shell:
            "{params.py} workflow_scripts.association.cli figures --outdir {params.outdir}"
            " --log {log}"
