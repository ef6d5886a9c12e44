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
#: The Newton refinement starts from the best grid point of each band of b: short-memory
#: (b < 0.7) and long-memory (b >= 0.7) solutions can be separate local optima when the
#: correlation barely moves.
B_BANDS = ((0.0, 0.7), (0.7, 1.0))
#: A band's start is refined only if its grid value is within this of the pair's best grid
#: value (in units of F = -log-likelihood).
START_MARGIN = 0.5


def grid_points(max_persistence):
    """Feasible (a, b) grid points, b-major."""
    return [(a, b) for b in GRID_B for a in GRID_A if a + b <= max_persistence]


def _grid_best(z, pi, pj, data, max_persistence):
    """Best grid point per pair and b-band, and the slope of F at a = 0.

    Returns
    -------
    a, b, F : ndarray, shape (n_bands, m)
        Best grid point of each band of b.
    slope : ndarray, shape (m,)
        ``min over GRID_B of dF/da at a = 0``: when it is >= 0, moving away from the
        constant-correlation solution raises F for every grid value of b.

    Evaluated in float32: the grid only chooses where the float64 refinement starts.
    """
    f32 = np.float32
    z2 = (z * z).astype(f32)
    qbar_reg = (bv.tsum(z * z) / z.shape[0]).astype(f32)
    e_reg = z2 - qbar_reg
    s, c2 = data.s.astype(f32), (2.0 * data.c).astype(f32)
    e12 = data.e[:, 2].astype(f32)
    qb12 = data.qbar[2].astype(f32)
    # at a = 0: rho is constant; dF/da = 1/2 sum_t f'(rho) d rho/da with
    # d rho/da = S12 / sqrt(qb11 qb22) - rho/2 (S11 / qb11 + S22 / qb22)
    qb11, qb22 = qbar_reg[pi], qbar_reg[pj]
    ginv0 = 1.0 / np.sqrt(qb11 * qb22)
    rho0 = qb12 * ginv0
    iu0 = 1.0 / (1.0 - rho0 * rho0)
    n0 = s - rho0 * c2
    d1 = iu0 * (rho0 * n0 * iu0 - rho0 - 0.5 * c2)  # f'(rho0) / 2 per time point
    slope = np.full(pi.size, np.inf, dtype=f32)
    m = pi.size
    nb = len(B_BANDS)
    best_f = np.full((nb, m), np.inf, dtype=f32)
    best_a = np.zeros((nb, m))
    best_b = np.zeros((nb, m))
    for b in GRID_B:
        band = [k for k, (lo, hi) in enumerate(B_BANDS) if lo <= b < hi][0]
        avals = [a for a in GRID_A if a + b <= max_persistence]
        if not avals:
            continue
        s_reg = bv.recursion(e_reg, f32(b))
        s12 = bv.recursion(e12, f32(b))
        rho_a = ginv0 * s12 - (0.5 * rho0) * (
            np.take(s_reg, pi, axis=1) / qb11 + np.take(s_reg, pj, axis=1) / qb22
        )
        slope = np.minimum(slope, bv.tsum(d1 * rho_a))
        for a in avals:
            g_reg = 1.0 / np.sqrt(qbar_reg + f32(a) * s_reg)
            rho = (qb12 + f32(a) * s12) * np.take(g_reg, pi, axis=1) * np.take(g_reg, pj, axis=1)
            u = 1.0 - rho * rho
            # log(1 - rho^2) + (s - 2 rho c) / (1 - rho^2) - s
            val = np.log(u) + rho * (s * rho - c2) / u
            f = bv.tsum(val)
            better = f < best_f[band]
            best_f[band] = np.where(better, f, best_f[band])
            best_a[band] = np.where(better, a, best_a[band])
            best_b[band] = np.where(better, b, best_b[band])
    return best_a, best_b, 0.5 * best_f.astype(float), slope


def fit_chunk(z, pi, pj, max_persistence, max_iter=100):
    """Fit the pairs ``(pi[k], pj[k])`` of the standardised residuals ``z`` (T, N).

    Returns
    -------
    dict with ``a``, ``b``, ``loglik`` (Engle's L_C), ``converged``, ``n_iter`` (m,) and
    ``R`` (T, m).
    """
    data = bv.PairData(np.take(z, pi, axis=1), np.take(z, pj, axis=1))
    zero = np.zeros(pi.size)
    f_const = bv.value(data, zero, zero)
    a0, b0, f0, slope = _grid_best(z, pi, pj, data, max_persistence)
    m = pi.size
    # constant correlation is optimal when F rises from a = 0 along every grid b and no
    # grid point beats it: those pairs need no refinement
    settled = (slope >= 0) & (f0.min(axis=0) >= f_const)
    f0 = np.where(settled[None, :], np.inf, f0)
    # one start per band (band-major), skipping bands without a feasible grid point
    finite = np.isfinite(f0)
    lowest = np.min(np.where(finite, f0, np.inf), axis=0)
    gap = np.subtract(f0, lowest[None, :], out=np.full(f0.shape, np.inf), where=finite)
    keep = np.flatnonzero((gap <= START_MARGIN).ravel())
    owner = keep % m

    def fval(x, rows):
        return bv.value(data.take(owner[rows]), x[:, 0], x[:, 1])

    def fgh(x, rows):
        return bv.value_fgh(data.take(owner[rows]), x[:, 0], x[:, 1])

    xs, fs, convs, iters = minimize_batch(
        fgh,
        fval,
        np.column_stack([a0.ravel()[keep], b0.ravel()[keep]]),
        np.zeros(2),
        np.ones(2),
        [0, 1],
        max_persistence,
        max_iter=max_iter,
        soft_lower=[True, False],
    )
    # best refined start per pair (ties: the earlier band)
    f = np.full(m, np.inf)
    x = np.zeros((m, 2))
    conv = np.zeros(m, dtype=bool)
    n_iter = np.zeros(m, dtype=int)
    if keep.size:
        order = np.lexsort((np.arange(keep.size), fs, owner))
        first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
        f[owner[first]] = fs[first]
        x[owner[first]] = xs[first]
        conv[owner[first]] = convs[first]
        np.add.at(n_iter, owner, iters)
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
