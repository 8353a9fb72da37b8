"""The self-calibration: implants, the level it chooses, the table it writes, the methods' null runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.differential import calibration, primary
from workflow_scripts.differential.prepare import DifferentialSettings, prepare

from test_differential_prepare import synthetic_cohort


@pytest.fixture(scope="module")
def cohort():
    _, cohort = synthetic_cohort(n_households=120, n_species=120, seed=7, effect_size=1.0)
    return cohort


def test_implants_change_only_the_labelled_cases_and_keep_depth_and_zeros(cohort):
    data = prepare(cohort, DifferentialSettings.from_config({}))
    values = data.profiles.to_numpy(dtype=float)
    columns = np.array([data.profiles.columns.get_loc(f) for f in data.features])
    status = data.design.frame["status"].to_numpy()
    new, truth = calibration.implant(values, status, "counts", columns, np.random.default_rng(0))
    case = status == 1
    np.testing.assert_array_equal(new[~case], values[~case])
    np.testing.assert_allclose(new[case].sum(axis=1), values[case].sum(axis=1), rtol=0.01)
    assert (new == np.round(new)).all() and (new >= 0).all()
    untouched = np.setdiff1d(np.arange(values.shape[1]), columns[truth["position"]])
    assert ((new[:, untouched] > 0) <= (values[:, untouched] > 0)).all()  # no new presences elsewhere
    # 4 per prevalence band (fewer where a band has fewer eligible taxa), 4 prevalence shifts
    bands = truth.loc[truth["kind"] == "abundance", "band"].value_counts()
    assert set(bands.index) == {"<30%", "30-60%", ">=60%"} and (bands <= 4).all() and bands.sum() >= 8
    assert list(truth["kind"]).count("prevalence") == 4
    # an abundance implant moves the cases' mean log abundance where present by about log2(fold)
    for _, t in truth[truth["kind"] == "abundance"].iterrows():
        col = columns[t["position"]]
        both = case & (values[:, col] > 5) & (new[:, col] > 0)
        shift = np.median(np.log2(new[both, col] / values[both, col]))
        assert shift == pytest.approx(t["direction"] * np.log2(t["fold"]), abs=0.35)
    for _, t in truth[truth["kind"] == "prevalence"].iterrows():
        col = columns[t["position"]]
        change = (new[case, col] > 0).mean() - (values[case, col] > 0).mean()
        assert np.sign(change) == t["direction"] and abs(change) > 0.15


def test_the_level_is_the_largest_whose_fdr_is_within_the_target():
    per_level = {0.025: [(10, 1), (10, 0)], 0.01: [(8, 0), (9, 0)], 0.005: [(5, 0), (5, 0)]}
    assert calibration.choose_level(per_level, 0.05) == 0.025  # 1 / 20
    per_level[0.025] = [(10, 2), (10, 1)]  # 3 / 20 = 0.15
    assert calibration.choose_level(per_level, 0.05) == 0.01
    per_level[0.01] = [(8, 1), (9, 1)]
    per_level[0.005] = [(5, 1), (5, 1)]
    assert calibration.choose_level(per_level, 0.05) == 0.005  # none qualifies: the strictest
    assert calibration.choose_level({0.025: [(0, 0)], 0.01: [(0, 0)]}, 0.05) == 0.025  # no calls, no false calls


def test_the_calibration_table_has_the_documented_layout(cohort, tmp_path):
    from workflow_scripts import runner

    settings = DifferentialSettings.from_config({"calibration": {"null_replicates": 10, "implant_replicates": 4,
                                                                 "method_null_replicates": 2},
                                                 "methods": ["linda", "paired_wilcoxon", "aldex"]})
    data = prepare(cohort, settings)
    nulls = {m: calibration.method_null_pvalues(m, data) for m in ("linda", "paired_wilcoxon")}
    assert set(nulls["linda"]["replicate"]) == {0, 1} and len(nulls["linda"]) == 2 * len(data.features)
    table = calibration.calibrate(data, nulls)
    runner.write_table(table, tmp_path / "calibration.tsv")
    back = runner.read_table(tmp_path / "calibration.tsv")
    assert list(back.columns) == calibration.TABLE == [
        "scope", "metric", "prevalence_band", "effect", "value", "lower", "upper", "n_replicates", "n_tests",
        "min_replicate", "max_replicate", "status", "note"]
    key = table.set_index(["scope", "metric", "prevalence_band", "effect"])
    for scope in ("A", "B", "C", "primary"):
        assert key.loc[(scope, "type1_error_0.05", "all", "null"), "n_replicates"] == 10
    used = table[table["metric"] == "q_threshold_used"]
    assert len(used) == 1 and used["value"].iloc[0] in calibration.candidate_levels(0.05)
    assert set(table.loc[table["metric"] == "fdr_at_q", "effect"]) == {"q<0.025", "q<0.01", "q<0.005"}
    power = table[(table["scope"] == "classification") & (table["metric"] == "power")]
    assert {"<30%", "30-60%", ">=60%", "all"} <= set(power["prevalence_band"])
    assert {"2x", "3x", "prevalence", "implants"} <= set(power["effect"])
    rates = table[table["metric"].isin(["type1_error_0.05", "fdr", "power"])]["value"].dropna()
    assert ((rates >= 0) & (rates <= 1)).all()
    methods = table.set_index("scope")
    assert methods.loc["aldex", "status"] == "not calibrated"
    assert methods.loc["linda", "status"] in ("ok", "flagged") and methods.loc["linda", "n_replicates"] == 2
    assert calibration.level_in_force(table, 0.05) == used["value"].iloc[0]
    # the same seed gives the same table
    pd.testing.assert_frame_equal(table, calibration.calibrate(data, nulls))


def test_the_swaps_of_the_methods_are_the_first_swaps_of_the_primary(cohort):
    data = prepare(cohort, DifferentialSettings.from_config({"calibration": {"method_null_replicates": 2}}))
    prep = primary.prepare_primary(data)
    two = primary.swap_labels(data.design, 2, data.settings.seed)
    np.testing.assert_array_equal(two.status, prep.swaps.status[:2])
