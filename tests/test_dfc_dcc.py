"""DCC engine: global optimum, determinism, agreement with an independent reference.

References used here (tests/dcc_reference.py): a literal loop-over-time implementation with
full-matrix det/inv and scipy SLSQP from several starts, and a dense grid + multi-start
search whose likelihood runs through scipy.signal.lfilter (a different recursion route).
"""

from pathlib import Path

import numpy as np
import pytest
from dcc_reference import (
    dense_multistart_fit,
    lfilter_loglik,
    reference_fit,
    reference_loglik,
    reference_R,
)
from scipy.stats import pearsonr

from bids_dfc.dfc import _bivariate as bv
from bids_dfc.dfc import _pairwise as pairwise
from bids_dfc.dfc import (
    all_pairs,
    dcc,
    dfc_summary,
    pearson_correlation,
    sliding_window_correlation,
)


def simulate(rho, rng, garch=(0.05, 0.08, 0.85)):
    """Bivariate series with correlation path ``rho`` (T,) and GARCH(1,1) volatility."""
    n_t = rho.shape[0]
    e = rng.standard_normal((n_t, 2))
    u = np.column_stack([e[:, 0], rho * e[:, 0] + np.sqrt(1 - rho**2) * e[:, 1]])
    w, al, be = garch
    x = np.empty_like(u)
    h = np.full(2, w / (1 - al - be))
    for t in range(n_t):
        x[t] = np.sqrt(h) * u[t]
        h = w + al * x[t] ** 2 + be * h
    return x * np.array([3.0, 0.5]) + np.array([100.0, -7.0])


def battery(rng):
    """>= 200 bivariate series grouped by length: constant, sinusoidal and step paths."""
    groups = {}
    for n_t in (100, 173, 400, 1200):
        t = np.arange(n_t)
        cols, truths = [], []
        for k in range(52):
            kind = k % 4
            if kind == 0:
                rho = np.full(n_t, rng.uniform(-0.6, 0.8))
            elif kind == 1:
                rho = rng.uniform(0.2, 0.7) * np.sin(2 * np.pi * t / rng.uniform(30, 150))
            elif kind == 2:
                rho = np.where(t < rng.integers(n_t // 4, 3 * n_t // 4), -0.3, 0.5)
            else:
                rho = np.full(n_t, 0.0)
            g = (rng.uniform(0.01, 0.2), rng.uniform(0.0, 0.2), rng.uniform(0.0, 0.75))
            cols.append(simulate(rho, rng, g))
            truths.append(rho)
        groups[n_t] = (np.concatenate(cols, axis=1), np.array(truths).T)
    return groups


@pytest.fixture(scope="module")
def battery_fits():
    rng = np.random.default_rng(20140601)
    out = {}
    for n_t, (x, truth) in battery(rng).items():
        pairs = [(2 * k, 2 * k + 1) for k in range(x.shape[1] // 2)]
        out[n_t] = (x, truth, pairs, dcc(x, pairs=pairs))
    return out


@pytest.mark.slow
def test_battery_reaches_dense_grid_multistart_optimum(battery_fits):
    n_series = 0
    for x, _, pairs, res in battery_fits.values():
        z = res.garch.std_resid
        for k, (i, j) in enumerate(pairs):
            a, b, ll_ref = dense_multistart_fit(z[:, i], z[:, j], n_grid=40, n_starts=3)
            # same likelihood through an independent evaluation route
            ll_engine = lfilter_loglik(z[:, i], z[:, j], res.a[k], res.b[k])[0]
            assert ll_engine == pytest.approx(res.loglik[k], rel=1e-9, abs=1e-9)
            tol = 1e-6 * max(1.0, abs(ll_ref))
            assert res.loglik[k] >= ll_ref - tol, (x.shape[0], k, res.a[k], res.b[k], a, b)
            n_series += 1
    assert n_series >= 200


@pytest.mark.slow
def test_battery_recovers_truth(battery_fits):
    checked = 0
    for n_t in (400, 1200):
        x, truth, pairs, res = battery_fits[n_t]
        sd = dfc_summary(res.R)["sd"]
        for k in range(len(pairs)):
            if k % 4 == 1 and truth[:, k].max() >= 0.5:  # clear sinusoid: R follows it
                assert np.corrcoef(res.R[:, k], truth[:, k])[0, 1] > 0.6
                checked += 1
            if k % 4 in (0, 3):  # constant correlation: nearly flat, centred on the truth
                assert sd[k] < (0.12 if n_t == 400 else 0.07)
                assert abs(np.mean(res.R[:, k]) - truth[0, k]) < 0.1
            if k % 4 == 2:  # a step of 0.8 is a real change
                assert sd[k] > 0.2
    assert checked >= 10


@pytest.mark.slow
def test_all_converged_and_in_feasible_set(battery_fits):
    for _, _, _, res in battery_fits.values():
        assert res.converged.all()
        assert np.all(res.a >= 0) and np.all(res.b >= 0)
        assert np.all(res.a + res.b <= 1 - 1e-4 + 1e-15)
        assert np.all(np.abs(res.R) < 1)
        assert np.all(res.b[res.a == 0] == 0)


@pytest.mark.parametrize("seed,n_t,shape", [(1, 150, "sin"), (2, 123, "const"), (3, 97, "step")])
def test_matches_slow_reference(seed, n_t, shape):
    rng = np.random.default_rng(seed)
    t = np.arange(n_t)
    rho = {
        "sin": 0.6 * np.sin(2 * np.pi * t / 45),
        "const": np.full(n_t, 0.35),
        "step": np.where(t < 50, 0.6, -0.2),
    }[shape]
    x = simulate(rho, rng)
    res = dcc(x)
    z = res.garch.std_resid
    a, b, ll = reference_fit(z)
    assert res.loglik[0] == pytest.approx(reference_loglik(z, res.a[0], res.b[0]), abs=1e-9)
    assert res.loglik[0] >= ll - 1e-6 * max(1.0, abs(ll))
    if abs(res.loglik[0] - ll) < 1e-6 and a > 1e-3:  # same interior optimum
        assert res.a[0] == pytest.approx(a, abs=1e-4)
        assert res.b[0] == pytest.approx(b, abs=1e-4)
    r_ref = reference_R(z, res.a[0], res.b[0])[:, 0, 1]
    np.testing.assert_allclose(res.R[:, 0], r_ref, atol=1e-10)
    if a > 1e-3:
        assert np.corrcoef(res.R[:, 0], reference_R(z, a, b)[:, 0, 1])[0, 1] > 0.999


def test_derivatives_match_finite_differences():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((131, 2))
    z[:, 1] += 0.4 * z[:, 0]
    data = bv.PairData(z[:, [0]], z[:, [1]])
    for a0, b0 in [(0.05, 0.8), (0.2, 0.3), (0.01, 0.97)]:
        a, b = np.array([a0]), np.array([b0])
        f, g, h = bv.value_fgh(data, a, b)
        assert f == pytest.approx(bv.value(data, a, b))
        eps = 1e-6
        num_g = [
            (bv.value(data, a + eps, b) - bv.value(data, a - eps, b))[0] / (2 * eps),
            (bv.value(data, a, b + eps) - bv.value(data, a, b - eps))[0] / (2 * eps),
        ]
        np.testing.assert_allclose(g[0], num_g, rtol=1e-5, atol=1e-6)
        for k, (da, db) in enumerate([(eps, 0), (0, eps)]):
            gp = bv.value_fgh(data, a + da, b + db)[1][0]
            gm = bv.value_fgh(data, a - da, b - db)[1][0]
            np.testing.assert_allclose(h[0, k], (gp - gm) / (2 * eps), rtol=1e-5, atol=1e-4)


def test_flat_correlation_reaches_a_zero_boundary():
    # i.i.d. series with a constant correlation: the likelihood is maximised at (or next
    # to) a = 0, the trap where public implementations stop early
    rng = np.random.default_rng(11)
    e = rng.standard_normal((300, 6))
    x = e.copy()
    x[:, 1::2] = 0.5 * e[:, ::2] + np.sqrt(0.75) * e[:, 1::2]
    res = dcc(x, pairs=[(0, 1), (2, 3), (4, 5)])
    for k, (i, j) in enumerate(res.pairs):
        z = res.garch.std_resid
        ref = dense_multistart_fit(z[:, i], z[:, j], n_grid=60, n_starts=4)
        assert res.loglik[k] >= ref[2] - 1e-9
    assert np.all(dfc_summary(res.R)["sd"] < 0.05)


def _random_data(seed=4, n_t=211, n_s=9):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((n_s, n_s)) * 0.4 + np.eye(n_s)
    return rng.standard_normal((n_t, n_s)) @ mix


def test_bit_identical_across_runs_orders_chunks_and_threads(monkeypatch):
    x = _random_data()
    ref = dcc(x)
    again = dcc(x)
    for key in ("R", "a", "b", "loglik", "converged"):
        assert np.array_equal(getattr(ref, key), getattr(again, key))
    perm = np.random.default_rng(0).permutation(len(ref.pairs))
    pairs = [ref.pairs[k] for k in perm]
    for kwargs in ({"chunk_size": 1}, {"chunk_size": 5, "n_jobs": 2}, {"chunk_size": 1000}):
        other = dcc(x, pairs=pairs, **kwargs)
        assert np.array_equal(other.R, ref.R[:, perm])
        assert np.array_equal(other.a, ref.a[perm]) and np.array_equal(other.b, ref.b[perm])
        assert np.array_equal(other.loglik, ref.loglik[perm])
    # threads where worker processes cannot be started (a daemon process, no fork)
    monkeypatch.setattr(pairwise, "can_fork", lambda: False)
    threaded = dcc(x, pairs=pairs, chunk_size=5, n_jobs=2)
    assert np.array_equal(threaded.R, ref.R[:, perm])
    assert np.array_equal(threaded.loglik, ref.loglik[perm])
    monkeypatch.undo()
    # evaluation blocks inside a chunk do not matter either
    monkeypatch.setattr(pairwise, "BLOCK", 7)
    blocked = dcc(x)
    assert np.array_equal(blocked.R, ref.R) and np.array_equal(blocked.loglik, ref.loglik)
    single = dcc(x[:, [2, 5]])
    k = ref.pairs.index((2, 5))
    assert np.array_equal(single.pairs, [(0, 1)])
    # the GARCH stage is per column, so a sub-selection gives the same bits too
    assert np.array_equal(single.R[:, 0], ref.R[:, k])


def test_default_pairs_and_shapes():
    x = _random_data(n_s=4, n_t=120)
    res = dcc(x)
    assert res.pairs == all_pairs(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert res.R.shape == (120, 6)
    assert res.a.shape == res.b.shape == res.loglik.shape == res.converged.shape == (6,)
    assert res.garch.std_resid.shape == (120, 4)


def test_joint_mode_matches_reference_likelihood():
    x = _random_data(seed=9, n_t=160, n_s=3)
    res = dcc(x, mode="joint")
    z = res.garch.std_resid
    assert np.all(res.a == res.a[0]) and np.all(res.b == res.b[0])
    ll = reference_loglik(z, res.a[0], res.b[0])
    assert res.loglik_joint == pytest.approx(ll, abs=1e-8)
    r_ref = reference_R(z, res.a[0], res.b[0])
    for k, (i, j) in enumerate(res.pairs):
        np.testing.assert_allclose(res.R[:, k], r_ref[:, i, j], atol=1e-10)
    # no point of a fine grid is better than the joint estimate
    for a in np.linspace(0, 0.3, 7):
        for b in np.linspace(0, 0.99, 7):
            if a + b <= 1 - 1e-4:
                assert reference_loglik(z, a, b) <= res.loglik_joint + 1e-7


@pytest.mark.parametrize(
    "x,kwargs,match",
    [
        (np.ones((100, 2)), {}, "constant"),
        (np.random.default_rng(0).standard_normal((49, 2)), {}, "at least 50"),
        (np.random.default_rng(0).standard_normal((80, 1)), {}, "at least 2"),
        (np.random.default_rng(0).standard_normal((80, 2)), {"mode": "both"}, "mode"),
        (np.random.default_rng(0).standard_normal((60, 70)), {"mode": "joint"}, "fewer series"),
        (np.random.default_rng(0).standard_normal((60, 3)), {"pairs": [(0, 3)]}, "indices"),
        (np.random.default_rng(0).standard_normal((60, 400)), {"max_memory_gb": 0.2}, "budget"),
    ],
)
def test_bad_input_raises(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dcc(x, **kwargs)


def test_nan_and_duplicate_series_named():
    x = np.random.default_rng(1).standard_normal((90, 3))
    bad = x.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match=r"column 1 \('PAG'\).*time point 17"):
        dcc(bad, names=["PCC", "PAG", "RVM"])
    dup = x.copy()
    dup[:, 2] = 2 * x[:, 0] + 1
    with pytest.raises(ValueError, match="PCC.*RVM.*perfectly correlated"):
        dcc(dup, names=["PCC", "PAG", "RVM"])


def test_sliding_window_matches_per_window_numpy():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((97, 3)) + np.linspace(0, 3, 97)[:, None]
    win = 24
    box = sliding_window_correlation(x, win, taper="boxcar")
    gau = sliding_window_correlation(x, win, taper="gaussian", sigma=5.0)
    w = np.exp(-0.5 * ((np.arange(win) - (win - 1) / 2) / 5.0) ** 2)
    first = (win - 1) // 2
    for t0 in range(97 - win + 1):
        seg = x[t0 : t0 + win]
        r_box = np.corrcoef(seg, rowvar=False)
        c = np.cov(seg, rowvar=False, aweights=w)  # numpy's weighted covariance
        r_gau = c / np.sqrt(np.outer(np.diag(c), np.diag(c)))
        for k, (i, j) in enumerate(all_pairs(3)):
            assert box[first + t0, k] == pytest.approx(r_box[i, j], abs=1e-10)
            assert gau[first + t0, k] == pytest.approx(r_gau[i, j], abs=1e-10)
    assert np.isnan(box[:first]).all() and np.isnan(box[first + 97 - win + 1 :]).all()
    with pytest.raises(ValueError, match="window"):
        sliding_window_correlation(x, 98)
    with pytest.raises(ValueError, match="taper"):
        sliding_window_correlation(x, 10, taper="hann")


def test_pearson_and_summary_match_scipy_and_pandas():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((64, 4))
    r = pearson_correlation(x)
    for k, (i, j) in enumerate(all_pairs(4)):
        assert r[k] == pytest.approx(pearsonr(x[:, i], x[:, j])[0], abs=1e-12)
    series = np.tanh(rng.standard_normal((70, 3)))
    series[:5, 2] = np.nan
    out = dfc_summary(series, thresholds=[0.25])
    frame = pd.DataFrame(series)
    np.testing.assert_allclose(out["sd"], frame.std(ddof=1).to_numpy())  # pandas skips NaN
    np.testing.assert_allclose(out["mean"], frame.mean().to_numpy())
    np.testing.assert_allclose(out["frac_above_0.25"], (frame > 0.25).sum() / frame.count())
    np.testing.assert_array_equal(out["n"], [70, 70, 65])


def _bench_simulate():
    """The benchmark's atlas simulator (benchmarks/bench_dcc.py), loaded from its file."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dcc.py"
    spec = importlib.util.spec_from_file_location("bench_dcc", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.simulate


def test_atlas_pairs_with_two_local_optima():
    # pairs of the benchmark atlas on which an earlier, coarser grid (47 points) stopped in
    # a local optimum (differences of 0.01-0.07 in L_C); the GARCH stage is per column, so
    # fitting only the 12 columns involved gives the same residuals as the full atlas
    x = _bench_simulate()(400, 273)
    bad = [(36, 173), (109, 385), (110, 396), (5, 321), (332, 371), (143, 260)]
    cols = sorted({c for p in bad for c in p})
    pos = {c: k for k, c in enumerate(cols)}
    res = dcc(x[:, cols], pairs=[(pos[i], pos[j]) for i, j in bad])
    z = res.garch.std_resid
    for k, (i, j) in enumerate(res.pairs):
        ref = dense_multistart_fit(z[:, i], z[:, j], n_grid=60, n_starts=4)
        assert res.loglik[k] >= ref[2] - 1e-6 * max(1.0, abs(ref[2])), bad[k]


def test_real_resting_state_pairs_reach_the_dense_grid_multistart_optimum():
    """Real data (issue 17, item 4): every pair of the 31 ROI series of nitime's
    resting-state table (250 x 31, TR 1.89 s), fitted together as an atlas is (465 pairs,
    worker processes), against a dense 40 x 40 grid + SLSQP from its 3 best points through
    an independent likelihood route (scipy.signal.lfilter, tests/dcc_reference.py); and the
    outputs are the same bits when fitted again in one process. Most of these pairs have
    their optimum at a > 0.33, beyond the grid; (3, 6) has two bumps on a ridge, (0.42,
    0.37) and the higher (0.52, 0.12), and ended on the lower one before the grid's
    extension (_grid.EDGE_A) gave it a start of its own."""
    nitime = pytest.importorskip("nitime", reason="nitime (test extra) ships the ROI table")
    import pandas as pd

    table = pd.read_csv(Path(nitime.__file__).parent / "data" / "fmri_timeseries.csv")
    x = table.to_numpy(dtype=float)
    res = dcc(x, n_jobs=2, chunk_size=64)
    z = res.garch.std_resid
    for k, (i, j) in enumerate(res.pairs):
        a, b, ll_ref = dense_multistart_fit(z[:, i], z[:, j], n_grid=40, n_starts=3)
        assert res.loglik[k] >= ll_ref - 1e-6 * max(1.0, abs(ll_ref)), (i, j, a, b, ll_ref)
    again = dcc(x, n_jobs=1)
    for key in ("R", "a", "b", "loglik", "converged"):
        assert np.array_equal(getattr(res, key), getattr(again, key)), key
