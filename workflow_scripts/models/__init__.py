"""The statistical engines every stage shares; arrays in, arrays or tables out, no file I/O.

- :mod:`.mixed_model`: random-intercept linear mixed model (REML/ML) and OLS,
  fitted to thousands of features at once; :mod:`.group_rotation` is its
  Helmert rotation.
- :mod:`.nested_model`: two nested random intercepts (household within site).
- :mod:`.repeated_model`: repeated samples, participant within household (within
  site), ``fit_repeated``; variance components and the within-participant ICC.
- :mod:`.association`: genotype x microbiome tests for every variant x feature,
  the one entry point; :mod:`.association_core` holds the shared OLS algebra,
  :mod:`.cluster_robust` the household cluster-robust errors, :mod:`.tdist`
  fast Student-t tails.
- :mod:`.robust_ols`: one coefficient of OLS for thousands of responses at once,
  with classical, HC0-HC3 or cluster-robust CR1-CR3 errors, per-response row
  masks and row weights.
- :mod:`.logistic_score`: the score test of one added variable in a logistic
  regression, batched over binary responses (model-based or robust variance).
- :mod:`.signed_rank`: the Wilcoxon signed-rank test of paired differences.
- :mod:`.multiple_testing`: Benjamini-Hochberg q-values and the Cauchy
  combination (ACAT) of p-values.
"""
