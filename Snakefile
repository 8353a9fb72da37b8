# iMSMS-style gut microbiome workflow: ingest -> diversity | differential | clinical | association
# -> classification -> report. The statistics live in workflow_scripts/; rules stay thin.
# Each rule file declares its results (STAGE_OUTPUTS in rules/common.smk); `rule all` asks
# for all of them through an input function, so the order of the includes does not matter.
import atexit

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


onsuccess:
    # The run's last line names the report (when this run made or kept one): printed at exit,
    # after Snakemake's own closing lines.
    if Path(STAGE_OUTPUTS["report"]["report"]).is_file():
        atexit.register(
            print,
            f"Report: {Path(STAGE_OUTPUTS['report']['report']).resolve()}",
            file=sys.stderr,
        )
