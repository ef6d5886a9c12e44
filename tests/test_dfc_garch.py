"""GARCH(1,1) stage, validated against the ``arch`` package (Sheppard et al.)."""

import warnings

import numpy as np
import pytest
from arch import arch_model

from bids_dfc.dfc import fit_garch
from bids_dfc.dfc.garch import _negll, _negll_fgh, backcast, garch_sigma2


def _simulate(n_t, w, alpha, beta, rng):
    x = np.empty(n_t)
    s2 = w / (1 - alpha - beta)
    for t in range(n_t):
        x[t] = np.sqrt(s2) * rng.standard_normal()
        s2 = w + alpha * x[t] ** 2 + beta * s2
    return x


def _arch_fit(xc):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = arch_model(xc, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
        return model.fit(disp="off")


@pytest.fixture(scope="module", params=[100, 187, 611])
def series(request):
    """Uneven mix: GARCH with various persistence, AR(1) 'BOLD-like', white noise, scales."""
    n_t = request.param
    rng = np.random.default_rng(2718 + n_t)
    cols = []
    for _ in range(9):
        alpha = rng.uniform(0.0, 0.25)
        beta = rng.uniform(0.0, 0.95 - alpha)
        cols.append(_simulate(n_t, rng.uniform(0.05, 2.0), alpha, beta, rng))
    ar = np.zeros(n_t)
    e = rng.standard_normal(n_t)
    for t in range(1, n_t):
        ar[t] = 0.8 * ar[t - 1] + e[t]
    cols.append(ar)
    cols.append(rng.standard_normal(n_t))
    x = np.column_stack(cols)
    return x * rng.uniform(0.01, 500.0, x.shape[1]) + rng.uniform(-50, 1000, x.shape[1])


def test_loglik_never_worse_than_arch(series):
    res = fit_garch(series)
    for j in range(series.shape[1]):
        xc = series[:, j] - series[:, j].mean()
        ref = _arch_fit(xc)
        # same convention: our recursion at arch's parameters reproduces arch's variances
        s2 = garch_sigma2(xc[:, None], ref.params.values[None, :])[:, 0]
        np.testing.assert_allclose(s2, ref.conditional_volatility**2, rtol=1e-9)
        # and our optimum is at least as good as arch's (SLSQP) optimum
        assert res.loglik[j] >= ref.loglikelihood - 1e-7 * abs(ref.loglikelihood)
        if res.loglik[j] - ref.loglikelihood < 1e-4 and ref.params["alpha[1]"] > 0.02:
            np.testing.assert_allclose(res.params[j, 1:], ref.params.values[1:], atol=2e-2)
    assert res.converged.all()


def test_outputs_consistent(series):
    res = fit_garch(series)
    n_t, n_s = series.shape
    assert res.params.shape == (n_s, 3)
    assert res.sigma2.shape == res.std_resid.shape == (n_t, n_s)
    np.testing.assert_allclose(res.mean, series.mean(axis=0))
    xc = series - res.mean
    np.testing.assert_allclose(res.std_resid, xc / np.sqrt(res.sigma2), rtol=1e-12)
    np.testing.assert_allclose(res.sigma2, garch_sigma2(xc, res.params), rtol=1e-10)
    w, alpha, beta = res.params.T
    assert np.all(w > 0) and np.all(alpha >= 0) and np.all(beta >= 0)
    assert np.all(alpha + beta < 1)
    ll = -0.5 * np.sum(np.log(2 * np.pi) + np.log(res.sigma2) + xc**2 / res.sigma2, axis=0)
    np.testing.assert_allclose(res.loglik, ll, rtol=1e-10)


def test_scale_equivariance(series):
    x = series[:, :4]
    a = fit_garch(x)
    b = fit_garch(3.7 * x - 12.0)
    # the fit runs on standardised data, so only rounding differs
    np.testing.assert_allclose(b.params[:, 0], 3.7**2 * a.params[:, 0], rtol=1e-6)
    np.testing.assert_allclose(b.params[:, 1:], a.params[:, 1:], atol=1e-6)
    np.testing.assert_allclose(b.loglik, a.loglik - x.shape[0] * np.log(3.7), rtol=1e-10)
    np.testing.assert_allclose(b.std_resid, a.std_resid, atol=1e-6)


def test_derivatives_match_finite_differences():
    rng = np.random.default_rng(3)
    y = _simulate(143, 0.2, 0.1, 0.7, rng)
    y = (y / y.std())[:, None]
    y2 = y * y
    bc = backcast(y)
    theta = np.array([[0.3, 0.12, 0.6]])
    f, g, h = _negll_fgh(theta, y2, bc)
    assert f[0] == pytest.approx(_negll(theta, y2, bc)[0], rel=1e-12)
    eps = 1e-6
    for k in range(3):
        d = np.zeros((1, 3))
        d[0, k] = eps
        num = (_negll(theta + d, y2, bc) - _negll(theta - d, y2, bc))[0] / (2 * eps)
        assert g[0, k] == pytest.approx(num, rel=1e-6, abs=1e-6)
        gp = _negll_fgh(theta + d, y2, bc)[1][0]
        gm = _negll_fgh(theta - d, y2, bc)[1][0]
        np.testing.assert_allclose(h[0, k], (gp - gm) / (2 * eps), rtol=1e-5, atol=1e-4)


def test_deterministic_and_column_independent(series):
    a = fit_garch(series)
    b = fit_garch(series)
    assert np.array_equal(a.params, b.params) and np.array_equal(a.std_resid, b.std_resid)
    sub = fit_garch(series[:, [6, 2]])
    assert np.array_equal(sub.params, a.params[[6, 2]])
    assert np.array_equal(sub.std_resid, a.std_resid[:, [6, 2]])


@pytest.mark.parametrize(
    "x,match",
    [
        (np.full((80, 2), 3.0), "constant"),
        (np.column_stack([np.arange(80.0), np.full(80, 1e6) + 1e-9 * np.arange(80)]), "constant"),
        (np.random.default_rng(0).standard_normal((30, 2)), "at least 50"),
        (np.array([[np.inf] * 3] * 60), "non-finite"),
        (np.zeros((60, 2, 2)), "2-D"),
    ],
)
def test_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        fit_garch(x)
