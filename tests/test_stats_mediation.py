"""Mediation (PROCESS model 4) against statsmodels OLS and pingouin.mediation_analysis.

Paths a, b, c, c' (estimates, SE, p, CI) must equal statsmodels OLS fits of the three models
to 1e-10. The indirect-effect interval is compared with ``pingouin.mediation_analysis``:

* on the *same* resamples (pingouin draws them with ``RandomState(seed).choice``; we pass
  those indices in) the bootstrap distributions agree to 1e-10 and our bias-corrected (BC)
  interval equals pingouin's, because pingouin reports exactly the BC interval
  (``_bias_corrected_ci``: percentiles shifted by z0 = Phi^-1(P(boot < estimate)));
* our default interval is the plain percentile one (PROCESS's default). It differs from BC
  by the bias shift: both come from the same distribution, and they coincide when the
  bootstrap median equals the estimate (z0 = 0). We check that relation rather than
  expecting equal numbers;
* with our own generator (``numpy.random.default_rng``) the resamples differ from
  pingouin's, so the limits differ only by Monte Carlo error (checked loosely).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import statsmodels.api as sm
from scipy import stats

from bids_dfc.stats.mediation import mediation_model4, ols_fit


@pytest.fixture
def data():
    rng = np.random.default_rng(2021)
    n = 31
    x = rng.gamma(2.0, 60.0, n)  # TSP-like scale
    m = 0.48 + 0.0004 * x + rng.normal(0, 0.02, n)
    y = 30 + 600 * (m - 0.53) + rng.normal(0, 10, n)
    age = rng.normal(50, 12, n)
    sex = rng.integers(0, 2, n).astype(float)
    return pd.DataFrame({"x": x, "m": m, "y": y, "age": age, "sex": sex})


@pytest.mark.parametrize("covs", [[], ["age", "sex"]])
def test_paths_match_statsmodels_ols(data, covs):
    cov = data[covs].to_numpy() if covs else None
    res = mediation_model4(data["x"], data["m"], data["y"], cov, n_boot=200, random_seed=0)
    p = res.paths.set_index("path")
    fm = sm.OLS(data["m"], sm.add_constant(data[["x", *covs]])).fit()
    fy = sm.OLS(data["y"], sm.add_constant(data[["x", "m", *covs]])).fit()
    fc = sm.OLS(data["y"], sm.add_constant(data[["x", *covs]])).fit()
    for name, fit, term in (("a", fm, "x"), ("b", fy, "m"), ("c", fc, "x"),
                            ("c_prime", fy, "x")):
        ci = fit.conf_int().loc[term]
        got = p.loc[name, ["estimate", "se", "statistic", "p", "ci_low", "ci_high"]]
        want = [fit.params[term], fit.bse[term], fit.tvalues[term], fit.pvalues[term], *ci]
        np.testing.assert_allclose(got.to_numpy(float), want, rtol=1e-10, atol=1e-14)
        assert p.loc[name, "df"] == fit.df_resid
    # total = direct + indirect holds exactly for OLS with the same covariates
    np.testing.assert_allclose(p.loc["c", "estimate"],
                               p.loc["c_prime", "estimate"] + p.loc["indirect", "estimate"],
                               rtol=1e-10)


def test_indirect_ci_matches_pingouin_on_same_resamples(data):
    seed, n_boot = 7, 2000
    idx = np.random.RandomState(seed).choice(np.arange(len(data)), replace=True,
                                             size=(n_boot, len(data)))
    ours = mediation_model4(data["x"], data["m"], data["y"], data[["age"]].to_numpy(),
                            n_boot=n_boot, random_seed=None, boot_indices=idx)
    ref, dist = pg.mediation_analysis(data=data, x="x", m="m", y="y", covar=["age"],
                                      n_boot=n_boot, seed=seed, return_dist=True)
    ref = ref.set_index("path")
    np.testing.assert_allclose(ours.boot, dist, rtol=1e-10)
    ind = ours.indirect
    np.testing.assert_allclose(ind["estimate"], ref.loc["Indirect", "coef"], rtol=1e-10)
    np.testing.assert_allclose([ind["ci_bc_low"], ind["ci_bc_high"]],
                               ref.loc["Indirect", ["CI2.5", "CI97.5"]].to_numpy(float),
                               rtol=1e-10)
    np.testing.assert_allclose(ind["se"], ref.loc["Indirect", "se"], rtol=1e-10)
    # percentile vs BC: same distribution, limits shifted by the bias term z0
    z0 = stats.norm.ppf(np.mean(ours.boot < ind["estimate"]))
    lo_q = stats.norm.cdf(2 * z0 + stats.norm.ppf(0.025))
    np.testing.assert_allclose(ind["ci_bc_low"], np.percentile(ours.boot, 100 * lo_q))
    np.testing.assert_allclose([ind["ci_low"], ind["ci_high"]],
                               np.percentile(ours.boot, [2.5, 97.5]))


def test_own_generator_agrees_within_monte_carlo_error(data):
    ours = mediation_model4(data["x"], data["m"], data["y"], n_boot=5000, random_seed=1)
    ref = pg.mediation_analysis(data=data, x="x", m="m", y="y", n_boot=5000, seed=99)
    ref = ref.set_index("path").loc["Indirect"]
    width = ref["CI97.5"] - ref["CI2.5"]
    ind = ours.indirect
    assert abs(ind["ci_bc_low"] - ref["CI2.5"]) < 0.1 * width
    assert abs(ind["ci_bc_high"] - ref["CI97.5"]) < 0.1 * width


def test_reproducible_and_seed_sensitive(data):
    a = mediation_model4(data["x"], data["m"], data["y"], n_boot=500, random_seed=3)
    b = mediation_model4(data["x"], data["m"], data["y"], n_boot=500, random_seed=3)
    c = mediation_model4(data["x"], data["m"], data["y"], n_boot=500, random_seed=4)
    np.testing.assert_array_equal(a.boot, b.boot)
    assert not np.array_equal(a.boot, c.boot)


def test_rank_deficient_resample_uses_minimum_norm_solution():
    """A binary covariate constant in a resample makes that design singular."""
    rng = np.random.default_rng(0)
    n = 12
    x, m, y = rng.normal(size=(3, n))
    sex = np.r_[np.ones(1), np.zeros(n - 1)]
    idx = np.vstack([np.arange(n), np.r_[np.arange(1, n), 1]])  # 2nd resample drops sex=1
    res = mediation_model4(x, m, y, sex[:, None], n_boot=len(idx), random_seed=None,
                           boot_indices=idx)
    sel = idx[1]
    a = np.linalg.lstsq(np.column_stack([np.ones(n), x, sex])[sel], m[sel], rcond=None)[0][1]
    b = np.linalg.lstsq(np.column_stack([np.ones(n), x, m, sex])[sel], y[sel], rcond=None)[0][2]
    np.testing.assert_allclose(res.boot[1], a * b, rtol=1e-8)
    np.testing.assert_allclose(res.boot[0], res.indirect["estimate"], rtol=1e-10)


def test_ols_fit_rejects_nothing_silently():
    with pytest.raises(ValueError, match="NaN"):
        mediation_model4([1, 2, np.nan, 4, 5], [1, 2, 3, 4, 5], [2, 1, 3, 5, 4],
                         n_boot=5000, random_seed=None)
    fit = ols_fit(np.column_stack([np.ones(5), np.arange(5.0)]), np.array([1, 3, 2, 5, 4.0]))
    assert fit["df"] == 3
