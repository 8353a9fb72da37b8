"""Shared transforms: one profile per participant, prevalence filter, zero replacement, CLR."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skbio.stats.composition import clr as skbio_clr

from workflow_scripts.transforms import (
    clr_abundance,
    REPEATED_SAMPLES,
    one_row_per_participant,
    participant_profiles,
    repeated_sample_profiles,
    sample_participants,
    replace_zeros,
    select_features,
)


@pytest.fixture
def profiles():
    return pd.DataFrame({"g__A": [10, 0, 5, 1], "g__B": [0, 0, 0, 3], "g__unassigned": [4, 4, 4, 4],
                         "g__C": [1, 2, 3, 4]}, index=["p1", "p2", "p3", "p4"], dtype=float)


def test_prevalence_filter_and_ledger(profiles):
    kept, ledger = select_features(profiles, 0.5, "differential")
    assert list(kept) == ["g__A", "g__C"]
    reasons = dict(zip(ledger["id"], ledger["reason"]))
    assert reasons == {"g__B": "below_min_prevalence", "g__unassigned": "unassigned_bucket"}
    assert "25.0% of participants < 50.0%" in ledger.set_index("id").loc["g__B", "detail"]


def test_clr_equals_scikit_bio_after_pseudo_count(profiles):
    ours = clr_abundance(profiles, "counts", 0.5, base=np.e)
    np.testing.assert_allclose(ours.to_numpy(), skbio_clr(profiles.to_numpy() + 0.5), atol=1e-12)
    base2 = clr_abundance(profiles, "counts", 0.5, base=2)
    np.testing.assert_allclose(base2.to_numpy(), ours.to_numpy() / np.log(2), atol=1e-12)


def test_relative_zeros_get_half_the_sample_minimum(profiles):
    rel = profiles.div(profiles.sum(axis=1), axis=0)
    out = replace_zeros(rel, "relative")
    assert out.loc["p1", "g__B"] == pytest.approx(rel.loc["p1", "g__C"] / 2)
    assert (out.to_numpy() > 0).all() and out.loc["p1", "g__A"] == rel.loc["p1", "g__A"]


def test_profiles_first_and_mean(cohort_tables):
    _, samples = cohort_tables
    table = pd.DataFrame({"a": [10, 30, 1, 1, 1, 1, 1, 1], "b": [90, 10, 1, 1, 1, 1, 1, 3]},
                         index=samples.index, dtype=float)
    first = participant_profiles(table, samples, "first")
    assert first.loc["p1"].tolist() == [30, 10]
    mean = participant_profiles(table, samples, "mean")
    np.testing.assert_allclose(mean.loc["p1"], [(0.1 + 0.75) / 2, (0.9 + 0.25) / 2])
    np.testing.assert_allclose(mean.loc["c4"], [0.25, 0.75])
    assert list(first.index) == ["p1", "c1", "p2", "c2", "p3", "p4", "c4"]


def test_repeated_samples_policy_pools_counts_and_averages_relative_profiles(cohort_tables):
    _, samples = cohort_tables
    table = pd.DataFrame({"a": [10, 30, 1, 1, 1, 1, 1, 1], "b": [90, 10, 1, 1, 1, 1, 1, 3]},
                         index=samples.index, dtype=float)
    first = repeated_sample_profiles(table, samples, "first", "counts")
    pd.testing.assert_frame_equal(first, participant_profiles(table, samples, "first"))
    pooled = repeated_sample_profiles(table, samples, "sum", "counts")
    assert pooled.loc["p1"].tolist() == [40, 100] and pooled.loc["c4"].tolist() == [1, 3]
    mean = repeated_sample_profiles(table, samples, "sum", "relative")
    np.testing.assert_allclose(mean.loc["p1"], [(0.1 + 0.75) / 2, (0.9 + 0.25) / 2])
    closed = repeated_sample_profiles(table, samples, "mean", "counts")
    np.testing.assert_allclose(closed.loc["p1"], [(0.1 + 0.75) / 2, (0.9 + 0.25) / 2])
    every = repeated_sample_profiles(table, samples, "all", "counts")
    assert every is table  # every sample is a row
    assert list(sample_participants(every.index, samples)) == ["p1", "p1", "c1", "p2", "c2", "p3", "p4", "c4"]
    assert REPEATED_SAMPLES[0] == "all"
    assert [one_row_per_participant(p) for p in REPEATED_SAMPLES] == ["first", "first", "sum", "mean"]
    with pytest.raises(ValueError, match="repeated_samples"):
        repeated_sample_profiles(table, samples, "last", "counts")


def test_zero_replacement_is_a_pseudo_count_or_a_multiple_of_the_row_minimum(profiles):
    counts = profiles.to_numpy()
    np.testing.assert_array_equal(replace_zeros(counts, "counts", 0.5), counts + 0.5)
    rel = profiles.div(profiles.sum(axis=1), axis=0)
    for fraction in (0.5, 0.1):
        out = replace_zeros(rel, "relative", fraction)
        smallest = rel.where(rel > 0).min(axis=1)
        expected = rel.where(rel > 0, np.outer(fraction * smallest, np.ones(rel.shape[1])))
        np.testing.assert_array_equal(out.to_numpy(), expected.to_numpy())


def test_sample_design_repeats_each_participants_row(cohort_tables):
    from workflow_scripts.design import build_design
    from workflow_scripts.transforms import sample_design

    participants, samples = cohort_tables
    design = build_design(participants, ["age"], "MS", samples=samples)  # c4 has no age
    owners = sample_participants(samples.index, samples)
    keep, x, part, house = sample_design(design, owners)
    assert keep.tolist() == [True] * 7 + [False]
    assert list(part) == ["p1", "p1", "c1", "p2", "c2", "p3", "p4"]
    assert list(house[:5]) == ["H1", "H1", "H1", "H2", "H2"] and house[5] == "_unpaired_p3"
    matrix = design.matrix()
    np.testing.assert_array_equal(x.to_numpy(), matrix.loc[part].to_numpy())
    assert x.attrs["aliased"] == matrix.attrs["aliased"]
