"""Cohort: who and what went in (``ingest/cohort/cohort.json``, ``participants.tsv``, ``ingest/ledger.tsv``)."""

from __future__ import annotations


from ..html import esc, table
from . import Section, not_run

ANCHOR, TITLE = "cohort", "Cohort"
#: Below this many households, household cluster-robust standard errors are liberal (Cameron & Miller 2015).
FEW_HOUSEHOLDS = 50


#: What an unpaired design (no household with a patient and a control) changes in every stage.
UNPAIRED = ("No household pairs: an unpaired design, so the tests that compare a patient with their own "
            "household control were replaced. Diversity: the rank-sum test instead of the paired Wilcoxon, "
            "and PERMANOVA permutes labels freely. Differential abundance: the primary test in its regression "
            "form over participants (status, covariates, site; label swaps within site), and ANCOM-BC and the "
            "paired Wilcoxon were not run. Genotype × microbiota: errors clustered by participant. Household "
            "matching no longer removes diet and environment: differences may reflect them.")


def cohort_facts(results) -> dict:
    """Counts the other sections and the summary use (empty when ingest's files are missing)."""
    info = results.json("ingest/cohort/cohort.json")
    part = results.table("ingest/cohort/participants.tsv")
    if info is None or part is None:
        return {}
    case, control = info["case_label"], info["control_label"]
    status = part["status"].value_counts()
    return {"case": case, "control": control, "rank": info.get("rank", ""),
            "n_participants": int(info.get("n_participants", len(part))),
            "n_case": int(status.get(case, 0)), "n_control": int(status.get(control, 0)),
            "n_households": int(part["household_id"].nunique()),
            "n_pairs": int(info.get("n_households_paired", 0)), "n_sites": int(part["site"].nunique()),
            "n_samples": int(info.get("n_samples", 0)), "n_taxa": int(info.get("n_taxa", 0)),
            "n_variants": int(info.get("n_variants") or 0)}


def section(results) -> Section:
    facts = cohort_facts(results)
    if not facts:
        return not_run(ANCHOR, TITLE, "The ingest stage did not run: no harmonised cohort.")
    part = results.table("ingest/cohort/participants.tsv")
    case, control = facts["case"], facts["control"]
    cards = [("participants", facts["n_participants"]), (f"{case} / {control}", f"{facts['n_case']} / "
                                                          f"{facts['n_control']}"),
             ("household pairs", facts["n_pairs"]), ("stool samples", facts["n_samples"]),
             ("sites", facts["n_sites"]), (f"taxa at {facts['rank']}", facts["n_taxa"]),
             ("variants", facts["n_variants"])]
    body = '<div class="cards">' + "".join(f'<div class="stat"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in cards)
    body += "</div>"
    by_site = part.groupby(["site", "status"]).size().unstack(fill_value=0)
    by_site["households"] = part.groupby("site")["household_id"].nunique()
    body += "<h3>Participants by site</h3>" + table(by_site, index=True)
    if "dmt" in part.columns:
        treated = part.loc[part["status"] == case, "dmt"].fillna("unknown").value_counts().rename("patients")
        body += (f"<h3>Disease-modifying therapy ({esc(case)} patients)</h3>"
                 + table(treated.to_frame(), index=True))
    ledger = results.table("ingest/ledger.tsv")
    if ledger is not None and len(ledger):
        summary = ledger.groupby(["entity", "outcome"]).size().unstack(fill_value=0)
        body += "<h3>What went in and what was kept</h3>" + table(summary, index=True)
        dropped = ledger[ledger["outcome"] == "dropped"]
        if len(dropped):
            reasons = dropped.groupby(["entity", "reason"]).size().rename("n").reset_index()
            body += "<h3>What was dropped, and why</h3>" + table(reasons)
        else:
            body += "<p>Nothing was dropped at ingest.</p>"
    body += results.links("ingest/*.tsv")
    findings = [f"{facts['n_participants']} participants ({facts['n_case']} {esc(case)}, {facts['n_control']} "
                f"{esc(control)}) in {facts['n_households']} households ({facts['n_pairs']} with a patient and a "
                f"household control) at {facts['n_sites']} site{'s' if facts['n_sites'] != 1 else ''}; "
                f"{facts['n_samples']} stool samples, {facts['n_taxa']} taxa at {esc(facts['rank'])} rank."]
    caveats = []
    if facts["n_pairs"] == 0:
        caveats.append(UNPAIRED)
    if 0 < facts["n_pairs"] < FEW_HOUSEHOLDS:
        caveats.append(f"Few households: {facts['n_pairs']} household pairs. Power to find moderate effects is "
                       "limited: a taxon not called is not shown to be unchanged.")
    if facts["n_sites"] > 1:
        per_site = part.groupby("site")["status"].apply(lambda s: (s == case).mean())
        if (per_site.max() - per_site.min()) > 0.25:
            caveats.append("The share of patients differs between sites "
                           f"({per_site.min():.0%} to {per_site.max():.0%}): site and status are partly "
                           "confounded; every model adjusts for site.")
    return Section(ANCHOR, TITLE, body, findings, caveats)
