"""Shared transform: prevalence filter, zero replacement, CLR."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skbio.stats.composition import clr as skbio_clr

from workflow_scripts.transform import clr_abundance, replace_zeros, select_features


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
