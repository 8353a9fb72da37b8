"""The shared design: first samples, DMT indicators, covariate coding, exclusions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workflow_scripts.design import build_design, dmt_indicators, first_samples


def test_first_sample_is_the_earliest(cohort_tables):
    _, samples = cohort_tables
    first = first_samples(samples)
    assert first["p1"] == "s1a" and first["c1"] == "s2" and len(first) == 7


def test_without_dates_the_lowest_visit_is_first():
    samples = pd.DataFrame({"participant_id": ["a", "a", "a", "b", "b"], "visit": ["3", "1", "2", "", "2"]},
                           index=pd.Index(["a_x", "a_y", "a_z", "b_1", "b_2"], name="sample_id"))
    first = first_samples(samples)
    assert first["a"] == "a_y"  # visit 1, although a_x sorts first by id
    assert first["b"] == "b_2"  # a sample without a visit number comes after the numbered ones
    dated = samples.assign(collection_date=["2020-01-01", "2021-01-01", "", "", ""])
    assert first_samples(dated)["a"] == "a_x"  # a date outranks the visit number


def test_dmt_indicators_are_zero_for_controls_and_untreated(cohort_tables):
    participants, _ = cohort_tables
    dmt = dmt_indicators(participants, "MS")
    assert list(dmt.columns) == ["dmt_interferon_beta", "dmt_ocrelizumab", "dmt_unknown"]
    assert dmt.loc["p2"].tolist() == [0, 1, 0] and dmt.loc["p3"].tolist() == [0, 0, 1]
    assert dmt.loc[["p1", "c1", "c2", "c4"]].to_numpy().sum() == 0


def test_build_design_codes_and_excludes(cohort_tables):
    participants, samples = cohort_tables
    design = build_design(participants, ["sex", "age", "sequencing_batch"], "MS", stage="diversity",
                          samples=samples)
    assert list(design.frame.index) == ["p1", "c1", "p2", "c2", "p3", "p4"]
    row = design.excluded.iloc[0]
    assert (row["id"], row["reason"]) == ("c4", "missing_covariate") and "age" in row["detail"]
    assert design.status.tolist() == [1, 0, 1, 0, 1, 1]
    assert design.frame["household"].tolist() == ["H1", "H1", "H2", "H2", "_unpaired_p3", "H3"]
    # c4 excluded, so p4 is no longer paired.
    assert design.frame["paired"].tolist() == [True, True, True, True, False, False]
    assert list(design.covariates.columns) == ["sex[T.M]", "age", "sequencing_batch[T.r2]"]
    assert list(design.site.columns) == ["site[T.B]", "site[T.C]"]
    assert design.covariates.loc["p1", "sequencing_batch[T.r2]"] == 0  # p1's first sample is s1a (run r1)
    assert design.site.loc["c1", "site[T.B]"] == 1 and design.site.loc["p4", "site[T.C]"] == 1
    x = design.matrix()
    # Six participants cannot carry ten columns: the later, aliased ones are dropped, in order.
    full = ["intercept", "status", "sex[T.M]", "age", "sequencing_batch[T.r2]", "site[T.B]", "site[T.C]",
            "dmt_interferon_beta", "dmt_ocrelizumab", "dmt_unknown"]
    assert sorted(list(x.columns) + x.attrs["aliased"], key=full.index) == full
    assert list(x.columns[:2]) == ["intercept", "status"]
    assert np.linalg.matrix_rank(x.to_numpy()) == x.shape[1] == 6


def test_aliased_columns_are_dropped_like_r():
    x = pd.DataFrame({"intercept": 1.0, "status": [1, 0, 1, 0, 1.0], "sex[T.M]": [0, 1, 0, 1, 0.0],
                      "age": [30, 40, 35, 41, 50.0], "site[T.B]": [0.0] * 5, "age2": [60, 80, 70, 82, 100.0]})
    from workflow_scripts.design import drop_aliased

    kept, dropped = drop_aliased(x)
    # sex = 1 - status, site constant, age2 = 2 * age: R's lm would report these as NA (aliased).
    assert list(kept.columns) == ["intercept", "status", "age"]
    assert dropped == ["sex[T.M]", "site[T.B]", "age2"]
    assert np.linalg.matrix_rank(kept.to_numpy()) == 3
