# Genotype x microbiota association (issue 5): variant QC, then both models for every
# variant x species (scatter over variant chunks), the global FDR (gather), figures.
#
# Scatter/gather: how many variants pass QC, and so how many chunks there are, is known
# only after `association_prepare` has run, so it is a checkpoint. The gather's input asks
# it for prepared/summary.json and requests chunk_0 .. chunk_<n-1>; each chunk is its own
# job (a cluster runs them in parallel, a single machine runs the same rules). Without
# genotypes (inputs.genotypes and inputs.blood_manifest) no rule is defined and nothing is
# written; the report says the stage was skipped.

from workflow_scripts.association.resources import (
    chunk_files,
    chunk_mem_mb,
    gather_mem_mb,
)

if HAS_GENOTYPES:

    STAGE_OUTPUTS["association"] = {
        "ledger": out("association/ledger.tsv"),
        "variant_qc": out("association/variant_qc.tsv"),
        "table": out("association/genotype_species.tsv"),
        "variant_summary": out("association/variant_summary.tsv"),
        "summary": out("association/summary.json"),
        "markdown": out("association/summary.md"),
        "figures": [
            out("association/figures/manhattan_interaction.png"),
            out("association/figures/heatmap_interaction.png"),
        ],
    }

    checkpoint association_prepare:
        input:
            cohort=cohort_outputs(),
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
            mem_mb=job_mem_mb(
                extra=lambda input: 40e-6
                * cohort_size(input, "n_participants", "n_variants")
            ),
            runtime=job_runtime(),
        params:
            py=PY,
            settings=as_json(
                dict(config["association"], covariates=config["covariates"])
            ),
            cohort_dir=cohort_dir,
        shell:
            "{params.py} workflow_scripts.association.cli prepare --cohort {params.cohort_dir:q}"
            " --settings {params.settings:q} --ledger {output.ledger:q}"
            " --variant-qc {output.variant_qc:q} --participants {output.participants:q}"
            " --abundance {output.abundance:q} --prepared {output.summary:q} --log {log:q}"

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
            # Grows with chunk_size x (participants + species); see resources.chunk_mem_mb.
            mem_mb=lambda wildcards, input, attempt: chunk_mem_mb(
                input.summary, config["resources"]["mem_mb"], attempt
            ),
            runtime=job_runtime(),
        params:
            py=PY,
            cohort_dir=cohort_dir,
        shell:
            "{params.py} workflow_scripts.association.cli chunk --cohort {params.cohort_dir:q}"
            " --participants {input.participants:q} --abundance {input.abundance:q}"
            " --variant-qc {input.variant_qc:q} --prepared {input.summary:q}"
            " --chunk {wildcards.chunk:q} --output {output:q} --log {log:q}"

    rule association_gather:
        input:
            chunks=lambda wildcards: chunk_files(
                checkpoints.association_prepare.get().output.summary,
                out("association/chunks/chunk_{}.npy"),
            ),
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
            runtime=job_runtime(),
        params:
            py=PY,
        shell:
            "{params.py} workflow_scripts.association.cli gather --chunks {input.chunks:q}"
            " --abundance {input.abundance:q} --variant-qc {input.variant_qc:q}"
            " --prepared {input.summary:q} --table {output.table:q}"
            " --variant-summary {output.variant_summary:q} --heatmap {output.heatmap:q}"
            " --summary {output.summary:q} --markdown {output.markdown:q} --log {log:q}"

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
            mem_mb=job_mem_mb(),
            runtime=job_runtime(),
        params:
            py=PY,
        shell:
            "{params.py} workflow_scripts.association.cli figures"
            " --variant-summary {input.variant_summary:q} --heatmap {input.heatmap:q}"
            " --summary {input.summary:q} --manhattan {output.manhattan:q}"
            " --heatmap-figure {output.heatmap:q} --log {log:q}"
