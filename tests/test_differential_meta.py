"""Per-site effects and the DerSimonian-Laird meta-analysis across sites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from workflow_scripts.differential import linda, meta
from workflow_scripts.differential.prepare import DifferentialSettings, prepare

from test_differential_methods import frames
from test_differential_prepare import cohort_from_frames


def test_dersimonian_laird_matches_statsmodels():
    rng = np.random.default_rng(0)
    effects = rng.normal(0.3, 0.4, size=(25, 6))
    ses = rng.uniform(0.1, 0.5, size=(25, 6))
    effects[3, 2] = np.nan  # a site without an estimate for this feature
    ses[4, 0] = 0.0  # and one with a degenerate SE: both are left out
    ours = meta.dersimonian_laird(effects, ses)
    heterogeneous = 0
    for j in range(25):
        use = np.isfinite(effects[j]) & (ses[j] > 0)
        with np.errstate(invalid="ignore"):
            ref = combine_effects(effects[j, use], ses[j, use] ** 2, method_re="dl")
        assert ours["k"][j] == use.sum()
        np.testing.assert_allclose(ours["q"][j], ref.q, rtol=1e-10)
        np.testing.assert_allclose(ours["fixed_effect"][j], ref.mean_effect_fe, rtol=1e-10)
        np.testing.assert_allclose(ours["fixed_se"][j], ref.sd_eff_w_fe, rtol=1e-10)
        if ref.tau2 > 0:
            heterogeneous += 1
            np.testing.assert_allclose(ours["effect"][j], ref.mean_effect_re, rtol=1e-10)
            np.testing.assert_allclose(ours["se"][j], ref.sd_eff_w_re, rtol=1e-10)
            np.testing.assert_allclose(ours["tau2"][j], ref.tau2, rtol=1e-9)
            np.testing.assert_allclose(ours["i2"][j], ref.i2, rtol=1e-9)
        else:  # statsmodels does not truncate tau2 at 0; DerSimonian-Laird does: fixed effect
            assert ours["tau2"][j] == 0 and ours["i2"][j] == 0
            np.testing.assert_allclose(ours["effect"][j], ref.mean_effect_fe, rtol=1e-10)
            np.testing.assert_allclose(ours["se"][j], ref.sd_eff_w_fe, rtol=1e-10)
    assert 0 < heterogeneous < 25  # both branches of the tau2 truncation are covered


def test_dersimonian_laird_edge_cases():
    one = meta.dersimonian_laird([[0.4, np.nan]], [[0.2, np.nan]])
    assert one["effect"][0] == pytest.approx(0.4) and one["se"][0] == pytest.approx(0.2)
    assert one["tau2"][0] == 0 and one["i2"][0] == 0 and one["k"][0] == 1
    none = meta.dersimonian_laird([[np.nan, np.nan]], [[np.nan, np.nan]])
    assert np.isnan(none["effect"][0]) and np.isnan(none["pvalue"][0]) and none["k"][0] == 0
    same = meta.dersimonian_laird([[0.5, 0.5, 0.5]], [[0.1, 0.2, 0.3]])
    assert same["tau2"][0] == 0 and same["i2"][0] == 0 and same["effect"][0] == pytest.approx(0.5)


def test_leave_one_site_out_flags_a_site_driven_feature():
    sites = ["A", "B", "C", "D"]
    rows = []
    for site in sites:
        rows.append(("g__Everywhere", site, 0.8, 0.25))
        rows.append(("g__OneSite", site, 3.0 if site == "C" else 0.0, 0.25))
        rows.append(("g__Nothing", site, 0.0, 0.25))
    effects = pd.DataFrame(rows, columns=["feature", "site", "effect", "se"])
    out = meta.meta_analysis(effects, ["g__Nothing", "g__OneSite", "g__Everywhere"]).set_index("feature")
    assert list(out.index) == ["g__Everywhere", "g__Nothing", "g__OneSite"]
    # pooled with equal weights the one-site species looks significant; random effects and
    # leaving site C out show where it comes from
    assert out.loc["g__OneSite", "site_driven"] and out.loc["g__OneSite", "loo_site"] == "C"
    assert out.loc["g__OneSite", "loo_max_pvalue"] > 0.5
    assert out.loc["g__OneSite", "i2"] > 0.9 and out.loc["g__OneSite", "meta_pvalue"] > 0.05
    assert out.loc["g__Everywhere", "meta_pvalue"] < 0.05 and not out.loc["g__Everywhere", "site_driven"]
    assert out.loc["g__Everywhere", "tau2"] == 0 and out.loc["g__Everywhere", "n_sites"] == 4
    assert not out.loc["g__Nothing", "site_driven"]


def test_per_site_fits_each_site_alone_and_skips_small_sites():
    part, counts = frames(n_households=36)
    part.loc[part["household_id"].isin([f"H{h:02d}" for h in (2, 5, 8, 11, 14, 17, 20, 23, 26)]), "site"] = "A"
    settings = DifferentialSettings.from_config(min_prevalence=0.0, site_meta={"min_households": 10})
    data = prepare(cohort_from_frames(part, counts), settings)
    sizes = data.design.frame.groupby("site")["household"].nunique()
    effects, ledger = meta.per_site(data)
    small = sorted(sizes.index[sizes < 10])
    assert small and list(ledger["id"]) == small
    assert (ledger["reason"] == "too_few_households_for_site_model").all()
    pd.testing.assert_frame_equal(ledger, meta.site_exclusions(data))
    assert set(effects["site"]) == set(sizes.index[sizes >= 10])
    # a site's effects are LinDA on that site's participants alone
    site = sorted(set(effects["site"]))[0]
    alone = prepare(cohort_from_frames(part[part["site"] == site], counts[part["site"] == site]),
                    DifferentialSettings.from_config(min_prevalence=0.0, linda={"zero_handling": "pseudo-count"}))
    expected = linda.run(alone).table["effect"]
    got = effects[effects["site"] == site].set_index("feature")["effect"]
    np.testing.assert_allclose(got.loc[expected.index], expected, rtol=1e-10)
    assert effects["feature"].is_monotonic_increasing
