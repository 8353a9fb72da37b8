# Genotype x microbiota association (issue 5, genome scale: issue 17): prepare the rows,
# abundance, covariates, genetic PCs and the chunk plan; one job per chunk of the genotype
# file (its region or record range only, in blocks: memory does not grow with the variants);
# Benjamini-Hochberg, lambda GC and QQ over every chunk without holding the tests; each
# chunk's final summary statistics (Parquet, with q-values); the tables; the figures.
#
# Scatter/gather: how many chunks there are is known only after `association_prepare`
# has read the cohort's variant table, so it is a checkpoint. The input functions ask it
# for prepared.json and request chunk 00000 .. <n-1>. Without genotypes
# (inputs.genotypes and inputs.blood_manifest) no rule is defined and nothing is written;
# the report says the stage was skipped. Job-to-job files live under
# <outdir>/intermediate/association/.

from workflow_scripts.association.resources import (
    chunk_mem_mb,
    fdr_mem_mb,
    prepare_mem_mb,
    sumstats_mem_mb,
)

if HAS_GENOTYPES:

    STAGE_OUTPUTS["association"] = {
        "ledger": out("association/ledger.tsv"),
        "variant_qc": out("association/variant_qc.tsv"),
        "table": out("association/genotype_species.tsv"),
        "variant_summary": out("association/variant_summary.tsv"),
        "lead_variants": out("association/lead_variants.tsv"),
        "inflation": out("association/inflation.tsv"),
        "sumstats_index": out("association/sumstats.tsv"),
        "summary": out("association/summary.json"),
        "markdown": out("association/summary.md"),
        "figures": [
            out("association/figures/manhattan_interaction.png"),
            out("association/figures/manhattan_genotype.png"),
            out("association/figures/qq.png"),
            out("association/figures/heatmap_interaction.png"),
        ],
    }

    checkpoint association_prepare:
        input:
            cohort=cohort_outputs(),
            genotypes=genotype_files(),
        output:
            ledger=association_file("prepared/ledger.tsv"),
            participants=association_file("prepared/participants.tsv"),
            rows=association_file("prepared/rows.tsv"),
            abundance=association_file("prepared/abundance.tsv"),
            relative=association_file("prepared/relative.tsv"),
            chunks=association_file("prepared/chunks.tsv"),
            labelled=association_file("prepared/labelled.tsv"),
            prepared=association_file("prepared/prepared.json"),
        log:
            log_path("association_prepare"),
        benchmark:
            benchmark_path("association_prepare")
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            # Genetic PCs from a thinned subset: participants^2, plus the variant table.
            mem_mb=lambda wildcards, input, attempt: prepare_mem_mb(
                cohort_size(input, "n_participants"),
                cohort_size(input, "n_variants"),
                config["resources"]["mem_mb"],
                attempt,
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
            " --participants {output.participants:q} --rows {output.rows:q}"
            " --abundance {output.abundance:q} --relative {output.relative:q}"
            " --chunks {output.chunks:q} --labelled {output.labelled:q}"
            " --prepared {output.prepared:q} --log {log:q}"

    rule association_chunk:
        input:
            cohort=cohort_outputs(),
            genotypes=genotype_files(),
            participants=association_file("prepared/participants.tsv"),
            rows=association_file("prepared/rows.tsv"),
            abundance=association_file("prepared/abundance.tsv"),
            relative=association_file("prepared/relative.tsv"),
            chunks=association_file("prepared/chunks.tsv"),
            prepared=association_file("prepared/prepared.json"),
        output:
            tests=temp(association_file("tests/chunk_{chunk}.parquet")),
            qc=association_file("qc/chunk_{chunk}.tsv"),
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
            # Constant in the number of variants; see resources.chunk_mem_mb.
            mem_mb=lambda wildcards, input, attempt: chunk_mem_mb(
                input.prepared, config["resources"]["mem_mb"], attempt
            ),
            runtime=job_runtime(),
        params:
            py=PY,
            cohort_dir=cohort_dir,
        shell:
            "{params.py} workflow_scripts.association.cli chunk --cohort {params.cohort_dir:q}"
            " --participants {input.participants:q} --rows {input.rows:q}"
            " --abundance {input.abundance:q} --relative {input.relative:q}"
            " --chunks {input.chunks:q} --prepared {input.prepared:q}"
            " --chunk {wildcards.chunk:q} --tests {output.tests:q} --qc {output.qc:q}"
            " --log {log:q}"

    rule association_fdr:
        input:
            tests=lambda wildcards: association_chunks("tests/chunk_{}.parquet"),
            prepared=association_file("prepared/prepared.json"),
        output:
            steps=association_file("fdr/steps.parquet"),
            qq=association_file("fdr/qq.tsv"),
            testing=association_file("fdr/testing.json"),
            inflation=out("association/inflation.tsv"),
        log:
            log_path("association_fdr"),
        benchmark:
            benchmark_path("association_fdr")
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            # The exact BH's value budget, not the number of tests; see resources.fdr_mem_mb.
            mem_mb=lambda wildcards, input, attempt: fdr_mem_mb(
                input.prepared, config["resources"]["mem_mb"], attempt
            ),
            runtime=job_runtime(),
        params:
            py=PY,
        shell:
            "{params.py} workflow_scripts.association.cli fdr --prepared {input.prepared:q}"
            " --tests {input.tests:q} --steps {output.steps:q} --qq {output.qq:q}"
            " --testing {output.testing:q} --inflation {output.inflation:q} --log {log:q}"

    rule association_sumstats:
        input:
            tests=association_file("tests/chunk_{chunk}.parquet"),
            steps=association_file("fdr/steps.parquet"),
            testing=association_file("fdr/testing.json"),
            labelled=association_file("prepared/labelled.tsv"),
            prepared=association_file("prepared/prepared.json"),
        output:
            sumstats=out("association/sumstats/chunk_{chunk}.parquet"),
            table=association_file("pieces/chunk_{chunk}.table.tsv"),
            variants=association_file("pieces/chunk_{chunk}.variants.tsv"),
            hits=association_file("pieces/chunk_{chunk}.hits.tsv"),
            top=association_file("pieces/chunk_{chunk}.top.tsv"),
        log:
            log_path("association_sumstats_{chunk}"),
        benchmark:
            benchmark_path("association_sumstats_{chunk}")
        wildcard_constraints:
            chunk=r"\d+",
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            mem_mb=lambda wildcards, input, attempt: sumstats_mem_mb(
                input.prepared, config["resources"]["mem_mb"], attempt
            ),
            runtime=job_runtime(),
        params:
            py=PY,
        shell:
            "{params.py} workflow_scripts.association.cli sumstats --prepared {input.prepared:q}"
            " --labelled {input.labelled:q} --steps {input.steps:q}"
            " --testing {input.testing:q} --tests {input.tests:q}"
            " --sumstats {output.sumstats:q} --table-part {output.table:q}"
            " --variant-part {output.variants:q} --hits-part {output.hits:q}"
            " --top-part {output.top:q} --log {log:q}"

    rule association_table:
        input:
            prepared=association_file("prepared/prepared.json"),
            testing=association_file("fdr/testing.json"),
            inflation=out("association/inflation.tsv"),
            chunks=association_file("prepared/chunks.tsv"),
            labelled=association_file("prepared/labelled.tsv"),
            ledger=association_file("prepared/ledger.tsv"),
            qc=lambda wildcards: association_chunks("qc/chunk_{}.tsv"),
            table=lambda wildcards: association_chunks("pieces/chunk_{}.table.tsv"),
            variants=lambda wildcards: association_chunks(
                "pieces/chunk_{}.variants.tsv"
            ),
            hits=lambda wildcards: association_chunks("pieces/chunk_{}.hits.tsv"),
            top=lambda wildcards: association_chunks("pieces/chunk_{}.top.tsv"),
            sumstats=lambda wildcards: association_chunks(
                "chunk_{}.parquet", out("association/sumstats")
            ),
        output:
            table=out("association/genotype_species.tsv"),
            variant_summary=out("association/variant_summary.tsv"),
            variant_qc=out("association/variant_qc.tsv"),
            ledger=out("association/ledger.tsv"),
            leads=out("association/lead_variants.tsv"),
            heatmap=association_file("heatmap.tsv"),
            sumstats_index=out("association/sumstats.tsv"),
            summary=out("association/summary.json"),
            markdown=out("association/summary.md"),
        log:
            log_path("association_table"),
        benchmark:
            benchmark_path("association_table")
        conda:
            "../envs/workflow.yaml"
        threads: 1
        resources:
            mem_mb=job_mem_mb(),
            runtime=job_runtime(),
        params:
            py=PY,
        shell:
            "{params.py} workflow_scripts.association.cli table --prepared {input.prepared:q}"
            " --testing {input.testing:q} --inflation {input.inflation:q}"
            " --chunks {input.chunks:q} --labelled {input.labelled:q}"
            " --ledger-part {input.ledger:q} --qc-parts {input.qc:q}"
            " --table-parts {input.table:q} --variant-parts {input.variants:q}"
            " --hits-parts {input.hits:q} --top-parts {input.top:q}"
            " --sumstats {input.sumstats:q} --table {output.table:q}"
            " --variant-summary {output.variant_summary:q}"
            " --variant-qc {output.variant_qc:q} --ledger {output.ledger:q}"
            " --leads {output.leads:q} --heatmap {output.heatmap:q}"
            " --sumstats-index {output.sumstats_index:q} --summary {output.summary:q}"
            " --markdown {output.markdown:q} --log {log:q}"

    rule association_figures:
        input:
            variant_summary=out("association/variant_summary.tsv"),
            heatmap=association_file("heatmap.tsv"),
            qq=association_file("fdr/qq.tsv"),
            summary=out("association/summary.json"),
        output:
            manhattan=report(
                out("association/figures/manhattan_interaction.png"),
                caption="../resources/report/manhattan.rst",
                category="Genotype x microbiota",
            ),
            manhattan_genotype=report(
                out("association/figures/manhattan_genotype.png"),
                caption="../resources/report/manhattan_genotype.rst",
                category="Genotype x microbiota",
            ),
            qq=report(
                out("association/figures/qq.png"),
                caption="../resources/report/qq.rst",
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
            " --qq {input.qq:q} --summary {input.summary:q}"
            " --manhattan-interaction {output.manhattan:q}"
            " --manhattan-genotype {output.manhattan_genotype:q}"
            " --heatmap-figure {output.heatmap:q} --qq-figure {output.qq:q} --log {log:q}"
