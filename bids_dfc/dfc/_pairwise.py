"""Pairwise DCC(1,1): every pair of series gets its own (a, b), fitted in batches.

Search strategy (deterministic, aimed at the global optimum):

1. the constant-correlation solution ``a = 0`` (its likelihood does not depend on ``b``);
2. a grid over the feasible triangle (``GRID_A x GRID_B``, ``a + b <= max_persistence``),
   evaluated for all pairs at once; ``S_t(b)`` is shared by all grid values of ``a``, and
   the diagonal terms are computed once per region, not once per pair;
3. batched projected Newton refinement (exact gradient and Hessian) from the best grid
   point with ``a > 0``;
4. the better of (1) and (3) is kept.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _bivariate as bv
from ._newton import minimize_batch

GRID_B = (0.0, 0.4, 0.65, 0.8, 0.88, 0.93, 0.96, 0.98, 0.99)
GRID_A = (0.005, 0.015, 0.035, 0.07, 0.12, 0.2, 0.32)


def grid_points(max_persistence):
    """Feasible (a, b) grid points, b-major."""
    return [(a, b) for b in GRID_B for a in GRID_A if a + b <= max_persistence]


def _grid_best(z, pi, pj, data, max_persistence):
    """Best grid point per pair: returns (a, b, F) arrays of length m.

    Evaluated in float32: the grid only chooses the basin the float64 Newton refinement
    starts from.
    """
    f32 = np.float32
    z2 = (z * z).astype(f32)
    qbar_reg = (bv.tsum(z * z) / z.shape[0]).astype(f32)
    e_reg = z2 - qbar_reg
    s, c2 = data.s.astype(f32), (2.0 * data.c).astype(f32)
    e12 = data.e[:, 2].astype(f32)
    qb12 = data.qbar[2].astype(f32)
    m = pi.size
    best_f = np.full(m, np.inf, dtype=f32)
    best_a = np.zeros(m)
    best_b = np.zeros(m)
    for b in GRID_B:
        avals = [a for a in GRID_A if a + b <= max_persistence]
        if not avals:
            continue
        s_reg = bv.recursion(e_reg, f32(b))
        s12 = bv.recursion(e12, f32(b))
        for a in avals:
            g_reg = 1.0 / np.sqrt(qbar_reg + f32(a) * s_reg)
            rho = (qb12 + f32(a) * s12) * g_reg[:, pi] * g_reg[:, pj]
            u = 1.0 - rho * rho
            # log(1 - rho^2) + (s - 2 rho c) / (1 - rho^2) - s
            val = np.log(u) + rho * (s * rho - c2) / u
            f = bv.tsum(val)
            better = f < best_f
            best_f = np.where(better, f, best_f)
            best_a = np.where(better, a, best_a)
            best_b = np.where(better, b, best_b)
    return best_a, best_b, 0.5 * best_f.astype(float)


def fit_chunk(z, pi, pj, max_persistence, max_iter=100):
    """Fit the pairs ``(pi[k], pj[k])`` of the standardised residuals ``z`` (T, N).

    Returns
    -------
    dict with ``a``, ``b``, ``loglik`` (Engle's L_C), ``converged``, ``n_iter`` (m,) and
    ``R`` (T, m).
    """
    data = bv.PairData(z[:, pi], z[:, pj])
    zero = np.zeros(pi.size)
    f_const = bv.value(data, zero, zero)
    a0, b0, _ = _grid_best(z, pi, pj, data, max_persistence)

    def fval(x, rows):
        return bv.value(data.take(rows), x[:, 0], x[:, 1])

    def fgh(x, rows):
        return bv.value_fgh(data.take(rows), x[:, 0], x[:, 1])

    x, f, conv, n_iter = minimize_batch(
        fgh,
        fval,
        np.column_stack([a0, b0]),
        np.zeros(2),
        np.ones(2),
        [0, 1],
        max_persistence,
        max_iter=max_iter,
    )
    use_const = ~(f < f_const)
    a = np.where(use_const, 0.0, x[:, 0])
    b = np.where(use_const | (a == 0.0), 0.0, x[:, 1])
    f = np.where(use_const, f_const, f)
    conv = np.where(use_const, True, conv)
    return {
        "a": a,
        "b": b,
        "loglik": -f,
        "converged": conv,
        "n_iter": n_iter,
        "R": bv.correlation(data, a, b),
    }


def fit_pairs(z, pairs, *, max_persistence, chunk_size=2048, n_jobs=1, max_iter=100):
    """Fit all ``pairs`` (P, 2) in chunks, optionally on several threads.

    Chunks are independent and every pair follows its own optimisation path, so the
    output does not depend on ``chunk_size``, ``n_jobs`` or the order of ``pairs``.
    """
    n_pairs = pairs.shape[0]
    n_t = z.shape[0]
    out = {
        "a": np.empty(n_pairs),
        "b": np.empty(n_pairs),
        "loglik": np.empty(n_pairs),
        "converged": np.empty(n_pairs, dtype=bool),
        "n_iter": np.empty(n_pairs, dtype=int),
        "R": np.empty((n_t, n_pairs)),
    }
    bounds = [(k, min(k + chunk_size, n_pairs)) for k in range(0, n_pairs, chunk_size)]

    def work(lo_hi):
        lo, hi = lo_hi
        res = fit_chunk(z, pairs[lo:hi, 0], pairs[lo:hi, 1], max_persistence, max_iter)
        for key, val in res.items():
            if key == "R":
                out["R"][:, lo:hi] = val
            else:
                out[key][lo:hi] = val

    if n_jobs > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            list(pool.map(work, bounds))
    else:
        for item in bounds:
            work(item)
    return out
