"""Can the cohort left after ingest's drops be analysed? Stop at ingest if not.

The rules run after every stool sample and participant drop (not in the
abundance table, zero reads, below ``ingest.min_depth``, no stool sample left),
on what the stages will actually receive, so a cohort that cannot be analysed
stops here with one message per reason instead of crashing a later stage.

Minimums (each a :class:`~workflow_scripts.errors.Problem` when not met)
-------------------------------------------------------------------------
- at least one stool sample with reads, and at least ``MIN_TAXA`` (2) taxa at the
  configured rank: relative abundances of a single taxon are all 1;
- at least ``MIN_PER_GROUP`` (3) cases and 3 controls with every configured
  covariate: a group of one or two has no spread of its own (PERMDISP, per-group
  variances);
- enough participants that a case-control test *can* reach p < 0.05: the
  smallest two-sided p-value of an exact permutation or rank test of ``k`` cases
  among ``n`` participants is ``2 / C(n, k)``, so ``C(n, k) >= MIN_RELABELINGS``
  (40); 3 + 3 (20 relabelings) fails, 3 + 5 and 4 + 4 pass;
- at least ``MIN_RESIDUAL_DF`` (5) residual degrees of freedom in the
  participant-level model every stage starts from (intercept, status, the
  configured covariates, site, therapy indicators; aliased columns dropped as
  :func:`~workflow_scripts.design.drop_aliased` does): below 5 the two-sided 5%
  critical value of t grows past 2.57 (1.96 for a normal) and, at 1 degree of
  freedom, to 12.7;
- status not confounded with site or a covariate (a column that is a linear
  combination of status and the others), which no model can separate from
  disease.

All participants in one household is a mistake in ``household_id`` (a household
random intercept would be the intercept itself), not a design.

Few household pairs (or none) do not stop a cohort: its unpaired participants
still inform the models, and each stage says when it analyses a cohort as
unpaired.
"""

from __future__ import annotations

from math import comb

import pandas as pd

from ..design import build_design, drop_aliased, first_samples
from ..errors import Problem

MIN_TAXA = 2
MIN_PER_GROUP = 3
MIN_RELABELINGS = 40
MIN_RESIDUAL_DF = 5

_REASONS = {"not_in_abundance_table": "not in the abundance table", "zero_reads": "with zero reads",
            "below_min_depth": "below ingest.min_depth"}


def _drop_summary(reasons: pd.Series) -> str:
    """'3 below ingest.min_depth, 1 with zero reads' from stool-sample ledger reasons."""
    counts = reasons.value_counts()
    return ", ".join(f"{n} {_REASONS.get(r, r)}" for r, n in counts.items())


def check_samples(stool: pd.DataFrame, depth: pd.Series, ledger: pd.DataFrame, s) -> list[Problem]:
    """Problems when no stool sample survives the drops.

    Parameters
    ----------
    stool : DataFrame
        The stool manifest as read (``sample_id``, ``participant_id``).
    depth : Series
        Total of every abundance-table column.
    ledger : DataFrame
        The ledger so far (stool_sample rows).
    s : Settings
    """
    rows = ledger[(ledger["entity"] == "stool_sample")]
    if (rows["outcome"] == "kept").any():
        return []
    if len(depth) and float(depth.abs().sum()) == 0.0:
        return [Problem(s.abundance, f"every value of the abundance table is 0 ({len(depth)} samples)",
                        "the table was exported without its values, or the wrong table was given: "
                        "export it again with the counts")]
    dropped = rows.set_index("id")["reason"]
    fix = {"not_in_abundance_table": "the manifest's sample_id values must be the abundance table's "
                                     "column names (check for a prefix, suffix or a different id scheme)",
           "below_min_depth": f"lower ingest.min_depth (the deepest sample has {depth.max():.0f} reads), "
                              "or check that the table holds read counts",
           "zero_reads": "check that the abundance table was exported with its values"}
    main = dropped.value_counts().index[0] if len(dropped) else "not_in_abundance_table"
    return [Problem(s.stool_manifest, f"no stool sample is left for the analysis ({_drop_summary(dropped)})",
                    fix.get(main, "see the ledger reasons"))]


def check_design(part: pd.DataFrame, samples: pd.DataFrame, all_participants: pd.DataFrame,
                 dropped_samples: pd.DataFrame, n_taxa: int, s) -> list[Problem]:
    """Problems that make the kept cohort impossible to analyse (see the module notes).

    Parameters
    ----------
    part : DataFrame
        Kept participants (index participant_id) with ``status``, ``household_id``,
        ``site`` and the covariates.
    samples : DataFrame
        Kept stool samples (index sample_id) with ``participant_id`` and manifest columns.
    all_participants : DataFrame
        Every participant as read (index participant_id), to explain drops.
    dropped_samples : DataFrame
        Dropped stool samples: ``participant_id`` and ledger ``reason``.
    n_taxa : int
        Taxa with reads at the configured rank.
    s : Settings
    """
    problems: list[Problem] = []
    if n_taxa < MIN_TAXA:
        problems.append(Problem(s.abundance, f"only {n_taxa} taxon at rank {s.rank!r} has reads in the kept "
                                "samples; relative abundances of one taxon are all 1",
                                "set a finer rank (e.g. rank: genus or feature), or check the taxonomy"))
    counts = _group_counts(part, all_participants, dropped_samples, s)
    problems += counts
    if counts:
        return problems
    problems += _one_household(part, s)
    problems += _model(part, samples, s)
    return problems


def _group_counts(part, all_participants, dropped_samples, s) -> list[Problem]:
    problems = []
    n = {label: int((part["status"] == label).sum()) for label in (s.case_label, s.control_label)}
    for label, kept in n.items():
        if kept >= MIN_PER_GROUP:
            continue
        ids = all_participants.index[all_participants["status"] == label]
        lost = dropped_samples[dropped_samples["participant_id"].isin(ids)]
        why = f"; their stool samples dropped: {_drop_summary(lost['reason'])}" if len(lost) else ""
        reasons = set(lost["reason"])
        if "below_min_depth" in reasons:
            fix = "lower ingest.min_depth or re-sequence the shallow samples"
        elif reasons:
            fix = (f"check that the {label} participants' samples are in the abundance table with their reads "
                   "(see the stool_sample rows of the ledger), or add participants")
        else:
            fix = (f"add {label} participants with stool samples, or check the status column and the "
                   "case_label/control_label config keys")
        problems.append(Problem(s.participants, f"only {kept} of {len(ids)} {label} participants have a stool "
                                f"sample left for the analysis (at least {MIN_PER_GROUP} are needed){why}",
                                fix, column="status"))
    if problems:
        return problems
    k, m = n[s.case_label], n[s.control_label]
    if comb(k + m, k) < MIN_RELABELINGS:
        problems.append(Problem(s.participants, f"{k} {s.case_label} and {m} {s.control_label} participants "
                                f"are too few: no test of {s.case_label} vs {s.control_label} can reach "
                                f"p < 0.05 (the smallest exact two-sided p-value is 2/{comb(k + m, k)})",
                                "add participants (e.g. 4 of each, or 3 and 5)", column="status"))
    return problems


def _one_household(part, s) -> list[Problem]:
    households = part["household_id"].dropna().unique()
    if len(households) == 1 and part["household_id"].notna().all():
        return [Problem(s.participants, f"every participant is in household {households[0]!r}: "
                        "household_id must name each case's household (a case and its household control)",
                        "give each household its own household_id, or leave household_id empty for everyone "
                        "to analyse the cohort as unpaired", column="household_id")]
    return []


def _term(column: str) -> str:
    """The config term a model column comes from (``site[T.Kiel]`` -> ``site``)."""
    return column.split("[", 1)[0]


def _model(part, samples, s) -> list[Problem]:
    covariates = list(s.covariates)
    design = build_design(part, covariates, s.case_label, stage="ingest", samples=samples)
    kept = design.frame["status"]
    n = {s.case_label: int((kept == 1).sum()), s.control_label: int((kept == 0).sum())}
    short = [label for label, k in n.items() if k < MIN_PER_GROUP]
    if short:
        values = part.copy()
        first = first_samples(samples).reindex(part.index)
        for name in covariates:
            if name not in values.columns:
                values[name] = samples[name].reindex(first.to_numpy()).to_numpy()
        missing = values[covariates].isna().sum()
        empty = ", ".join(f"{c} ({int(missing[c])} missing)" for c in covariates if missing[c])
        return [Problem("config", f"only {n[label]} {label} participants have every covariate "
                        f"({', '.join(covariates)}); at least {MIN_PER_GROUP} are needed; missing: {empty}",
                        "fill the missing values, or remove the covariate from the covariates list",
                        column="covariates") for label in short]
    problems = []
    x = design.matrix()
    df = len(x) - x.shape[1]
    if df < MIN_RESIDUAL_DF:
        problems.append(Problem("config", f"the participant-level model has {x.shape[1]} columns "
                                f"({', '.join(map(str, x.columns))}) for {len(x)} participants: {df} "
                                f"residual degrees of freedom, at least {MIN_RESIDUAL_DF} are needed",
                                "remove covariates from the covariates list (or merge rare levels), or add "
                                "participants; site and each therapy take a column too", column="covariates"))
    intercept = pd.DataFrame({"intercept": 1.0}, index=design.frame.index)
    status = design.frame[["status"]].astype(float)
    with_status = drop_aliased(pd.concat([intercept, status, design.covariates, design.site], axis=1))[1]
    without = drop_aliased(pd.concat([intercept, design.covariates, design.site], axis=1))[1]
    confounded = sorted({_term(c) for c in set(with_status) - set(without)})
    if confounded:
        problems.append(Problem("config", f"status is confounded with {', '.join(confounded)}: each "
                                "participant's value follows from their status (and the other terms), so no "
                                "model can tell disease from it",
                                "remove that covariate from the covariates list; for site, recruit cases and "
                                "controls at every site", column="covariates"))
    return problems
