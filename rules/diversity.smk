# Diversity: alpha, beta, ordination, PERMANOVA (issue 3).
