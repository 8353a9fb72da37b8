"""Methods in prose, written from the run's configuration (``provenance.json``), with references.

Every number in the text is the run's own setting; a stage whose settings are
absent from the configuration (it did not run, or this version has no such
stage) gets no paragraph.
"""

from __future__ import annotations

import pandas as pd

from ..html import details, esc, fmt, table
from . import Section, not_run

ANCHOR, TITLE = "methods", "Methods"

REFERENCES = {
    "imsms": "iMSMS Consortium (2022). Gut microbiome of multiple sclerosis patients and paired household "
             "healthy controls reveal associations with disease risk and course. <i>Cell</i> 185, 3467–3486.",
    "chao": "Chao, A. (1984). Nonparametric estimation of the number of classes in a population. "
            "<i>Scandinavian Journal of Statistics</i> 11, 265–270.",
    "faith": "Faith, D. P. (1992). Conservation evaluation and phylogenetic diversity. <i>Biological "
             "Conservation</i> 61, 1–10.",
    "unifrac": "Lozupone, C. & Knight, R. (2005). UniFrac: a new phylogenetic method for comparing microbial "
               "communities. <i>Applied and Environmental Microbiology</i> 71, 8228–8235.",
    "rpca": "Martino, C. et al. (2019). A novel sparse compositional technique reveals microbial perturbations. "
            "<i>mSystems</i> 4, e00016-19.",
    "permanova": "Anderson, M. J. (2001). A new method for non-parametric multivariate analysis of variance. "
                 "<i>Austral Ecology</i> 26, 32–46.",
    "permdisp": "Anderson, M. J. (2006). Distance-based tests for homogeneity of multivariate dispersions. "
                "<i>Biometrics</i> 62, 245–253.",
    "linda": "Zhou, H., He, K., Chen, J. & Zhang, X. (2022). LinDA: linear models for differential abundance "
             "analysis of microbiome compositional data. <i>Genome Biology</i> 23, 95.",
    "ancombc": "Lin, H. & Peddada, S. D. (2020). Analysis of compositions of microbiomes with bias correction. "
               "<i>Nature Communications</i> 11, 3514.",
    "maaslin": "Mallick, H. et al. (2021). Multivariable association discovery in population-scale meta-omics "
               "studies. <i>PLoS Computational Biology</i> 17, e1009442.",
    "aldex": "Fernandes, A. D. et al. (2014). Unifying the analysis of high-throughput sequencing datasets: "
             "characterizing RNA-seq, 16S rRNA gene sequencing and selective growth experiments by compositional "
             "data analysis. <i>Microbiome</i> 2, 15.",
    "bh": "Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate: a practical and powerful "
          "approach to multiple testing. <i>Journal of the Royal Statistical Society B</i> 57, 289–300.",
    "dl": "DerSimonian, R. & Laird, N. (1986). Meta-analysis in clinical trials. <i>Controlled Clinical Trials</i> "
          "7, 177–188.",
    "i2": "Higgins, J. P. T. & Thompson, S. G. (2002). Quantifying heterogeneity in a meta-analysis. "
          "<i>Statistics in Medicine</i> 21, 1539–1558.",
    "cr": "Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust inference. "
          "<i>Journal of Human Resources</i> 50, 317–372.",
    "hc3": "Long, J. S. & Ervin, L. H. (2000). Using heteroscedasticity consistent standard errors in the linear "
           "regression model. <i>The American Statistician</i> 54, 217–224.",
    "msss": "Roxburgh, R. H. S. R. et al. (2005). Multiple Sclerosis Severity Score: using disability and disease "
            "duration to rate disease severity. <i>Neurology</i> 64, 1144–1151.",
    "armss": "Manouchehrinia, A. et al. (2017). Age Related Multiple Sclerosis Severity Score: disability ranked "
             "by age. <i>Multiple Sclerosis Journal</i> 23, 1938–1946.",
    "wirbel": "Wirbel, J. et al. (2024). A realistic benchmark for differential abundance testing and confounder "
              "adjustment in human microbiome studies. <i>Genome Biology</i> 25, 247.",
}

METRIC_WORDS = {"braycurtis": "Bray–Curtis", "jaccard": "Jaccard", "robust_aitchison": "robust Aitchison [rpca]",
                "weighted_unifrac": "weighted UniFrac [unifrac]", "unweighted_unifrac": "unweighted UniFrac [unifrac]"}
METHOD_WORDS = {
    "linda": "LinDA [linda] (CLR with a household random intercept and its bias correction)",
    "ancombc": "ANCOM-BC [ancombc] on within-household log-ratios",
    "imsms_lmm": "the iMSMS mixed model [imsms] (arcsine-square-root relative abundance, household and site "
                 "random intercepts)",
    "paired_wilcoxon": "a paired Wilcoxon signed-rank test of within-household CLR differences",
    "maaslin": "a MaAsLin-style [maaslin] linear mixed model of log relative abundance",
    "aldex": "an ALDEx2-style [aldex] Monte Carlo CLR model",
}


class Citations:
    """Numbers references in order of first citation: ``[key]`` in the text becomes ``[n]``."""

    def __init__(self):
        self.order: list[str] = []

    def __call__(self, text: str) -> str:
        for key in REFERENCES:
            token = f"[{key}]"
            if token in text:
                if key not in self.order:
                    self.order.append(key)
                text = text.replace(token, f"[{self.order.index(key) + 1}]")
        return text

    def html(self) -> str:
        return '<ol class="refs">' + "".join(f"<li>{REFERENCES[k]}</li>" for k in self.order) + "</ol>"


def _list(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def paragraphs(config: dict) -> list[tuple[str, str]]:
    """(heading, text with [key] citations) for every configured stage."""
    out = []
    rank, case, control = config.get("rank", "species"), config.get("case_label", "MS"), config.get("control_label",
                                                                                                     "HHC")
    covariates = _list(config.get("covariates", [])) or "no covariates"
    ingest = config.get("ingest", {})
    kind = config.get("inputs", {}).get("abundance_kind", "counts")
    out.append(("Cohort", f"Abundances ({esc(kind)}) were aggregated to {esc(rank)} rank. Stool samples with fewer "
                f"than {fmt(ingest.get('min_depth'))} reads were set aside (counts only), and every input id is "
                f"accounted for, kept or with the reason it was dropped, in <code>ingest/ledger.tsv</code>. "
                f"Patients ({esc(case)}) are compared with their household controls ({esc(control)}), as in the "
                "iMSMS design [imsms]."))
    div = config.get("diversity")
    if div:
        metrics = _list(METRIC_WORDS.get(m, m) for m in div.get("metrics", []))
        rare = (f"Samples were rarefied to {fmt(div['rarefaction_depth'])} reads (seeded)."
                if div.get("rarefaction_depth") else "Samples were not rarefied.")
        out.append(("Diversity", f"Alpha diversity (observed taxa, Shannon in base {fmt(div.get('shannon_base'))}, "
                    "Simpson, Pielou, bias-corrected Chao1 [chao] and, with a tree, Faith's PD [faith]) was "
                    "compared between patients and their household controls by a paired Wilcoxon test and a household "
                    f"random-intercept model adjusted for {esc(covariates)}, site and therapies. Beta diversity used "
                    f"{metrics}; each participant's first sample entered a principal coordinates analysis, PERMANOVA "
                    f"[permanova] with {fmt(div.get('permutations'))} permutations (within households for the status "
                    f"model) and PERMDISP [permdisp]. {rare}"))
    diff = config.get("differential")
    if diff:
        methods = _list(METHOD_WORDS.get(m, esc(m)) for m in diff.get("methods", []))
        cons = diff.get("consensus", {})
        sens = diff.get("sensitivity", {})
        meta = diff.get("site_meta", {})
        text = (f"Taxa present in at least {fmt(100 * diff.get('min_prevalence', 0.1))}% of participants were tested "
                f"with {methods}. Status is untreated {esc(case)} against household controls, adjusted for "
                f"{esc(covariates)} and site ({esc(diff.get('site_effect', 'fixed'))} effect), with one indicator "
                "per disease-modifying therapy that is zero for controls and untreated patients, so that a taxon "
                "moved only by a drug is not called disease-associated. Each method's p-values were adjusted by "
                f"Benjamini–Hochberg [bh]; a method is significant at q &lt; {fmt(diff.get('q_threshold'))}. "
                f"The consensus calls a taxon when at least {fmt(cons.get('min_significant'))} methods are "
                f"significant and agree in sign, at least {fmt(cons.get('min_compositional'))} of them "
                f"compositional, the smallest q is below {fmt(cons.get('strong_q'))} and at least "
                f"{fmt(100 * cons.get('min_sign_agreement', 0.5))}% of the estimates share the call's sign.")
        if sens:
            text += (f" Zero handling was checked by refitting {_list(sens.get('methods', []))} with pseudo-counts "
                     f"{_list(fmt(p) for p in sens.get('pseudo_counts', []))}.")
        if meta:
            text += (f" LinDA was refitted within every site with at least {fmt(meta.get('min_households'))} "
                     "households and the site effects pooled by DerSimonian–Laird random effects [dl], with "
                     "<i>I</i>² [i2] and a leave-one-site-out check.")
        calibration = diff.get("calibration")
        if isinstance(calibration, dict):
            text += (f" The stage calibrated itself on the cohort: {fmt(calibration.get('null_replicates'))} "
                     "label swaps within households (type-I error) and "
                     f"{fmt(calibration.get('implant_replicates'))} replicates of effects implanted into the real "
                     "data (false-discovery rate and power), as Wirbel et al. recommend [wirbel].")
        out.append(("Differential abundance", text))
    cls = config.get("classification")
    if cls:
        text = (f"A taxon is <b>high-risk</b> (or <b>protective</b>) when the consensus calls it higher (lower) in "
                f"{esc(case)}, the primary method ({esc(cls.get('primary_method'))}) estimates an effect of at least "
                f"{fmt(cls.get('min_effect'))} in size, it is present in at least "
                f"{fmt(100 * cls.get('min_prevalence', 0.1))}% of patients or of controls, and at least "
                f"{fmt(100 * cls.get('min_site_agreement', 0.5))}% of the sites with an estimate agree in sign")
        text += ("; site-driven calls are excluded" if cls.get("exclude_site_driven") else
                 "; site-driven calls are kept and flagged")
        if cls.get("require_pseudocount_robust"):
            text += "; the call must hold at every pseudo-count"
        out.append(("Classification", text + ". Every other taxon is neutral, with the first condition it failed."))
    assoc = config.get("association")
    if assoc and config.get("inputs", {}).get("genotypes"):
        out.append(("Genotype × microbiota", f"Variants with minor-allele frequency at least {fmt(assoc.get('maf_min'))}, "
                    f"call rate at least {fmt(assoc.get('call_rate_min'))}, Hardy–Weinberg p at least "
                    f"{fmt(assoc.get('hwe_p_min'))} in controls and at least {fmt(assoc.get('min_carriers'))} "
                    "minor-allele carriers were tested against the CLR abundance (pseudo-count "
                    f"{fmt(assoc.get('pseudo_count'))}) of taxa present in at least "
                    f"{fmt(100 * assoc.get('min_prevalence', 0.1))}% of participants, by least squares with a genotype "
                    "main effect and a genotype × status interaction, adjusted for the covariates, site, therapies "
                    f"and up to {fmt(assoc.get('genetic_pcs'))} genetic principal components (when at least "
                    f"{fmt(assoc.get('pcs_min_variants'))} variants pass QC). Standard errors are cluster-robust by "
                    "household (CR1) [cr]; Benjamini–Hochberg [bh] over all tests of each kind, at q &lt; "
                    f"{fmt(assoc.get('fdr'))}."))
    clin = config.get("clinical")
    if isinstance(clin, dict):
        out.append(("Clinical severity", "Within patients, EDSS, ARMSS [armss], MSSS [msss], the progressive course "
                    "and, where measured, serum neurofilament light and GFAP (Z-scores against the cohort's controls) "
                    "were each related to every taxon's CLR abundance by least squares with HC3 errors [hc3], adjusted "
                    "for the covariates, site and therapies, and refitted in untreated patients."))
    return out


def section(results) -> Section:
    record = results.json("provenance.json")
    if record is None:
        return not_run(ANCHOR, TITLE, "No <code>provenance.json</code>: the run's configuration is unknown.")
    cite = Citations()
    body = "".join(f"<h3>{esc(h)}</h3><p>{cite(t)}</p>" for h, t in paragraphs(record.get("config", {})))
    body += (f"<h3>Reproducibility</h3><p>Every random step derives from the seed <b>{esc(record.get('seed'))}</b>; "
             f"the same inputs and configuration give byte-identical results. The full configuration, package "
             f"versions and the checksum of every input and output are in {results.link('provenance.json')}.</p>")
    versions = pd.Series(record.get("packages", {}), name="version").to_frame()
    if len(versions):
        body += details("Software versions", table(versions, index=True))
    inputs = record.get("inputs", {})
    if inputs:
        frame = pd.DataFrame([{"input": k, "file": str(v.get("path", "")).rsplit("/", 1)[-1],
                               "sha256": str(v.get("sha256", ""))[:16] + "…"} for k, v in inputs.items()])
        body += details("Input files and checksums", table(frame))
    body += "<h3>References</h3>" + cite.html()
    return Section(ANCHOR, TITLE, body)
