"""The primary test: its components against references, the label swaps, the bias, the call rule,
and its error rates on generated cohorts (null swaps, planted effects, null cohorts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from workflow_scripts.differential import calibration, primary
from workflow_scripts.differential.bias import kde_modes, local_mode
from workflow_scripts.differential.calls import decide
from workflow_scripts.differential.linda import kde_mode
from workflow_scripts.differential.prepare import DifferentialSettings, prepare

from test_differential_prepare import synthetic_cohort


def stage(cohort, **settings):
    """Stage data; one stool sample per participant unless asked (the references here are per
    participant; ``repeated_samples: all`` is tested in test_differential_repeated.py)."""
    return prepare(cohort, DifferentialSettings.from_config({"repeated_samples": "first", **settings}))


@pytest.fixture(scope="module")
def small():
    """60 households, 80 species, covariates sex, age, BMI."""
    truth, cohort = synthetic_cohort(n_households=60, n_species=80, seed=3, effect_size=1.0)
    return truth, cohort


# ---------------------------------------------------------------------------
# The bias


def test_kde_modes_equal_kde_mode_row_by_row():
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.normal(size=(20, 150)), rng.standard_t(2, size=(20, 150)) + 2,
                           np.round(rng.normal(size=(5, 150)), 1)])
    np.testing.assert_allclose(kde_modes(rows), [kde_mode(r) for r in rows], atol=1e-9)


def test_local_mode_follows_a_bias_that_changes_with_abundance():
    rng = np.random.default_rng(1)
    p = 600
    abundance = rng.uniform(-12, -3, p)
    bias = 0.1 * (abundance + 7.5)  # rare taxa shifted down, abundant up
    estimates = bias + rng.normal(0, 0.15, p)
    estimates[rng.choice(p, 60, replace=False)] += rng.choice([-2, 2], 60)  # true effects
    use = np.ones(p, bool)
    local = local_mode(estimates, abundance, use)
    inner = (abundance > -11) & (abundance < -4)
    assert np.abs(local - bias)[inner].max() < 0.12
    # one global mode cannot follow it
    assert np.abs(kde_mode(estimates) - bias)[inner].max() > 0.3
    # below min_taxa: LinDA's global mode; replicates are rows
    assert np.allclose(local_mode(estimates[:50], abundance[:50], use[:50]), kde_mode(estimates[:50]))
    both = local_mode(np.stack([estimates, -estimates]), abundance, use)
    np.testing.assert_allclose(both[0], local, atol=1e-12)


# ---------------------------------------------------------------------------
# The components against references


def household_frame(data):
    """One row per household: case and control participant ids (the generator's 1:1 households)."""
    frame = data.design.frame[data.design.frame["paired"]]
    case = frame[frame["status"] == 1].reset_index().set_index("household")["participant_id"]
    control = frame[frame["status"] == 0].reset_index().set_index("household")["participant_id"]
    return pd.DataFrame({"case": case, "control": control}).sort_index()


def log_ratios(data):
    """log2(x + 0.5) centred over all taxa, and log2(x) minus the same reference where x > 0."""
    counts = data.profiles.astype(float)
    logs = np.log2(counts + 0.5)
    ref = logs.mean(axis=1)
    with np.errstate(divide="ignore"):
        present = np.log2(counts.where(counts > 0)).sub(ref, axis=0)
    return logs.sub(ref, axis=0), present, ref


def test_component_A_without_covariates_is_the_paired_t_with_hc3(small):
    _, cohort = small
    data = stage(cohort, covariates=[])
    prep = primary.prepare_primary(data)
    raw = primary.components(prep.units, prep.resp, primary.observed_tested(prep.units), prep.options)
    clr, _, _ = log_ratios(data)
    pairs = household_frame(data)
    d = clr.loc[pairs["case"]].to_numpy() - clr.loc[pairs["control"]].to_numpy()
    d = pd.DataFrame(d, columns=clr.columns)[list(data.features)].to_numpy()
    n = len(d)
    np.testing.assert_allclose(raw["effect_A"], d.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(raw["se_A"], d.std(axis=0, ddof=1) / np.sqrt(n - 1), rtol=1e-10)
    assert (raw["df_A"] == n - 1).all()


def test_component_B_is_ols_hc3_on_the_households_with_the_taxon(small):
    _, cohort = small
    data = stage(cohort)
    prep = primary.prepare_primary(data)
    raw = primary.components(prep.units, prep.resp, primary.observed_tested(prep.units), prep.options)
    _, present, _ = log_ratios(data)
    pairs = household_frame(data)
    Z = data.design.covariates
    dz = Z.loc[pairs["case"]].to_numpy() - Z.loc[pairs["control"]].to_numpy()
    design = np.column_stack([np.ones(len(pairs)), dz])
    checked = 0
    for j, feature in enumerate(data.features):
        y = present.loc[pairs["case"], feature].to_numpy() - present.loc[pairs["control"], feature].to_numpy()
        rows = np.isfinite(y)
        if rows.sum() < 15:
            continue
        ref = sm.OLS(y[rows], design[rows]).fit(cov_type="HC3")
        assert raw["effect_B"][j] == pytest.approx(ref.params[0], rel=1e-9, abs=1e-12)
        assert raw["se_B"][j] == pytest.approx(ref.bse[0], rel=1e-9)
        assert raw["n_B"][j] == rows.sum()
        checked += 1
    assert checked >= 20


def test_a_component_fit_needs_two_residual_degrees_of_freedom():
    rng = np.random.default_rng(0)
    X = np.stack([np.column_stack([rng.choice([-1.0, 1.0], 30), rng.normal(size=(30, 2))]) for _ in range(2)])
    Y = rng.normal(size=(30, 3))
    mask = np.ones((30, 3), bool)
    mask[4:, 0] = False  # k + 1 rows
    mask[5:, 1] = False  # k + 2 rows
    fit = primary.ols_fit(Y, X, mask)
    assert np.isnan(fit["effect"][:, 0]).all() and np.isnan(fit["se"][:, 0]).all()
    assert np.isfinite(fit["se"][:, 1:]).all() and (fit["df"][:, 1] == 2).all()


def test_component_C_is_exact_mcnemar_on_few_discordant_households(small):
    _, cohort = small
    data = stage(cohort)
    prep = primary.prepare_primary(data)
    raw = primary.components(prep.units, prep.resp, primary.observed_tested(prep.units), prep.options)
    counts = data.profiles
    pairs = household_frame(data)
    case = (counts.loc[pairs["case"], list(data.features)].to_numpy() > 0)
    control = (counts.loc[pairs["control"], list(data.features)].to_numpy() > 0)
    b, c = (case & ~control).sum(axis=0), (~case & control).sum(axis=0)
    few = (b + c > 0) & (b + c < 25)
    assert few.sum() >= 10
    expected = [stats.binomtest(int(x), int(x + y), 0.5).pvalue for x, y in zip(b[few], c[few])]
    np.testing.assert_allclose(raw["p_C"][few], expected, rtol=1e-9)
    np.testing.assert_array_equal(raw["sign_C"][few], np.sign(b - c)[few])
    np.testing.assert_allclose(raw["effect_C"], np.log((b + 0.5) / (c + 0.5)), rtol=1e-12)
    assert np.isnan(raw["p_C"][b + c == 0]).all()


# ---------------------------------------------------------------------------
# Label swaps


def test_swaps_are_reproducible_prefix_stable_and_keep_households_together(small):
    _, cohort = small
    data = stage(cohort)
    five = primary.swap_labels(data.design, 5, seed=11)
    twenty = primary.swap_labels(data.design, 20, seed=11)
    np.testing.assert_array_equal(five.status, twenty.status[:5])
    assert not (twenty.status == twenty.status[0]).all(axis=1)[1:].all()
    frame = data.design.frame
    for r in range(3):
        status = pd.Series(twenty.status[r], index=frame.index)
        paired = frame[frame["paired"]]
        # every household keeps one case and one control
        assert (status[paired.index].groupby(paired["household"]).sum() == 1).all()
        # the therapy travels with the label: the labelled cases carry the households' therapies
        therapy = pd.Series(twenty.therapy[r], index=frame.index)
        assert (therapy[status == 0] == "").all() and (therapy[status == 1] != "").all()
        own = pd.Series(primary.participant_therapy(data.design), index=frame.index)
        by_household = own[paired.index][paired["status"] == 1].groupby(paired["household"]).first()
        swapped = therapy[paired.index][status[paired.index] == 1].groupby(paired["household"]).first()
        assert (by_household == swapped.reindex(by_household.index)).all()


def test_a_swap_by_sign_flips_equals_the_test_on_the_relabelled_cohort(small):
    """The calibration's shortcut (only the tested column changes) is the same as relabelling."""
    _, cohort = small
    data = stage(cohort)
    prep = primary.prepare_primary(data)
    swaps = primary.swap_labels(data.design, 3, data.settings.seed)
    batched = primary.components(prep.units, prep.resp, primary.tested_column(prep.units, data.design, swaps.status),
                                 prep.options)
    for r in range(3):
        units = primary.make_units(data.design, 20, swaps.status[r], swaps.therapy[r])
        resp = primary.responses(prep.values, data.kind, prep.feature_columns, units)
        again = primary.components(units, resp, primary.observed_tested(units), prep.options)
        for key in ("effect_A", "se_A", "effect_B", "se_B", "p_C", "effect_C"):
            np.testing.assert_allclose(batched[key][r], again[key], rtol=1e-8, atol=1e-10, err_msg=key)


# ---------------------------------------------------------------------------
# The call rule


def test_decide_applies_each_condition_in_order():
    table = pd.DataFrame({
        "qvalue": [0.001, 0.001, 0.001, 0.001, 0.02, 0.04, np.nan],
        "direction": [1, -1, 1, 1, -1, 1, 0],
        "ambiguous": [False, False, True, True, False, False, False],
        "below_min_effect": [False, False, False, True, True, False, False],
        "carried_by": ["", "", "", "", "ocrelizumab", "", ""],
        "driver": ["B", "C", "B", "B", "A", "B", "A"],
        "effect_A": [1.0, -0.2, 0.5, 0.1, -0.1, 0.5, 0.0],
        "effect_B": [1.2, -0.1, 0.5, 0.1, -0.1, 0.5, 0.0],
        "effect_C": [0.1, -0.9, -0.8, 0.0, 0.0, 0.0, 0.0],
    }, index=[f"t{i}" for i in range(7)])
    out = decide(table, 0.025)
    assert list(out["call"]) == [1, -1, 0, 0, 0, 0, 0]
    assert out.loc["t2", "call_reason"] == "abundance and presence disagree in direction"
    assert out.loc["t3", "call_reason"] == "abundance and presence disagree in direction"  # first failed check
    assert out.loc["t4", "call_reason"] == "difference below the minimum effect (A: -0.10 log2)"
    assert (out.loc[["t0", "t1", "t5", "t6"], "call_reason"] == "").all()
    table.loc["t4", "below_min_effect"] = False
    assert decide(table, 0.025).loc["t4", "call_reason"] == "MS difference carried by ocrelizumab"
    assert decide(table, 0.05).loc["t5", "call"] == 1


# ---------------------------------------------------------------------------
# Error rates on generated cohorts


def test_type1_error_of_every_component_over_200_null_swaps():
    """Generator null cohort (300 households): each component rejects about 5% at 0.05."""
    _, cohort = synthetic_cohort(n_households=300, n_species=150, seed=5, null=True)
    data = stage(cohort, calibration={"null_replicates": 200})
    prep = primary.prepare_primary(data)
    rows = {r["scope"]: r for r in calibration.null_rows(prep, [0.025]) if r["metric"] == "type1_error_0.05"}
    for scope in ("A", "B", "C", "primary"):
        assert 0.035 <= rows[scope]["value"] <= 0.065, (scope, rows[scope]["value"])
        assert rows[scope]["n_replicates"] == 200


def _calls(data):
    """The run's calls: primary test, calibration level, rule."""
    table = primary.run(data).set_index("feature")
    level = calibration.level_in_force(calibration.calibrate(data), data.settings.fdr_level)
    return table, decide(table, level)["call"]


@pytest.fixture(scope="module")
def planted():
    out = []
    for seed in (1, 2, 3):
        truth, cohort = synthetic_cohort(n_households=300, n_species=200, seed=seed, effect_size=1.0)
        data = stage(cohort)
        table, calls = _calls(data)
        out.append((truth.truth_species.set_index("feature"), table, calls))
    return out


def test_planted_effects_are_found_with_few_wrong_calls_over_seeds(planted):
    right = wrong = planted_total = 0
    for classes, table, calls in planted:
        expected = classes["class"].reindex(calls.index).map({"high-risk": 1, "protective": -1}).fillna(0)
        right += int(((calls != 0) & (calls == expected)).sum())
        wrong += int(((calls != 0) & (calls != expected)).sum())
        planted_total += int(classes["class"].isin(["high-risk", "protective"]).sum())
    assert right / (right + wrong) >= 0.95, (right, wrong)
    assert right / planted_total >= 0.90, (right, planted_total)


def test_treatment_only_species_are_never_called_and_the_check_names_the_drug(planted):
    named = 0
    for classes, table, calls in planted:
        only = classes.index[classes["class"] == "treatment-only"].intersection(calls.index)
        assert len(only) == 10 and (calls[only] == 0).all(), calls[only]
        flagged = table.loc[only, "carried_by"].fillna("")
        drugs = classes.loc[only, "dmt"]
        assert (flagged[flagged != ""] == drugs[flagged != ""]).all()
        named += int((flagged != "").sum())
    assert named >= 1  # the check is what keeps at least one of them out


@pytest.mark.parametrize("seed", [1, 2])
def test_a_null_cohort_gets_at_most_one_call(seed):
    _, cohort = synthetic_cohort(n_households=300, n_species=200, seed=seed, null=True)
    _, calls = _calls(stage(cohort))
    assert (calls != 0).sum() <= 1


@pytest.mark.real_data
def test_the_real_imsms_components_hold_their_type1_error_over_200_swaps(imsms_cohort):
    cohort, _ = imsms_cohort
    data = stage(cohort, calibration={"null_replicates": 200})
    prep = primary.prepare_primary(data)
    rows = {r["scope"]: r for r in calibration.null_rows(prep, [0.025]) if r["metric"] == "type1_error_0.05"}
    for scope in ("A", "B", "C", "primary"):
        assert 0.035 <= rows[scope]["value"] <= 0.065, (scope, rows[scope]["value"])

