"""Batched, bounded, damped Newton minimisation of many small independent problems.

Both estimation stages (GARCH(1,1) per series, DCC(1,1) per pair) minimise a smooth
function of 2 or 3 parameters for thousands of independent members at once. Each member
follows its own path (its own damping, its own acceptance decisions), so the result for
one member never depends on which other members share the batch: chunking and ordering
cannot change the output.
"""

from __future__ import annotations

import numpy as np

#: Distance from a soft lower bound below which a step may land on the bound.
SOFT_FLOOR = 1e-5


def _project(x, lower, upper, sum_idx, sum_cap):
    """Clip ``x`` (n, k) into the box and pull the summed block back under ``sum_cap``."""
    x = np.clip(x, lower, upper)
    total = x[:, sum_idx].sum(axis=1)
    over = total > sum_cap
    if np.any(over):
        scale = sum_cap / total[over]
        block = x[over][:, sum_idx] * scale[:, None]
        rows = np.flatnonzero(over)
        x[np.ix_(rows, sum_idx)] = block
    return x


def minimize_batch(
    fgh,
    fval,
    x0,
    lower,
    upper,
    sum_idx,
    sum_cap,
    *,
    max_iter=100,
    ftol=1e-9,
    xtol=1e-9,
    soft_lower=None,
    target=None,
):
    """Minimise ``n`` independent smooth functions of ``k`` parameters with bounds.

    Parameters
    ----------
    fgh : callable
        ``fgh(x, rows) -> (f, g, H)`` with ``x`` (m, k) the parameters of the members
        ``rows`` (integer indices into the batch); returns values (m,), gradients (m, k)
        and Hessians (m, k, k).
    fval : callable
        ``fval(x, rows) -> f`` (m,), the values only (cheaper; used for trial steps).
    x0 : ndarray, shape (n, k)
        Feasible starting points.
    lower, upper : ndarray, shape (k,)
        Box bounds.
    sum_idx : list of int
        Parameters whose sum must stay at or below ``sum_cap`` (the stationarity constraint).
    sum_cap : float
        Upper bound of that sum.
    max_iter : int
        Maximum number of Newton iterations per member.
    soft_lower : array_like of bool, shape (k,), optional
        Parameters whose lower bound is a degenerate boundary (for DCC, ``a = 0`` makes the
        likelihood flat in ``b``, so reaching it ends the search). A step that would cross
        such a bound moves only 90 % of the way to it, until the parameter is within
        ``SOFT_FLOOR`` of the bound (then it may land on it).
    target : ndarray, shape (n,), optional
        Values to beat: a member is abandoned (reported as not converged) once even four
        times the decrease predicted by its quadratic model would leave it above
        ``target`` (used to drop a second start heading for a worse optimum).
    ftol, xtol : float
        A member has converged when an accepted step lowers ``f`` by at most
        ``ftol * (1 + |f|)`` or moves no parameter by more than ``xtol``, or when no step
        can lower ``f`` any more.

    Returns
    -------
    x : ndarray, shape (n, k)
        Minimisers (never worse than ``x0``: only improving steps are accepted).
    f : ndarray, shape (n,)
        Function values at ``x``.
    converged : ndarray of bool, shape (n,)
        False for members that hit ``max_iter``.
    n_iter : ndarray of int, shape (n,)
        Iterations used by each member.

    Notes
    -----
    Each iteration is a projected Newton step (Bertsekas 1982): parameters sitting on a
    bound with the gradient pushing outwards are held fixed, the Hessian of the free block
    is made positive definite by flooring its eigenvalues, and a Levenberg-Marquardt
    damping term (grown tenfold after a rejected step, shrunk after an accepted one)
    guarantees descent. Trial points are projected onto the feasible set and accepted
    only when they lower ``f``. No randomness is involved.
    """
    x = np.array(x0, dtype=float, copy=True)
    n, k = x.shape
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    grad = np.zeros((n, k))
    hess = np.zeros((n, k, k))
    lam = np.zeros(n)
    if n:
        f0, g0, h0 = fgh(x, np.arange(n))
        f = np.asarray(f0, dtype=float).copy()
        grad[:] = np.where(np.isfinite(g0), g0, 0.0)
        hess[:] = np.where(np.isfinite(h0), h0, 0.0)
    else:
        f = np.zeros(0)
    stale = np.zeros(n, dtype=bool)  # gradient/Hessian not yet computed at x
    done = ~np.isfinite(f)
    last_gain = np.full(n, np.inf)  # gain of the previous undamped accepted step
    converged = np.zeros(n, dtype=bool)
    n_iter = np.zeros(n, dtype=int)
    eye = np.eye(k)
    for _ in range(max_iter):
        rows = np.flatnonzero(~done)
        if rows.size == 0:
            break
        n_iter[rows] += 1
        need = rows[stale[rows]]
        if need.size:
            _, g_new, h_new = fgh(x[need], need)
            grad[need] = np.where(np.isfinite(g_new), g_new, 0.0)
            hess[need] = np.where(np.isfinite(h_new), h_new, 0.0)
            stale[need] = False
        xa, fa, g, h = x[rows], f[rows], grad[rows], hess[rows]
        # variables held at a bound: gradient pushes outwards
        at_low = (xa <= lower + 1e-15) & (g > 0)
        at_up = (xa >= upper - 1e-15) & (g < 0)
        total = xa[:, sum_idx].sum(axis=1)
        at_cap = total >= sum_cap - 1e-15
        fixed = at_low | at_up
        for j in sum_idx:
            # on the stationarity edge, variables that want to grow are held
            fixed[:, j] |= at_cap & (g[:, j] < 0)
        free = ~fixed
        gf = np.where(free, g, 0.0)
        mask = free[:, :, None] & free[:, None, :]
        hf = np.where(mask, h, 0.0) + eye * fixed[:, :, None]
        evals, evecs = np.linalg.eigh(hf)
        emax = np.max(np.abs(evals), axis=1, keepdims=True)
        emax = np.where(emax > 0, emax, 1.0)
        floor = np.maximum(np.abs(evals), 1e-10 * emax) + lam[rows, None] * emax
        coef = np.einsum("nji,nj->ni", evecs, gf) / floor
        step = -np.einsum("nij,nj->ni", evecs, coef)
        step = np.where(free, step, 0.0)
        if target is not None:
            decrease = -0.5 * np.einsum("ni,ni->n", gf, step)
            hopeless = fa - 10.0 * decrease - 0.05 > target[rows]
            done[rows[hopeless]] = True
            keep = ~hopeless
            rows, xa, fa, step = rows[keep], xa[keep], fa[keep], step[keep]
            if rows.size == 0:
                continue
        trial = xa + step
        if soft_lower is not None:
            soft = np.asarray(soft_lower, dtype=bool)[None, :] & (trial < lower)
            soft &= xa > lower + SOFT_FLOOR
            trial = np.where(soft, lower + 0.1 * (xa - lower), trial)
        trial = _project(trial, lower, upper, sum_idx, sum_cap)
        ft = np.asarray(fval(trial, rows), dtype=float)
        better = np.isfinite(ft) & (ft < fa)
        moved = np.max(np.abs(trial - xa), axis=1)
        # a tiny gain only means convergence for an undamped (pure Newton) step; in the
        # quadratic regime the next gain is about gain^2 / previous gain, so stop when that
        # prediction is already below the tolerance
        undamped = lam[rows] == 0.0
        gain = fa - ft
        tol = ftol * (1.0 + np.abs(fa))
        prev = last_gain[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            predicted = np.where(prev > gain, gain * gain / prev, np.inf)
        quadratic = (gain <= 1e-8 * (1.0 + np.abs(fa))) & (predicted <= tol)
        small = better & undamped & ((gain <= tol) | (moved <= xtol) | quadratic)
        last_gain[rows] = np.where(better & undamped, gain, np.inf)
        # accept improving steps; their derivatives must be recomputed
        acc = rows[better]
        x[acc] = trial[better]
        f[acc] = ft[better]
        stale[acc] = True
        lam[acc] = np.where(lam[acc] > 1e-3, lam[acc] / 100.0, 0.0)
        rej = rows[~better]
        lam[rej] = np.maximum(lam[rej] * 10.0, 1e-4)
        # no improving step left: optimum reached (within rounding) or hopelessly damped
        stuck = ~better & ((moved <= xtol) | (lam[rows] > 1e8))
        finished = small | stuck
        converged[rows[finished]] = True
        done[rows[finished]] = True
    return x, f, converged, n_iter
