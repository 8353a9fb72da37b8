"""PERMDISP against vegan::betadisper + permutest (fixtures and live R) and independent references.

Fixtures in tests/fixtures/vegan/permdisp_*.tsv come from make_permdisp_fixtures.R there
(vegan 2.6-4, permute 0.9-7).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import pdist, squareform
from skbio import DistanceMatrix
from skbio.stats.distance import permdisp as skbio_permdisp

from workflow_scripts.diversity.pcoa import pcoa_axes
from workflow_scripts.diversity.permanova import COLUMNS
from workflow_scripts.diversity.permdisp import (
    dispersion_distances,
    kept_axes,
    permdisp,
    permuted_f,
    spatial_median,
)
from workflow_scripts.diversity.permutations import permutation_matrix
from workflow_scripts.errors import InputError

VEGAN = Path(__file__).parent / "fixtures" / "vegan"

# Centroids are closed-form: agreement with vegan is at rounding level (about 1e-14).
Z_ATOL, F_RTOL = 1e-8, 1e-10
# vegan's spatial median is where optim(method = "BFGS") stops, and its last line search
# runs at rounding level, so a 1e-15 change of the PCoA coordinates can move the centre by
# ~1e-8. vegan against itself with the samples in reverse order (30 random cases each):
# z up to 1.7e-8 and F up to 2.3e-9 (relative) in 5-d Euclidean data, 9e-10 for Bray-Curtis.
# We replay the same BFGS: most cases agree to 1e-14, the worst of 40 to 2.9e-8 (z) and 4.5e-9 (F).
MEDIAN_Z_ATOL, MEDIAN_F_RTOL = 1e-7, 1e-7


def tolerances(test: str) -> tuple[float, float]:
    return (MEDIAN_Z_ATOL, MEDIAN_F_RTOL) if test == "median" else (Z_ATOL, F_RTOL)


# ---------------------------------------------------------------- fixtures


def fixture_data():
    data = pd.read_csv(VEGAN / "permdisp_data.tsv", sep="\t", index_col=0)
    species = [c for c in data.columns if c.startswith("sp")]
    coords = [c for c in data.columns if c.startswith("x")]
    distances = {
        "bray": squareform(pdist(data[species].to_numpy(dtype=float), "braycurtis")),
        "euclidean": squareform(pdist(data[coords].to_numpy(dtype=float))),
    }
    return data, {k: pd.DataFrame(v, index=data.index, columns=data.index) for k, v in distances.items()}


RESULTS = pd.read_csv(VEGAN / "permdisp_results.tsv", sep="\t").set_index("case")
VEGAN_PERMS = pd.read_csv(VEGAN / "permdisp_perms.tsv", sep="\t", header=None).to_numpy() - 1


@pytest.mark.parametrize("case", RESULTS.index)
def test_distances_to_centres_equal_vegan(case):
    spec = RESULTS.loc[case]
    data, distances = fixture_data()
    expected = pd.read_csv(VEGAN / "permdisp_distances.tsv", sep="\t", index_col=0)[case]
    ours = dispersion_distances(distances[spec.data], data[spec.groups], test=spec.type)
    assert list(ours.index) == list(expected.index)
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=0, atol=tolerances(spec.type)[0])
    # the Bray-Curtis case has imaginary axes, as vegan found
    _, values = pcoa_axes(distances[spec.data].to_numpy())
    positive, negative = kept_axes(values)
    assert (len(positive), len(negative)) == (spec.n_pos, spec.n_neg)


@pytest.mark.parametrize("case", RESULTS.index)
def test_table_equals_vegan_with_the_same_permutations(case):
    spec = RESULTS.loc[case]
    data, distances = fixture_data()
    ours = permdisp(distances[spec.data], data[spec.groups], permutations=VEGAN_PERMS, test=spec.type)
    f_perm = pd.read_csv(VEGAN / "permdisp_f_perm.tsv", sep="\t", index_col=0)[case].to_numpy()
    z_atol, f_rtol = tolerances(spec.type)
    assert list(ours.columns) == COLUMNS
    assert ours.term[0] == spec.groups and ours.df[0] == spec.df and np.isnan(ours.r2[0])
    assert ours.pseudo_f[0] == pytest.approx(spec.f, rel=f_rtol)
    assert ours.sum_of_squares[0] == pytest.approx(spec.sum_sq, rel=f_rtol)
    assert ours.p_value[0] == spec.p  # same permutations: the same p-value, exactly
    assert ours.attrs["n_permutations"] == spec.n_perm
    np.testing.assert_allclose(ours.attrs["f_perm"], f_perm, rtol=f_rtol * 100, atol=f_rtol)


def test_fixtures_cover_significant_and_null_cases():
    assert RESULTS.p.min() <= 0.02 and RESULTS.p.max() >= 0.3
    assert (RESULTS.loc[RESULTS.data == "bray", "n_neg"] > 0).all()


# ---------------------------------------------------------------- live R


R_SCRIPT = r"""
suppressPackageStartupMessages(library(vegan))
args <- commandArgs(trailingOnly = TRUE)
d <- as.dist(as.matrix(read.delim(file.path(args[1], "d.tsv"), row.names = 1, check.names = FALSE)))
g <- factor(readLines(file.path(args[1], "groups.txt")))
perms <- as.matrix(read.delim(file.path(args[1], "perms.tsv"), header = FALSE)) + 1L
for (type in c("median", "centroid")) {
  b <- betadisper(d, g, type = type)
  pt <- permutest(b, permutations = perms)
  write.table(data.frame(z = sprintf("%.17g", b$distances)), file.path(args[1], paste0("z_", type, ".tsv")),
              sep = "\t", quote = FALSE, row.names = FALSE)
  write.table(data.frame(f = sprintf("%.17g", pt$tab$F[1]), p = sprintf("%.17g", pt$tab[["Pr(>F)"]][1]),
                         ss = sprintf("%.17g", pt$tab[["Sum Sq"]][1])),
              file.path(args[1], paste0("tab_", type, ".tsv")), sep = "\t", quote = FALSE, row.names = FALSE)
}
"""


def vegan_available() -> bool:
    check = 'quit(status = !requireNamespace("vegan", quietly = TRUE))'
    return subprocess.run(["Rscript", "-e", check], capture_output=True, timeout=60).returncode == 0


def bray_case(n=45, seed=8):
    """Bray-Curtis distances of counts whose dispersion differs between three unequal groups."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(["HHC", "MS", "RRMS"], n, p=[0.4, 0.35, 0.25])
    spread = pd.Series({"HHC": 0.6, "MS": 0.8, "RRMS": 0.7})[groups].to_numpy()
    eta = rng.normal(2, 1, 25) + rng.normal(size=(n, 25)) * spread[:, None]
    counts = rng.poisson(np.exp(eta))
    ids = [f"p{i:02d}" for i in range(n)]
    return (pd.DataFrame(squareform(pdist(counts, "braycurtis")), index=ids, columns=ids),
            pd.Series(groups, index=ids, name="status"))


@pytest.mark.needs_r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_live_betadisper_permutest(tmp_path):
    if not vegan_available():
        pytest.skip("R package vegan not installed")
    distances, groups = bray_case()
    perms = permutation_matrix(len(groups), 199, seed=21)
    distances.to_csv(tmp_path / "d.tsv", sep="\t", float_format="%.17g")
    (tmp_path / "groups.txt").write_text("\n".join(groups) + "\n")
    np.savetxt(tmp_path / "perms.tsv", perms, fmt="%d", delimiter="\t")
    (tmp_path / "run.R").write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(tmp_path / "run.R"), str(tmp_path)], check=True, capture_output=True,
                   timeout=120)
    for test in ("median", "centroid"):
        z_atol, f_rtol = tolerances(test)
        expected = pd.read_csv(tmp_path / f"tab_{test}.tsv", sep="\t").iloc[0]
        z = pd.read_csv(tmp_path / f"z_{test}.tsv", sep="\t").z.to_numpy()
        np.testing.assert_allclose(dispersion_distances(distances, groups, test=test).to_numpy(), z,
                                   rtol=0, atol=z_atol)
        ours = permdisp(distances, groups, permutations=199, seed=21, test=test)  # the same matrix
        assert ours.pseudo_f[0] == pytest.approx(expected.f, rel=f_rtol)
        assert ours.sum_of_squares[0] == pytest.approx(expected.ss, rel=f_rtol)
        assert ours.p_value[0] == expected.p


# ------------------------------------------------------ without R


def test_centroid_equals_anova_on_distances_to_centroid():
    rng = np.random.default_rng(12)
    points = np.vstack([rng.normal(0, 1, (20, 3)), rng.normal(0, 2.5, (20, 3)), rng.normal(1, 1.5, (15, 3))])
    labels = np.repeat(["tight", "wide", "mid"], [20, 20, 15])
    groups = pd.Series(labels, index=[f"s{i}" for i in range(len(labels))], name="disease")
    distances = squareform(pdist(points))
    z = {g: np.linalg.norm(points[labels == g] - points[labels == g].mean(0), axis=1)
         for g in ("tight", "wide", "mid")}
    ours = dispersion_distances(distances, groups, test="centroid", ids=groups.index)
    for g in z:
        np.testing.assert_allclose(ours[labels == g], z[g], rtol=0, atol=1e-10)
    result = permdisp(distances, groups, permutations=199, seed=1, test="centroid", ids=groups.index)
    assert list(result.columns) == COLUMNS
    assert result.term[0] == "disease" and result.df[0] == 2
    anova = stats.f_oneway(*z.values())
    assert result.pseudo_f[0] == pytest.approx(anova.statistic, rel=1e-10)
    assert result.p_value[0] == pytest.approx(1 / 200)
    between = sum(len(v) * (v.mean() - np.concatenate(list(z.values())).mean()) ** 2 for v in z.values())
    assert result.sum_of_squares[0] == pytest.approx(between, rel=1e-10)


def test_euclidean_centroid_statistic_equals_skbio():
    """Without imaginary axes the statistic is scikit-bio's; only the permutation scheme differs."""
    rng = np.random.default_rng(5)
    points = rng.normal(size=(36, 4)) * np.repeat([1.0, 1.6], 18)[:, None]
    ids = [f"s{i}" for i in range(36)]
    labels = np.repeat(["a", "b"], 18)
    ours = permdisp(squareform(pdist(points)), labels, permutations=99, test="centroid", ids=ids)
    theirs = skbio_permdisp(DistanceMatrix(squareform(pdist(points)), ids), list(labels), test="centroid",
                            permutations=0, dimensions=35, warn_neg_eigval=False)
    assert ours.pseudo_f[0] == pytest.approx(theirs["test statistic"], rel=1e-10)


def weiszfeld(points, iterations=20000):
    centre = points.mean(axis=0)
    for _ in range(iterations):
        weights = 1 / np.maximum(np.linalg.norm(points - centre, axis=1), 1e-300)
        centre = weights @ points / weights.sum()
    return centre


def test_spatial_median_minimises_the_sum_of_distances():
    rng = np.random.default_rng(3)
    points = rng.standard_t(3, size=(25, 6))
    ours, reference = spatial_median(points), weiszfeld(points)

    def total(c):
        return np.linalg.norm(points - c, axis=1).sum()

    # optim stops at a relative change of sqrt(eps) in the objective, not at the minimum itself
    assert total(ours) == pytest.approx(total(reference), rel=1e-7)
    assert np.linalg.norm(ours - reference) < 1e-3
    np.testing.assert_array_equal(spatial_median(points[:1]), points[0])  # one sample: itself


def test_permuted_f_equals_refitting_each_permutation():
    """vegan's permFun: residuals of lm(z ~ group), permuted, refitted by least squares."""
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 3, 30)
    z = rng.gamma(2, size=30) + codes
    design = np.column_stack([np.ones(30), codes == 1, codes == 2]).astype(float)
    fitted = design @ np.linalg.lstsq(design, z, rcond=None)[0]
    residuals = z - fitted
    perms = permutation_matrix(30, 50, seed=2)
    expected = []
    for perm in perms:
        y = residuals[perm]
        f = design @ np.linalg.lstsq(design, y, rcond=None)[0]
        expected.append((np.sum((f - f.mean()) ** 2) / 2) / (np.sum((y - f) ** 2) / 27))
    np.testing.assert_allclose(permuted_f(residuals, codes, 3, perms, batch_bytes=8 * 30 * 7), expected,
                               rtol=1e-10)


def test_seeded_permutations_equal_the_explicit_matrix_and_any_input_form():
    distances, groups = bray_case(n=30, seed=4)
    by_seed = permdisp(distances, groups, permutations=99, seed=7)
    explicit = permdisp(distances.to_numpy(), groups.to_numpy(), ids=list(groups.index),
                        permutations=permutation_matrix(30, 99, seed=7))
    matrix = DistanceMatrix(np.asfortranarray(distances.to_numpy()), list(distances.index))
    shuffled = permdisp(matrix, groups.sample(frac=1.0, random_state=1), permutations=99, seed=7)
    for other in (explicit, shuffled):
        pd.testing.assert_frame_equal(by_seed.drop(columns="term"), other.drop(columns="term"))
        np.testing.assert_array_equal(by_seed.attrs["f_perm"], other.attrs["f_perm"])
    assert explicit.term[0] == "groups" and by_seed.term[0] == "status"


def test_bray_curtis_uses_imaginary_axes():
    distances, groups = bray_case(n=30, seed=4)
    vectors, values = pcoa_axes(distances.to_numpy())
    assert len(kept_axes(values)[1]) > 0
    z = dispersion_distances(distances, groups, test="centroid")
    # distances to centroids on the real axes alone (scikit-bio) are larger
    real = vectors[:, kept_axes(values)[0]]
    codes = pd.factorize(groups, sort=True)[0]
    centroids = np.array([real[codes == c].mean(0) for c in range(codes.max() + 1)])
    real_z = np.linalg.norm(real - centroids[codes], axis=1)
    assert np.all(real_z >= z.to_numpy() - 1e-12) and np.any(real_z > z.to_numpy() + 1e-6)


def test_rejects_one_group_and_unknown_test():
    distances, groups = bray_case(n=20, seed=1)
    with pytest.raises(InputError, match="level"):
        permdisp(distances, pd.Series("MS", index=groups.index), permutations=9)
    with pytest.raises(ValueError, match="test="):
        permdisp(distances, groups, permutations=9, test="mean")
    with pytest.raises(InputError, match="no label"):
        permdisp(distances, groups.iloc[1:], permutations=9)
