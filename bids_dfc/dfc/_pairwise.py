"""Pairwise DCC(1,1): every pair of series gets its own (a, b), fitted in batches.

Search strategy (deterministic, aimed at the global optimum; docs/dcc.md):

1. the constant-correlation solution ``a = 0`` in closed form (flat in ``b``);
2. a grid over the feasible triangle (``GRID_A x GRID_B``, ``a + b <= max_persistence``),
   evaluated for all pairs at once in float32; ``S_t(b)`` is shared by all grid values of
   ``a`` and the diagonal terms are computed once per region, not once per pair; plus the
   slope ``dF/da`` at ``a = 0`` for every grid ``b``;
3. pairs falling away from ``a = 0`` along every grid ``b`` (and with no better grid point)
   are settled at ``a = 0``;
4. batched projected Newton refinement (exact gradient and Hessian) from the best grid
   point of the better band of ``b``, then of the other band unless it is clearly worse;
5. the best of (1) and (4) is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import numpy as np

from . import _bivariate as bv
from ._newton import minimize_batch
from ._workers import can_fork, map_chunks

GRID_B = (0.0, 0.25, 0.45, 0.6, 0.7, 0.78, 0.84, 0.88, 0.91, 0.935, 0.955, 0.97, 0.98, 0.988, 0.994)
GRID_A = (0.003, 0.007, 0.013, 0.022, 0.035, 0.055, 0.08, 0.12, 0.17, 0.24, 0.33)
#: The Newton refinement starts from the best grid point of each band of b: short-memory
#: (b < 0.7) and long-memory (b >= 0.7) solutions can be separate local optima when the
#: correlation barely moves.
B_BANDS = ((0.0, 0.7), (0.7, 1.0))
#: The second band's start is refined only if its grid value is within
#: ``START_MARGIN + 2 x (gain of the first refinement)`` of the first band's refined optimum
#: (units of F = -log-likelihood).
START_MARGIN = 0.5


def grid_points(max_persistence: float) -> list[tuple[float, float]]:
    """Feasible (a, b) grid points, b-major."""
    return [(a, b) for b in GRID_B for a in GRID_A if a + b <= max_persistence]


def region_grid(z: np.ndarray, max_persistence: float) -> dict[str, Any]:
    """Per-region grid quantities shared by all pairs (float32, region-major).

    Returns
    -------
    dict with ``qbar`` (N,), and per grid value of b (keyed by its index in GRID_B):
    ``s[kb]`` = S_t(b) / qbar of the squared residuals (N, T) and ``g[kb, ka]`` =
    ``1 / sqrt(qbar + a S_t(b))`` (N, T).
    """
    f32 = np.float32
    z2 = z * z
    qbar = bv.tsum(z2) / z.shape[0]
    e_reg = (z2 - qbar).astype(f32)
    qbar = qbar.astype(f32)
    out: dict[str, Any] = {"qbar": qbar, "s": {}, "g": {}}
    for kb, b in enumerate(GRID_B):
        s_reg = _filter(e_reg, b)
        # S_t(b) / qbar of each region, for the slope at a = 0
        out["s"][kb] = np.ascontiguousarray((s_reg / qbar).T)
        for ka, a in enumerate(GRID_A):
            if a + b <= max_persistence:
                out["g"][kb, ka] = np.ascontiguousarray((1.0 / np.sqrt(qbar + f32(a) * s_reg)).T)
    return out


def _filter(e, b):
    """``S_0 = 0``, ``S_t = e_{t-1} + b S_{t-1}`` along axis 0 (one IIR filter per column).

    In ``e``'s dtype, the same operations as ``scipy.signal.lfilter([0, 1], [1, -b], e,
    axis=0)`` (same bits; tests/test_dfc_cli.py), row by row: faster than lfilter on a
    chunk of pairs and without importing scipy.signal (0.2-0.8 s of a small run's start)."""
    e = np.asarray(e)
    if e.ndim == 1:
        return _filter(e[:, None], b)[:, 0]
    out = np.empty_like(e)
    b = e.dtype.type(b)
    out[:1] = 0
    for t in range(1, e.shape[0]):
        np.multiply(out[t - 1], b, out=out[t])
        np.add(e[t - 1], out[t], out=out[t])
    return out


def _filter_many(e, bs):
    """:func:`_filter` of ``e`` (T, m) for every ``b`` in ``bs`` at once: (len(bs), T, m),
    the same bits (the same operations, one time loop instead of one per ``b``)."""
    e = np.asarray(e)
    out = np.empty((len(bs),) + e.shape, dtype=e.dtype)
    b = np.asarray(bs, dtype=e.dtype)[:, None]
    out[:, 0] = 0
    for t in range(1, e.shape[0]):
        np.multiply(out[:, t - 1], b, out=out[:, t])
        np.add(e[t - 1], out[:, t], out=out[:, t])
    return out


def _runs(pi, pj, max_runs=16):
    """Runs of pairs ``(i, j0), (i, j0 + 1), ...`` (row-major order), or None if too many."""
    brk = np.flatnonzero((np.diff(pi) != 0) | (np.diff(pj) != 1)) + 1
    if brk.size + 1 > max_runs:
        return None
    starts, ends = np.r_[0, brk], np.r_[brk, pi.size]
    return [(int(a), int(b), int(pi[a]), int(pj[a])) for a, b in zip(starts, ends, strict=True)]


def _pair_product(g, pi, pj, runs, out, op=np.multiply):
    """``op(g[pi], g[pj])`` (region-major rows) into ``out``; slices and broadcasting instead
    of gathers when the pairs come in row-major runs (the usual all-pairs order). Same bits."""
    if runs is None:
        return op(np.take(g, pi, axis=0), np.take(g, pj, axis=0), out=out)
    for start, end, i, j in runs:
        op(g[i : i + 1], g[j : j + end - start], out=out[start:end])
    return out


def _grid_best(z, pi, pj, data, max_persistence, grid=None):
    """Best grid point per pair and b-band, and the slope of F at a = 0.

    Returns
    -------
    a, b, F : ndarray, shape (n_bands, m)
        Best grid point of each band of b.
    slope : ndarray, shape (m,)
        ``min over GRID_B of dF/da at a = 0``: when it is >= 0, moving away from the
        constant-correlation solution raises F for every grid value of b.

    Evaluated in float32, pair-major (m, T): the grid only chooses where the float64
    refinement starts. Sums over time run along each pair's row, so a pair's values do not
    depend on the other pairs of the block.
    """
    f32 = np.float32
    grid = region_grid(z, max_persistence) if grid is None else grid
    s = np.ascontiguousarray(data.s.T, dtype=f32)
    c2 = np.ascontiguousarray(2.0 * data.c.T, dtype=f32)
    qb12 = data.qbar[2].astype(f32)[:, None]
    # at a = 0: rho is constant; dF/da = 1/2 sum_t f'(rho) d rho/da with
    # d rho/da = S12 / sqrt(qb11 qb22) - rho/2 (S11 / qb11 + S22 / qb22)
    ginv0 = 1.0 / np.sqrt(grid["qbar"][pi] * grid["qbar"][pj])[:, None]
    rho0 = qb12 * ginv0
    iu0 = 1.0 / (1.0 - rho0 * rho0)
    d1 = iu0 * (rho0 * (s - rho0 * c2) * iu0 - rho0 - 0.5 * c2)  # f'(rho0) / 2 per time point
    m = pi.size
    runs = _runs(pi, pj)
    gij, rho, u = (np.empty(s.shape, dtype=f32) for _ in range(3))
    slope = np.full(m, np.inf, dtype=f32)
    nb = len(B_BANDS)
    best_f = np.full((nb, m), np.inf, dtype=f32)
    best_a = np.zeros((nb, m))
    best_b = np.zeros((nb, m))
    s12_all = _filter_many(data.e[:, 2].astype(f32), GRID_B)
    for kb, b in enumerate(GRID_B):
        band = [k for k, (lo, hi) in enumerate(B_BANDS) if lo <= b < hi][0]
        s12 = np.ascontiguousarray(s12_all[kb].T)
        rho_a = ginv0 * s12 - (0.5 * rho0) * _pair_product(grid["s"][kb], pi, pj, runs, gij,
                                                           np.add)
        slope = np.minimum(slope, np.add.reduce(d1 * rho_a, axis=1))
        for ka, a in enumerate(GRID_A):
            if (kb, ka) not in grid["g"]:
                continue
            _pair_product(grid["g"][kb, ka], pi, pj, runs, gij)
            # rho = (qb12 + a S12) gij; log(1 - rho^2) + (s - 2 rho c) / (1 - rho^2) - s
            np.multiply(s12, f32(a), out=rho)
            rho += qb12
            rho *= gij
            np.multiply(rho, rho, out=u)
            np.subtract(1.0, u, out=u)
            np.multiply(s, rho, out=gij)
            gij -= c2
            gij *= rho
            gij /= u
            np.log(u, out=u)
            gij += u
            f = np.add.reduce(gij, axis=1)
            better = f < best_f[band]
            best_f[band] = np.where(better, f, best_f[band])
            best_a[band] = np.where(better, a, best_a[band])
            best_b[band] = np.where(better, b, best_b[band])
    return best_a, best_b, 0.5 * best_f.astype(float), slope


#: Pairs evaluated together (cache-sized blocks inside a chunk).
BLOCK = 512


def _blocked(fn, data, idx, *args):
    """``fn(data.take(block), *args[block])`` over blocks of ``idx``, results joined.

    Per-pair results do not depend on the blocking (all operations are per pair).
    """
    if idx.size == 0:
        return fn(data.take(idx), *(a[:0] for a in args))
    outs = []
    for k in range(0, idx.size, BLOCK):
        sub = data.take(idx[k : k + BLOCK])
        outs.append(fn(sub, *(a[k : k + BLOCK] for a in args)))
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*outs, strict=True))
    return np.concatenate(outs, axis=-1)


def _grid_starts(z, pi, pj, data, max_persistence, grid):
    """:func:`_grid_best` over blocks of :data:`BLOCK` pairs, results joined."""
    m = pi.size
    cols = np.arange(m)
    parts = [
        _grid_best(
            z,
            pi[k : k + BLOCK],
            pj[k : k + BLOCK],
            data.take(cols[k : k + BLOCK]),
            max_persistence,
            grid,
        )
        for k in range(0, m, BLOCK)
    ]
    return tuple(np.concatenate(p, axis=-1) for p in zip(*parts, strict=True))


def _refine_band(data, a0, b0, members, band, max_persistence, max_iter, target=None,
                 target_x=None):
    """Newton from the grid point of ``band`` (one band index per member) for the pairs
    ``members``; ``target`` abandons members heading for a worse optimum, or (``target_x``)
    for the one already found."""
    sub = data.take(members)  # one gather per stage; full-range calls then use views
    sub32 = sub.single()  # derivatives in float32 (they only steer the steps)

    def fval(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return _blocked(bv.value, sub, rows, x[:, 0], x[:, 1])

    def fgh(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _blocked(bv.value_fgh, sub32, rows, x[:, 0], x[:, 1])

    x0 = np.column_stack([a0[band, members], b0[band, members]])
    return minimize_batch(
        fgh,
        fval,
        x0,
        np.zeros(2),
        np.ones(2),
        [0, 1],
        max_persistence,
        max_iter=max_iter,
        soft_lower=[True, False],
        target=target,
        target_x=target_x,
        f_start=fval(x0, np.arange(members.size)),
    )


def _multi_start(data, a0, b0, f0, max_persistence, max_iter):
    """Refine every pair from its best band, then from the other bands unless clearly worse.

    ``f0`` (n_bands, m) holds the grid values of the starts (inf: no start, e.g. a settled
    pair). Returns ``x`` (m, 2), ``f``, ``converged`` and ``n_iter`` (m,) of the best
    refined optimum (``f = inf`` for pairs without a start).
    """
    m = f0.shape[1]
    cols = np.arange(m)
    first_band = np.argmin(f0, axis=0)
    # stage 1: the best band of every unsettled pair
    active = np.flatnonzero(np.isfinite(f0[first_band, cols]))
    x = np.zeros((m, 2))
    f = np.full(m, np.inf)
    conv = np.ones(m, dtype=bool)
    n_iter = np.zeros(m, dtype=int)
    x[active], f[active], conv[active], n_iter[active] = _refine_band(
        data, a0, b0, active, first_band[active], max_persistence, max_iter
    )
    # stage 2: every other band in turn, unless its grid value is clearly worse than the
    # best optimum so far; "clearly" grows with the gain of stage 1 (a coarse grid relative
    # to the curvature means large gains are possible from the other starts too)
    with np.errstate(invalid="ignore"):
        gain = f0[first_band, cols] - f
    for band in range(f0.shape[0]):
        with np.errstate(invalid="ignore"):
            cand = np.flatnonzero(
                (first_band != band)
                & np.isfinite(f0[band])
                & (f0[band] - f <= START_MARGIN + 2.0 * gain)
            )
        if not cand.size:
            continue
        x2, f2, conv2, it2 = _refine_band(
            data, a0, b0, cand, np.full(cand.size, band), max_persistence, max_iter, f[cand],
            x[cand],
        )
        n_iter[cand] += it2
        better = f2 < f[cand]
        upd = cand[better]
        x[upd], f[upd], conv[upd] = x2[better], f2[better], conv2[better]
    return x, f, conv, n_iter


def fit_chunk(
    z: np.ndarray,
    pi: np.ndarray,
    pj: np.ndarray,
    max_persistence: float,
    max_iter: int = 100,
    grid: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Fit the pairs ``(pi[k], pj[k])`` of the standardised residuals ``z`` (T, N).

    Returns
    -------
    dict with ``a``, ``b``, ``loglik`` (Engle's L_C), ``converged``, ``n_iter`` (m,) and
    ``R`` (T, m).
    """
    data = bv.PairData(np.take(z, pi, axis=1), np.take(z, pj, axis=1))
    cols = np.arange(pi.size)
    f_const = _blocked(bv.value_const, data, cols)
    grid = region_grid(z, max_persistence) if grid is None else grid
    a0, b0, f0, slope = _grid_starts(z, pi, pj, data, max_persistence, grid)
    # constant correlation is optimal when F rises from a = 0 along every grid b and no
    # grid point beats it: those pairs need no refinement
    settled = (slope >= 0) & (f0.min(axis=0) >= f_const)
    f0 = np.where(settled[None, :], np.inf, f0)
    x, f, conv, n_iter = _multi_start(data, a0, b0, f0, max_persistence, max_iter)
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
        "R": _blocked(bv.correlation, data, cols, a, b),
    }


def fit_pairs(
    z: np.ndarray,
    pairs: np.ndarray,
    *,
    max_persistence: float,
    chunk_size: int = 8192,
    n_jobs: int = 1,
    max_iter: int = 100,
    progress: Callable[[int], object] | None = None,
) -> dict[str, np.ndarray]:
    """Fit all ``pairs`` (P, 2) in chunks, on ``n_jobs`` worker processes when there are
    several chunks (:mod:`._workers`; threads where processes cannot be started).

    Chunks are independent and every pair follows its own optimisation path, so the
    output does not depend on ``chunk_size``, ``n_jobs`` or the order of ``pairs``.
    ``progress``, if given, is called in this thread after every chunk with the number of
    pairs done so far; an exception it raises stops the fit and every worker.
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
    grid = region_grid(z, max_persistence)

    def fit(lo: int, hi: int) -> dict[str, np.ndarray]:
        return fit_chunk(z, pairs[lo:hi, 0], pairs[lo:hi, 1], max_persistence, max_iter, grid)

    done = 0
    with closing(_chunks(fit, bounds, n_jobs)) as results:
        for (lo, hi), res in results:
            for key, val in res.items():
                if key == "R":
                    out["R"][:, lo:hi] = val
                else:
                    out[key][lo:hi] = val
            done += hi - lo
            if progress is not None:
                progress(done)
    return out


def _chunks(fit, bounds, n_jobs):
    """``((lo, hi), fit(lo, hi))`` over the chunks: on worker processes when there are
    several chunks and workers (threads where processes cannot be started), else here."""
    if n_jobs > 1 and len(bounds) > 1 and can_fork():
        yield from map_chunks(fit, bounds, n_jobs)
    elif n_jobs > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            futures = [pool.submit(fit, lo, hi) for lo, hi in bounds]
            try:
                for item, future in zip(bounds, futures, strict=True):
                    yield item, future.result()
            finally:
                for future in futures:
                    future.cancel()
    else:
        for lo, hi in bounds:
            yield (lo, hi), fit(lo, hi)
