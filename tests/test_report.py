"""The findings-first report, built from small hand-made result files (no workflow run).

The files follow the output contract, including those other stages are adding
(``differential/calibration.tsv``, the classification's ``evidence`` and
``progression_*`` columns, ``clinical/associations.tsv``); every section must
degrade to a note when its files are absent. Layout is checked in headless
Chromium: nothing wider than the page at a desktop, a medium and a narrow width.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_scripts import runner
from workflow_scripts.cohort import write_cohort
from workflow_scripts.ingest.harmonise import ingest
from workflow_scripts.plotting import layout_problems
from workflow_scripts.report import build, readme
from workflow_scripts.report.figures import taxon_figure

from conftest import REPO

METHODS = ("linda", "ancombc")
CALIBRATION = """scope\tmetric\tprevalence_band\teffect\tvalue\tlower\tupper\tn_replicates\tn_tests\tmin_replicate\tmax_replicate\tstatus\tnote
A\ttype1_error_0.05\tall\tnull\t0.043\t0.035\t0.054\t20\t1640\t0.01\t0.07\tok\t
primary\ttype1_error_0.05\tall\tnull\t0.048\t0.038\t0.059\t20\t1640\t0.01\t0.08\tok\t
classification\tcalls_per_null_swap\tall\tnull\t0\t0\t0\t20\t82\t0\t0\tok\t
classification\tfdr_at_q\tall\tq<0.025\t0.023\t\t\t10\t130\t\t\t\t
classification\tq_threshold_used\tall\t\t0.025\t\t\t10\t\t\t\tok\t
classification\tfdr\tall\timplants\t0.023\t0.008\t0.066\t10\t130\t0\t0.1\tok\t
classification\tpower\t<30%\t2x\t0.25\t0.11\t0.47\t10\t20\t0\t0.5\t\t
classification\tpower\t30-60%\t2x\t0.70\t0.48\t0.85\t10\t20\t0.5\t1\t\t
linda\ttype1_error_0.05\tall\tnull\t0.093\t0.072\t0.12\t5\t410\t0.05\t0.12\tflagged\tabove 0.08
"""


def _write(frame: pd.DataFrame, path: Path) -> None:
    runner.write_table(frame, path)


@pytest.fixture
def results(mini, tmp_path):
    """A results folder with every stage's files, hand-made around the mini cohort (genus rank)."""
    root = tmp_path / "results"
    cohort, ledger = ingest(replace(mini.write(), genotypes=None, blood_manifest=None, variants=None))
    write_cohort(cohort, root / "ingest" / "cohort")
    _write(pd.DataFrame({"entity": ["participant", "stool_sample"], "id": ["P00M", "SX"], "file": "",
                         "outcome": ["kept", "dropped"], "reason": ["", "not_in_abundance_table"],
                         "detail": ["", "no column"]}), root / "ingest" / "ledger.tsv")
    taxa = list(cohort.taxa.ids(axis="observation"))
    rng = np.random.default_rng(3)
    high, low = taxa[0], taxa[1]
    for i, method in enumerate(METHODS):
        effect = rng.normal(0, 0.2, len(taxa))
        effect[0], effect[1] = 2.0 + i, -1.5
        p = np.where(np.arange(len(taxa)) < 2, 1e-4, rng.uniform(0.2, 1, len(taxa)))
        _write(pd.DataFrame({"feature": taxa, "method": method, "effect": effect, "se": 0.4, "stat": effect / 0.4,
                             "pvalue": p, "qvalue": np.minimum(p * len(taxa), 1), "n": 13, "n_nonzero": 12,
                             "prevalence_case": 0.9, "prevalence_control": 0.8, "mean_abundance_case": 0.05,
                             "mean_abundance_control": 0.02, "scale": "log2 fold change"}),
               root / "differential" / f"{method}.tsv")
    calls = ["up", "down"] + ["none"] * (len(taxa) - 2)
    consensus = pd.DataFrame({"feature": taxa, "n_methods": 2, "n_significant": [2, 2] + [0] * (len(taxa) - 2),
                              "min_qvalue": [1e-3, 1e-3] + [0.9] * (len(taxa) - 2), "sign_agreement": 1.0,
                              "call": calls, "effect_linda": 0.1, "q_linda": 0.9, "effect_ancombc": 0.1,
                              "q_ancombc": 0.9, "meta_effect": 1.0, "i2": [0.7] + [0.0] * (len(taxa) - 1),
                              "site_driven": [True] + [False] * (len(taxa) - 1), "pseudocount_robust": True})
    _write(consensus, root / "differential" / "consensus.tsv")
    sites = pd.DataFrame([{"feature": t, "site": s, "effect": e, "se": 0.5, "pvalue": 0.01, "n": 6,
                           "n_households": 3} for t in taxa for s, e in (("SiteA", 2.5), ("SiteB", 0.3))])
    _write(sites, root / "differential" / "site_effects.tsv")
    _write(pd.DataFrame({"feature": taxa, "meta_effect": 1.4, "meta_se": 0.6, "meta_pvalue": 0.02, "tau2": 0.5,
                         "i2": 0.7, "n_sites": 2, "loo_max_pvalue": 0.3, "loo_site": "SiteA",
                         "site_driven": [True] + [False] * (len(taxa) - 1)}), root / "differential" / "site_meta.tsv")
    _write(pd.DataFrame({"feature": [low, taxa[2]], "term": "dmt_ocrelizumab", "effect": [1.2, 2.0], "se": 0.3,
                         "stat": 4.0, "pvalue": 1e-4, "qvalue": 0.003, "n_treated": 3}),
           root / "differential" / "treatment_effects.tsv")
    _write(pd.DataFrame({"feature": taxa, "pseudo_count": 0.1, "method": "linda", "effect": 1.0, "se": 0.3,
                         "pvalue": 0.01, "qvalue": 0.04}), root / "differential" / "sensitivity.tsv")
    _write(pd.DataFrame({"entity": ["feature"], "id": ["g__unassigned"], "file": "", "outcome": ["dropped"],
                         "reason": ["unassigned_bucket"], "detail": ["differential: not tested"]}),
           root / "differential" / "ledger.tsv")
    (root / "differential" / "calibration.tsv").write_text(CALIBRATION)
    classes = ["high-risk", "protective"] + ["neutral"] * (len(taxa) - 2)
    reasons = ["enriched in MS: 2 of 2 methods significant, linda +2.00",
               "depleted in MS: 2 of 2 methods significant, linda -1.50", "changed by therapy only: ocrelizumab"] + \
        ["no method significant (smallest q = 0.9)"] * (len(taxa) - 3)
    classification = consensus[["feature", "call", "n_methods", "n_significant", "i2", "site_driven",
                                "pseudocount_robust"]].assign(
        **{"class": classes, "reason": reasons, "effect_linda": [2.0, -1.5] + [0.1] * (len(taxa) - 2),
           "q_linda": [1e-3, 1e-3] + [0.9] * (len(taxa) - 2), "site_agreement": 1.0, "n_sites_estimated": 2,
           "prevalence_case": 0.9, "prevalence_control": 0.8, "mean_abundance_case": 0.05,
           "mean_abundance_control": 0.02, "treatment_effects": [None, "ocrelizumab (+1.20, q=0.003)",
                                                                 "ocrelizumab (+2.00, q=0.003)"]
           + [None] * (len(taxa) - 3),
           "n_genotype_modifiers": 0, "genotype_modifiers": None,
           "evidence": [""] * 2 + ["inconclusive"] + ["equivalent"] * (len(taxa) - 3),
           "progression_class": ["neutral", "neutral", "high-risk"] + ["neutral"] * (len(taxa) - 3),
           "progression_reason": ["no evidence"] * 2 + ["edss and snfl_z"] + ["no evidence"] * (len(taxa) - 3)})
    _write(classification, root / "classification" / "species_classification.tsv")
    _write(pd.DataFrame({"feature": taxa * 2, "axis": ["edss"] * len(taxa) + ["snfl_z"] * len(taxa),
                         "effect": 0.3, "se": 0.1, "pvalue": 0.001, "qvalue": [0.01] + [0.5] * (2 * len(taxa) - 1),
                         "n": 7, "effect_untreated": 0.2, "se_untreated": 0.2, "pvalue_untreated": 0.3,
                         "n_untreated": 4}), root / "clinical" / "associations.tsv")
    _write(pd.DataFrame({"participant_id": ["P00M", "P01M"], "edss": [2.5, 3.0], "armss": [4.1, 5.0],
                         "msss": [3.3, 4.4]}), root / "clinical" / "scores.tsv")
    summary = {"status": "ok", "n_participants": 13, "n_cases": 7, "n_controls": 6, "n_households": 6,
               "case_label": "MS", "control_label": "HHC", "n_variants_tested": 4, "n_features": 8, "fdr": 0.05,
               "n_tests": {"genotype": 32, "interaction": 32}, "n_significant": {"genotype": 1, "interaction": 0},
               "household_errors": "CR1 cluster-robust by household",
               "warnings": ["only 6 households: household cluster-robust (CR1) standard errors are liberal with "
                            "fewer than about 50 clusters; read p-values as approximate"],
               "labelled_variants": [{"variant_id": "rs3135388", "label": "HLA-DRB1*15:01 tag",
                                      "genotype": {"feature": high, "beta": 0.5, "p": 0.01, "q": 0.2,
                                                   "n_significant": 0}}]}
    (root / "association").mkdir(parents=True)
    (root / "association" / "summary.json").write_text(json.dumps(summary))
    (root / "association" / "summary.md").write_text("# Genotype x microbiota association\n")
    (root / "export").mkdir()
    (root / "export" / "README.md").write_text("# Exports\n")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["differential"]["calibration"] = {"null_replicates": 20, "implant_replicates": 10}
    config["clinical"] = {}
    (root / "provenance.json").write_text(json.dumps({"config": config, "seed": 1, "packages": {"numpy": "2.0"},
                                                      "inputs": {}, "outputs": {}}))
    return root


def declared(root: Path) -> list[str]:
    return [str(p) for p in sorted(root.rglob("*")) if p.is_file()]


def render(root: Path, files=None) -> str:
    out = root / "report" / "report.html"
    assert build.main(["--results", str(root), "--files", *(declared(root) if files is None else files),
                       "--out", str(out), "--readme", str(root / "README.md")]) == 0
    return out.read_text()


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_summary_tells_the_findings_and_caveats_first(results):
    html = render(results)
    taxa = pd.read_csv(results / "classification" / "species_classification.tsv", sep="\t")
    high, low = taxa.loc[taxa["class"] == "high-risk", "feature"].item(), \
        taxa.loc[taxa["class"] == "protective", "feature"].item()
    summary = html[html.index('id="summary"'):html.index('id="taxa"')]
    words = text_of(summary)
    assert f"1 high-risk (higher in MS): {high}" in words and f"1 protective (lower in MS): {low}" in words
    assert "13 participants (7 MS, 6 HHC) in 6 households (6 with a patient and a household control)" in words
    # Strength of evidence from the calibration, and every kind of caveat the issue names.
    assert "2.3% of the calls on implanted effects were false (95% CI 0.8%–6.6%)" in words
    assert "1 of the 2 MS-risk calls is site-driven" in words and high in words.split("site-driven", 1)[1]
    assert "also changed by a therapy" in words
    assert "Only 6 households: household cluster-robust (CR1) standard errors are liberal" in words
    assert "Calibration flag: linda type1_error_0.05 = 0.093 (above 0.08)" in words
    assert "9.3% (7.2%–12%)" in text_of(render(results))
    assert "Low power (under 50%) for 2x effects at prevalence <30%" in words
    # The summary comes before the cards, the cards before the stage sections.
    assert html.index('id="summary"') < html.index('id="taxa"') < html.index('id="cohort"')


def test_an_unpaired_design_says_which_tests_changed(results):
    assert "No household pairs" not in text_of(render(results))
    info_file = results / "ingest" / "cohort" / "cohort.json"
    info = json.loads(info_file.read_text())
    info_file.write_text(json.dumps({**info, "n_households_paired": 0}))
    words = text_of(render(results))
    assert "No household pairs: an unpaired design" in words
    assert "the rank-sum test instead of the paired Wilcoxon" in words and "ANCOM-BC and the paired Wilcoxon were not run" in words


def test_a_card_per_called_taxon_with_its_evidence(results):
    html = render(results)
    cards = re.findall(r'<article class="taxon ([\w-]+)"><h3>([^<]+)</h3>(.*?)</article>', html, re.S)
    assert [c[0] for c in cards] == ["high-risk", "protective", "neutral"]  # the third: a progression call
    first = text_of(cards[0][2])
    assert "site-driven" in first and "2 of 2 significant" in first and "I² 70%" in first
    assert "90% of MS, 80% of HHC; mean relative abundance 5% vs 2%" in first
    assert "ocrelizumab (+1.20" in text_of(cards[1][2])
    assert "progression: high-risk" in cards[2][2] and "edss" in text_of(cards[2][2])
    assert all('src="data:image/png;base64,' in c[2] for c in cards)
    # Neutral rows are collapsed under a summary of their reasons.
    neutral = re.search(r"<details><summary>(\d+) neutral taxa \(([^)]*)\)", html)
    assert neutral and int(neutral.group(1)) >= 4 and "no method significant" in neutral.group(2)


def test_links_to_every_tsv_are_relative_and_resolve(results):
    html = render(results)
    links = re.findall(r'href="([^"#]+)"', html)
    tsv = [link for link in links if link.endswith(".tsv")]
    assert {"../differential/linda.tsv", "../differential/calibration.tsv", "../clinical/associations.tsv",
            "../classification/species_classification.tsv"} <= set(tsv)
    report_dir = results / "report"
    assert all((report_dir / link).resolve().is_file() for link in links)
    assert all(not link.startswith(("/", "file:", "http")) for link in links)


def test_missing_stages_give_a_note_not_a_failure(results):
    for stage in ("clinical", "association", "export"):
        shutil.rmtree(results / stage)
    (results / "differential" / "calibration.tsv").unlink()
    words = text_of(render(results))
    assert "The clinical stage did not run" in words
    assert "Skipped: the cohort has no genotypes" in words
    assert "No self-calibration in this run" in words and "was not measured on this cohort" in words
    assert "The export stage did not run" in words
    # A file that exists but the rule did not declare (a stale result) is not shown.
    stale = [f for f in declared(results) if not f.endswith("site_meta.tsv")]
    assert "Sites with a model" in text_of(render(results))
    assert "No per-site meta-analysis in this run" in text_of(render(results, stale))
    # Not even the classification: still a page.
    words = text_of(render(results, [f for f in declared(results) if "classification" not in f]))
    assert "The classification stage did not run" in words


def test_methods_are_prose_from_the_config_with_references(results):
    words = text_of(render(results))
    methods = words[words.index("Methods Cohort"):]
    assert "PERMANOVA [" in methods and "with 999 permutations" in methods
    assert "at least 2 methods are significant and agree in sign" in methods
    assert "20 label swaps within households" in methods
    assert "Benjamini, Y. & Hochberg, Y. (1995)" in methods and "Zhou, H." in methods
    assert "differential:" not in methods and "q_threshold" not in methods  # not a YAML dump
    record = json.loads((results / "provenance.json").read_text())
    record["config"]["diversity"]["permutations"] = 4321
    (results / "provenance.json").write_text(json.dumps(record))
    assert "with 4321 permutations" in text_of(render(results))


def test_the_page_is_self_contained_and_deterministic(results):
    first = render(results)
    assert first == render(results)
    assert "https://" not in first and "http://" not in first.replace("http://www.w3.org", "")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", first)


def test_a_malformed_file_costs_only_its_section(results):
    (results / "differential" / "calibration.tsv").write_text("scope\\tmetric\\tvalue\n")  # literal backslashes
    words = text_of(render(results))
    assert "Calibration on this cohort This section could not be drawn from the stage's files (KeyError" in words
    assert "What was called" in words


def test_card_figure_layout_is_clean(results):
    info = pd.DataFrame({"household_id": ["H1", "H1", "H2", "H2", "H3"], "status": ["MS", "HHC", "MS", "HHC", "MS"]},
                        index=list("abcde"))
    values = pd.Series([0.02, 0.0, 0.01, 0.03, 0.001], index=info.index)
    methods = pd.DataFrame({"method": ["linda", "ancombc", "paired_wilcoxon_long_name"], "effect": [2.0, -0.3, 1.0],
                            "pvalue": [1e-8, 0.5, 0.01], "qvalue": [1e-6, 0.7, 0.04]})
    sites = pd.DataFrame({"site": ["San Francisco", "Buenos Aires", "Edinburgh"], "effect": [2.0, 1.0, -0.5],
                          "se": [0.5, 0.7, np.nan]})
    fig = taxon_figure(methods, sites, {"effect": 1.5, "se": 0.3}, {"effect": 1.2, "se": 0.6}, values, info,
                          "MS", "HHC")
    assert layout_problems(fig) == []


def test_results_readme_lists_what_exists(results):
    render(results)
    text = (results / "README.md").read_text()
    for path in declared(results):
        rel = Path(path).relative_to(results).as_posix()
        assert f"[`{rel}`]({rel})" in text
    assert "no description yet" not in text
    shutil.rmtree(results / "clinical")
    assert "clinical/" not in readme.readme_text(results)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
LAYOUT_CHECK = """<script>
(function () {
  var width = document.documentElement.clientWidth, bad = [];
  document.querySelectorAll('body *').forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.width > 0 && (r.right > width + 1 || r.left < -1)) bad.push(e.tagName + '.' + e.className);
    if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible') bad.push('scroll:' + e.tagName);
  });
  var out = document.createElement('pre');
  out.id = 'layout-check';
  out.textContent = JSON.stringify({width: width, scroll: document.documentElement.scrollWidth, bad: bad});
  document.body.appendChild(out);
})();
</script></body>"""


def chromium(args, tmp_path):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def layout(html_path: Path, width: int, tmp_path) -> dict:
    """Layout facts measured by Chromium at ``width`` px: page width, scroll width, elements past the edge."""
    probe = tmp_path / f"probe_{width}.html"
    probe.write_text(html_path.read_text().replace("</body>", LAYOUT_CHECK))
    dom = chromium([f"--window-size={width},1000", "--dump-dom", probe.as_uri()], tmp_path).stdout
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 800, 500])
def test_nothing_is_wider_than_the_page_in_chromium(results, tmp_path, width):
    render(results)
    facts = layout(results / "report" / "report.html", width, tmp_path)
    assert facts["scroll"] <= facts["width"] and facts["bad"] == [], facts
    # The check can fail: a table forced wider than the page is found.
    wide = results / "report" / "wide.html"
    wide.write_text((results / "report" / "report.html").read_text().replace(
        "<table class=\"sortable\">", "<table class=\"sortable\" style=\"min-width:3000px\">", 1))
    assert layout(wide, width, tmp_path)["bad"]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
def test_screenshots_show_the_page(results, tmp_path):
    from matplotlib.image import imread

    render(results)
    for width in (1280, 500):
        shot = tmp_path / f"report_{width}.png"
        chromium([f"--window-size={width},1600", f"--screenshot={shot}",
                  (results / "report" / "report.html").as_uri()], tmp_path)
        pixels = imread(shot)[..., :3]
        assert pixels.shape[:2] == (1600, width)
        # Not blank: text puts dark pixels on many rows; and nothing is cut at the right edge
        # (the last columns are page background, the same colour from top to bottom).
        assert (pixels.min(axis=(1, 2)) < 0.4).mean() > 0.2
        edge = pixels[:, -4:, :]
        assert edge.std() < 0.02, f"something reaches the right edge at {width}px"
