"""The shared-eigendecomposition ordination against scikit-bio's ``pcoa``, and the distance-matrix writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist, squareform
from skbio import DistanceMatrix
from skbio.stats.ordination import pcoa

from workflow_scripts.diversity.pcoa import ordination, pcoa_axes
from workflow_scripts.diversity.permdisp import permdisp


def _distances(metric, seed=0, n=40):
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(2, 0.1, size=(n, 25)) * (rng.random((n, 25)) < 0.7)
    counts[:, 0] += 1
    data = counts / counts.sum(axis=1, keepdims=True) if metric == "braycurtis" else np.log1p(counts)
    return DistanceMatrix(squareform(pdist(data, metric)), [f"s{i}" for i in range(n)])


@pytest.mark.parametrize("metric", ["braycurtis", "euclidean"])
def test_ordination_equals_scikit_bio_pcoa_up_to_axis_signs(metric):
    dm = _distances(metric)
    ours = ordination(dm, 10)
    theirs = pcoa(dm, method="eigh", dimensions=10, warn_neg_eigval=False)
    np.testing.assert_allclose(ours.eigvals.to_numpy(), theirs.eigvals.to_numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.proportion_explained.to_numpy(), theirs.proportion_explained.to_numpy(),
                               rtol=1e-10, atol=1e-12)
    assert list(ours.samples.index) == list(dm.ids)
    assert list(ours.samples.columns) == list(theirs.samples.columns)
    a, b = ours.samples.to_numpy(), theirs.samples.to_numpy()
    signs = np.sign((a * b).sum(axis=0))
    np.testing.assert_allclose(a, b * signs, atol=1e-10)
    assert ours.proportion_explained.iloc[0] > ours.proportion_explained.iloc[1] > 0


def test_negative_eigenvalue_axes_are_zero_as_scikit_bio():
    dm = _distances("braycurtis", seed=1, n=15)
    ours = ordination(dm, 14)
    theirs = pcoa(dm, method="eigh", dimensions=14, warn_neg_eigval=False)
    assert (theirs.eigvals == 0).sum() == 2  # Bray-Curtis: two of the 14 axes are imaginary
    np.testing.assert_allclose(ours.eigvals.to_numpy(), theirs.eigvals.to_numpy(), atol=1e-12)
    assert (ours.samples.loc[:, ours.eigvals.to_numpy() == 0] == 0).all().all()


def test_permdisp_with_shared_axes_equals_permdisp_alone():
    dm = _distances("braycurtis", seed=5)
    groups = pd.Series(np.repeat(["MS", "HHC"], 20), index=dm.ids, name="status")
    alone = permdisp(dm, groups, permutations=99, seed=2)
    shared = permdisp(dm, groups, permutations=99, seed=2, axes=pcoa_axes(dm.data))
    pd.testing.assert_frame_equal(alone, shared)


def test_distance_files_are_byte_identical_to_scikit_bio_lsmat(tmp_path):
    from workflow_scripts.diversity.cli import write_distances

    dm = _distances("braycurtis", seed=2, n=30)
    dm.write(str(tmp_path / "skbio.tsv"))
    write_distances(dm, tmp_path / "ours.tsv")
    assert (tmp_path / "ours.tsv").read_bytes() == (tmp_path / "skbio.tsv").read_bytes()
    assert DistanceMatrix.read(str(tmp_path / "ours.tsv")) == dm
