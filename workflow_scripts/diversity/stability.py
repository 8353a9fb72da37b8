"""Within-participant stability of every taxon: how alike a person's stool samples are.

Per taxon, from every kept stool sample of the participants who gave two or more:

- ``icc``: the intraclass correlation of the CLR abundance, the correlation
  of two samples of one participant given status, covariates, site and
  therapy: (participant + household variance) / (participant + household +
  residual variance) from the nested model ``CLR ~ status + covariates + site +
  dmt + (1 | household/participant)`` fitted by REML to every sample of every
  participant (:func:`workflow_scripts.models.repeated_model.fit_repeated`);
  single-sample participants help estimate the fixed effects and the household
  variance. ``participant_share`` is the participant variance alone over the
  total, and ``var_participant``, ``var_household``, ``var_residual`` the
  components (CLR in log2 units).
- ``presence_agreement``: the fraction of participants with two or more samples
  whose samples agree in presence (the taxon in all of them or in none);
  ``persistence``: among those participants in whom the taxon is seen at all,
  the fraction in whom it is seen in every sample.

The model has one correlation for every pair of a participant's samples; when
samples close in time are more alike than distant ones (they usually are), the
ICC is an average over the pairs the cohort has, so compare it between cohorts
with similar sampling intervals.

Taxa present in fewer than ``stability_min_prevalence`` of the samples, and the
unassigned bucket, are left out. A CLR of a taxon absent from a sample is the
pseudo-count's log-ratio, so the ICC of a rarely seen taxon mixes its
presence pattern with its abundance: read ``icc`` with ``presence_agreement``.

References
----------
Shrout PE, Fleiss JL (1979) Psychol Bull 86:420-428 (intraclass correlations).
Nakagawa S, Schielzeth H (2010) Biol Rev 85:935-956 (repeatability from mixed models).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design import Design
from ..models.repeated_model import fit_repeated
from ..transforms import clr_abundance, is_unassigned, sample_design

COLUMNS = ["feature", "prevalence", "icc", "participant_share", "var_participant", "var_household",
           "var_residual", "presence_agreement", "persistence", "n_participants_repeated", "n_samples",
           "converged"]


def stability(table: pd.DataFrame, samples: pd.DataFrame, design: Design, kind: str,
              min_prevalence: float = 0.1) -> tuple[pd.DataFrame, dict]:
    """The stability table (one row per taxon) and a summary with its note.

    Parameters
    ----------
    table : DataFrame
        Samples x taxa (counts or relative abundances), every kept stool sample.
    samples : DataFrame
        The cohort's samples table.
    design : Design
        The participants' design (status, covariates, site, therapy, household);
        samples of participants it excludes are left out.
    kind : {"counts", "relative"}
    min_prevalence : float
        Fraction of samples a taxon must be present in.

    Returns
    -------
    table : DataFrame with :data:`COLUMNS`, ordered by decreasing ``icc``; empty
        when no participant has two samples.
    summary : dict
        ``n_participants_repeated``, ``n_samples``, ``n_taxa``, ``median_icc``,
        ``median_presence_agreement``, ``levels`` and ``note``.
    """
    owner = samples.loc[table.index, "participant_id"]
    keep = owner.isin(design.frame.index).to_numpy()
    table, owner = table[keep], owner[keep]
    n_per = owner.map(owner.value_counts())
    repeated = n_per >= 2
    n_repeated = int(owner[repeated].nunique())
    summary = {"n_participants_repeated": n_repeated, "n_samples": int(repeated.sum()), "n_taxa": 0,
               "median_icc": None, "median_presence_agreement": None, "levels": []}
    if n_repeated == 0:
        summary["note"] = ("skipped: no participant has two stool samples, so within-participant "
                           "stability cannot be estimated")
        return pd.DataFrame(columns=COLUMNS), summary

    present = table > 0
    prevalence = present.mean(axis=0)
    taxa = [t for t in table.columns if not is_unassigned(t) and prevalence[t] >= min_prevalence]
    if not taxa:
        summary["note"] = f"skipped: no taxon is present in {min_prevalence:.0%} of the samples"
        return pd.DataFrame(columns=COLUMNS), summary
    clr = clr_abundance(table, kind)[taxa]
    _, x, participants, households = sample_design(design, owner.to_numpy())  # every row is kept here
    fit = fit_repeated(clr, x, participants, households)

    rep_present = present.loc[repeated.to_numpy(), taxa]
    by_person = rep_present.groupby(owner[repeated].to_numpy())
    seen_all, seen_any = by_person.all(), by_person.any()
    agreement = (seen_all | ~seen_any).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        persistence = seen_all.sum(axis=0) / seen_any.sum(axis=0)
    out = pd.DataFrame({
        "feature": taxa, "prevalence": prevalence[taxa].to_numpy(), "icc": fit.icc,
        "participant_share": fit.participant_share, "var_participant": fit.group_var,
        "var_household": fit.household_var, "var_residual": fit.sigma2,
        "presence_agreement": agreement.to_numpy(), "persistence": persistence.to_numpy(),
        "n_participants_repeated": n_repeated, "n_samples": len(table), "converged": fit.converged,
    }, columns=COLUMNS)
    out = out.sort_values(["icc", "feature"], ascending=[False, True], kind="stable", ignore_index=True)
    summary.update(
        n_samples=len(table), n_taxa=len(taxa), levels=list(fit.levels),
        median_icc=float(np.nanmedian(fit.icc)),
        median_presence_agreement=float(agreement.median()),
        note=(f"{len(taxa)} taxa present in at least {min_prevalence:.0%} of samples; {n_repeated} participants "
              f"with two or more samples; random intercepts: {', '.join(fit.levels) or 'none'}"),
    )
    return out, summary
