"""Pinned outputs of the dFC engine: the results of the pre-refactor code on fixed inputs.

Every output array (dtype, shape, values) and scalar is compared with what ``bids_dfc/dfc``
computed at commit 025ed64, before the long functions were cut into helpers (recorded again
at dc5f7d7, whose GARCH stage finds a better optimum on one pinned series, and at f5455af,
whose pairwise DCC computes its Newton derivatives in float32): bit-identical
on the recording machine (a refactor that reorders floating-point operations fails there),
to 1e-6 relative (1e-7 absolute) on another CPU or BLAS build (tests/_pinned.py). Re-record with
``scripts/record_pinned.py``, which runs the pre-refactor commit, never the current code.
"""

from __future__ import annotations

import numpy as np
from _pinned import check

from bids_dfc.dfc import (
    GarchResult,
    dcc,
    dfc_summary,
    fit_garch,
    sliding_window_correlation,
)
from bids_dfc.dfc._newton import minimize_batch

SEED = 20240517


def _series(n_t: int, n_s: int, seed: int) -> np.ndarray:
    """Uneven mixture: GARCH-like volatility, a dynamic and a constant correlation, noise."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n_t, n_s))
    t = np.arange(n_t)
    x = e.copy()
    rho = 0.6 * np.sin(2 * np.pi * t / 37.0)
    x[:, 1] = rho * e[:, 0] + np.sqrt(1 - rho**2) * e[:, 1]
    x[:, 2] = 0.5 * e[:, 0] + np.sqrt(0.75) * e[:, 2]
    h = np.ones(n_s)
    for k in range(n_t):  # GARCH(1,1) volatility on every column
        x[k] = np.sqrt(h) * x[k]
        h = 0.1 + 0.12 * x[k] ** 2 + 0.78 * h
    return x * rng.uniform(0.2, 5.0, n_s) + rng.uniform(-50, 50, n_s)


def garch_outputs(res) -> tuple:
    return (res.params, res.sigma2, res.std_resid, res.loglik, res.converged, res.mean)


#: position of n_iter in dcc_outputs(): exact on the recording machine only
N_ITER = 8


def dcc_outputs(res) -> tuple:
    return (res.R, res.pairs, res.a, res.b, res.loglik, res.converged, res.mode,
            res.loglik_joint, res.n_iter, garch_outputs(res.garch))


def test_pinned_fit_garch():
    x = _series(97, 5, SEED)
    check("garch", *garch_outputs(fit_garch(x)))


def test_pinned_dcc_pairwise_all_pairs():
    x = _series(131, 5, SEED + 1)
    check("dcc_pairwise", *dcc_outputs(dcc(x, mode="pairwise")), machine_dependent=(N_ITER,))


def test_pinned_dcc_pairwise_subset_small_chunks():
    x = _series(88, 6, SEED + 2)
    ordered = [(i, j) for i in range(6) for j in range(6) if i != j]  # both orders
    perm = np.random.default_rng(SEED + 2).permutation(len(ordered))
    pairs = [ordered[k] for k in perm]  # > 16 runs per chunk: the gather path
    res = dcc(x, mode="pairwise", pairs=pairs, chunk_size=20, n_jobs=2)
    check("dcc_pairs_subset", *dcc_outputs(res), machine_dependent=(N_ITER,))


def test_pinned_dcc_pairwise_few_pairs_tiny_chunks():
    x = _series(88, 6, SEED + 2)
    pairs = [(4, 1), (0, 5), (2, 3), (0, 1), (3, 5), (1, 2), (0, 2)]
    res = dcc(x, mode="pairwise", pairs=pairs, chunk_size=3, n_jobs=2)
    check("dcc_tiny_chunks", *dcc_outputs(res), machine_dependent=(N_ITER,))


def test_pinned_dcc_joint():
    x = _series(71, 3, SEED + 3)
    check("dcc_joint", *dcc_outputs(dcc(x, mode="joint")), machine_dependent=(N_ITER,))


def test_pinned_sliding_window():
    x = _series(64, 3, SEED + 4)
    out = sliding_window_correlation(x, 15, pairs=[(0, 2), (1, 2)])
    summary = dfc_summary(out, thresholds=[0.0, 0.3])
    check("sliding", out, *(summary[k] for k in sorted(summary)))


def test_pinned_dcc_error_messages():
    x = _series(60, 3, SEED + 6)
    wide = _series(60, 61, SEED + 7)
    dup = np.column_stack([x, x[:, 0] * 2.0 + 1.0])
    big = np.random.default_rng(SEED + 8).standard_normal((450, 150))
    fake = GarchResult(params=np.ones((150, 3)), sigma2=np.ones_like(big), std_resid=big,
                       loglik=np.zeros(150), converged=np.ones(150, bool), mean=np.zeros(150))
    bad_calls = [
        lambda: dcc(x, mode="both"),
        lambda: dcc(x, chunk_size=0),
        lambda: dcc(x, n_jobs=True),
        lambda: dcc(x, max_persistence=1.0),
        lambda: dcc(x, pairs=[(0, 0)]),
        lambda: dcc(wide, mode="joint"),
        lambda: dcc(x, mode="joint", max_memory_gb=1e-6),
        lambda: dcc(dup, names=["a", "b", "c", "d"]),
        lambda: dcc(big, mode="joint", pairs=[(0, 1)], max_memory_gb=0.31, garch=fake),
    ]
    messages = []
    for call in bad_calls:
        try:
            call()
        except ValueError as exc:
            messages.append(str(exc))
        else:
            messages.append("no error")
    check("dcc_errors", messages)


def test_pinned_minimize_batch_bounds_soft_floor_and_target():
    """A batch of bounded quadratics with a sum cap, a soft lower bound and targets."""
    rng = np.random.default_rng(SEED + 5)
    n = 13
    centre = rng.uniform(-0.3, 1.2, (n, 2))
    curv = rng.uniform(0.5, 20.0, (n, 2))
    cross = rng.uniform(-0.5, 0.5, n)

    def fval(x, rows):
        d = x - centre[rows]
        c = curv[rows]
        quad = 0.5 * (c[:, 0] * d[:, 0] ** 2 + c[:, 1] * d[:, 1] ** 2)
        return quad + cross[rows] * d[:, 0] * d[:, 1] + 0.1 * d[:, 0] ** 4

    def fgh(x, rows):
        d = x - centre[rows]
        c = curv[rows]
        cr = cross[rows]
        g0 = c[:, 0] * d[:, 0] + cr * d[:, 1] + 0.4 * d[:, 0] ** 3
        g = np.column_stack([g0, c[:, 1] * d[:, 1] + cr * d[:, 0]])
        h = np.empty((rows.size, 2, 2))
        h[:, 0, 0] = c[:, 0] + 1.2 * d[:, 0] ** 2
        h[:, 1, 1] = c[:, 1]
        h[:, 0, 1] = h[:, 1, 0] = cr
        return fval(x, rows), g, h

    x0 = rng.uniform(0.05, 0.45, (n, 2))
    target = np.where(np.arange(n) % 4 == 0, -1.0, np.inf)
    out = minimize_batch(
        fgh, fval, x0, np.zeros(2), np.ones(2), [0, 1], 0.95, max_iter=40,
        soft_lower=[True, False], target=target,
    )
    plain = minimize_batch(fgh, fval, x0, np.zeros(2), np.ones(2), [0, 1], 0.95, max_iter=3)
    empty = minimize_batch(fgh, fval, np.zeros((0, 2)), np.zeros(2), np.ones(2), [0, 1], 0.95)
    check("minimize_batch", *out, *plain, *empty)
