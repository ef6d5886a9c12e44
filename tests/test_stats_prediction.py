"""Leave-one-out logistic prediction and ROC AUC against independent implementations.

References: statsmodels ``Logit`` (maximum likelihood), statsmodels ``GLM.fit_regularized``
with ``L1_wt = 0`` (ridge; its objective is -loglik / n + alpha / 2 ||beta||^2, so our
``l2`` equals ``alpha * n``, intercept unpenalised via alpha 0), scipy ``mannwhitneyu``
(AUC = U / (n_pos n_neg)), and a plain loop bootstrap for the vectorised AUC CI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats

from bids_dfc.stats import prediction as pr


def _data(n=37, seed=0, signal=1.5):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 2))
    eta = -0.3 + signal * feats[:, 0] + 0.4 * feats[:, 1]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    return feats, y


def test_fit_logistic_matches_statsmodels_logit():
    feats, y = _data()
    ours = pr.fit_logistic(feats, y, l2=0.0)
    ref = sm.Logit(y, sm.add_constant(feats)).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(ours, ref.params, rtol=1e-7)


def test_ridge_matches_statsmodels_glm_elastic_net():
    feats, y = _data(seed=3)
    n, l2 = len(y), 2.0
    ours = pr.fit_logistic(feats, y, l2=l2)
    ref = sm.GLM(y, sm.add_constant(feats), family=sm.families.Binomial()).fit_regularized(
        alpha=np.array([0.0, l2 / n, l2 / n]), L1_wt=0.0, cnvrg_tol=1e-12, maxiter=1000)
    # statsmodels' coordinate descent stops ~1e-5 short; the exact optimum of the same
    # objective by scipy (L-BFGS, gradient to 1e-12) is the tight reference
    np.testing.assert_allclose(ours, ref.params, atol=1e-4)
    xmat = sm.add_constant(feats)

    def objective(beta):
        eta = xmat @ beta
        return np.sum(np.logaddexp(0, eta) - y * eta) + l2 / 2 * np.sum(beta[1:] ** 2)

    best = optimize.minimize(objective, np.zeros(3), method="BFGS", options={"gtol": 1e-12})
    np.testing.assert_allclose(ours, best.x, atol=1e-7)


def test_roc_auc_equals_mann_whitney_u_with_ties():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(13), np.zeros(17)]
    score = np.round(rng.normal(size=30) + 0.8 * y, 1)  # ties across classes
    u = stats.mannwhitneyu(score[y == 1], score[y == 0]).statistic
    np.testing.assert_allclose(pr.roc_auc(y, score), u / (13 * 17), rtol=1e-12)
    fpr, tpr = pr.roc_curve(y, score)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    np.testing.assert_allclose(np.trapezoid(tpr, fpr), pr.roc_auc(y, score), rtol=1e-12)


def test_loo_probability_is_refit_without_the_subject():
    feats, y = _data(n=21, seed=4)
    prob = pr.loo_logistic(feats, y, l2=0.5)
    i = 6
    keep = np.arange(21) != i
    mu, sd = feats[keep].mean(0), feats[keep].std(0, ddof=1)
    ref = sm.GLM(y[keep], sm.add_constant((feats[keep] - mu) / sd),
                 family=sm.families.Binomial()).fit_regularized(
        alpha=np.array([0, 0.5 / 20, 0.5 / 20]), L1_wt=0.0, cnvrg_tol=1e-12, maxiter=1000)
    eta = ref.params[0] + ((feats[i] - mu) / sd) @ ref.params[1:]
    np.testing.assert_allclose(prob[i], 1 / (1 + np.exp(-eta)), rtol=1e-4)


def test_auc_bootstrap_ci_matches_loop_bootstrap():
    rng = np.random.default_rng(8)
    y = np.r_[np.ones(12), np.zeros(16)]
    score = rng.normal(size=28) + y
    lo, hi = pr.auc_bootstrap_ci(y, score, n_boot=4000, random_seed=2)
    pos, neg = score[y == 1], score[y == 0]
    loop = []
    r2 = np.random.default_rng(99)
    for _ in range(4000):
        p, q = r2.choice(pos, pos.size), r2.choice(neg, neg.size)
        loop.append(np.mean((p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :])))
    ref = np.percentile(loop, [2.5, 97.5])
    np.testing.assert_allclose([lo, hi], ref, atol=0.02)
    assert lo < pr.roc_auc(y, score) < hi


def test_evaluate_feature_sets_signal_vs_noise():
    rng = np.random.default_rng(5)
    n = 40
    y = np.r_[np.ones(18), np.zeros(22)]
    frame = pd.DataFrame({"participant_id": [f"sub-{i}" for i in range(n)], "resp": y,
                          "good": y * 1.5 + rng.normal(size=n), "noise": rng.normal(size=n)})
    summ, scores, curves = pr.evaluate_feature_sets(
        frame, "resp", {"good": ["good"], "noise": ["noise"]}, n_boot=1000, random_seed=0)
    s = summ.set_index("model")
    assert s.loc["good", "auc"] > 0.8 and s.loc["noise", "auc"] < 0.7
    assert s.loc["good", "auc_ci_low"] > 0.5
    assert len(scores) == 2 * n and set(curves) == {"good", "noise"}
