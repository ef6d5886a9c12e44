"""Pinned outputs of the dFC engine: bit-identical results on fixed seeded inputs.

The hashes below are sha256 digests of the exact float bytes (dtype, shape and raw bytes of
every output array; ``repr`` for scalars) and were recorded by running the pre-refactor code
(``bids_dfc/dfc`` at commit 025ed64, before the long functions were cut into helpers). A
refactor that changes the order of floating-point operations changes a hash.

The digests depend on the numerical stack (numpy 2.3.5, scipy 1.15.3, the BLAS/LAPACK build
and CPU of the recording machine); after an environment change, re-record them by running
the pre-refactor commit, never by pasting what the current code produces.
"""

from __future__ import annotations

import hashlib

import numpy as np

from bids_dfc.dfc import (
    GarchResult,
    dcc,
    dfc_summary,
    fit_garch,
    sliding_window_correlation,
)
from bids_dfc.dfc._newton import minimize_batch

SEED = 20240517


def digest(*items: object) -> str:
    """sha256 of the dtype, shape and bytes of every array (``repr`` of anything else)."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, np.ndarray):
            arr = np.ascontiguousarray(item)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            h.update(repr(item).encode())
        h.update(b"|")
    return h.hexdigest()


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


def garch_digest(res) -> str:
    return digest(res.params, res.sigma2, res.std_resid, res.loglik, res.converged, res.mean)


def dcc_digest(res) -> str:
    return digest(res.R, res.pairs, res.a, res.b, res.loglik, res.converged, res.mode,
                  res.loglik_joint, res.n_iter, garch_digest(res.garch))


# recorded on the pre-refactor code (see the module docstring)
PINNED = {
    "garch": "9d304a6c3dd01c08fa59f59423d1e2de2d95d38c0bb797e7e39458a2d53f17af",
    "dcc_pairwise": "4f1619df6099a0e0bb04d6214dd9cd3462ef5b0cf89d1626a2b5b2ae0852aff8",
    "dcc_pairs_subset": "ed481893c44718e2d5077411d46ccd941d66976fc39d4d692493780c7ac956c7",
    "dcc_tiny_chunks": "ab80593628c0663d236044fd1d4878ddf325e514785c5be6e2cc8bd0fe257835",
    "dcc_joint": "59f8af0e8882b1557c4877a0089256c3b51dd7af366ccf05e93e921f63df50f1",
    "sliding": "d8f508b5b32f2edcc98e489ea866e9be336294520dc0a63e45a5327c3d49937d",
    "minimize_batch": "7de3aaa216187d88d3a252ec407e0a9c6c4da3e2190a3c07da87cb5881a274ad",
    "dcc_errors": "f893c4f66c4c6fd78c86ff69c9907bb85c2ab2d51e202b6779bdcabff76af21a",
}


def test_pinned_fit_garch():
    x = _series(97, 5, SEED)
    assert garch_digest(fit_garch(x)) == PINNED["garch"]


def test_pinned_dcc_pairwise_all_pairs():
    x = _series(131, 5, SEED + 1)
    assert dcc_digest(dcc(x, mode="pairwise")) == PINNED["dcc_pairwise"]


def test_pinned_dcc_pairwise_subset_small_chunks():
    x = _series(88, 6, SEED + 2)
    ordered = [(i, j) for i in range(6) for j in range(6) if i != j]  # both orders
    perm = np.random.default_rng(SEED + 2).permutation(len(ordered))
    pairs = [ordered[k] for k in perm]  # > 16 runs per chunk: the gather path
    res = dcc(x, mode="pairwise", pairs=pairs, chunk_size=20, n_jobs=2)
    assert dcc_digest(res) == PINNED["dcc_pairs_subset"]


def test_pinned_dcc_pairwise_few_pairs_tiny_chunks():
    x = _series(88, 6, SEED + 2)
    pairs = [(4, 1), (0, 5), (2, 3), (0, 1), (3, 5), (1, 2), (0, 2)]
    res = dcc(x, mode="pairwise", pairs=pairs, chunk_size=3, n_jobs=2)
    assert dcc_digest(res) == PINNED["dcc_tiny_chunks"]


def test_pinned_dcc_joint():
    x = _series(71, 3, SEED + 3)
    assert dcc_digest(dcc(x, mode="joint")) == PINNED["dcc_joint"]


def test_pinned_sliding_window():
    x = _series(64, 3, SEED + 4)
    out = sliding_window_correlation(x, 15, pairs=[(0, 2), (1, 2)])
    summary = dfc_summary(out, thresholds=[0.0, 0.3])
    assert digest(out, *(summary[k] for k in sorted(summary))) == PINNED["sliding"]


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
    assert digest(messages) == PINNED["dcc_errors"]


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
    assert digest(*out, *plain, *empty) == PINNED["minimize_batch"]
