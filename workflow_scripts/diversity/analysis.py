"""The diversity stage: from the harmonised cohort to the contract's diversity outputs.

Choices (documented in the README):

- Alpha diversity is computed per stool sample on the feature-level table
  (``alpha.tsv``, every kept sample); the MS vs control tests follow
  ``repeated_samples`` (:mod:`.alpha_tests`): by default the mixed model uses
  every sample with a participant random intercept nested in the household.
- Beta diversity, ordination, PERMANOVA and PERMDISP use one profile per
  participant (permutations cannot respect two levels of nesting, participant
  within household, cleanly): with ``repeated_samples`` ``all`` or ``first``
  their first stool sample (earliest collection date), so depth is not pooled,
  and the distance matrices are labelled by those sample ids; with ``sum`` or
  ``mean`` the pooled counts or the mean profile, labelled by participant id.
  The ``profile`` column of ``permanova.tsv`` and ``permdisp.tsv`` says which.
- With ``rarefaction_depth`` set, every sample is rarefied (seeded) first and
  samples below the depth leave the stage (ledger reason ``below_rarefaction_depth``).
- PERMANOVA, per metric: ``status`` (status alone; permutations within
  households when any household is paired, the iMSMS primary test),
  ``adjusted`` (status + covariates + site, sequential sums of squares) and
  ``adjusted_marginal`` (the same terms, each tested after all the others, as
  ``adonis2(by = "margin")``). The adjusted models permute freely, because site
  and other household-level terms do not vary within a household and cannot
  be tested by within-household permutations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from ..cohort import Cohort
from ..design import build_design, first_samples
from ..ledger import Ledger
from ..settings import StageSettings
from ..transforms import one_row_per_participant, repeated_sample_profiles, sample_participants
from .alpha import alpha_table, rarefy
from .alpha_tests import mixed_model, participant_values, rank_test
from .beta import TREE_METRICS, distance_matrix
from .pcoa import ordination, pcoa_axes
from .permanova import COLUMNS, formula, permanova
from .permdisp import permdisp

PERMANOVA_COLUMNS = ["metric", "model", "formula", "term", "df", "sum_of_squares", "r2", "pseudo_f",
                     "p_value", "permutations", "strata", "profile"]
PERMDISP_COLUMNS = ["metric", *COLUMNS, "profile"]
#: What one participant's beta-diversity profile is, by ``repeated_samples``.
PROFILE_TEXT = {"first": "first stool sample per participant", "sum": "pooled samples per participant",
                "mean": "mean relative profile per participant"}


@dataclass
class DiversitySettings(StageSettings):
    """The ``diversity`` config section plus the top-level ``covariates`` and ``seed``.

    Keys and defaults: ``config/schema/diversity.schema.yaml``; build with :meth:`from_config`.
    """

    SECTION: ClassVar[str] = "diversity"
    TOP_LEVEL: ClassVar[tuple[str, ...]] = ("covariates", "seed")

    metrics: list[str]
    repeated_samples: str
    stability_min_prevalence: float
    shannon_base: float
    rarefaction_depth: int | None
    permutations: int
    pcoa_dimensions: int
    covariates: list[str]
    seed: int


@dataclass
class DiversityResults:
    alpha: pd.DataFrame
    alpha_tests: pd.DataFrame
    distances: dict
    ordinations: dict
    permanova: pd.DataFrame
    permdisp: pd.DataFrame
    ledger: pd.DataFrame
    labels: pd.DataFrame  # beta row id -> participant, status, site, household (for figures)
    alpha_participants: pd.DataFrame  # participants x metrics, what the rank test used (for figures)


def run(cohort: Cohort, s: DiversitySettings, alpha: bool = True) -> DiversityResults:
    """The diversity results for a cohort (no file I/O): alpha (unless ``alpha`` is false) and
    beta for each of ``s.metrics``; the workflow runs alpha and each metric as separate jobs."""
    counts = cohort.table("features")
    integer = cohort.info["abundance_kind"] == "counts"
    ledger = Ledger()
    if s.rarefaction_depth:
        counts, shallow = rarefy(counts.astype(np.int64), int(s.rarefaction_depth), s.seed)
        ledger.dropped("stool_sample", shallow, reason="below_rarefaction_depth",
                       detail=f"diversity: fewer than {s.rarefaction_depth} reads")
    samples = cohort.samples.loc[counts.index]
    kind = "counts" if integer else "relative"
    alpha_values = alpha_table(counts, base=s.shannon_base, tree=cohort.tree, integer_counts=integer) \
        if alpha else pd.DataFrame(index=counts.index)

    participants = cohort.participants.loc[pd.unique(samples["participant_id"])]
    design = build_design(participants, s.covariates, cohort.case_label, stage="diversity", samples=samples)
    status_only = build_design(participants, [], cohort.case_label, stage="diversity", samples=samples)
    ledger.extend(design.excluded)
    alpha_tests, per_participant = pd.DataFrame(), pd.DataFrame()
    if alpha:
        rows, owners, per_participant = _alpha_rows(alpha_values, samples, s)
        fixed = formula(["status", *s.covariates, "site"]) + " + dmt"
        alpha_tests = pd.concat([rank_test(per_participant, status_only), mixed_model(rows, design, owners, fixed)],
                                ignore_index=True)

    policy = one_row_per_participant(s.repeated_samples)
    if policy == "first":
        first = first_samples(samples).reindex(participants.index)
        profiles = counts.loc[first.to_numpy()]
        row_ids = pd.Index(first.to_numpy(), name="sample_id")
    else:
        profiles = repeated_sample_profiles(counts, samples, policy, kind).reindex(participants.index)
        row_ids = pd.Index(participants.index, name="participant_id")
        profiles.index = row_ids
    labels = pd.DataFrame({"participant_id": participants.index, "status": participants["status"].to_numpy(),
                           "site": participants["site"].to_numpy(),
                           "household": status_only.frame["household"].reindex(participants.index).to_numpy()},
                          index=row_ids)
    metrics = [m for m in s.metrics if m not in TREE_METRICS or (cohort.tree is not None and integer)]
    distances, ordinations, tables, dispersions = {}, {}, [], []
    for metric in metrics:
        dm = distance_matrix(profiles, metric, tree=cohort.tree)
        distances[metric] = dm
        axes = pcoa_axes(dm.data)  # one eigendecomposition for the ordination and PERMDISP
        ordinations[metric] = ordination(dm, s.pcoa_dimensions, axes)
        tables.append(_permanova_models(dm, labels, design, status_only, s, metric))
        disp = permdisp(dm, labels["status"], permutations=s.permutations, seed=s.seed, axes=axes)
        del axes
        disp.attrs = {}  # the permutation arrays stay out of the report table
        dispersions.append(disp.assign(metric=metric, profile=PROFILE_TEXT[policy]))
    permanova_table = pd.concat(tables, ignore_index=True)[PERMANOVA_COLUMNS] if tables else \
        pd.DataFrame(columns=PERMANOVA_COLUMNS)
    permdisp_table = pd.concat(dispersions, ignore_index=True)[PERMDISP_COLUMNS] if dispersions else \
        pd.DataFrame(columns=PERMDISP_COLUMNS)
    return DiversityResults(alpha_values, alpha_tests, distances, ordinations, permanova_table,
                            permdisp_table, ledger.frame(), labels, per_participant)


def _alpha_rows(alpha_values, samples, s: DiversitySettings):
    """What the alpha tests use under ``repeated_samples``.

    Returns the mixed model's rows (metrics), their participants, and one row per
    participant for the rank test: ``all`` every sample (the rank test: each
    participant's mean), ``first`` the first sample, ``mean`` and ``sum`` the
    mean of the samples' values. (The alpha diversity of pooled counts grows
    with the number of samples pooled, so ``sum`` pools counts for beta
    diversity only.)
    """
    policy = s.repeated_samples
    per_participant = participant_values(alpha_values, samples, "first" if policy == "first" else "mean")
    if policy == "all":
        return alpha_values, sample_participants(alpha_values.index, samples), per_participant
    return per_participant, per_participant.index.to_numpy(), per_participant


def _permanova_models(dm, labels, design, status_only, s: DiversitySettings, metric: str) -> pd.DataFrame:
    by_sample = {p: sid for sid, p in labels["participant_id"].items()}
    out = []
    adjusted = ["status", *s.covariates, "site"]
    models = [("status", status_only, ["status"], True, "terms"),
              ("adjusted", design, adjusted, False, "terms"),
              ("adjusted_marginal", design, adjusted, False, "margin")]
    for model, d, terms, stratified, by in models:
        frame = d.frame.copy()
        frame.index = [by_sample[p] for p in frame.index]
        terms = [t for t in terms if t != "site" or frame["site"].nunique() > 1]
        use_strata = stratified and bool(frame["paired"].any())
        sub = dm.filter(list(frame.index)) if len(frame) < dm.shape[0] else dm
        table = permanova(sub, frame, terms, strata=frame["household"] if use_strata else None,
                          permutations=s.permutations, by=by, seed=s.seed)
        table.attrs = {}  # the permutation arrays stay out of the report table
        table = table.assign(metric=metric, model=model, formula=formula(terms),
                             permutations=s.permutations, strata="household" if use_strata else "none",
                             profile=PROFILE_TEXT[one_row_per_participant(s.repeated_samples)])
        out.append(table)
    return pd.concat(out, ignore_index=True)
