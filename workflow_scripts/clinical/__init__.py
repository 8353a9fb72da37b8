"""The clinical stage: within MS patients, taxa against severity, course and blood markers of damage.

- :mod:`~workflow_scripts.clinical.scores`: EDSS, ARMSS and MSSS from the published tables;
- :mod:`~workflow_scripts.clinical.biomarkers`: sNfL and GFAP as Z-scores against the cohort's controls;
- :mod:`~workflow_scripts.clinical.associations`: every taxon against every axis (CLR, abundance where
  present and presence, combined);
- :mod:`~workflow_scripts.clinical.progression`: the per-taxon ``progression_class`` call;
- :mod:`~workflow_scripts.clinical.analyse`: all of it on a harmonised cohort (:class:`ClinicalSettings`);
- :mod:`~workflow_scripts.clinical.figures` and :mod:`~workflow_scripts.clinical.summary`: figures and
  the summary in words;
- :mod:`~workflow_scripts.clinical.cli`: the command line the rules run (the only module that reads or
  writes files).
"""
