"""Called taxa: one card each, then every taxon's class (``classification/species_classification.tsv``).

A card gathers what a reader needs to judge a call, from the stages' files:
the class and its reason (classification), every method's estimate and the
per-site effects (``differential/*.tsv``, ``site_effects.tsv``,
``site_meta.tsv``), each household's patient and control side by side (the
harmonised cohort), prevalence, therapy effects, genotype modifiers and the
clinical axes (``clinical/associations.tsv``) when those stages ran.
"""

from __future__ import annotations

import pandas as pd

from ...cohort import read_cohort
from ...transforms import participant_profiles
from ..figures import png_bytes, taxon_figure
from ..html import details, esc, facts, figure, fmt, pct, table
from . import Section, not_run
from .differential import methods_run

ANCHOR, TITLE = "taxa", "Called taxa"
#: Cards drawn at most (the rest are in the table): each embeds a figure.
MAX_CARDS = 40
ORDER = {"high-risk": 0, "protective": 1, "neutral": 2}


def _flag(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[column].astype(str).str.lower().isin(["true", "1"])


def called_taxa(frame: pd.DataFrame) -> pd.DataFrame:
    """Taxa called for MS risk (class) or progression (progression_class), strongest first."""
    progression = frame["progression_class"] if "progression_class" in frame.columns else \
        pd.Series("neutral", index=frame.index)
    called = frame[(frame["class"] != "neutral") | progression.fillna("neutral").ne("neutral")].copy()
    q_columns = [c for c in called.columns if c.startswith("q_")]
    called["_q"] = called[q_columns].min(axis=1) if q_columns else 1.0
    called["_o"] = called["class"].map(ORDER).fillna(3)
    return called.sort_values(["_o", "_q", "feature"]).drop(columns=["_o", "_q"])


class Evidence:
    """The stage files a card reads, loaded once."""

    def __init__(self, results, features):
        self.results = results
        self.methods = {m: results.table(f"differential/{m}.tsv") for m in methods_run(results)}
        self.sites = results.table("differential/site_effects.tsv")
        self.meta = results.table("differential/site_meta.tsv")
        self.clinical = results.table("clinical/associations.tsv")
        info = results.json("ingest/cohort/cohort.json") or {}
        self.case, self.control = info.get("case_label", "MS"), info.get("control_label", "HHC")
        self.q = float(((results.json("provenance.json") or {}).get("config", {}).get("differential", {})
                        .get("q_threshold", 0.05)))
        self.abundance, self.info = self._abundance(features)

    def _abundance(self, features):
        """Relative abundance of ``features`` per participant (first stool sample), and who is who."""
        path = self.results.path("ingest/cohort/cohort.json")
        if path is None or not features:
            return None, None
        cohort = read_cohort(path.parent, mmap_genotypes=True)
        table = cohort.table("taxa")
        profiles = participant_profiles(table, cohort.samples, "first")
        totals = profiles.sum(axis=1).replace(0, float("nan"))
        wanted = [f for f in features if f in profiles.columns]
        relative = profiles[wanted].div(totals, axis=0)
        info = cohort.participants.loc[relative.index, ["household_id", "status"]]
        return relative, info

    def method_rows(self, feature) -> pd.DataFrame | None:
        rows = []
        for method, t in self.methods.items():
            if t is None:
                continue
            hit = t[t["feature"] == feature]
            if len(hit) and pd.notna(hit["pvalue"].iloc[0]):
                rows.append({"method": method, "effect": hit["effect"].iloc[0], "pvalue": hit["pvalue"].iloc[0],
                             "qvalue": hit["qvalue"].iloc[0]})
        return pd.DataFrame(rows) if rows else None

    def figure(self, feature, primary: str) -> bytes:
        sites = self.sites[self.sites["feature"] == feature] if self.sites is not None else None
        sites = sites.dropna(subset=["effect"]) if sites is not None else None
        meta = overall = None
        if self.meta is not None:
            hit = self.meta[self.meta["feature"] == feature]
            if len(hit):
                meta = {"effect": float(hit["meta_effect"].iloc[0]), "se": float(hit["meta_se"].iloc[0])}
        primary_table = self.methods.get(primary)
        if primary_table is not None:
            hit = primary_table[primary_table["feature"] == feature]
            if len(hit):
                overall = {"effect": float(hit["effect"].iloc[0]), "se": float(hit["se"].iloc[0])}
        values = self.abundance[feature] if self.abundance is not None and feature in self.abundance else None
        return png_bytes(taxon_figure(self.method_rows(feature), sites, overall, meta, values, self.info,
                                      self.case, self.control, self.q))

    def clinical_text(self, feature) -> str:
        if self.clinical is None:
            return ""
        rows = self.clinical[(self.clinical["feature"] == feature) & (self.clinical["qvalue"] < 0.05)]
        return "; ".join(f"{esc(a)} {fmt(float(e))} (q {fmt(float(q))})"
                         for a, e, q in zip(rows["axis"], rows["effect"], rows["qvalue"]))


def _card(row: pd.Series, evidence: Evidence, primary: str) -> str:
    cls = str(row["class"])
    badges = f'<span class="badge {esc(cls)}">{esc(cls)}</span>'
    if "evidence" in row and isinstance(row.get("evidence"), str) and cls == "neutral":
        badges += f'<span class="badge">{esc(row["evidence"])}</span>'
    progression = row.get("progression_class")
    if isinstance(progression, str) and progression != "neutral":
        badges += f'<span class="badge {esc(progression)}">progression: {esc(progression)}</span>'
    flags = []
    if str(row.get("site_driven")) == "True":
        flags.append("site-driven")
    if isinstance(row.get("treatment_effects"), str) and row["treatment_effects"]:
        flags.append("therapy effect")
    if str(row.get("pseudocount_robust")) == "False":
        flags.append("zero-handling sensitive")
    badges += "".join(f'<span class="badge flag">{esc(f)}</span>' for f in flags)
    effect = row.get(f"effect_{primary}")
    fold = f"{fmt(float(effect))} (×{2 ** float(effect):.2g} in {esc(evidence.case)})" if pd.notna(effect) else ""
    methods = (f"{int(row['n_significant'])} of {int(row['n_methods'])} significant"
               if pd.notna(row.get("n_significant")) and pd.notna(row.get("n_methods")) else "")
    sites = ""
    if pd.notna(row.get("site_agreement")) and pd.notna(row.get("n_sites_estimated")):
        sites = (f"{pct(row['site_agreement'])} of {int(row['n_sites_estimated'])} sites agree in sign; "
                 f"I² {pct(row.get('i2'))}")
        if str(row.get("site_driven")) == "True":
            sites += "; <b>site-driven</b>: leaving one site out loses significance"
    prevalence = ""
    if pd.notna(row.get("prevalence_case")):
        prevalence = (f"{pct(row['prevalence_case'])} of {esc(evidence.case)}, {pct(row['prevalence_control'])} of "
                      f"{esc(evidence.control)}; mean relative abundance {percent(row.get('mean_abundance_case'))} vs "
                      f"{percent(row.get('mean_abundance_control'))}")
    therapy = esc(row["treatment_effects"]) if isinstance(row.get("treatment_effects"), str) else \
        "no therapy changes it (q < 0.05)"
    genotype = esc(row["genotype_modifiers"]) if isinstance(row.get("genotype_modifiers"), str) and \
        row["genotype_modifiers"] else ("none" if "genotype_modifiers" in row.index else "")
    progression_text = ""
    if isinstance(row.get("progression_reason"), str):
        progression_text = f"{esc(row.get('progression_class', ''))}: {esc(row['progression_reason'])}"
    clinical = evidence.clinical_text(row["feature"])
    body = facts([("reason", esc(row["reason"])), (f"{primary} effect", fold), ("methods", methods),
                  ("sites", sites), ("prevalence", prevalence), ("therapies", therapy),
                  ("genotype modifiers", genotype), ("progression", progression_text),
                  ("clinical axes (q < 0.05)", clinical)])
    png = evidence.figure(row["feature"], primary)
    return (f'<article class="taxon {esc(cls)}"><h3>{esc(row["feature"])}</h3><p>{badges}</p>{body}'
            f"{figure(png, 'evidence for ' + str(row['feature']))}</article>")


def percent(value) -> str:
    """A relative abundance (a proportion) as a percentage."""
    if value is None or pd.isna(value):
        return ""
    return f"{fmt(100 * float(value))}%"


def how_to_read(evidence: Evidence, primary: str) -> str:
    return ('<p class="note">How to read a card. <b>Methods</b>: each method\'s estimate as the signed z of its '
            f"p-value (one scale for all), coloured when its q &lt; {fmt(evidence.q)} (vermillion: higher in "
            f"{esc(evidence.case)}; blue: lower); dashed lines at ±1.96. <b>Sites</b>: the primary method "
            f"({esc(primary)}) within each site, the random-effects pool over sites, and the whole cohort, with 95% "
            "intervals, on its log2 fold-change scale. <b>Within households</b>: every participant's relative "
            "abundance (first stool sample; zeros on the dotted line), a line per household joining the control and "
            "the patient, coloured by which is higher; black bars are medians.</p>")


def section(results) -> Section:
    frame = results.table("classification/species_classification.tsv")
    if frame is None:
        return not_run(ANCHOR, TITLE, "The classification stage did not run.")
    config = (results.json("provenance.json") or {}).get("config", {})
    primary = config.get("classification", {}).get("primary_method", "linda")
    called = called_taxa(frame)
    counts = frame["class"].value_counts()
    evidence = Evidence(results, list(called["feature"].head(MAX_CARDS)))
    info = results.json("ingest/cohort/cohort.json") or {}
    case = info.get("case_label", "MS")

    body = (f"<p>{len(frame)} taxa classified: <b>{int(counts.get('high-risk', 0))} high-risk</b> (more abundant "
            f"in {esc(case)}), <b>{int(counts.get('protective', 0))} protective</b> (less abundant in {esc(case)}) and "
            f"{int(counts.get('neutral', 0))} neutral. The rule is in "
            "<code>workflow_scripts/classification/classify.py</code>; its parameters are under Methods.</p>")
    if len(called):
        body += how_to_read(evidence, primary)
        cards = "".join(_card(row, evidence, primary) for _, row in called.head(MAX_CARDS).iterrows())
        body += cards
        if len(called) > MAX_CARDS:
            body += f'<p class="note">{len(called) - MAX_CARDS} more called taxa are in the table below.</p>'
    else:
        body += "<p>No taxon is called.</p>"

    names = {"feature": "taxon", "class": "class", "evidence": "evidence", "reason": "reason",
             f"effect_{primary}": f"{primary} effect", "n_significant": "methods significant",
             "site_agreement": "sites agreeing", "site_driven": "site-driven", "treatment_effects": "therapy effects",
             "progression_class": "progression"}
    shown = [names[c] for c in names if c in frame.columns]
    ordered = frame.assign(_o=frame["class"].map(ORDER)).sort_values(["_o", "feature"]).drop(columns="_o")
    ordered = ordered.rename(columns=names)
    body += "<h3>Every taxon</h3>"
    is_called = ordered["taxon"].isin(called["feature"])
    if is_called.any():
        body += table(ordered.loc[is_called, shown], row_class="class")
    neutral = ordered.loc[~is_called, shown]
    if len(neutral):
        why = neutral["reason"].str.split(r"[:(]", n=1, regex=True).str[0].str.strip().value_counts()
        body += details(f"{len(neutral)} neutral taxa (" + "; ".join(f"{esc(k)}: {v}" for k, v in why.head(4).items())
                        + ")", table(neutral))
    body += results.links("classification/*.tsv")

    findings, caveats = [], []
    for cls, word in (("high-risk", "higher"), ("protective", "lower")):
        names = called.loc[called["class"] == cls, "feature"].tolist()
        if names:
            findings.append(f"<b>{len(names)} {cls}</b> ({word} in {esc(case)}): "
                            + ", ".join(f"<i>{esc(n)}</i>" for n in names[:8])
                            + (f" and {len(names) - 8} more." if len(names) > 8 else "."))
    if not len(called[called["class"] != "neutral"]):
        findings.append("No taxon is called high-risk or protective.")
    if "progression_class" in frame.columns:
        prog = frame["progression_class"].value_counts()
        findings.append(f"Within patients, {int(prog.get('high-risk', 0))} taxa go with more severe disease or "
                        f"damage and {int(prog.get('protective', 0))} with milder.")
    therapy_only = frame["reason"].astype(str).str.startswith("changed by therapy only")
    if therapy_only.any():
        n = int(therapy_only.sum())
        findings.append(f"{n} {'taxon' if n == 1 else 'taxa'} changed only by a therapy {'is' if n == 1 else 'are'} "
                        f"not called for {esc(case)}.")
    if "evidence" in frame.columns:
        ev = frame.loc[frame["class"] == "neutral", "evidence"].value_counts()
        if len(ev):
            findings.append("Neutral taxa: " + ", ".join(f"{int(v)} {esc(k)}" for k, v in ev.items()) + ".")
    risk = called[called["class"] != "neutral"]
    driven = risk[_flag(risk, "site_driven")]
    if len(driven):
        caveats.append(f"{len(driven)} of the {len(risk)} MS-risk calls {'is' if len(driven) == 1 else 'are'} "
                       "site-driven (leaving one site out loses significance): " + ", ".join(
            f"<i>{esc(f)}</i>" for f in driven["feature"]) + ".")
    treated = risk[risk["treatment_effects"].notna()] if "treatment_effects" in risk.columns else risk.head(0)
    if len(treated):
        caveats.append(f"{len(treated)} of the {len(risk)} MS-risk calls {'is' if len(treated) == 1 else 'are'} also "
                       "changed by a therapy (the MS effect is that of untreated patients, but check the direction): " + ", ".join(
            f"<i>{esc(f)}</i>" for f in treated["feature"]) + ".")
    return Section(ANCHOR, TITLE, body, findings, caveats)
