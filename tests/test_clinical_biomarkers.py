"""sNfL/GFAP Z-scores against the controls: statsmodels OLS as the reference, and the fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from workflow_scripts.clinical.biomarkers import marker_zscores, reference_zscores


def frame(n_controls=60, n_patients=40, seed=0):
    rng = np.random.default_rng(seed)
    n = n_controls + n_patients
    age = rng.uniform(20, 70, n)
    bmi = rng.normal(26, 4, n)
    ms = np.arange(n) >= n_controls
    log_value = np.log(7) + 0.025 * (age - 45) - 0.015 * (bmi - 25) + 0.5 * ms + rng.normal(0, 0.35, n)
    index = pd.Index([f"P{i:03d}" for i in range(n)], name="participant_id")
    return pd.DataFrame({"status": np.where(ms, "MS", "HHC"), "age": age, "bmi": bmi,
                         "snfl": np.exp(log_value)}, index=index)


def test_zscores_equal_statsmodels_ols_in_the_controls():
    p = frame()
    out = reference_zscores(p["snfl"], p[["age", "bmi"]], p["status"] == "HHC", 10)
    controls = p[p["status"] == "HHC"]
    fit = sm.OLS(np.log(controls["snfl"]), sm.add_constant(controls[["age", "bmi"]])).fit()
    prediction = fit.predict(sm.add_constant(p[["age", "bmi"]]))
    expected = (np.log(p["snfl"]) - prediction) / np.sqrt(fit.scale)
    np.testing.assert_allclose(out["z"], expected, rtol=1e-10)
    assert (out["model"] == "age+bmi").all() and (out["n_reference"] == 60).all()
    model = out.attrs["models"]["age+bmi"]
    np.testing.assert_allclose(model["coef"], fit.params.to_numpy(), rtol=1e-10)
    assert model["sd"] == pytest.approx(np.sqrt(fit.scale))
    # raw values kept; controls centred, patients shifted by the planted 0.5 / 0.35 SD
    assert (out["value"] == p["snfl"]).all()
    assert abs(out.loc[p["status"] == "HHC", "z"].mean()) < 1e-10
    assert out.loc[p["status"] == "MS", "z"].mean() > 0.8


def test_fallbacks_are_per_participant_and_stated():
    p = frame(n_controls=60)
    p.loc[p.index[70:75], "bmi"] = np.nan  # five patients without BMI
    out = reference_zscores(p["snfl"], p[["age", "bmi"]], p["status"] == "HHC", 10)
    assert (out["model"].iloc[70:75] == "age").all() and (out["model"].drop(p.index[70:75]) == "age+bmi").all()
    controls = p[p["status"] == "HHC"]
    fit = sm.OLS(np.log(controls["snfl"]), sm.add_constant(controls[["age"]])).fit()
    expected = (np.log(p["snfl"].iloc[70:75]) - fit.predict(sm.add_constant(p[["age"]]).iloc[70:75])) \
        / np.sqrt(fit.scale)
    np.testing.assert_allclose(out["z"].iloc[70:75], expected, rtol=1e-10)

    # 25 controls: not enough for age + BMI (30), enough for age (20)
    few = frame(n_controls=25)
    assert set(reference_zscores(few["snfl"], few[["age", "bmi"]], few["status"] == "HHC", 10)["model"]) == {"age"}
    # 12 controls: the controls' mean and SD of the log
    fewer = frame(n_controls=12)
    out = reference_zscores(fewer["snfl"], fewer[["age", "bmi"]], fewer["status"] == "HHC", 10)
    logs = np.log(fewer["snfl"][fewer["status"] == "HHC"])
    np.testing.assert_allclose(out["z"], (np.log(fewer["snfl"]) - logs.mean()) / logs.std(ddof=1))
    assert set(out["model"]) == {"mean"}
    # 5 controls: no Z-score, and it says so
    none = reference_zscores(frame(n_controls=5)["snfl"], frame(n_controls=5)[["age", "bmi"]],
                             frame(n_controls=5)["status"] == "HHC", 10)
    assert none["z"].isna().all() and set(none["model"]) == {""} and none.attrs["models"] == {}


def test_marker_zscores_reads_what_is_there():
    p = frame()
    p.loc[p.index[0], "snfl"] = np.nan
    out = marker_zscores(p, "HHC", 10)
    assert set(out) == {"snfl"}  # no gfap column
    assert np.isnan(out["snfl"].loc[p.index[0], "z"]) and out["snfl"]["z"].notna().sum() == len(p) - 1
    assert marker_zscores(p.assign(gfap=np.nan), "HHC", 10).keys() == {"snfl"}  # never measured: left out
