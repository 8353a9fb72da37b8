"""The batched logistic score test against statsmodels' GLM score test, response by response."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from workflow_scripts.models.logistic_score import score_test
import warnings
from statsmodels.discrete.conditional_models import ConditionalLogit
from statsmodels.discrete.discrete_model import Logit
from statsmodels.stats.contingency_tables import mcnemar


def data(n=150, p=4, seed=0):
    rng = np.random.default_rng(seed)
    Z = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    x = rng.normal(size=n) + 0.3 * Z[:, 1]
    eta = np.array([-0.5, 0.5, 1.5, 0.0]) + np.outer(Z[:, 1], [0.8, -0.5, 0.3, 0.0]) \
        + np.outer(x, [0.0, 0.6, 0.0, -0.4])
    Y = (rng.random((n, p)) < 1 / (1 + np.exp(-eta))).astype(float)
    clusters = np.repeat(np.arange(n), rng.integers(1, 4, n))[:n]
    return Y, x, Z, clusters


def boos_reference(y, x, Z, clusters=None):
    """The robust score statistic from statsmodels' null fit, by the formula (uncentred score variance)."""
    null = sm.GLM(y, Z, family=sm.families.Binomial()).fit(tol=1e-12)
    mu = null.fittedvalues
    w = mu * (1 - mu)
    xt = x - Z @ np.linalg.solve(Z.T @ (w[:, None] * Z), Z.T @ (w * x))
    score = xt * (y - mu)
    if clusters is None:
        return score.sum() / np.sqrt((score ** 2).sum())
    sums = np.array([score[clusters == g].sum() for g in np.unique(clusters)])
    G = len(sums)
    return score.sum() / np.sqrt(G / (G - 1) * (sums ** 2).sum())


def test_score_test_equals_statsmodels():
    Y, x, Z, _ = data()
    model = score_test(Y, x, Z, variance="model")
    robust = score_test(Y, x, Z, variance="robust")
    for j in range(Y.shape[1]):
        null = sm.GLM(Y[:, j], Z, family=sm.families.Binomial()).fit(tol=1e-12)
        ref = null.score_test(exog_extra=x[:, None], cov_type="nonrobust")
        assert model["stat"][j] ** 2 == pytest.approx(float(np.squeeze(ref.statistic)), rel=1e-6)
        assert model["pvalue"][j] == pytest.approx(float(np.squeeze(ref.pvalue)), rel=1e-5)
        assert robust["stat"][j] == pytest.approx(boos_reference(Y[:, j], x, Z), rel=1e-6)
        # statsmodels' HC0 score test centres the score covariance (n cov, ddof 1); V - U^2/n is that
        ref = null.score_test(exog_extra=x[:, None], cov_type="HC0")
        n = len(x)
        info = 1 / (model["se"][j] ** 2)
        U = robust["effect"][j] * info
        V = (robust["se"][j] * info) ** 2
        assert U ** 2 / (n / (n - 1) * (V - U ** 2 / n)) == pytest.approx(float(np.squeeze(ref.statistic)),
                                                                          rel=1e-6)
    assert model["converged"].all()


def test_one_step_effect_is_near_the_maximum_likelihood_log_odds_ratio():
    """One Newton step from the null fit: close for small effects, shrunk a little towards 0 for larger ones."""
    Y, x, Z, _ = data(n=3000, seed=1)
    out = score_test(Y, x, Z)
    for j in range(Y.shape[1]):
        full = sm.Logit(Y[:, j], np.column_stack([Z, x])).fit(disp=0)
        assert out["effect"][j] == pytest.approx(full.params[-1], abs=0.03 + 0.1 * abs(full.params[-1]))


def test_cluster_robust_variance_and_a_mask():
    Y, x, Z, clusters = data(seed=2)
    mask = np.random.default_rng(3).random(Y.shape) < 0.8
    out = score_test(Y, x, Z, clusters=clusters, mask=mask)
    for j in range(Y.shape[1]):
        rows = mask[:, j]
        assert out["stat"][j] == pytest.approx(boos_reference(Y[rows, j], x[rows], Z[rows], clusters[rows]),
                                               rel=1e-6)
        assert out["n"][j] == rows.sum()


def test_a_response_without_variation_gives_nan_and_separation_stays_finite():
    Y, x, Z, _ = data(seed=4)
    Y[:, 0] = 1.0
    Y[:, 1] = np.where(Z[:, 2] == 1, 0.0, Y[:, 1])  # never present where the factor is 1
    out = score_test(Y, x, Z)
    assert np.isnan(out["pvalue"][0])
    assert np.isfinite(out["pvalue"][1])
    rows = Z[:, 2] == 0
    assert out["stat"][1] == pytest.approx(boos_reference(Y[rows, 1], x[rows], Z[rows][:, :2]), rel=1e-4)


def test_prior_weights_are_the_weighted_score_test():
    Y, x, Z, clusters = data(seed=5)
    weights = 1.0 / np.bincount(clusters)[clusters]
    model = score_test(Y, x, Z, variance="model", weights=weights)
    robust = score_test(Y, x, Z, clusters=clusters, weights=weights)
    for j in range(Y.shape[1]):
        null = sm.GLM(Y[:, j], Z, family=sm.families.Binomial(), var_weights=weights).fit(tol=1e-12)
        ref = null.score_test(exog_extra=x[:, None], cov_type="nonrobust")
        assert model["stat"][j] ** 2 == pytest.approx(float(np.squeeze(ref.statistic)), rel=1e-6)
        mu = null.fittedvalues
        w = weights * mu * (1 - mu)
        xt = x - Z @ np.linalg.solve(Z.T @ (w[:, None] * Z), Z.T @ (w * x))
        score = weights * xt * (Y[:, j] - mu)
        sums = np.array([score[clusters == g].sum() for g in np.unique(clusters)])
        G = len(sums)
        assert robust["stat"][j] == pytest.approx(score.sum() / np.sqrt(G / (G - 1) * (sums ** 2).sum()), rel=1e-6)


@pytest.mark.parametrize("variance,power", [("hc2", 0.5), ("hc3", 1.0)])
def test_leverage_corrected_robust_variance(variance, power):
    Y, x, Z, clusters = data(seed=6)
    out = score_test(Y, x, Z, clusters=clusters, variance=variance)
    for j in range(Y.shape[1]):
        null = sm.GLM(Y[:, j], Z, family=sm.families.Binomial()).fit(tol=1e-12)
        h = null.get_hat_matrix_diag()
        mu = null.fittedvalues
        w = mu * (1 - mu)
        xt = x - Z @ np.linalg.solve(Z.T @ (w[:, None] * Z), Z.T @ (w * x))
        score = xt * (Y[:, j] - mu)
        adjusted = score / (1 - h) ** power
        sums = np.array([adjusted[clusters == g].sum() for g in np.unique(clusters)])
        assert out["stat"][j] == pytest.approx(score.sum() / np.sqrt((sums ** 2).sum()), rel=1e-6)


def score_reference(model, null_params):
    """Rao's score statistic of the first parameter from a statsmodels model's score and Hessian."""
    params = np.r_[0.0, null_params]
    score = model.score(params)
    info = -model.hessian(params)
    efficient = info[0, 0] - info[0, 1:] @ np.linalg.solve(info[1:, 1:], info[1:, 0])
    return score[0] / np.sqrt(efficient)


def paired_cohort(seed, n_pairs=300, effect=0.5):
    rng = np.random.default_rng(seed)
    status = np.tile([1.0, 0.0], n_pairs)
    household = np.repeat(np.arange(n_pairs), 2)
    z = rng.normal(size=2 * n_pairs)
    sex = rng.integers(0, 2, 2 * n_pairs).astype(float)
    eta = -0.2 + effect * status + 0.7 * z + rng.normal(size=n_pairs)[household]
    y = (rng.random(2 * n_pairs) < 1 / (1 + np.exp(-eta))).astype(float)
    return status, household, z, sex, y


def test_without_covariates_the_paired_score_test_is_mcnemar():
    status, household, z, sex, y = paired_cohort(1)
    case, control = y[status == 1], y[status == 0]
    discordant = case != control
    stat = score_test(case[:, None], np.ones(len(case)), np.zeros((len(case), 0)), mask=discordant[:, None],
                      variance="model")["stat"]
    b, c = int((case > control).sum()), int((case < control).sum())
    reference = mcnemar([[0, b], [c, 0]], exact=False, correction=False).statistic
    assert stat[0] ** 2 == pytest.approx(reference, rel=1e-12)
    assert np.sign(stat[0]) == np.sign(b - c)


def test_every_discordant_pair_one_way_is_still_a_test_without_an_intercept():
    """b = n, c = 0: McNemar's z = sqrt(n), although the response does not vary on its rows."""
    n = 30
    out = score_test(np.ones((n, 1)), np.ones(n), np.zeros((n, 0)), variance="model")
    assert out["stat"][0] == pytest.approx(np.sqrt(n), rel=1e-12)


@pytest.mark.parametrize("seed", [1, 2])
def test_with_covariates_it_is_the_conditional_logistic_score_test(seed):
    status, household, z, sex, y = paired_cohort(seed)
    case, control = y[status == 1], y[status == 0]
    differences = np.column_stack([z[status == 1] - z[status == 0], sex[status == 1] - sex[status == 0]])
    ours = score_test(case[:, None], np.ones(len(case)), differences, mask=(case != control)[:, None],
                      variance="model")["stat"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels drops the concordant households, and says so
        null = ConditionalLogit(y, np.column_stack([z, sex]), groups=household).fit(
            method="newton", maxiter=100, disp=0, tol=1e-12)
        full = ConditionalLogit(y, np.column_stack([status, z, sex]), groups=household)
    assert ours == pytest.approx(score_reference(full, null.params), rel=1e-6)


def test_unpaired_score_test_equals_statsmodels_logit_and_replicates_share_the_null_fit():
    rng = np.random.default_rng(3)
    n, p = 200, 4
    status = (rng.random(n) < 0.4).astype(float)
    W = np.column_stack([np.ones(n), rng.normal(size=n)])
    Y = (rng.random((n, p)) < 1 / (1 + np.exp(-(0.3 * status[:, None] + W[:, [1]])))).astype(float)
    mask = np.ones((n, p), bool)
    ours = score_test(Y, status, W, mask=mask, variance="model")["stat"]
    for j in range(p):
        null = Logit(Y[:, j], W).fit(disp=0, method="newton", tol=1e-12)
        full = Logit(Y[:, j], np.column_stack([status, W]))
        assert ours[j] == pytest.approx(score_reference(full, null.params), rel=1e-7)
    swaps = np.stack([rng.permutation(status) for _ in range(3)])
    for variance in ("model", "hc3"):
        batched = score_test(Y, swaps, W, mask=mask, variance=variance)
        for r in range(3):
            one = score_test(Y, swaps[r], W, mask=mask, variance=variance)
            for key in ("stat", "effect", "se"):
                np.testing.assert_allclose(batched[key][r], one[key], rtol=1e-12)


def test_masks_select_the_rows_and_an_empty_column_has_no_information():
    rng = np.random.default_rng(4)
    n = 120
    W = np.column_stack([np.ones(n), rng.normal(size=n)])
    t = (rng.random(n) < 0.5).astype(float)
    Y = (rng.random((n, 2)) < 0.5).astype(float)
    mask = np.ones((n, 2), bool)
    mask[60:, 0] = False
    mask[:, 1] = False
    out = score_test(Y, t, W, mask=mask, variance="model")["stat"]
    alone = score_test(Y[:60, :1], t[:60], W[:60], mask=mask[:60, :1], variance="model")["stat"]
    assert out[0] == pytest.approx(alone[0], rel=1e-12)
    assert np.isnan(out[1])
