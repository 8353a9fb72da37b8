"""The clinical stage: within MS patients, taxa against severity, course and blood markers of damage.

- :mod:`~workflow_scripts.clinical.scores`: EDSS, ARMSS and MSSS from the published tables;
- :mod:`~workflow_scripts.clinical.biomarkers`: sNfL and GFAP as Z-scores against the cohort's controls;
- :mod:`~workflow_scripts.clinical.associations`: every taxon against every axis;
- :mod:`~workflow_scripts.clinical.progression`: the per-taxon ``progression_class`` call.

Pure functions on tables; reading and writing files is the stage's entry point's job.
"""
