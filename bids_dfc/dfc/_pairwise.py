"""Pairwise DCC(1,1): every pair of series gets its own (a, b), fitted in batches.

Search strategy (deterministic, aimed at the global optimum; docs/dcc.md):

1. the constant-correlation solution ``a = 0`` in closed form (flat in ``b``);
2. a grid over the feasible triangle (``GRID_A x GRID_B``, ``a + b <= max_persistence``;
   :mod:`._grid`), evaluated for all pairs at once in float32; ``S_t(b)`` is shared by all
   grid values of ``a`` and the diagonal terms are computed once per region, not once per
   pair; plus the slope ``dF/da`` at ``a = 0`` for every grid ``b``; pairs whose best grid
   point is on the grid's largest ``a`` are also evaluated on an extension beyond it
   (``EDGE_A x EDGE_B``), which gives them a third start;
3. pairs falling away from ``a = 0`` along every grid ``b`` (and with no better grid point)
   are settled at ``a = 0``;
4. batched projected Newton refinement (exact gradient and Hessian, computed in float32:
   they only steer the steps; every value compared or returned is float64) from the best
   grid point of the best band of ``b`` (or of the extension), then of the others unless
   they are clearly worse or enter the basin of the optimum already found;
5. the best of (1) and (4) is kept.

Chunks of pairs go to worker processes (:mod:`._workers`) when ``n_jobs > 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import numpy as np

from . import _bivariate as bv
from ._grid import EDGE_A, EDGE_B, GRID_A, _grid_best, region_grid
from ._newton import minimize_batch
from ._workers import can_fork, map_chunks

#: The second band's start is refined only if its grid value is within
#: ``START_MARGIN + 2 x (gain of the first refinement)`` of the first band's refined optimum
#: (units of F = -log-likelihood).
START_MARGIN = 0.5

#: Pairs evaluated together (cache-sized blocks inside a chunk).
BLOCK = 256
#: Pairs evaluated together on the grid (float32, fewer temporaries: larger blocks pay).
GRID_BLOCK = 512


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


def _grid_starts(z, pi, pj, data, max_persistence, grid, **kwargs):
    """:func:`_grid_best` over blocks of :data:`GRID_BLOCK` pairs, results joined."""
    m = pi.size
    cols = np.arange(m)
    parts = [
        _grid_best(
            z,
            pi[k : k + GRID_BLOCK],
            pj[k : k + GRID_BLOCK],
            data.take(cols[k : k + GRID_BLOCK]),
            max_persistence,
            grid,
            **kwargs,
        )
        for k in range(0, m, GRID_BLOCK)
    ]
    return tuple(np.concatenate(p, axis=-1) for p in zip(*parts, strict=True))


def _edge_starts(z, pi, pj, data, max_persistence, a0, b0, f0):
    """The starts with one more row: the best point of the grid's extension beyond its
    largest ``a`` (``EDGE_A x EDGE_B``) for the pairs whose best grid point is on that edge,
    ``F = inf`` (no start) for the others. The extension's region quantities are computed
    for those pairs' regions only."""
    m = pi.size
    edge = np.flatnonzero(a0[np.argmin(f0, axis=0), np.arange(m)] == GRID_A[-1])
    rows = [np.zeros(m), np.zeros(m), np.full(m, np.inf)]
    if edge.size:
        regions, inverse = np.unique(np.concatenate([pi[edge], pj[edge]]), return_inverse=True)
        grid = region_grid(z[:, regions], max_persistence, EDGE_A, EDGE_B)
        ea, eb, ef, _ = _grid_starts(z[:, regions], inverse[: edge.size], inverse[edge.size :],
                                     data.take(edge), max_persistence, grid,
                                     bands=((0.0, 1.0),))
        for row, values in zip(rows, (ea[0], eb[0], ef[0]), strict=True):
            row[edge] = values
    return tuple(np.vstack([old, row]) for old, row in zip((a0, b0, f0), rows, strict=True))


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
    a0, b0, f0 = _edge_starts(z, pi, pj, data, max_persistence, a0, b0, f0)
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
    reduce: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Fit all ``pairs`` (P, 2) in chunks, on ``n_jobs`` worker processes when there are
    several chunks (:mod:`._workers`; threads where processes cannot be started).

    Chunks are independent and every pair follows its own optimisation path, so the
    output does not depend on ``chunk_size``, ``n_jobs`` or the order of ``pairs``.
    ``progress``, if given, is called in this thread after every chunk with the number of
    pairs done so far; an exception it raises stops the fit and every worker. ``reduce``,
    if given, turns each chunk's ``R`` (T, m) into per-pair arrays where the chunk was
    fitted: the output then holds ``reduced`` (their joined values) instead of ``R``.
    """
    n_pairs = pairs.shape[0]
    out: dict[str, Any] = {
        "a": np.empty(n_pairs),
        "b": np.empty(n_pairs),
        "loglik": np.empty(n_pairs),
        "converged": np.empty(n_pairs, dtype=bool),
        "n_iter": np.empty(n_pairs, dtype=int),
    }
    if reduce is None:
        out["R"] = np.empty((z.shape[0], n_pairs))
    else:
        out["reduced"] = {}
    bounds = [(k, min(k + chunk_size, n_pairs)) for k in range(0, n_pairs, chunk_size)]
    grid = region_grid(z, max_persistence)

    def fit(lo: int, hi: int) -> dict[str, Any]:
        res: dict[str, Any] = fit_chunk(z, pairs[lo:hi, 0], pairs[lo:hi, 1], max_persistence,
                                        max_iter, grid)
        if reduce is not None:
            res["reduced"] = reduce(res.pop("R"))
        return res

    done = 0
    with closing(_chunks(fit, bounds, n_jobs)) as results:
        for (lo, hi), res in results:
            _store(out, res, lo, hi, n_pairs)
            done += hi - lo
            if progress is not None:
                progress(done)
    return out


def _store(out, res, lo, hi, n_pairs):
    """Put one chunk's results (pairs ``lo:hi``) into the outputs of :func:`fit_pairs`."""
    for key, val in res.items():
        if key == "R":
            out["R"][:, lo:hi] = val
        elif key == "reduced":
            for name, col in val.items():
                col = np.asarray(col)
                if name not in out["reduced"]:
                    out["reduced"][name] = np.empty(n_pairs, dtype=col.dtype)
                out["reduced"][name][lo:hi] = col
        else:
            out[key][lo:hi] = val


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
