# Genotype x microbiota association (issue 5).
