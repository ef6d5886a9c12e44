"""The grid stage of the pairwise DCC search (docs/dcc.md, "How the optimum is found").

Every pair's -log-likelihood is evaluated on a fixed grid over the feasible triangle of
(a, b), in float32, to choose where the float64 Newton refinement starts; the per-region
quantities are shared by all pairs (:func:`region_grid`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _bivariate as bv

GRID_B = (0.0, 0.25, 0.45, 0.6, 0.7, 0.78, 0.84, 0.88, 0.91, 0.935, 0.955, 0.97, 0.98, 0.988, 0.994)
GRID_A = (0.003, 0.007, 0.013, 0.022, 0.035, 0.055, 0.08, 0.12, 0.17, 0.24, 0.33)
#: The Newton refinement starts from the best grid point of each band of b: short-memory
#: (b < 0.7) and long-memory (b >= 0.7) solutions can be separate local optima when the
#: correlation barely moves.
B_BANDS = ((0.0, 0.7), (0.7, 1.0))
#: The grid's edge. A pair whose best grid point has the largest a of GRID_A may have its
#: optimum beyond it (large a and short memory, as in real resting-state pairs at TR ~ 2 s:
#: nitime's ROI table), where the likelihood can have two nearby bumps along a ridge that
#: one grid column cannot tell apart. Such pairs are also evaluated on this extension, whose
#: best point is a start of its own.
EDGE_A = (0.42, 0.52, 0.62, 0.75, 0.88)
EDGE_B = (0.0, 0.06, 0.12, 0.2, 0.3, 0.42)


def grid_points(max_persistence: float) -> list[tuple[float, float]]:
    """Feasible (a, b) grid points, b-major."""
    return [(a, b) for b in GRID_B for a in GRID_A if a + b <= max_persistence]


def region_grid(z: np.ndarray, max_persistence: float,
                a_values: tuple[float, ...] = GRID_A,
                b_values: tuple[float, ...] = GRID_B) -> dict[str, Any]:
    """Per-region grid quantities shared by all pairs (float32, region-major).

    Returns
    -------
    dict with the grid's ``a`` and ``b`` values, ``qbar`` (N,), and per grid value of b
    (keyed by its index in ``b``): ``s[kb]`` = S_t(b) / qbar of the squared residuals (N, T)
    and ``g[kb, ka]`` = ``1 / sqrt(qbar + a S_t(b))`` (N, T).
    """
    f32 = np.float32
    z2 = z * z
    qbar = bv.tsum(z2) / z.shape[0]
    e_reg = (z2 - qbar).astype(f32)
    qbar = qbar.astype(f32)
    out: dict[str, Any] = {"a": tuple(a_values), "b": tuple(b_values), "qbar": qbar, "s": {},
                           "g": {}}
    for kb, b in enumerate(b_values):
        s_reg = _filter(e_reg, b)
        # S_t(b) / qbar of each region, for the slope at a = 0
        out["s"][kb] = np.ascontiguousarray((s_reg / qbar).T)
        for ka, a in enumerate(a_values):
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
    return _filter_many(e, (b,))[0]


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


def _grid_best(z, pi, pj, data, max_persistence, grid=None, bands=B_BANDS):
    """Best grid point per pair and band of b (``bands``), and the slope of F at a = 0.

    Returns
    -------
    a, b, F : ndarray, shape (n_bands, m)
        Best grid point of each band of b.
    slope : ndarray, shape (m,)
        ``min over the grid's b of dF/da at a = 0``: when it is >= 0, moving away from
        the constant-correlation solution raises F for every grid value of b.

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
    nb = len(bands)
    best_f = np.full((nb, m), np.inf, dtype=f32)
    best_a = np.zeros((nb, m))
    best_b = np.zeros((nb, m))
    s12_all = _filter_many(data.e[:, 2].astype(f32), grid["b"])
    for kb, b in enumerate(grid["b"]):
        band = [k for k, (lo, hi) in enumerate(bands) if lo <= b < hi][0]
        s12 = np.ascontiguousarray(s12_all[kb].T)
        rho_a = ginv0 * s12 - (0.5 * rho0) * _pair_product(grid["s"][kb], pi, pj, runs, gij,
                                                           np.add)
        slope = np.minimum(slope, np.add.reduce(d1 * rho_a, axis=1))
        for ka, a in enumerate(grid["a"]):
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
