"""Each differential-abundance method against an independent reference."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from skbio.stats.composition import dirmult_ttest
from statsmodels.stats.multitest import multipletests

from workflow_scripts.differential import aldex, ancombc, maaslin, paired_wilcoxon
from workflow_scripts.differential import linda as linda_method
from workflow_scripts.differential.methods import CONTRACT, run_method
from workflow_scripts.differential.prepare import DifferentialSettings, prepare, status_design
from workflow_scripts.models.nested_model import fit_nested_random_intercepts
from workflow_scripts.transforms import clr as linda_clr
from workflow_scripts.transforms import impute_zeros

from linda_reference import linda
from test_differential_prepare import cohort_from_frames, small_frames


def frames(seed=0, n_households=30, n_taxa=10, zeros=0.15):
    """Pairs in three sites with DMT, counts with zeros, nothing rare (every taxon is tested)."""
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(n_households):
        for status in ("MS", "HHC"):
            rows.append({"participant_id": f"P{h:02d}{status[0]}", "household_id": f"H{h:02d}",
                         "site": "ABC"[h % 3], "status": status, "sex": "FM"[int(rng.random() < 0.5)],
                         "age": float(rng.integers(20, 70)), "bmi": float(np.round(rng.normal(25, 3), 1)),
                         "dmt": (["untreated", "drug_a", "untreated", "drug_b"][h % 4] if status == "MS" else None)})
    part = pd.DataFrame(rows).set_index("participant_id")
    household = np.repeat(rng.normal(size=(n_households, n_taxa)), 2, axis=0)
    eta = rng.normal(size=n_taxa) * 1.5 + household + rng.normal(size=(2 * n_households, n_taxa))
    eta[part["status"].to_numpy() == "MS", 0] += 1.0
    p = np.exp(eta) / np.exp(eta).sum(axis=1, keepdims=True)
    counts = rng.multinomial(rng.integers(3000, 9000, size=len(part)), p).astype(float)
    counts[rng.random(counts.shape) < zeros] = 0
    counts[:, 1] = np.maximum(counts[:, 1], 1)
    return part, pd.DataFrame(counts, index=part.index, columns=[f"g__T{j}" for j in range(n_taxa)])


@pytest.fixture(scope="module")
def data():
    part, counts = frames()
    return prepare(cohort_from_frames(part, counts), DifferentialSettings.from_config(min_prevalence=0.0))


def test_every_method_writes_the_contract(data):
    for name in DifferentialSettings.from_config().methods:
        table = run_method(name, data) if name != "aldex" else run_method(
            name, prepare(cohort_from_frames(*frames()), DifferentialSettings.from_config(min_prevalence=0.0, aldex={"draws": 4})))
        assert list(table.columns[: len(CONTRACT)]) == CONTRACT, name
        assert list(table["feature"]) == sorted(data.features) and (table["method"] == name).all()
        np.testing.assert_allclose(table["qvalue"], multipletests(table["pvalue"], method="fdr_bh")[1])
        assert np.isfinite(table["effect"]).all() and np.isfinite(table["pvalue"]).all(), name


# ---------------------------------------------------------------------------
# LinDA


def test_linda_method_equals_the_linda_core(data):
    settings = DifferentialSettings.from_config(min_prevalence=0.0, linda={"zero_handling": "pseudo-count", "pseudo_count": 0.5,
                                                   "corr_cut": 0.1})
    part, counts = frames()
    d = prepare(cohort_from_frames(part, counts), settings)
    ours = run_method("linda", d).set_index("feature")
    X = status_design(d.design, "fixed")
    core = linda(d.profiles, X, groups=d.design.households, terms=["status"]).set_index("feature")
    np.testing.assert_allclose(ours["effect"], core.loc[ours.index, "log2fc"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours["se"], core.loc[ours.index, "lfc_se"], rtol=1e-10)
    np.testing.assert_allclose(ours["pvalue"], core.loc[ours.index, "pvalue"], rtol=1e-8)
    assert (ours["zero_handling"] == "pseudo-count").all()


def test_site_as_a_random_effect_nests_households_in_sites():
    part, counts = frames()
    settings = DifferentialSettings.from_config(min_prevalence=0.0, site_effect="random", linda={"zero_handling": "pseudo-count"})
    d = prepare(cohort_from_frames(part, counts), settings)
    X = status_design(d.design, "random")
    assert not any(c.startswith("site") for c in X.columns)
    logs = np.log2(counts.to_numpy() + 0.5)
    fit = fit_nested_random_intercepts(logs - logs.mean(axis=1, keepdims=True), X, part["household_id"],
                                       part["site"])
    table = run_method("linda", d).set_index("feature")
    np.testing.assert_allclose(table["effect"] + table["bias"], fit.beta[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(table["se"], fit.se[1], rtol=1e-9)
    fixed = run_method("linda", prepare(cohort_from_frames(part, counts),
                                        DifferentialSettings.from_config(min_prevalence=0.0, linda={"zero_handling": "pseudo-count"})))
    assert not np.allclose(fixed["se"], table["se"].to_numpy())


def test_linda_adaptive_zero_handling_imputes_when_depth_follows_the_design():
    """What LinDA documents, not what the R package does (it never imputes)."""
    part, counts = frames()
    deep = counts.copy()
    deep.loc[part["status"] == "MS"] *= 6  # cases sequenced six times deeper
    d = prepare(cohort_from_frames(part, deep), DifferentialSettings.from_config(min_prevalence=0.0))
    assert linda_method.zero_handling_used(d, "adaptive", 0.1) == "imputation"
    table = run_method("linda", d).set_index("feature")
    assert (table["zero_handling"] == "imputation").all()
    W = linda_method.linda_clr(d, "imputation", 0.5)
    expected = linda_clr(impute_zeros(deep.to_numpy(), "imputation"))
    np.testing.assert_allclose(W.to_numpy(), expected, rtol=1e-12)

    even = counts.copy()
    even.iloc[:, 1] += even.sum(axis=1).max() - even.sum(axis=1)  # every participant has the same depth
    d = prepare(cohort_from_frames(part, even), DifferentialSettings.from_config(min_prevalence=0.0))
    assert linda_method.zero_handling_used(d, "adaptive", 0.1) == "pseudo-count"


# ---------------------------------------------------------------------------
# The iMSMS model


def _imsms_design(part):
    X = pd.DataFrame({"intercept": 1.0, "status": (part["status"] == "MS").astype(float),
                      "sex": (part["sex"] == "M").astype(float), "age": part["age"], "bmi": part["bmi"]},
                     index=part.index)
    for drug in ("drug_a", "drug_b"):
        X[drug] = (part["dmt"] == drug).astype(float)
    return X


def test_imsms_lmm_is_the_nested_model_on_arcsine_square_root(data):
    part, counts = frames()
    table = run_method("imsms_lmm", data).set_index("feature")
    rel = counts.div(counts.sum(axis=1), axis=0)
    Y = np.arcsin(np.sqrt(rel.to_numpy()))
    fit = fit_nested_random_intercepts(Y, _imsms_design(part), part["household_id"], part["site"])
    np.testing.assert_allclose(table["effect"], fit.beta[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(table["se"], fit.se[1], rtol=1e-9)
    np.testing.assert_allclose(table["site_var"], fit.cluster_var, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(table["qvalue"], multipletests(table["pvalue"], method="fdr_bh")[1])


LMER = r"""
suppressMessages(library(lme4))
a <- commandArgs(TRUE)
M <- read.delim(file.path(a[1], "M.tsv")); Y <- read.delim(file.path(a[1], "Y.tsv"))
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
out <- do.call(rbind, lapply(seq_len(ncol(Y)), function(j) {
  M$y <- Y[[j]]
  f <- suppressMessages(lmer(y ~ status + sex + age + bmi + drug_a + drug_b + (1 | household) + (1 | site),
                             data = M, REML = TRUE, control = ctl))
  data.frame(j = j - 1, beta = sprintf("%.15g", fixef(f)["status"]), se = sprintf("%.15g", sqrt(vcov(f)[2, 2])))
}))
write.table(out, file.path(a[1], "out.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
"""


@pytest.mark.needs_r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_imsms_lmm_matches_lme4_live(data, tmp_path):
    part, counts = frames()
    rel = counts.div(counts.sum(axis=1), axis=0)
    pd.DataFrame(np.arcsin(np.sqrt(rel.to_numpy()))).to_csv(tmp_path / "Y.tsv", sep="\t", index=False)
    X = _imsms_design(part).drop(columns="intercept")
    X.assign(household=part["household_id"], site=part["site"]).to_csv(tmp_path / "M.tsv", sep="\t", index=False)
    (tmp_path / "run.R").write_text(LMER)
    subprocess.run(["Rscript", str(tmp_path / "run.R"), str(tmp_path)], check=True, capture_output=True,
                   timeout=180)
    lmer = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    table = run_method("imsms_lmm", data)
    np.testing.assert_allclose(table["effect"], lmer["beta"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(table["se"], lmer["se"], rtol=1e-5)


# ---------------------------------------------------------------------------
# Paired Wilcoxon


def test_paired_wilcoxon_against_a_loop_over_households(data):
    part, counts = frames()
    table = run_method("paired_wilcoxon", data).set_index("feature")
    logs = np.log2(counts + 0.5)
    clr = logs.sub(logs.mean(axis=1), axis=0)
    untreated = [h for h in sorted(set(part["household_id"]))
                 if part.loc[(part["household_id"] == h) & (part["status"] == "MS"), "dmt"].iloc[0] == "untreated"]
    diffs = pd.DataFrame([clr.loc[f"{h[1:].join(['P', 'M'])}"] - clr.loc[f"{h[1:].join(['P', 'H'])}"]
                          for h in untreated])
    assert table["n_pairs"].iloc[0] == len(untreated) == 15
    assert table["n"].iloc[0] == 30
    for feature in table.index:
        d = diffs[feature].to_numpy()
        ref = stats.wilcoxon(d)
        np.testing.assert_allclose(table.loc[feature, "pvalue"], ref.pvalue, rtol=1e-10)
        walsh = [(a + b) / 2 for a, b in itertools.combinations_with_replacement(d, 2)]
        np.testing.assert_allclose(table.loc[feature, "effect"], np.median(walsh), rtol=1e-12)
        assert np.sign(table.loc[feature, "stat"]) == np.sign(np.sum(np.sign(d) * stats.rankdata(np.abs(d)))) \
            or table.loc[feature, "pvalue"] == 1.0
    assert table.loc["g__T0", "effect"] > 0.5  # the planted taxon


# ---------------------------------------------------------------------------
# ANCOM-BC


def test_ancombc_pairs_standard_error_is_the_closed_form():
    """Intercept-only paired design: SE^2 = sum_g (e_gj - theta_g)^2 / G^2 and a common bias shift."""
    part, counts = small_frames(n_households=20)
    part["dmt"] = None
    d = prepare(cohort_from_frames(part, counts), DifferentialSettings.from_config(min_prevalence=0.0, covariates=()))
    table = run_method("ancombc", d).set_index("feature")
    logs = np.log(counts + 1.0)
    D = np.array([logs.loc[f"P{h:02d}M"] - logs.loc[f"P{h:02d}H"] for h in range(20)])
    beta = D.mean(axis=0)
    e = D - beta
    theta = e.mean(axis=1, keepdims=True)
    se = np.sqrt(((e - theta) ** 2).sum(axis=0)) / 20
    np.testing.assert_allclose(table["se"], se, rtol=1e-8)
    shift = table["effect"].to_numpy() - beta
    np.testing.assert_allclose(shift, shift[0], atol=1e-10)  # one bias for every feature
    np.testing.assert_allclose(table["stat"], table["effect"] / table["se"], rtol=1e-10)


def test_ancombc_recovers_planted_log_fold_changes_despite_a_compositional_shift():
    rng = np.random.default_rng(11)
    H, S = 150, 30
    rows = [{"participant_id": f"P{h:03d}{s[0]}", "household_id": f"H{h:03d}", "site": "A", "status": s,
             "sex": "F", "age": 40.0, "bmi": 25.0, "dmt": "untreated" if s == "MS" else None}
            for h in range(H) for s in ("MS", "HHC")]
    part = pd.DataFrame(rows).set_index("participant_id")
    truth = np.zeros(S)
    truth[:5] = 1.5  # five abundant taxa up: every other taxon's share drops
    base = np.linspace(2.0, -1.0, S)
    eta = base + np.repeat(rng.normal(0, 0.7, (H, S)), 2, axis=0) + rng.normal(0, 0.5, (2 * H, S))
    eta += (part["status"] == "MS").to_numpy()[:, None] * truth
    p = np.exp(eta) / np.exp(eta).sum(axis=1, keepdims=True)
    counts = pd.DataFrame(rng.multinomial(20000, p).astype(float), index=part.index,
                          columns=[f"g__T{j:02d}" for j in range(S)])
    d = prepare(cohort_from_frames(part, counts), DifferentialSettings.from_config(min_prevalence=0.0, covariates=()))
    table = run_method("ancombc", d).set_index("feature")
    effect = table["effect"].to_numpy()
    np.testing.assert_allclose(effect[:5], 1.5, atol=0.25)
    assert abs(effect[5:].mean()) < 0.1 and np.abs(effect[5:]).max() < 0.4
    # without the bias correction the null taxa would look depleted
    raw = ancombc.paired_log_ratios(d, 1.0).mean(axis=0).to_numpy()
    assert raw[5:].mean() < -0.3
    assert (table["qvalue"].to_numpy()[:5] < 0.05).all() and (table["qvalue"].to_numpy()[5:] >= 0.05).mean() > 0.8


def test_ancombc_uses_only_paired_households_and_flags_structural_zeros():
    part, counts = frames()
    extra = pd.DataFrame([{"household_id": None, "site": "A", "status": "MS", "sex": "F", "age": 50.0,
                           "bmi": 25.0, "dmt": "untreated"}], index=pd.Index(["P99M"], name="participant_id"))
    counts2 = pd.concat([counts, pd.DataFrame([[100.0] * counts.shape[1]], index=["P99M"], columns=counts.columns)])
    counts2.loc[part.index[part["status"] == "HHC"], "g__T9"] = 0  # absent from every control
    d = prepare(cohort_from_frames(pd.concat([part, extra]), counts2), DifferentialSettings.from_config(min_prevalence=0.0))
    table = run_method("ancombc", d).set_index("feature")
    assert (table["n"] == 60).all() and (table["n_pairs"] == 30).all()
    assert table.loc["g__T9", "structural_zero"] == "control"
    assert (table.drop(index="g__T9")["structural_zero"].fillna("") == "").all()


# ---------------------------------------------------------------------------
# MaAsLin-style model


def test_maaslin_log_transform_is_maaslin2s():
    rel = pd.DataFrame({"a": [0.0, 0.2, 0.4], "b": [0.5, 0.0, 0.1]})
    out = maaslin.log_tss(rel)
    np.testing.assert_allclose(out["a"], np.log2([0.1, 0.2, 0.4]))
    np.testing.assert_allclose(out["b"], np.log2([0.5, 0.05, 0.1]))


def test_maaslin_matches_statsmodels_mixedlm(data):
    part, counts = frames()
    table = run_method("maaslin", data).set_index("feature")
    rel = counts.div(counts.sum(axis=1), axis=0)
    frame = part.assign(status=(part["status"] == "MS").astype(float), sex=(part["sex"] == "M").astype(float),
                        drug_a=(part["dmt"] == "drug_a").astype(float), drug_b=(part["dmt"] == "drug_b").astype(float))
    for feature in ("g__T0", "g__T3"):
        frame["y"] = maaslin.log_tss(rel)[feature]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm("y ~ status + sex + age + bmi + C(site) + drug_a + drug_b", frame,
                              groups="household_id").fit(reml=True)
        assert table.loc[feature, "effect"] == pytest.approx(fit.params["status"], abs=1e-4)
        assert table.loc[feature, "se"] == pytest.approx(fit.bse["status"], abs=1e-4)


# ---------------------------------------------------------------------------
# ALDEx2-style Monte Carlo


def test_aldex_draws_reproduce_skbio_dirmult_ttest():
    """Unpaired two-group design: the same Dirichlet draws, the same fold changes and t statistics."""
    rng = np.random.default_rng(4)
    n = 40
    part = pd.DataFrame({"household_id": None, "site": "A", "status": np.repeat(["MS", "HHC"], n // 2)},
                        index=pd.Index([f"P{i:02d}" for i in range(n)], name="participant_id"))
    counts = pd.DataFrame(rng.poisson(rng.uniform(5, 80, 12), size=(n, 12)).astype(float), index=part.index,
                          columns=[f"g__T{j:02d}" for j in range(12)])
    counts.loc[part["status"] == "MS", "g__T00"] *= 3
    d = prepare(cohort_from_frames(part, counts), DifferentialSettings.from_config(min_prevalence=0.0, covariates=(), aldex={"draws": 16},
                                                           seed=7))
    ours = aldex.monte_carlo(d, 16, 0.5, seed=7)
    ref = dirmult_ttest(counts, part["status"], "MS", "HHC", pseudocount=0.5, draws=16, seed=7, p_adjust=None)
    np.testing.assert_allclose(ours["effect"], ref["Log2(FC)"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours["stat"], ref["T-statistic"], rtol=1e-9)  # equal groups: pooled t = Welch t
    assert (ours["draws"] == 16).all()
    assert ours.loc["g__T00", "effect"] > 1.0


def test_aldex_is_seeded_and_needs_counts(data):
    part, counts = frames()
    settings = DifferentialSettings.from_config(min_prevalence=0.0, aldex={"draws": 3})
    a = run_method("aldex", prepare(cohort_from_frames(part, counts), settings))
    b = run_method("aldex", prepare(cohort_from_frames(part, counts), settings))
    pd.testing.assert_frame_equal(a, b)
    rel = counts.div(counts.sum(axis=1), axis=0)
    c = run_method("aldex", prepare(cohort_from_frames(part, rel, kind="relative"), settings))
    assert c["pvalue"].isna().all() and c["scale"].iloc[0].endswith("not run: needs counts")
