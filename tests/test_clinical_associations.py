"""The taxon x clinical-axis engine against statsmodels, taxon by taxon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from workflow_scripts.clinical import associations
from workflow_scripts.clinical.associations import associate, axis_values, fit_axis
from workflow_scripts.models.multiple_testing import bh


def design(n=80, seed=0):
    """Patients with covariates, a therapy taken by one patient only, and heavy-tailed taxa."""
    rng = np.random.default_rng(seed)
    index = pd.Index([f"P{i:03d}" for i in range(n)], name="participant_id")
    therapy = rng.choice(["untreated", "drugA", "drugB"], n)
    therapy[10] = "drugC"  # alone on its drug: leverage 1
    covariates = pd.DataFrame({
        "sex[T.M]": rng.integers(0, 2, n).astype(float), "age": rng.uniform(20, 70, n),
        "bmi": rng.normal(26, 4, n), "site[T.B]": (np.arange(n) % 2).astype(float),
        "dmt_druga": (therapy == "drugA").astype(float), "dmt_drugb": (therapy == "drugB").astype(float),
        "dmt_drugc": (therapy == "drugC").astype(float),
    }, index=index)
    covariates["age_copy"] = covariates["age"] * 2  # aliased: dropped
    axes = pd.DataFrame({"edss": rng.choice(np.arange(0, 8.5, 0.5), n),
                         "progressive": (rng.random(n) < 0.3).astype(float)}, index=index)
    axes.loc[index[:5], "edss"] = np.nan
    # taxa: a zero-heavy two-point one, a skewed one, one that rises with EDSS
    present = rng.random((n, 6)) < np.array([0.3, 0.6, 0.9, 1, 1, 1])
    y = np.where(present, rng.normal(4, 1, (n, 6)), -3.0)
    y[:, 4] = rng.standard_t(2, n)
    y[:, 5] += 0.4 * np.nan_to_num(axes["edss"].to_numpy())
    clr = pd.DataFrame(y, index=index, columns=[f"s__t{j}" for j in range(6)])
    return clr, axes, covariates, pd.Series(therapy == "untreated", index=index)


def statsmodels_fit(y, axis, covariates, cov_type):
    """The axis slope by statsmodels, without the patient alone on drugC.

    That patient is fitted exactly by its own indicator (leverage 1), so it adds
    nothing to the slope or its HC3 variance; statsmodels would divide 0 by 0.
    """
    alone = covariates.get("dmt_drugc", pd.Series(0.0, index=covariates.index)) == 1
    y, axis, covariates = y[~alone], axis[~alone], covariates[~alone]
    X = sm.add_constant(pd.concat([axis.rename("axis"), covariates.drop(columns="age_copy")], axis=1))
    X = X.loc[:, (X != 0).any()]  # therapies nobody in the subset takes
    fit = sm.OLS(y, X).fit(cov_type=cov_type, use_t=True) if cov_type != "nonrobust" else sm.OLS(y, X).fit()
    return fit.params["axis"], fit.bse["axis"], fit.pvalues["axis"]


@pytest.mark.parametrize("inference,cov_type", [("hc3", "HC3"), ("hc2", "HC2"), ("classical", "nonrobust")])
def test_fit_axis_equals_statsmodels_per_taxon(inference, cov_type):
    clr, axes, covariates, _ = design()
    has = axes["edss"].notna()
    out = fit_axis(clr[has].to_numpy(), axes.loc[has, "edss"].to_numpy(), covariates[has].to_numpy(), inference)
    for j, taxon in enumerate(clr.columns):
        effect, se, p = statsmodels_fit(clr.loc[has, taxon], axes.loc[has, "edss"], covariates[has], cov_type)
        assert out["effect"][j] == pytest.approx(effect, rel=1e-9)
        assert out["se"][j] == pytest.approx(se, rel=1e-8)
        assert out["pvalue"][j] == pytest.approx(p, rel=1e-7)
    assert out["k"] == 9 and out["df"] == has.sum() - 9  # the aliased copy of age is gone
    with_alone = sm.OLS(clr.loc[has, "s__t2"], sm.add_constant(pd.concat(
        [axes.loc[has, "edss"], covariates[has].drop(columns="age_copy")], axis=1))).fit()
    assert out["effect"][2] == pytest.approx(with_alone.params["edss"], rel=1e-9)


def test_associate_table_bh_per_axis_and_untreated_refit():
    clr, axes, covariates, untreated = design()
    table, skipped = associate(clr, axes, covariates, untreated)
    assert list(table.columns) == list(associations.COLUMNS) and skipped.empty
    assert len(table) == 2 * clr.shape[1]
    for axis, part in table.groupby("axis"):
        np.testing.assert_allclose(part["qvalue"], bh(part["pvalue"]))
    edss = table[table["axis"] == "edss"].set_index("feature")
    assert (edss["n"] == 75).all() and edss.loc["s__t5", "effect"] == pytest.approx(0.4, abs=0.15)
    assert edss.loc["s__t5", "qvalue"] < 1e-3
    # the untreated columns are the same model in untreated patients (no therapy terms)
    rows = axes["edss"].notna() & untreated
    effect, se, p = statsmodels_fit(clr.loc[rows, "s__t2"], axes.loc[rows, "edss"],
                                    covariates[rows].drop(columns=["dmt_druga", "dmt_drugb", "dmt_drugc"]), "HC3")
    assert edss.loc["s__t2", "effect_untreated"] == pytest.approx(effect, rel=1e-9)
    assert edss.loc["s__t2", "pvalue_untreated"] == pytest.approx(p, rel=1e-7)
    assert (edss["n_untreated"] == rows.sum()).all()


def test_axes_that_cannot_be_fitted_are_skipped_with_a_reason():
    clr, axes, covariates, untreated = design()
    axes["progressive"] = 0.0
    axes.loc[axes.index[:3], "progressive"] = 1.0  # three progressive patients
    axes["gfap_z"] = np.nan
    table, skipped = associate(clr, axes, covariates, untreated)
    assert set(table["axis"]) == {"edss"}
    why = skipped.set_index("axis")["reason"]
    assert "only 3 patients in one group" in why["progressive"] and "0 patients with a value" in why["gfap_z"]
    # too few untreated patients: the sensitivity columns are empty, the main fit stays
    table, skipped = associate(clr, axes[["edss"]], covariates, untreated & (np.arange(len(clr)) < 30))
    assert table["effect_untreated"].isna().all() and (table["n_untreated"] == 0).all()
    assert skipped["subset"].tolist() == ["untreated"]


def test_axis_values_orient_every_axis():
    participants = pd.DataFrame({"disease_course": ["RRMS", "SPMS", "PPMS", None]},
                                index=pd.Index(list("abcd"), name="participant_id"))
    scores = pd.DataFrame({"edss": [1.0, 6.0, 4.0, 2.0], "armss": 1.0, "msss": 2.0}, index=participants.index)
    z = pd.DataFrame({"z": [0.1, 2.0, 1.0, np.nan, 5.0]}, index=list("abcde"))
    axes = axis_values(participants, scores, {"snfl": z})
    assert list(axes.columns) == list(associations.AXES)
    assert axes["progressive"].tolist()[:3] == [0.0, 1.0, 1.0] and np.isnan(axes.loc["d", "progressive"])
    assert axes["snfl_z"].tolist()[:3] == [0.1, 2.0, 1.0] and axes["gfap_z"].isna().all()
