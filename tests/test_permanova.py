"""PERMANOVA engine against vegan::adonis2 (fixtures and live R), scikit-bio, and a slow reference.

Fixtures in tests/fixtures/vegan/ come from make_fixtures.R there (vegan 2.6-4, permute 0.9-7).
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
from skbio.stats.distance import permanova as skbio_permanova

from workflow_scripts.diversity.permanova import (
    COLUMNS,
    design_matrix,
    formula,
    gower_centre,
    household_pairs,
    paired_forms,
    permanova,
    quadratic_forms,
)
from workflow_scripts.diversity.permutations import (
    count_permutations,
    permutation_matrix,
    stratum_codes,
    within_strata,
)
from workflow_scripts.errors import InputError

VEGAN = Path(__file__).parent / "fixtures" / "vegan"
CASES = pd.read_csv(VEGAN / "cases.tsv", sep="\t", keep_default_na=False)


# ---------------------------------------------------------------- helpers


def load_fixtures():
    distances = pd.read_csv(VEGAN / "distances.tsv", sep="\t", index_col=0)
    design = pd.read_csv(VEGAN / "design.tsv", sep="\t", index_col=0, dtype={"household": str})
    return distances, design


def vegan_table(case: str, permutations: str) -> pd.DataFrame:
    table = pd.read_csv(VEGAN / "adonis2.tsv", sep="\t")
    return table[(table.case == case) & (table.permutations == permutations)].reset_index(drop=True)


def vegan_perms(strata: str) -> np.ndarray:
    name = "perms_strata.tsv" if strata else "perms_free.tsv"
    return pd.read_csv(VEGAN / name, sep="\t").to_numpy() - 1


def run_case(case: pd.Series, permutations, seed=1) -> pd.DataFrame:
    distances, design = load_fixtures()
    keep = distances.index[: case.n_samples]
    return permanova(distances.loc[keep, keep], design, case.terms.split("+"),
                     strata=case.strata or None, permutations=permutations, by=case.by, seed=seed)


def mc_tolerance(p: float, n_perm: int = 999) -> float:
    """Four standard errors of the difference of two independent Monte Carlo p-values."""
    return 4 * np.sqrt(2 * p * (1 - p) / n_perm) + 2 / (n_perm + 1)


def random_cohort(n_households=15, n_species=25, seed=0, effect=0.0, singletons=2, triples=1):
    """Bray-Curtis distances and a design for a small paired cohort with mixed term types."""
    rng = np.random.default_rng(seed)
    sizes = [2] * n_households + [3] * triples + [1] * singletons
    household = np.repeat([f"h{i:02d}" for i in range(len(sizes))], sizes)
    n = len(household)
    disease = np.array([("MS" if k == 0 else "Control") for s in sizes for k in range(s)])
    site = np.repeat(rng.choice(["north", "south", "west"], len(sizes)), sizes)
    design = pd.DataFrame(
        {"household": household, "disease": disease, "sex": rng.choice(["F", "M"], n),
         "age": rng.normal(45, 10, n).round(), "site": site},
        index=[f"x{i:03d}" for i in range(n)],
    )
    base = rng.normal(2, 1, n_species)
    noise = rng.normal(0, 0.5, (n, n_species))
    eta = base + noise + effect * (disease == "MS")[:, None] * rng.normal(0, 1, n_species)
    counts = rng.poisson(np.exp(eta))
    distances = squareform(pdist(counts, "braycurtis"))
    return DistanceMatrix(distances, list(design.index)), design


def slow_permanova_f(distances: np.ndarray, design: pd.DataFrame, terms, perms, by="terms"):
    """Obvious reference: per permutation, hat matrices of fitted models and traces of G[p, p]."""
    centring = np.eye(len(distances)) - 1 / len(distances)
    gower = -0.5 * centring @ distances**2 @ centring
    blocks = {t: design[[t]].to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(design[t])
              else pd.get_dummies(design[t], drop_first=True, dtype=float).to_numpy() for t in terms}
    n = len(distances)

    def hat(chosen):
        x = np.hstack([np.ones((n, 1))] + [blocks[t] for t in chosen])
        return x @ np.linalg.pinv(x)

    full = hat(terms)
    rank = np.linalg.matrix_rank(full) - 1
    out = []
    for perm in perms:
        g = gower[np.ix_(perm, perm)]
        residual = np.trace(g) - np.trace(full @ g)
        scale = residual / (n - rank - 1)
        row = []
        for k, term in enumerate(terms):
            if by == "terms":
                ss = np.trace(hat(terms[: k + 1]) @ g) - np.trace(hat(terms[:k]) @ g)
            else:
                ss = np.trace(full @ g) - np.trace(hat([t for t in terms if t != term]) @ g)
            df = blocks[term].shape[1]
            row.append(ss / df / scale)
        out.append(row)
    return np.array(out)


# ------------------------------------------------- vegan adonis2 fixtures


@pytest.mark.parametrize("case", CASES.case)
def test_table_equals_vegan_with_supplied_permutations(case):
    spec = CASES.set_index("case").loc[case]
    expected = vegan_table(case, "supplied" if spec.n_samples == 60 else "r999")
    perms = vegan_perms(spec.strata) if spec.n_samples == 60 else 999
    ours = run_case(spec, perms)
    assert list(ours.columns) == COLUMNS
    assert list(ours.term) == list(expected.term)
    assert list(ours.df) == list(expected.df)
    for column in ("sum_of_squares", "r2", "pseudo_f"):
        np.testing.assert_allclose(ours[column], expected[column], rtol=1e-8, atol=1e-12, equal_nan=True)
    # same permutations as vegan -> the same p-values, exactly
    np.testing.assert_array_equal(ours.p_value.to_numpy(), expected.p_value.to_numpy())
    assert ours.attrs["n_permutations"] == expected.n_perm[0]


@pytest.mark.parametrize("case", [c for c in CASES.case if c != "enumerated"])
def test_permuted_f_equals_vegan_f_perm(case):
    spec = CASES.set_index("case").loc[case]
    ours = run_case(spec, vegan_perms(spec.strata))
    f_perm = pd.read_csv(VEGAN / "f_perm.tsv", sep="\t")
    expected = f_perm[f_perm.case == case].pivot(index="perm", columns="term", values="f")
    expected = expected[list(ours.term[:-2])].to_numpy()
    assert expected.shape == (99, len(spec.terms.split("+")))
    np.testing.assert_allclose(ours.attrs["f_perm"], expected, rtol=1e-8)


@pytest.mark.parametrize("case", CASES.case)
def test_p_values_close_to_vegan_own_permutations(case):
    """Our RNG vs R's RNG, 999 permutations each: equal within Monte Carlo error."""
    spec = CASES.set_index("case").loc[case]
    expected = vegan_table(case, "r999")
    ours = run_case(spec, 999)
    tested = expected.p_value.notna().to_numpy()
    for p_ours, p_vegan in zip(ours.p_value[tested], expected.p_value[tested]):
        assert abs(p_ours - p_vegan) <= mc_tolerance(p_vegan), (case, p_ours, p_vegan)
    if case == "enumerated":  # 5 pairs: permute lists all 31 permutations, so p is exact
        assert ours.attrs["n_permutations"] == 31
        assert ours.p_value[0] == expected.p_value[0] == 0.4375


def test_p_value_near_0_2_agrees_with_vegan():
    spec = CASES.set_index("case").loc["strata_margin"]
    expected = vegan_table("strata_margin", "r999").set_index("term")
    ours = run_case(spec, 999).set_index("term")
    assert 0.1 < expected.p_value["bmi"] < 0.3
    assert abs(ours.p_value["bmi"] - expected.p_value["bmi"]) < 0.05


# ---------------------------------------------------------- live R


R_SCRIPT = r"""
suppressPackageStartupMessages(library(vegan))
args <- commandArgs(trailingOnly = TRUE)
d <- as.dist(as.matrix(read.delim(file.path(args[1], "d.tsv"), row.names = 1, check.names = FALSE)))
dat <- read.delim(file.path(args[1], "design.tsv"), stringsAsFactors = TRUE)
perms <- as.matrix(read.delim(file.path(args[1], "perms.tsv"), header = FALSE)) + 1L
for (by in c("terms", "margin")) {
  res <- adonis2(d ~ disease + age + site + sex, data = dat, permutations = perms, by = by)
  out <- data.frame(term = rownames(res), df = res$Df, ss = sprintf("%.17g", res$SumOfSqs),
                    f = sprintf("%.17g", res$F), p = sprintf("%.17g", res[["Pr(>F)"]]))
  write.table(out, file.path(args[1], paste0(by, ".tsv")), sep = "\t", quote = FALSE, row.names = FALSE)
}
"""


@pytest.mark.needs_r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_live_adonis2(tmp_path):
    # pairs and singletons only: exercises the sign-flip route (fixtures, with triples, the general one)
    distances, design = random_cohort(n_households=20, seed=11, effect=0.3, triples=0)
    design = design.sample(frac=1.0, random_state=3)  # row order differs from the distances
    perms = permutation_matrix(len(design), 199, strata=design.loc[list(distances.ids), "household"], seed=5)
    table = pd.DataFrame(distances.data, index=distances.ids, columns=distances.ids)
    table.to_csv(tmp_path / "d.tsv", sep="\t", float_format="%.17g")
    design.loc[list(distances.ids)].to_csv(tmp_path / "design.tsv", sep="\t", index=False)
    np.savetxt(tmp_path / "perms.tsv", perms, fmt="%d", delimiter="\t")
    (tmp_path / "run.R").write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(tmp_path / "run.R"), str(tmp_path)], check=True, capture_output=True,
                   timeout=120)
    for by in ("terms", "margin"):
        expected = pd.read_csv(tmp_path / f"{by}.tsv", sep="\t")
        ours = permanova(distances, design, ["disease", "age", "site", "sex"], strata="household",
                         permutations=perms, by=by)
        assert list(ours.term) == list(expected.term)
        np.testing.assert_allclose(ours.sum_of_squares, expected.ss, rtol=1e-8)
        np.testing.assert_allclose(ours.pseudo_f, expected.f, rtol=1e-8, equal_nan=True)
        np.testing.assert_array_equal(ours.p_value.to_numpy(), expected.p.to_numpy())


# ------------------------------------------------ scikit-bio, slow reference


def test_one_factor_equals_skbio_permanova():
    matrix, design = random_cohort(n_households=20, seed=22, effect=0.1)
    ours = permanova(matrix, design, ["disease"], permutations=999, seed=4)
    grouping = design.loc[list(matrix.ids), "disease"].to_numpy()
    theirs = skbio_permanova(matrix, grouping, permutations=999, seed=4)
    assert ours.pseudo_f[0] == pytest.approx(theirs["test statistic"], rel=1e-12)
    assert 0.1 < theirs["p-value"] < 0.9
    assert abs(ours.p_value[0] - theirs["p-value"]) <= mc_tolerance(theirs["p-value"])


def test_one_factor_sums_of_squares_from_distances():
    """Anderson (2001): SS_T = (1/n) sum_{i<j} d^2, SS_W = sum_g (1/n_g) sum_{i<j in g} d^2."""
    distances, design = load_fixtures()
    d2 = distances.to_numpy() ** 2
    groups = design.loc[distances.index, "site"].to_numpy()
    ss_total = np.triu(d2, 1).sum() / len(d2)
    ss_within = sum(np.triu(d2[np.ix_(groups == g, groups == g)], 1).sum() / np.sum(groups == g)
                    for g in np.unique(groups))
    ours = permanova(distances, design, ["site"], permutations=9).set_index("term")
    assert ours.sum_of_squares["Total"] == pytest.approx(ss_total, rel=1e-12)
    assert ours.sum_of_squares["Residual"] == pytest.approx(ss_within, rel=1e-12)
    expected_f = (ss_total - ss_within) / 2 / (ss_within / (len(d2) - 3))
    assert ours.pseudo_f["site"] == pytest.approx(expected_f, rel=1e-12)


@pytest.mark.parametrize("by", ["terms", "margin"])
@pytest.mark.parametrize("triples", [1, 0])  # general route, and pairs-only sign-flip route
def test_fast_equals_slow_reference_on_same_permutations(by, triples):
    distances, design = random_cohort(n_households=12, seed=2, effect=0.5, triples=triples)
    terms = ["disease", "age", "site", "sex"]
    perms = permutation_matrix(len(design), 40, strata=design.household, seed=9)
    ours = permanova(distances, design, terms, strata="household", permutations=perms, by=by)
    slow = slow_permanova_f(distances.data, design, terms, perms, by=by)
    np.testing.assert_allclose(ours.attrs["f_perm"], slow, rtol=1e-9)
    observed = slow_permanova_f(distances.data, design, terms, [np.arange(len(design))], by=by)[0]
    np.testing.assert_allclose(ours.pseudo_f[: len(terms)], observed, rtol=1e-9)
    expected_p = (1 + (slow >= observed - 1.49e-8).sum(axis=0)) / (1 + len(perms))
    np.testing.assert_allclose(ours.p_value[: len(terms)], expected_p)


def test_paired_route_equals_general_route():
    distances, design = random_cohort(n_households=30, seed=3, triples=0, singletons=3)
    strata = design.loc[list(distances.ids), "household"]
    codes = stratum_codes(strata, len(strata))
    first, second = household_pairs(codes)
    assert len(first) == 30 and household_pairs(stratum_codes([1, 1, 1, 2], 4)) is None
    basis = np.linalg.qr(np.random.default_rng(1).normal(size=(len(strata), 4)))[0]
    perms = permutation_matrix(len(strata), 500, strata=strata, seed=2)
    gower = gower_centre(distances.data)
    general = quadratic_forms(gower, basis, perms)
    paired = paired_forms(gower, basis, perms, first, second, batch_bytes=4096)
    np.testing.assert_allclose(paired, general, rtol=1e-11, atol=1e-14)
    assert np.ptp(general[:, 0]) > 0.01 * np.abs(general[:, 0]).max()  # the permutations do differ


def test_small_batches_give_the_same_answer(monkeypatch):
    import workflow_scripts.diversity.permanova as module

    distances, design = random_cohort(seed=4)
    whole = permanova(distances, design, ["disease", "site"], permutations=99)
    monkeypatch.setattr(module, "BATCH_BYTES", 1)
    batched = permanova(distances, design, ["disease", "site"], permutations=99)
    np.testing.assert_allclose(batched.attrs["f_perm"], whole.attrs["f_perm"], rtol=1e-12)
    pd.testing.assert_frame_equal(batched, whole)


# ------------------------------------------------------- permutations


def test_strata_permutations_stay_within_strata_and_cover_them():
    strata = np.array(["a", "b", "b", "c", "c", "c", "d", "e", "e", "f", "f", "f", "f", "f"])
    perms = permutation_matrix(len(strata), 999, strata=strata, seed=3, minperm=0)  # 2880: drawn
    assert perms.shape == (999, 14)
    assert within_strata(perms, strata)
    assert np.all(perms[:, 0] == 0) and np.all(perms[:, 6] == 6)  # singletons stay put
    assert np.all(np.sort(perms, axis=1) == np.arange(14))
    triples = {tuple(row) for row in perms[:, 3:6]}
    assert len(triples) == 6  # every ordering of the triple occurs
    swapped = np.mean(perms[:, 1] == 2)
    assert abs(swapped - 0.5) < 4 * np.sqrt(0.25 / 999)
    assert not within_strata(np.array([[1, 0, *range(2, 14)]]), strata)


def test_complete_enumeration_as_permute():
    strata = np.repeat(np.arange(5), 2)
    assert count_permutations(stratum_codes(strata, 10)) == 32
    perms = permutation_matrix(10, 999, strata=strata)
    assert len(perms) == 31 and len({tuple(r) for r in perms}) == 31
    assert not np.any(np.all(perms == np.arange(10), axis=1))  # identity left out
    assert count_permutations(stratum_codes([1, 1, 1, 2, 2, 3], 6)) == 12
    sampled = permutation_matrix(7, 999)  # 7! - 1 = 5039 <= minperm: drawn without replacement
    assert len(sampled) == 999 and len({tuple(r) for r in sampled}) == 999
    assert permutation_matrix(8, 99).shape == (99, 8)  # 40319 > 5040: random


def test_same_seed_same_result_and_seed_matters():
    distances, design = random_cohort(seed=5)
    first = permanova(distances, design, ["disease"], permutations=99, seed=12)
    again = permanova(distances, design, ["disease"], permutations=99, seed=12)
    other = permanova(distances, design, ["disease"], permutations=99, seed=13)
    np.testing.assert_array_equal(first.attrs["f_perm"], again.attrs["f_perm"])
    assert not np.array_equal(first.attrs["f_perm"], other.attrs["f_perm"])


def test_planted_difference_gives_small_p():
    distances, design = random_cohort(n_households=20, seed=6, effect=1.5)
    result = permanova(distances, design, ["disease"], strata="household", permutations=999)
    assert result.p_value[0] == pytest.approx(1 / 1000)
    assert result.r2[0] > 0.05


@pytest.mark.parametrize("stratified", [False, True])
def test_null_p_values_are_uniform(stratified):
    rng = np.random.default_rng(100)
    p = []
    for k in range(200):
        n = 20
        points = rng.normal(size=(n, 5))
        design = pd.DataFrame({"group": np.tile(["a", "b"], n // 2), "pair": np.repeat(np.arange(n // 2), 2)},
                              index=[f"s{i}" for i in range(n)])
        distances = squareform(pdist(points))
        result = permanova(distances, design, ["group"], ids=design.index,
                           strata="pair" if stratified else None, permutations=199, seed=k)
        p.append(result.p_value[0])
    p = np.array(p)
    hits = int(np.sum(p <= 0.05))
    low, high = stats.binom.ppf([0.0005, 0.9995], 200, 0.05)
    assert low <= hits <= high, hits
    assert stats.kstest(p, "uniform").pvalue > 0.001
    assert 0.4 < p.mean() < 0.6


# ---------------------------------------------------------- API, inputs


def test_formula_text():
    assert formula(["status", "sex", "age", "bmi", "site"]) == "status + sex + age + bmi + site"


def test_design_matrix_treatment_coding():
    design = pd.DataFrame({
        "site": pd.Categorical(["z", "a", "m", "a"], categories=["m", "a", "z"]),
        "sex": ["M", "F", "F", "M"],
        "age": [30, 40, 50, 60],
        "smoker": [True, False, True, False],
    })
    matrix, assign, names = design_matrix(design, ["site", "sex", "age", "smoker"])
    assert names == ["sitea", "sitez", "sexM", "age", "smokerTrue"]
    assert list(assign) == [0, 0, 1, 2, 3]
    np.testing.assert_array_equal(matrix[:, 0], [0, 1, 0, 1])
    np.testing.assert_array_equal(matrix[:, 1], [1, 0, 0, 0])
    np.testing.assert_array_equal(matrix[:, 3], [30, 40, 50, 60])


def test_inputs_aligned_by_id_and_ndarray_with_ids():
    distances, design = random_cohort(seed=7)
    reference = permanova(distances, design, ["disease", "age"], strata="household", permutations=99)
    shuffled = design.sample(frac=1.0, random_state=1)
    as_array = permanova(distances.data, shuffled, ["disease", "age"], ids=distances.ids,
                         strata=shuffled.household, permutations=99)
    pd.testing.assert_frame_equal(reference, as_array)


def test_aliased_term_is_dropped_like_vegan():
    distances, design = random_cohort(seed=8)
    design = design.assign(region=design.site.map({"north": "n", "south": "s", "west": "w"}))
    both = permanova(distances, design, ["site", "region", "age"], permutations=9)
    single = permanova(distances, design, ["site", "age"], permutations=9)
    assert list(both.term) == ["site", "age", "Residual", "Total"]
    np.testing.assert_allclose(both.sum_of_squares, single.sum_of_squares, rtol=1e-12)
    # by margin vegan keeps the rows with Df 0 and SS 0 (F -Inf, p NA there; NaN here)
    margin = permanova(distances, design, ["site", "region", "age"], permutations=9, by="margin")
    assert list(margin.df) == [0, 0, 1, single.df[2], single.df[3]]
    assert margin.sum_of_squares[0] == margin.sum_of_squares[1] == 0
    assert np.isnan(margin.pseudo_f[:2]).all() and np.isnan(margin.p_value[:2]).all()
    assert margin.pseudo_f[2] == pytest.approx(single.pseudo_f[1], rel=1e-12)  # age is last in both


def test_whole_model_row():
    distances, design = random_cohort(seed=9)
    terms = permanova(distances, design, ["disease", "age", "site"], permutations=9)
    model = permanova(distances, design, ["disease", "age", "site"], permutations=9, by=None)
    assert list(model.term) == ["Model", "Residual", "Total"]
    assert model.df[0] == 4
    assert model.sum_of_squares[0] == pytest.approx(terms.sum_of_squares[:3].sum(), rel=1e-12)
    residual = terms.set_index("term").loc["Residual"]
    expected_f = model.sum_of_squares[0] / 4 / (residual.sum_of_squares / residual.df)
    assert model.pseudo_f[0] == pytest.approx(expected_f, rel=1e-12)


def test_bad_inputs_raise_input_error():
    distances, design = random_cohort(seed=10)
    with pytest.raises(InputError, match="missing values"):
        permanova(distances, design.assign(age=design.age.where(design.index != "x003")), ["age"])
    with pytest.raises(InputError, match="not in the design"):
        permanova(distances, design.iloc[1:], ["age"])
    with pytest.raises(InputError, match="across strata"):
        perms = np.arange(len(design))[None, ::-1]
        permanova(distances, design, ["age"], strata="household", permutations=perms)


def test_gower_centre_trace_is_total_sum_of_squares():
    d = squareform(pdist(np.random.default_rng(1).normal(size=(12, 3))))
    g = gower_centre(d)
    np.testing.assert_allclose(g.sum(axis=0), 0, atol=1e-12)
    assert np.trace(g) == pytest.approx(np.triu(d**2, 1).sum() / 12, rel=1e-12)
