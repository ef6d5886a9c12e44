"""Parametric bootstrap of the dFC SD (bids_dfc.dfc.bootstrap).

Outside references:

* the simulator is checked against a plain-numpy DCC-GARCH(1,1) simulator written here in
  matrix form from the model of Engle (2002) and docs/dcc.md (``Q_t`` as 2 x 2 matrices,
  ``R_t = D^-1/2 Q_t D^-1/2``, its Cholesky factor times the draws), given the same draws;
* the fitted models (``pair_models``) are checked by rebuilding the fit's own ``R_t`` from
  them with the recursion written here;
* the bootstrap distribution of the SD from a known model is compared with a brute-force
  Monte Carlo of that model (this file's simulator, its own random numbers, refitted with
  ``dcc``): a parametric bootstrap at the true parameters *is* the sampling distribution of
  the estimator, so the two samples must agree (two-sample Kolmogorov-Smirnov test), and a
  model that is slightly off must be told apart (the test has power).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bids_dfc.dfc import (
    PairModel,
    bootstrap_dfc_sd,
    dcc,
    dfc_summary,
    fit_garch,
    pair_models,
    simulate_pairs,
)
from bids_dfc.dfc.bootstrap import refit_sd

T = 273  # the study's run length after the dummy scans


def _reference_simulation(garch, s2_0, qbar, a, b, e):
    """Bivariate DCC-GARCH(1,1) series, matrix form, vectorised over replicates only.

    ``garch`` (2, 3) rows ``w, alpha, beta``; ``s2_0`` (2,); ``qbar`` (2, 2); ``e`` (M, T, 2)
    standard normals. Returns x (M, T, 2).
    """
    n_rep, n_t, _ = e.shape
    w, alpha, beta = garch[:, 0], garch[:, 1], garch[:, 2]
    h = np.tile(s2_0, (n_rep, 1))
    q = np.tile(qbar, (n_rep, 1, 1))
    x = np.empty((n_rep, n_t, 2))
    for t in range(n_t):
        d = 1.0 / np.sqrt(np.diagonal(q, axis1=1, axis2=2))  # (M, 2)
        r = q * d[:, :, None] * d[:, None, :]
        chol = np.linalg.cholesky(r)
        z = np.einsum("mij,mj->mi", chol, e[:, t])
        x[:, t] = np.sqrt(h) * z
        h = w + alpha * x[:, t] ** 2 + beta * h
        q = (1 - a - b) * qbar + a * np.einsum("mi,mj->mij", z, z) + b * q
    return x


def _model(rows) -> PairModel:
    """PairModel from rows ``(w1, al1, be1, w2, al2, be2, q12, a, b)``, started at the
    GARCH unconditional variances and with unit-diagonal ``Qbar``."""
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    garch = rows[:, :6].reshape(-1, 2, 3)
    s2_0 = garch[..., 0] / (1 - garch[..., 1] - garch[..., 2])
    qbar = np.column_stack([np.ones(len(rows)), np.ones(len(rows)), rows[:, 6]])
    return PairModel(garch=garch, sigma2_0=s2_0, qbar=qbar, a=rows[:, 7].copy(),
                     b=rows[:, 8].copy(), n_t=T)


def test_simulation_matches_an_independent_simulator():
    model = _model([(0.1, 0.1, 0.8, 0.3, 0.05, 0.9, 0.4, 0.08, 0.85),
                    (0.5, 0.0, 0.0, 0.02, 0.2, 0.79, -0.6, 0.3, 0.6),
                    (0.2, 0.4, 0.3, 0.2, 0.0, 0.97, 0.0, 0.0, 0.0)])
    model.qbar[1, :2] = (0.9, 1.1)  # Qbar is a second-moment matrix, not a correlation
    e = np.random.default_rng(7).standard_normal((5, 80, 3, 2))
    x = simulate_pairs(model, e)
    for p in range(3):
        q = model.qbar[p]
        ref = _reference_simulation(model.garch[p], model.sigma2_0[p],
                                    np.array([[q[0], q[2]], [q[2], q[1]]]), model.a[p],
                                    model.b[p], e[:, :, p])
        np.testing.assert_allclose(x[:, :, p], ref, rtol=1e-11, atol=1e-13)


def _recursion_r(z, qbar, a, b):
    """The DCC correlation of one pair from its residuals, the recursion of docs/dcc.md."""
    q = np.array([[qbar[0], qbar[2]], [qbar[2], qbar[1]]])
    out = np.empty(len(z))
    for t in range(len(z)):
        if t:
            q = (1 - a - b) * np.array([[qbar[0], qbar[2]], [qbar[2], qbar[1]]]) \
                + a * np.outer(z[t - 1], z[t - 1]) + b * q
        out[t] = q[0, 1] / np.sqrt(q[0, 0] * q[1, 1])
    return out


def test_pair_models_are_the_fitted_models():
    rng = np.random.default_rng(3)
    model = _model([(0.1, 0.15, 0.8, 0.3, 0.05, 0.9, 0.5, 0.1, 0.85)])
    x = simulate_pairs(model, rng.standard_normal((1, T, 1, 2)))[0, :, 0]
    x = np.column_stack([x, rng.standard_normal(T)])
    fit = dcc(x)
    got = pair_models(fit)
    assert got.n_t == T and got.garch.shape == (3, 2, 3)
    assert [tuple(p) for p in np.asarray(fit.pairs)] == [(0, 1), (0, 2), (1, 2)]
    for p, (i, j) in enumerate(fit.pairs):
        np.testing.assert_array_equal(got.garch[p], fit.garch.params[[i, j]])
        for k, col in enumerate((i, j)):  # s2[0] = w + (alpha + beta) * backcast
            xc = x[:, col] - x[:, col].mean()
            wts = 0.94 ** np.arange(75)
            bc = np.sum(wts / wts.sum() * xc[:75] ** 2)
            w, al, be = fit.garch.params[col]
            assert got.sigma2_0[p, k] == pytest.approx(w + (al + be) * bc, rel=1e-10)
        z = fit.garch.std_resid[:, [i, j]]
        qbar = [np.mean(z[:, 0] ** 2), np.mean(z[:, 1] ** 2), np.mean(z[:, 0] * z[:, 1])]
        np.testing.assert_allclose(got.qbar[p], qbar, rtol=1e-12)
        # the model rebuilds the fit's own R_t: the conventions are the estimator's
        r = _recursion_r(z, got.qbar[p], got.a[p], got.b[p])
        np.testing.assert_allclose(r, fit.R[:, p], atol=1e-10)


def _monte_carlo_sd(model: PairModel, n_rep: int, seed: int) -> np.ndarray:
    """SD of the refitted R_t of ``n_rep`` series of the model, simulated here."""
    q = model.qbar[0]
    e = np.random.default_rng(seed).standard_normal((n_rep, T, 2))
    x = _reference_simulation(model.garch[0], model.sigma2_0[0],
                              np.array([[q[0], q[2]], [q[2], q[1]]]), model.a[0],
                              model.b[0], e)
    cols = x.transpose(1, 0, 2).reshape(T, 2 * n_rep)
    fit = dcc(cols, pairs=[(2 * k, 2 * k + 1) for k in range(n_rep)], garch=fit_garch(cols))
    return dfc_summary(fit.R)["sd"][fit.converged]


def test_bootstrap_distribution_is_the_monte_carlo_of_the_model():
    truth = _model([(0.05, 0.08, 0.9, 0.2, 0.1, 0.85, 0.35, 0.06, 0.9)])
    reference = _monte_carlo_sd(truth, 300, seed=20240)
    boot = bootstrap_dfc_sd(truth, n_boot=300, seed=5)
    sd = boot.sd[np.isfinite(boot.sd[:, 0]), 0]
    assert boot.n_used[0] == sd.size >= 290 and len(reference) >= 290
    assert stats.ks_2samp(sd, reference).pvalue > 0.01
    assert np.median(sd) == pytest.approx(np.median(reference), rel=0.1)
    # the interval is the percentile interval of the replicates
    assert (boot.ci_low[0], boot.ci_high[0]) == tuple(np.quantile(sd, [0.025, 0.975]))
    inside = np.mean((reference >= boot.ci_low[0]) & (reference <= boot.ci_high[0]))
    assert 0.9 <= inside <= 0.99  # it covers 95 % of the true sampling distribution
    # the comparison has power: a model a little off (a 0.06 -> 0.03) is told apart
    off = bootstrap_dfc_sd(_model([(0.05, 0.08, 0.9, 0.2, 0.1, 0.85, 0.35, 0.03, 0.9)]),
                           n_boot=300, seed=5)
    assert stats.ks_2samp(off.sd[:, 0], reference, nan_policy="omit").pvalue < 1e-3


def _fit(seed=0, n=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, n))
    x[:, 1] += 0.6 * x[:, 0] * np.sin(np.arange(T) / 20.0)
    return dcc(x)


def test_same_seed_same_result_whatever_block_threads_and_n_boot():
    fit = _fit()
    ref = bootstrap_dfc_sd(fit, n_boot=12, seed=11)
    assert ref.sd.shape == (12, 3) and (ref.n_used == 12).all()
    assert np.all(ref.ci_low <= ref.ci_high)
    for kw in ({"block": 1}, {"block": 13, "n_jobs": 2}, {"block": 24}):
        np.testing.assert_array_equal(bootstrap_dfc_sd(fit, n_boot=12, seed=11, **kw).sd,
                                      ref.sd)
    # replicate k of a pair is the same whatever n_boot, and whatever the other pairs
    np.testing.assert_array_equal(bootstrap_dfc_sd(fit, n_boot=5, seed=11).sd, ref.sd[:5])
    seq = np.random.SeedSequence(11)
    np.testing.assert_array_equal(bootstrap_dfc_sd(fit, n_boot=12, seed=seq).sd, ref.sd)
    np.testing.assert_array_equal(bootstrap_dfc_sd(fit, n_boot=12, seed=seq).sd, ref.sd)
    two = bootstrap_dfc_sd(pair_models(fit).take([0, 1]), n_boot=12, seed=11)
    np.testing.assert_array_equal(two.sd, ref.sd[:, :2])
    assert not np.array_equal(bootstrap_dfc_sd(fit, n_boot=12, seed=12).sd, ref.sd)


def test_failed_replicates_are_counted_and_left_out():
    model = _model([(0.1, 0.1, 0.8, 0.3, 0.05, 0.9, 0.4, 0.08, 0.85),
                    (1e306, 0.5, 0.49, 1.0, 0.1, 0.8, 0.2, 0.05, 0.9)])  # overflows
    res = bootstrap_dfc_sd(model, n_boot=8, seed=0)
    assert res.n_boot == 8 and list(res.n_used) == [8, 0] and list(res.n_failed) == [0, 8]
    assert np.isfinite([res.ci_low[0], res.ci_high[0]]).all()
    assert np.isnan([res.ci_low[1], res.ci_high[1]]).all() and np.isnan(res.sd[:, 1]).all()
    # a pair of identical series cannot be fitted: left out, the others still fitted
    x = simulate_pairs(model.take([0]), np.random.default_rng(1).standard_normal((3, T, 1, 2)))
    x[1, :, 0, 1] = x[1, :, 0, 0]
    sd = refit_sd(x)
    assert np.isnan(sd[1, 0]) and np.isfinite(sd[[0, 2], 0]).all()


def test_bad_input_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="pairwise DCC fit"):
        bootstrap_dfc_sd(dcc(rng.standard_normal((80, 3)), mode="joint"), n_boot=5, seed=0)
    fit = _fit()
    for kw, msg in (({"n_boot": 0}, "n_boot"), ({"n_boot": 5, "level": 1.0}, "level"),
                    ({"n_boot": 5, "n_jobs": 0}, "n_jobs")):
        with pytest.raises(ValueError, match=msg):
            bootstrap_dfc_sd(fit, seed=0, **kw)
    with pytest.raises(ValueError, match="innovations"):
        simulate_pairs(pair_models(fit), np.zeros((2, T, 2, 2)))
