# iMSMS-style gut microbiome workflow: ingest -> diversity | differential | clinical | association
# -> classification -> report. The statistics live in workflow_scripts/; rules stay thin.
# Each rule file declares its results (STAGE_OUTPUTS in rules/common.smk); `rule all` asks
# for all of them through an input function, so the order of the includes does not matter.
from snakemake.utils import min_version

min_version("9.0")


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/diversity.smk"
include: "rules/differential.smk"
include: "rules/clinical.smk"
include: "rules/association.smk"
include: "rules/classification.smk"
include: "rules/export.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs,
