"""iMSMS-style microbiome cohort workflow: the statistics behind the Snakemake rules."""
