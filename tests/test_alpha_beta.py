"""Alpha and beta diversity against closed forms, and against the iMSMS authors' QIIME 2 values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skbio
from scipy.spatial.distance import braycurtis, euclidean

from workflow_scripts.diversity.alpha import alpha_table, rarefy
from workflow_scripts.diversity.beta import distance_matrix, ordination, robust_clr

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
