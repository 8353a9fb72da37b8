# Clinical: within MS patients, every taxon against the severity scores (EDSS, ARMSS, MSSS),
# the blood markers of damage (sNfL, GFAP Z-scores) and the disease course, then the
# per-taxon progression_class (issue 15). Axes the cohort cannot support (no EDSS, no blood
# manifest) are skipped with the reason in summary.json/.md; the run still finishes.

from workflow_scripts.clinical.associations import AXES as CLINICAL_AXES

CLINICAL_SETTINGS = as_json(dict(config["clinical"], covariates=config["covariates"]))

STAGE_OUTPUTS["clinical"] = {
    "associations": out("clinical/associations.tsv"),
    "scores": out("clinical/scores.tsv"),
    "progression": out("clinical/progression.tsv"),
    "ledger": out("clinical/ledger.tsv"),
    "summary": out("clinical/summary.json"),
    "markdown": out("clinical/summary.md"),
    "effect_figures": expand(
        out("clinical/figures/effects_{axis}.png"), axis=CLINICAL_AXES
    ),
    "marker_figure": out("clinical/figures/markers_by_course.png"),
}


rule clinical:
    input:
        cohort=cohort_outputs(),
    output:
        associations=out("clinical/associations.tsv"),
        scores=out("clinical/scores.tsv"),
        progression=out("clinical/progression.tsv"),
        ledger=out("clinical/ledger.tsv"),
        summary=out("clinical/summary.json"),
        markdown=out("clinical/summary.md"),
    log:
        log_path("clinical"),
    benchmark:
        benchmark_path("clinical")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=CLINICAL_SETTINGS,
        cohort_dir=cohort_dir,
    shell:
        "{params.py} workflow_scripts.clinical.cli analyse --cohort {params.cohort_dir:q}"
        " --settings {params.settings:q} --associations {output.associations:q}"
        " --scores {output.scores:q} --progression {output.progression:q}"
        " --ledger {output.ledger:q} --summary {output.summary:q}"
        " --markdown {output.markdown:q} --log {log:q}"


rule clinical_figures:
    input:
        associations=out("clinical/associations.tsv"),
        progression=out("clinical/progression.tsv"),
        scores=out("clinical/scores.tsv"),
        summary=out("clinical/summary.json"),
    output:
        effects=report(
            expand(out("clinical/figures/effects_{axis}.png"), axis=CLINICAL_AXES),
            caption="../resources/report/clinical_effects.rst",
            category="Clinical",
        ),
        markers=report(
            out("clinical/figures/markers_by_course.png"),
            caption="../resources/report/clinical_markers.rst",
            category="Clinical",
        ),
    log:
        log_path("clinical_figures"),
    benchmark:
        benchmark_path("clinical_figures")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=job_mem_mb(),
        runtime=job_runtime(),
    params:
        py=PY,
        settings=CLINICAL_SETTINGS,
    shell:
        "{params.py} workflow_scripts.clinical.cli figures --settings {params.settings:q}"
        " --associations {input.associations:q} --progression {input.progression:q}"
        " --scores {input.scores:q} --summary {input.summary:q}"
        " --effect-figures {output.effects:q} --marker-figure {output.markers:q} --log {log:q}"
