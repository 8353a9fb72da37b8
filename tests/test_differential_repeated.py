"""The differential stage with repeated stool samples (``repeated_samples: all``, issue 16).

The primary test's components on per-participant summaries of every sample against
statsmodels weighted least squares with HC3 errors, and the gain on generated cohorts with
K samples per participant: more planted species found than with the first sample, at
pooled precision >= 0.95 and with the label-swap type-I error of the combined test near
5% (20 seeds of five scenarios in ``benchmarks/calibrate_repeated.py --primary``).
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from conftest import REPO
from test_differential_prepare import synthetic_cohort

from workflow_scripts.differential import primary
from workflow_scripts.differential.prepare import DifferentialSettings, prepare

sys.path.insert(0, str(REPO / "benchmarks"))
import calibrate_repeated as cal  # noqa: E402


@pytest.fixture(scope="module")
def unbalanced():
    """40 households, 60% of participants with 2-3 samples, the rest 1."""
    _, cohort = synthetic_cohort(n_households=40, n_species=60, seed=5, effect_size=1.0, repeat_fraction=0.6)
    return prepare(cohort, DifferentialSettings.from_config(repeated_samples="all"))


def per_sample_clr(data):
    logs = np.log2(data.samples.astype(float)[list(data.profiles.columns)] + 0.5)
    return logs.sub(logs.mean(axis=1), axis=0)[list(data.features)]


def per_sample_summaries(data):
    """Per participant: mean CLR over samples, mean log2 abundance minus reference where present, any presence."""
    counts = data.samples.astype(float)
    logs = np.log2(counts + 0.5)
    ref = logs.mean(axis=1)
    clr = logs.sub(ref, axis=0)
    with np.errstate(divide="ignore"):
        where = np.log2(counts.where(counts > 0)).sub(ref, axis=0)
    by = clr.index
    return clr.groupby(by).mean(), where.groupby(by).mean(), (counts > 0).groupby(by).any()


def households(data):
    frame = data.design.frame[data.design.frame["paired"]]
    case = frame[frame["status"] == 1].reset_index().set_index("household")["participant_id"]
    control = frame[frame["status"] == 0].reset_index().set_index("household")["participant_id"]
    return pd.DataFrame({"case": case, "control": control}).sort_index()


def test_components_are_weighted_hc3_on_per_participant_summaries(unbalanced):
    data = unbalanced
    k = data.n_samples()
    assert k.max() >= 3 and (k == 1).mean() > 0.2  # unbalanced: the weights differ
    prep = primary.prepare_primary(data)
    raw = primary.components(prep.units, prep.resp, primary.observed_tested(prep.units), prep.options)
    clr, where, present = per_sample_summaries(data)
    pairs = households(data)
    assert list(prep.units.names) == list(pairs.index)
    # inverse-variance weights, var(participant mean) ~ 1 + lambda / k, lambda = within / between variance
    kk = k.loc[clr.index].to_numpy()
    tested = clr[list(data.features)]
    samples = per_sample_clr(data)
    within = (samples - samples.groupby(level=0).transform("mean")).pow(2).sum() / (kk - 1).sum()
    between = np.maximum(tested.var(ddof=1) - within * np.mean(1 / kk), 0.01 * within)
    lam = np.median(within / between)
    assert 0 < lam < 20
    v = 1 + lam / k
    weight = 1 / (v.loc[pairs["case"]].to_numpy() + v.loc[pairs["control"]].to_numpy())
    np.testing.assert_allclose(prep.units.weight, weight, rtol=1e-9)
    assert weight.max() > 1.01 * weight.min()
    Z = data.design.covariates
    X = np.column_stack([np.ones(len(pairs)), Z.loc[pairs["case"]].to_numpy() - Z.loc[pairs["control"]].to_numpy()])
    checked_B = 0
    for j, feature in enumerate(data.features):
        y = clr.loc[pairs["case"], feature].to_numpy() - clr.loc[pairs["control"], feature].to_numpy()
        fit = sm.WLS(y, X, weights=weight).fit(cov_type="HC3")
        assert raw["effect_A"][j] == pytest.approx(fit.params[0], rel=1e-9, abs=1e-12)
        assert raw["se_A"][j] == pytest.approx(fit.bse[0], rel=1e-9)
        b = where.loc[pairs["case"], feature].to_numpy() - where.loc[pairs["control"], feature].to_numpy()
        both = np.isfinite(b)
        assert raw["n_B"][j] == both.sum()
        if both.sum() >= 15:
            fit = sm.WLS(b[both], X[both], weights=weight[both]).fit(cov_type="HC3")
            Xw = X[both] * np.sqrt(weight[both])[:, None]
            if np.diag(Xw @ np.linalg.pinv(Xw.T @ Xw) @ Xw.T).max() > 1 - 1e-9:
                continue  # a row fitted exactly: robust_ols gives it no weight, statsmodels divides by ~0
            assert raw["effect_B"][j] == pytest.approx(fit.params[0], rel=1e-8, abs=1e-12)
            assert raw["se_B"][j] == pytest.approx(fit.bse[0], rel=1e-8)
            checked_B += 1
        case_has = present.loc[pairs["case"], feature].to_numpy()
        control_has = present.loc[pairs["control"], feature].to_numpy()
        assert raw["n_C"][j] == (case_has ^ control_has).sum()  # presence: in any sample
    assert checked_B >= 10


def swap_type1(data) -> float:
    """Fraction of combined p < 0.05 over the taxa of the stage's label swaps (20)."""
    prep = primary.prepare_primary(data)
    P = []
    for r in range(prep.swaps.status.shape[0]):
        raw = {key: v[r] for key, v in prep.raw_null.items()}
        P.append(primary.combine(raw, (prep.bias_null[0][r], prep.bias_null[1][r]), prep.bias_var,
                                 prep.options)["pvalue"])
    P = np.array(P, dtype=float)
    return float((P[np.isfinite(P)] < 0.05).mean())


def test_weights_are_recorded_switchable_and_keep_the_level(unbalanced):
    data = unbalanced
    unweighted = replace(data, settings=DifferentialSettings.from_config(
        repeated_samples="all", primary={"weight_by_samples": False}))
    assert (primary.prepare_primary(unweighted).units.weight == 1).all()
    for d in (data, unweighted):
        assert 0.02 <= swap_type1(d) <= 0.08
    table = primary.run(data)
    assert (table["repeated_samples"] == "all").all()
    used = primary.prepare_primary(data).units.participants(data.design.frame.index)
    assert table["n_samples"].iloc[0] == int(data.n_samples().loc[used].sum()) > len(used)


SEEDS = (1, 2, 3, 4)


@pytest.fixture(scope="module")
def repeated_cohorts():
    """Four seeds of K = 3 samples per participant (within-person SD 0.5), 60 households,
    120 species, small planted effects (0.6): the primary test under first and all."""
    args = cal.BASE | cal.SCENARIOS["K3_within0.5"] | {"effect_size": 0.6}
    out = []
    for seed in SEEDS:
        generated = cal.synthetic.generate(seed=seed, **args)
        cohort = cal.workflow_cohort(generated)
        out.append({policy: cal.primary_result(cohort, generated.truth_species, policy)
                    for policy in ("first", "all")})
    return out


def test_every_sample_finds_more_planted_species_at_the_same_precision(repeated_cohorts):
    right = {p: sum(r[p]["right"] for r in repeated_cohorts) for p in ("first", "all")}
    calls = {p: sum(r[p]["calls"] for r in repeated_cohorts) for p in ("first", "all")}
    assert right["all"] >= right["first"] + 4, right  # pooled over the four seeds
    assert sum(r["all"]["right"] > r["first"]["right"] for r in repeated_cohorts) >= 2
    assert not any(r["all"]["right"] < r["first"]["right"] - 1 for r in repeated_cohorts)
    assert right["all"] / calls["all"] >= 0.95, (right, calls)
    assert repeated_cohorts[0]["all"]["n_samples"] == 3 * repeated_cohorts[0]["first"]["n_samples"]


def test_label_swap_type1_error_of_the_combined_test_holds_with_weights(repeated_cohorts):
    for r in repeated_cohorts:
        for policy in ("first", "all"):
            assert 0.02 <= r[policy]["type1"] <= 0.08, (policy, r[policy]["type1"])
