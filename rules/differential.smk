# Differential abundance: MS vs household controls (issues 4, 14). Prepare the design and
# the tested features; the primary test (whose calls the classification uses) and its
# self-calibration (label swaps and implants, plus each reporting method rerun on a few
# swaps, one job per method); every configured method as evidence (one job each), the
# therapy effects, the pseudo-count sensitivity and the per-site meta-analysis; then the
# consensus table (the primary's calls with the methods' agreement) and figures.

DIFFERENTIAL_METHODS = config["differential"]["methods"]
CALIBRATED_METHODS = [
    m
    for m in config["differential"]["calibration"]["methods"]
    if m in DIFFERENTIAL_METHODS
]
DIFFERENTIAL_SETTINGS = as_json(
    dict(config["differential"], covariates=config["covariates"], seed=config["seed"])
)

STAGE_OUTPUTS["differential"] = {
    "ledger": out("differential/ledger.tsv"),
    "features": out("differential/features.tsv"),
    "primary": out("differential/primary.tsv"),
    "calibration": out("differential/calibration.tsv"),
    "consensus": out("differential/consensus.tsv"),
    "sensitivity": out("differential/sensitivity.tsv"),
    "treatment": out("differential/treatment_effects.tsv"),
    "site_effects": out("differential/site_effects.tsv"),
    "site_meta": out("differential/site_meta.tsv"),
    "agreement_figure": out("differential/figures/agreement.png"),
    "methods": expand(out("differential/{method}.tsv"), method=DIFFERENTIAL_METHODS),
    "volcano_figures": expand(
        out("differential/figures/volcano_{method}.png"),
        method=["primary"] + DIFFERENTIAL_METHODS,
    ),
}


rule differential_prepare:
    input:
        cohort=cohort_outputs(),
    output:
        ledger=out("differential/ledger.tsv"),
        features=out("differential/features.tsv"),
    log:
        log_path("differential_prepare"),
    benchmark:
        benchmark_path("differential_prepare")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.differential.cli prepare --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --ledger {output.ledger:q}"
        " --features {output.features:q} --log {log:q}"


rule differential_method:
    input:
        cohort=cohort_outputs(),
        features=out("differential/features.tsv"),
    output:
        out("differential/{method}.tsv"),
    log:
        log_path("differential_{method}"),
    benchmark:
        benchmark_path("differential_{method}")
    wildcard_constraints:
        method="|".join(DIFFERENTIAL_METHODS),
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.differential.cli method --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --features {input.features:q}"
        " --method {wildcards.method:q} --output {output:q} --log {log:q}"


rule differential_primary:
    input:
        cohort=cohort_outputs(),
        features=out("differential/features.tsv"),
    output:
        out("differential/primary.tsv"),
    log:
        log_path("differential_primary"),
    benchmark:
        benchmark_path("differential_primary")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.differential.cli primary --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --features {input.features:q}"
        " --output {output:q} --log {log:q}"


rule differential_method_null:
    input:
        cohort=cohort_outputs(),
        features=out("differential/features.tsv"),
    output:
        out("intermediate/differential/null/{method}.tsv"),
    log:
        log_path("differential_method_null_{method}"),
    benchmark:
        benchmark_path("differential_method_null_{method}")
    wildcard_constraints:
        method="|".join(CALIBRATED_METHODS),
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.differential.cli method-null --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --features {input.features:q}"
        " --method {wildcards.method:q} --output {output:q} --log {log:q}"


rule differential_calibration:
    input:
        cohort=cohort_outputs(),
        features=out("differential/features.tsv"),
        nulls=expand(
            out("intermediate/differential/null/{method}.tsv"),
            method=CALIBRATED_METHODS,
        ),
    output:
        out("differential/calibration.tsv"),
    log:
        log_path("differential_calibration"),
    benchmark:
        benchmark_path("differential_calibration")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.differential.cli calibration --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --features {input.features:q}"
        " --method-nulls {input.nulls:q} --output {output:q} --log {log:q}"


rule differential_sensitivity:
    input:
        cohort=cohort_outputs(),
        features=out("differential/features.tsv"),
    output:
        out("differential/sensitivity.tsv"),
    log:
        log_path("differential_sensitivity"),
    benchmark:
        benchmark_path("differential_sensitivity")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.differential.cli sensitivity --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --features {input.features:q}"
        " --output {output:q} --log {log:q}"


rule differential_treatment:
    input:
        cohort=cohort_outputs(),
        features=out("differential/features.tsv"),
    output:
        out("differential/treatment_effects.tsv"),
    log:
        log_path("differential_treatment"),
    benchmark:
        benchmark_path("differential_treatment")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.differential.cli treatment --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --features {input.features:q}"
        " --output {output:q} --log {log:q}"


rule differential_sites:
    input:
        cohort=cohort_outputs(),
        features=out("differential/features.tsv"),
    output:
        effects=out("differential/site_effects.tsv"),
        meta=out("differential/site_meta.tsv"),
    log:
        log_path("differential_sites"),
    benchmark:
        benchmark_path("differential_sites")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.differential.cli sites --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --features {input.features:q}"
        " --effects {output.effects:q} --meta {output.meta:q} --log {log:q}"


rule differential_consensus:
    input:
        methods=expand(out("differential/{method}.tsv"), method=DIFFERENTIAL_METHODS),
        primary=out("differential/primary.tsv"),
        calibration=out("differential/calibration.tsv"),
        sensitivity=out("differential/sensitivity.tsv"),
        site_meta=out("differential/site_meta.tsv"),
    output:
        out("differential/consensus.tsv"),
    log:
        log_path("differential_consensus"),
    benchmark:
        benchmark_path("differential_consensus")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
    shell:
        "{params.py} workflow_scripts.differential.cli consensus"
        " --settings {params.settings:q} --methods {input.methods:q}"
        " --primary {input.primary:q} --calibration {input.calibration:q}"
        " --sensitivity {input.sensitivity:q} --site-meta {input.site_meta:q}"
        " --output {output:q} --log {log:q}"


rule differential_volcano:
    input:
        out("differential/{method}.tsv"),
    output:
        report(
            out("differential/figures/volcano_{method}.png"),
            caption="../resources/report/volcano.rst",
            category="Differential abundance",
            subcategory="{method}",
        ),
    log:
        log_path("differential_volcano_{method}"),
    benchmark:
        benchmark_path("differential_volcano_{method}")
    wildcard_constraints:
        method="|".join(["primary"] + DIFFERENTIAL_METHODS),
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
    shell:
        "{params.py} workflow_scripts.differential.cli volcano --settings {params.settings:q}"
        " --table {input:q} --output {output:q} --log {log:q}"


rule differential_agreement:
    input:
        consensus=out("differential/consensus.tsv"),
        methods=expand(out("differential/{method}.tsv"), method=DIFFERENTIAL_METHODS),
    output:
        report(
            out("differential/figures/agreement.png"),
            caption="../resources/report/agreement.rst",
            category="Differential abundance",
        ),
    log:
        log_path("differential_agreement"),
    benchmark:
        benchmark_path("differential_agreement")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=DIFFERENTIAL_SETTINGS,
    shell:
        "{params.py} workflow_scripts.differential.cli agreement --settings {params.settings:q}"
        " --consensus {input.consensus:q} --methods {input.methods:q}"
        " --output {output:q} --log {log:q}"
