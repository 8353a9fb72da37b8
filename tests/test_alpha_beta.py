"""Alpha and beta diversity against closed forms, and against the iMSMS authors' QIIME 2 values."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest
import skbio
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import braycurtis, cdist, euclidean

from workflow_scripts.diversity.alpha import alpha_table, rarefy
from workflow_scripts.diversity.beta import distance_matrix, robust_clr
from workflow_scripts.diversity.pcoa import ordination
from workflow_scripts.diversity.pairwise import cityblock, sqeuclidean

from conftest import real_data


@pytest.fixture
def counts():
    rng = np.random.default_rng(3)
    data = rng.negative_binomial(1, 0.05, size=(8, 30))
    data[:, :3] = [[1, 2, 1]] * 8  # singletons and doubletons for Chao1
    return pd.DataFrame(data, index=[f"s{i}" for i in range(8)], columns=[f"f{j}" for j in range(30)])


def test_alpha_metrics_equal_their_formulas(counts):
    alpha = alpha_table(counts, base=2)
    for sid, row in counts.iterrows():
        x = row.to_numpy(dtype=float)
        x = x[x > 0]
        p = x / x.sum()
        shannon = -(p * np.log2(p)).sum()
        f1, f2 = (x == 1).sum(), (x == 2).sum()
        assert alpha.loc[sid, "observed_features"] == len(x)
        assert alpha.loc[sid, "shannon"] == pytest.approx(shannon, rel=1e-12)
        assert alpha.loc[sid, "simpson"] == pytest.approx(1 - (p ** 2).sum(), rel=1e-12)
        assert alpha.loc[sid, "pielou_evenness"] == pytest.approx(shannon / np.log2(len(x)), rel=1e-12)
        assert alpha.loc[sid, "chao1"] == pytest.approx(len(x) + f1 * (f1 - 1) / (2 * (f2 + 1)), rel=1e-12)


def test_shannon_base_is_configurable(counts):
    nats = alpha_table(counts, base=np.e)["shannon"]
    bits = alpha_table(counts, base=2)["shannon"]
    np.testing.assert_allclose(bits, nats / np.log(2))


def test_faith_pd_with_a_tree(counts):
    tree = skbio.TreeNode.read(["(" + ",".join(f"f{j}:{0.1 * (j + 1)}" for j in range(30)) + ");"])
    alpha = alpha_table(counts, tree=tree)
    for sid, row in counts.iterrows():  # a star tree: PD = sum of branch lengths of present tips
        present = np.nonzero(row.to_numpy() > 0)[0]
        assert alpha.loc[sid, "faith_pd"] == pytest.approx(sum(0.1 * (j + 1) for j in present))


def test_rarefaction_is_seeded_and_drops_shallow_samples(counts):
    counts = counts.copy()
    counts.loc["s7"] = 0
    counts.loc["s7", "f5"] = 10
    depth = int(counts.drop(index="s7").sum(axis=1).min())
    first, shallow = rarefy(counts, depth, seed=5)
    again, _ = rarefy(counts.iloc[::-1], depth, seed=5)
    other, _ = rarefy(counts, depth, seed=6)
    assert list(shallow) == ["s7"] and (first.sum(axis=1) == depth).all()
    pd.testing.assert_frame_equal(first, again.loc[first.index])  # independent of row order
    assert not first.equals(other)
    assert (first <= counts.loc[first.index]).all().all()


def test_beta_metrics_equal_their_formulas(counts):
    rel = counts.div(counts.sum(axis=1), axis=0).to_numpy()
    bc = distance_matrix(counts, "braycurtis")
    assert bc["s0", "s1"] == pytest.approx(braycurtis(rel[0], rel[1]))
    jac = distance_matrix(counts, "jaccard")
    a, b = counts.loc["s0"] > 0, counts.loc["s1"] > 0
    assert jac["s0", "s1"] == pytest.approx(1 - (a & b).sum() / (a | b).sum())
    ra = distance_matrix(counts, "robust_aitchison")
    def rclr_row(x):  # vegan's decostand(method = "rclr"): log(x / geometric mean of x > 0), zeros stay 0
        out = np.zeros(len(x))
        out[x > 0] = np.log(x[x > 0]) - np.log(x[x > 0]).mean()
        return out
    x0, x1 = counts.loc["s0"].to_numpy(float), counts.loc["s1"].to_numpy(float)
    assert ra["s0", "s1"] == pytest.approx(euclidean(rclr_row(x0), rclr_row(x1)))
    np.testing.assert_allclose(robust_clr(counts.to_numpy(float))[0], rclr_row(x0), atol=1e-12)


def test_unifrac_needs_a_tree_and_matches_scikit_bio(counts):
    tree = skbio.TreeNode.read(["((f0:1,f1:1):0.5,(" + ",".join(f"f{j}:0.2" for j in range(2, 30)) + "):0.3);"])
    with pytest.raises(ValueError, match="needs a tree"):
        distance_matrix(counts, "weighted_unifrac")
    dm = distance_matrix(counts, "unweighted_unifrac", tree=tree)
    direct = skbio.diversity.beta.unweighted_unifrac(counts.loc["s2"].to_numpy(), counts.loc["s3"].to_numpy(),
                                                     taxa=list(counts.columns), tree=tree)
    assert dm["s2", "s3"] == pytest.approx(direct)


def random_tree(rng, names):
    """A random binary tree over ``names`` with some zero-length branches and a root length."""
    tree = skbio.TreeNode.from_linkage_matrix(linkage(rng.random((len(names), 3))), names)
    for node in tree.traverse(include_self=False):
        node.length = 0.0 if rng.random() < 0.1 else float(rng.gamma(1.0, 0.3))
    tree.length = 0.4
    return tree


@pytest.mark.parametrize("metric", ["braycurtis", "jaccard", "robust_aitchison", "weighted_unifrac",
                                    "unweighted_unifrac"])
@pytest.mark.parametrize("seed", [0, 1])
def test_distance_matrix_equals_scikit_bio(metric, seed):
    """Every metric against ``skbio.diversity.beta_diversity`` (pair by pair, scipy's pdist or
    scikit-bio's UniFrac) on counts with zeros, a one-feature sample, two samples sharing no
    feature, duplicate samples, features in no sample, and (UniFrac) a random tree with
    zero-length branches and a root length; presence and tree metrics also with empty samples."""
    from skbio.diversity import beta_diversity

    rng = np.random.default_rng(seed)
    names = [f"t{i}" for i in range(40)]
    tree = random_tree(rng, names)
    values = rng.negative_binomial(1, 0.3, size=(45, 40)) * (rng.random((45, 40)) < 0.4)
    values[:, -5:] = 0  # features in no sample
    values[:, 0] += 1  # no sample empty unless made so below
    values[0] = 0
    values[0, 0] = 3  # one feature only; shares none with sample 1
    values[1] = 0
    values[1, 20] = 5
    values[2] = values[3]  # duplicates: distance 0
    values[4] = values[3]
    if metric not in ("braycurtis", "robust_aitchison"):  # both undefined for an empty sample
        values[5:7] = 0
    counts = pd.DataFrame(values, index=[f"s{i}" for i in range(45)], columns=names)
    ours = distance_matrix(counts, metric, tree=tree)

    ids = list(counts.index)
    if metric == "braycurtis":
        reference = beta_diversity("braycurtis", values / values.sum(axis=1, keepdims=True), ids)
    elif metric == "jaccard":
        reference = beta_diversity("jaccard", values > 0, ids)
    elif metric == "robust_aitchison":
        reference = beta_diversity("euclidean", robust_clr(values.astype(float)), ids, validate=False)
    else:
        reference = beta_diversity(metric, values, ids, taxa=names, tree=tree)
    assert ours.ids == reference.ids
    np.testing.assert_allclose(ours.data, reference.data, rtol=0, atol=1e-12)
    assert np.array_equal(ours.data, ours.data.T) and not np.diag(ours.data).any()
    assert ours["s2", "s3"] == ours["s3", "s4"] == 0.0
    assert ours.data.max() > 0.5


@pytest.mark.parametrize("kernel, name", [(cityblock, "cityblock"), (sqeuclidean, "sqeuclidean")])
def test_pairwise_kernels_equal_scipy_for_any_thread_count(kernel, name):
    """The numba kernels against ``scipy.spatial.distance.cdist`` over several blocks of rows and
    of features and ragged tiles, with near-duplicate rows (where ||x||^2 + ||y||^2 - 2xy would lose all digits),
    and bit-identical on 1 and 2 threads."""
    rng = np.random.default_rng(7)
    x = rng.random((203, 301)) * (rng.random((203, 301)) < 0.5)
    x[10] = x[9] + 1e-9 * rng.random(301)  # a close pair
    x[11] = x[9]
    reference = cdist(x, x, name)
    before = numba.get_num_threads()
    threads = [1, 2] if numba.config.NUMBA_NUM_THREADS >= 2 else [1]
    try:
        results = []
        for n in threads:
            numba.set_num_threads(n)
            results.append(kernel(x))
    finally:
        numba.set_num_threads(before)
    ours = results[0]
    np.testing.assert_allclose(ours, reference, rtol=1e-13, atol=0)
    assert 0 < ours[9, 10] < 1e-6 and ours[9, 11] == 0.0
    assert np.array_equal(ours, ours.T) and not np.diag(ours).any()
    assert all(np.array_equal(ours, other) for other in results[1:])
    assert kernel(x[:1]).tolist() == [[0.0]]


def test_ordination_explains_planted_groups():
    rng = np.random.default_rng(1)
    a = rng.poisson(np.r_[np.full(10, 50), np.full(10, 2)], size=(10, 20))
    b = rng.poisson(np.r_[np.full(10, 2), np.full(10, 50)], size=(10, 20))
    counts = pd.DataFrame(np.vstack([a, b]), index=[f"s{i}" for i in range(20)])
    result = ordination(distance_matrix(counts, "braycurtis"))
    pc1 = result.samples.iloc[:, 0].to_numpy()
    assert np.sign(pc1[:10]).tolist().count(np.sign(pc1[0])) == 10
    assert (np.sign(pc1[10:]) == -np.sign(pc1[0])).all()
    assert result.proportion_explained.iloc[0] > 0.5


@pytest.mark.real_data
def test_imsms_chao1_exact_and_shannon_close_to_qiime2():
    source = real_data("imsms_16s")
    ref = pd.read_csv(source / "reference" / "alpha_diversity_qiime2.tsv", sep="\t", dtype={"sample_id": str})
    ref = ref.set_index("sample_id")
    counts = pd.read_csv(source / "asv_counts.tsv.gz", sep="\t", index_col=0, usecols=["feature_id", *ref.index])
    alpha = alpha_table(counts.T, base=2)
    both = ref.join(alpha, rsuffix="_ours")
    assert len(both) == 1000
    assert (both["chao1"] - both["chao1_ours"]).abs().max() == 0.0
    assert (both["shannon"] - both["shannon_ours"]).abs().max() < 0.1
    assert np.corrcoef(both["shannon"], both["shannon_ours"])[0, 1] > 0.999
