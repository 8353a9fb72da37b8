"""The taxon x clinical-axis engine against statsmodels, taxon by taxon and component by component."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from workflow_scripts.clinical import associations
from workflow_scripts.clinical.analyse import ClinicalSettings
from workflow_scripts.clinical.associations import Rows, associate, axis_values, combine, component_tests
from workflow_scripts.models.multiple_testing import bh, cauchy_combination


def rows_and_axes(n=90, seed=0, repeats=False):
    """Patients with covariates, a therapy taken by one patient only, zero-heavy and heavy-tailed taxa.

    With ``repeats`` a third of the patients give a second stool sample (rows share the patient's
    covariates and axes).
    """
    rng = np.random.default_rng(seed)
    pids = pd.Index([f"P{i:03d}" for i in range(n)], name="participant_id")
    therapy = rng.choice(["untreated", "drugA", "drugB"], n)
    if not repeats:
        therapy[10] = "drugC"  # alone on its drug: leverage 1 (with repeats CR1's cluster count would differ)
    covariates = pd.DataFrame({
        "sex[T.M]": rng.integers(0, 2, n).astype(float), "age": rng.uniform(20, 70, n),
        "bmi": rng.normal(26, 4, n), "site[T.B]": (np.arange(n) % 2).astype(float),
        "dmt_druga": (therapy == "drugA").astype(float), "dmt_drugb": (therapy == "drugB").astype(float),
        "dmt_drugc": (therapy == "drugC").astype(float),
    }, index=pids)
    covariates["age_copy"] = covariates["age"] * 2  # aliased: dropped
    axes = pd.DataFrame({"edss": rng.choice(np.arange(0, 8.5, 0.5), n),
                         "progressive": (rng.random(n) < 0.3).astype(float)}, index=pids)
    axes.loc[pids[:5], "edss"] = np.nan
    owner = pids.repeat(np.where(np.arange(n) % 3 == 0, 2, 1)) if repeats else pids
    m = len(owner)
    index = pd.Index([f"S{i:03d}" for i in range(m)] if repeats else list(pids), name="row")
    edss = np.nan_to_num(axes["edss"].reindex(owner).to_numpy())
    # taxa: zero-heavy with an abundance effect among carriers, skewed, one rising with EDSS everywhere
    present = rng.random((m, 6)) < np.array([0.4, 0.6, 0.9, 1, 1, 1])
    logs = rng.normal(4, 1, (m, 6))
    logs[:, 0] += 0.5 * edss
    logs[:, 4] = rng.standard_t(2, m) + 4
    logs[:, 5] += 0.4 * edss
    reference = pd.Series(rng.normal(1, 0.2, m), index=index)
    log_present = pd.DataFrame(np.where(present, logs, np.nan), index=index, columns=[f"s__t{j}" for j in range(6)])
    clr = log_present.fillna(-3.0)
    rows = Rows(clr=clr, log_present=log_present, reference=reference,
                participant=pd.Series(owner.to_numpy(), index=index), covariates=covariates.loc[owner].set_axis(index),
                untreated=pd.Series(therapy == "untreated", index=pids).loc[owner].set_axis(index),
                clustered=repeats, excluded=pd.DataFrame())
    return rows, axes


def participant_weights(groups):
    """Each participant weighs 1 in total (clinical.sample_weights: participant)."""
    codes = pd.factorize(np.asarray(groups))[0]
    return 1.0 / np.bincount(codes)[codes]


def statsmodels_slope(y, axis, covariates, cov_type, groups=None, weights=None):
    """The axis slope by statsmodels, without the patient alone on drugC and the aliased column.

    That patient is fitted exactly by its own indicator (leverage 1), so it adds
    nothing to the slope or its HC3 variance; statsmodels would divide 0 by 0.
    With ``groups`` (repeated samples) the rows are weighted: ``weights``, by default each
    participant 1 in total.
    """
    keep = (covariates["dmt_drugc"] == 0).to_numpy()
    X = sm.add_constant(pd.concat([axis.rename("axis"), covariates.drop(columns=["age_copy", "dmt_drugc"])],
                                  axis=1))[keep]
    X = X.loc[:, (X != 0).any()]
    y = np.asarray(y)[keep]
    if groups is None:
        fit = sm.OLS(y, X).fit(cov_type=cov_type, use_t=True)
    else:
        weights = participant_weights(groups) if weights is None else np.asarray(weights)
        groups = np.asarray(groups)[keep]
        fit = sm.WLS(y, X, weights=weights[keep]).fit(cov_type=cov_type,
                                                                    cov_kwds={"groups": groups}, use_t=True)
    return fit.params["axis"], fit.bse["axis"], fit.pvalues["axis"]


@pytest.mark.parametrize("repeats,errors,cov_type", [(False, "hc3", "HC3"), (False, "classical", "nonrobust"),
                                                      (True, "cr1", "cluster")])
def test_linear_components_equal_statsmodels_per_taxon(repeats, errors, cov_type):
    rows, axes = rows_and_axes(repeats=repeats)
    settings = ClinicalSettings.from_config(inference=errors if not repeats else "hc3",
                                            cluster_inference=errors if repeats else "cr3")
    edss = axes["edss"].reindex(rows.participant).to_numpy()
    has = np.isfinite(edss)
    fits = component_tests(rows, has, edss, settings)
    axis = pd.Series(edss, index=rows.clr.index)[has]
    cov = rows.covariates[has]
    groups = rows.participant[has] if repeats else None
    for j, taxon in enumerate(rows.clr.columns):
        effect, se, p = statsmodels_slope(rows.clr.loc[has, taxon], axis, cov, cov_type, groups)
        assert fits["clr"]["effect"][j] == pytest.approx(effect, rel=1e-9)
        assert fits["clr"]["se"][j] == pytest.approx(se, rel=1e-8)
        assert fits["clr"]["pvalue"][j] == pytest.approx(p, rel=1e-7)
        present = rows.log_present.loc[has, taxon].notna()
        # a participant's weight is split over all their samples, whether the taxon is present or not
        weights = None if groups is None else participant_weights(groups)[present.to_numpy()]
        effect, se, _ = statsmodels_slope(rows.log_present.loc[has, taxon][present], axis[present], cov[present],
                                          cov_type, None if groups is None else groups[present], weights)
        assert fits["abundance"]["effect"][j] == pytest.approx(effect, rel=1e-9)
        assert fits["abundance"]["se"][j] == pytest.approx(se, rel=1e-8)
    # the zero-heavy taxon with an abundance effect among carriers: the CLR dilutes it, the abundance test sees it
    assert fits["abundance"]["pvalue"][0] < 1e-4 < fits["clr"]["pvalue"][0]
    assert np.isnan(fits["presence"]["pvalue"][3:]).all()  # present in everyone: no presence test


def test_presence_component_is_the_leverage_corrected_score_test_with_the_reference_as_covariate():
    rows, axes = rows_and_axes(repeats=True, seed=2)
    settings = ClinicalSettings.from_config()
    edss = axes["edss"].reindex(rows.participant).to_numpy()
    has = np.isfinite(edss)
    fits = component_tests(rows, has, edss, settings)
    Z = sm.add_constant(pd.concat([rows.covariates.drop(columns=["age_copy"]), rows.reference], axis=1))[has]
    Z = Z.loc[:, (Z != 0).any()]
    y = rows.log_present.notna().to_numpy()[has, 1].astype(float)
    groups = rows.participant.to_numpy()[has]
    prior = participant_weights(groups)
    null = sm.GLM(y, Z.to_numpy(), family=sm.families.Binomial(), var_weights=prior).fit(tol=1e-12)
    mu = null.fittedvalues
    w = prior * mu * (1 - mu)
    x = edss[has]
    Zm = Z.to_numpy()
    xt = x - Zm @ np.linalg.lstsq(Zm.T @ (w[:, None] * Zm), Zm.T @ (w * x), rcond=None)[0]
    score = prior * xt * (y - mu)
    hat = w * np.einsum("ik,kl,il->i", Zm, np.linalg.pinv(Zm.T @ (w[:, None] * Zm)), Zm)
    adjusted = score / np.sqrt(1 - hat)  # HC2-type (associations.PRESENCE_VARIANCE)
    sums = np.array([adjusted[groups == g].sum() for g in pd.unique(groups)])
    assert fits["presence"]["stat"][1] == pytest.approx(score.sum() / np.sqrt((sums ** 2).sum()), rel=1e-5)


def test_combine_takes_the_cauchy_combination_and_the_strongest_direction():
    fits = {"clr": {"pvalue": np.array([0.2, 0.01, 0.5, np.nan]), "effect": np.array([0.1, -0.3, 0.2, np.nan])},
            "abundance": {"pvalue": np.array([0.001, 0.02, 0.01, np.nan]),
                          "effect": np.array([0.5, -0.2, 0.4, np.nan])},
            "presence": {"pvalue": np.array([0.3, np.nan, 0.02, np.nan]), "effect": np.array([-0.1, np.nan, -0.6,
                                                                                                 np.nan])}}
    out = combine(fits, 4)
    P = np.column_stack([fits[c]["pvalue"] for c in ("clr", "abundance", "presence")])
    np.testing.assert_allclose(out["pvalue"], cauchy_combination(P))
    assert out["direction"].tolist() == [1, -1, 0, 0]  # third: abundance up, presence down, both < 0.05
    assert out["driver"].tolist() == ["abundance", "clr", "ambiguous", ""]


def test_associate_table_bh_per_axis_and_untreated_refit():
    rows, axes = rows_and_axes()
    settings = ClinicalSettings.from_config(repeated_samples="first", min_patients=20)
    table, skipped = associate(rows, axes, settings)
    assert list(table.columns) == list(associations.COLUMNS) and skipped.empty
    assert len(table) == 2 * rows.clr.shape[1]
    for _, part in table.groupby("axis"):
        np.testing.assert_allclose(part["qvalue"], bh(part["pvalue"]))
    edss = table[table["axis"] == "edss"].set_index("feature")
    assert (edss["n"] == 85).all() and edss.loc["s__t5", "effect"] == pytest.approx(0.4, abs=0.15)
    assert edss.loc["s__t5", "qvalue"] < 1e-3 and edss.loc["s__t5", "direction"] == 1
    # the untreated columns are the same model in untreated patients (no therapy terms)
    has = axes["edss"].notna() & rows.untreated
    cov = rows.covariates[has].drop(columns=["dmt_druga", "dmt_drugb"])
    effect, se, _ = statsmodels_slope(rows.clr.loc[has, "s__t2"], axes.loc[has, "edss"], cov, "HC3")
    assert edss.loc["s__t2", "effect_untreated"] == pytest.approx(effect, rel=1e-9)
    assert edss.loc["s__t2", "se_untreated"] == pytest.approx(se, rel=1e-8)
    assert (edss["n_untreated"] == has.sum()).all()


def test_axes_that_cannot_be_fitted_are_skipped_with_a_reason():
    rows, axes = rows_and_axes()
    settings = ClinicalSettings.from_config(repeated_samples="first")
    axes["progressive"] = 0.0
    axes.loc[axes.index[:3], "progressive"] = 1.0  # three progressive patients
    axes["gfap_z"] = np.nan
    table, skipped = associate(rows, axes, settings)
    assert set(table["axis"]) == {"edss"}
    why = skipped.set_index("axis")["reason"]
    assert "only 3 patients in one group" in why["progressive"] and "0 patients with a value" in why["gfap_z"]
    # too few untreated patients: the sensitivity columns are empty, the main fit stays
    rows.untreated &= np.arange(len(rows.clr)) < 30
    table, skipped = associate(rows, axes[["edss"]], settings)
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
