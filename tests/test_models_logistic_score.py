"""Logistic score tests against McNemar, statsmodels ConditionalLogit and Logit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from statsmodels.discrete.conditional_models import ConditionalLogit
from statsmodels.discrete.discrete_model import Logit
from statsmodels.stats.contingency_tables import mcnemar

from workflow_scripts.models.logistic_score import logistic_score_test


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
    stat = logistic_score_test(np.zeros((len(case), 0)), case[:, None], discordant[:, None], np.ones(len(case)))
    b, c = int((case > control).sum()), int((case < control).sum())
    reference = mcnemar([[0, b], [c, 0]], exact=False, correction=False).statistic
    assert stat[0] ** 2 == pytest.approx(reference, rel=1e-12)
    assert np.sign(stat[0]) == np.sign(b - c)


@pytest.mark.parametrize("seed", [1, 2])
def test_with_covariates_it_is_the_conditional_logistic_score_test(seed):
    status, household, z, sex, y = paired_cohort(seed)
    case, control = y[status == 1], y[status == 0]
    differences = np.column_stack([z[status == 1] - z[status == 0], sex[status == 1] - sex[status == 0]])
    ours = logistic_score_test(differences, case[:, None], (case != control)[:, None], np.ones(len(case)))[0]
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
    ours = logistic_score_test(W, Y, mask, status)
    for j in range(p):
        null = Logit(Y[:, j], W).fit(disp=0, method="newton", tol=1e-12)
        full = Logit(Y[:, j], np.column_stack([status, W]))
        assert ours[j] == pytest.approx(score_reference(full, null.params), rel=1e-7)
    swaps = np.stack([rng.permutation(status) for _ in range(3)])
    batched = logistic_score_test(W, Y, mask, swaps)
    for r in range(3):
        np.testing.assert_allclose(batched[r], logistic_score_test(W, Y, mask, swaps[r]), rtol=1e-12)


def test_masks_select_the_rows_and_an_empty_column_has_no_information():
    rng = np.random.default_rng(4)
    n = 120
    W = np.column_stack([np.ones(n), rng.normal(size=n)])
    t = (rng.random(n) < 0.5).astype(float)
    Y = (rng.random((n, 2)) < 0.5).astype(float)
    mask = np.ones((n, 2), bool)
    mask[60:, 0] = False
    mask[:, 1] = False
    out = logistic_score_test(W, Y, mask, t)
    assert out[0] == pytest.approx(logistic_score_test(W[:60], Y[:60, :1], mask[:60, :1], t[:60])[0], rel=1e-12)
    assert np.isnan(out[1])
