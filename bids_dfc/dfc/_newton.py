"""Batched, bounded, damped Newton minimisation of many small independent problems.

Both estimation stages (GARCH(1,1) per series, DCC(1,1) per pair) minimise a smooth
function of 2 or 3 parameters for thousands of independent members at once. Each member
follows its own path (its own damping, its own acceptance decisions), so the result for
one member never depends on which other members share the batch: chunking and ordering
cannot change the output.

Each iteration is a projected Newton step (Bertsekas 1982): parameters sitting on a
bound with the gradient pushing outwards are held fixed (:func:`_free_mask`), the Hessian
of the free block is made positive definite by flooring its eigenvalues, and a
Levenberg-Marquardt damping term (grown tenfold after a rejected step, shrunk after an
accepted one) guarantees descent (:func:`_damped_step`, :func:`_accept`). Trial points are
projected onto the feasible set and accepted only when they lower ``f``. No randomness is
involved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: Distance from a soft lower bound below which a step may land on the bound.
SOFT_FLOOR = 1e-5

#: A second start this close to the first one's optimum (every parameter) is in its basin.
MERGE_DIST = 1e-3

#: ``fgh(x, rows) -> (f, g, H)``: values (m,), gradients (m, k), Hessians (m, k, k).
FGH = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: ``fval(x, rows) -> f``: values (m,) only.
FVal = Callable[[np.ndarray, np.ndarray], np.ndarray]


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


@dataclass
class _Batch:
    """Per-member state of :func:`minimize_batch` (arrays over the ``n`` members)."""

    x: np.ndarray  # (n, k) current points
    f: np.ndarray  # (n,) values at x
    grad: np.ndarray  # (n, k), non-finite entries zeroed
    hess: np.ndarray  # (n, k, k), non-finite entries zeroed
    lam: np.ndarray  # Levenberg-Marquardt damping
    stale: np.ndarray  # gradient/Hessian not yet computed at x
    done: np.ndarray
    last_gain: np.ndarray  # gain of the previous undamped accepted step
    converged: np.ndarray
    n_iter: np.ndarray


def _start(fgh: FGH, x0: ArrayLike, f_start: ArrayLike | None = None) -> _Batch:
    """State at the starting points (derivatives evaluated once; values too unless
    ``f_start`` gives them)."""
    x = np.array(x0, dtype=float, copy=True)
    n, k = x.shape
    grad = np.zeros((n, k))
    hess = np.zeros((n, k, k))
    lam = np.zeros(n)
    if n:
        f0, g0, h0 = fgh(x, np.arange(n))
        f = np.array(f0 if f_start is None else f_start, dtype=float)
        grad[:] = np.where(np.isfinite(g0), g0, 0.0)
        hess[:] = np.where(np.isfinite(h0), h0, 0.0)
    else:
        f = np.zeros(0)
    return _Batch(
        x=x,
        f=f,
        grad=grad,
        hess=hess,
        lam=lam,
        stale=np.zeros(n, dtype=bool),
        done=~np.isfinite(f),
        last_gain=np.full(n, np.inf),
        converged=np.zeros(n, dtype=bool),
        n_iter=np.zeros(n, dtype=int),
    )


def _refresh(fgh: FGH, st: _Batch, rows: np.ndarray) -> None:
    """Recompute the gradient and Hessian of the ``rows`` whose point moved."""
    need = rows[st.stale[rows]]
    if need.size:
        _, g_new, h_new = fgh(st.x[need], need)
        st.grad[need] = np.where(np.isfinite(g_new), g_new, 0.0)
        st.hess[need] = np.where(np.isfinite(h_new), h_new, 0.0)
        st.stale[need] = False


def _free_mask(xa, g, lower, upper, sum_idx, sum_cap):
    """Parameters free to move (m, k): not held at a bound or at the stationarity cap.

    A parameter is held when it sits on a box bound with the gradient pushing outwards, or
    (for the ``sum_idx`` block) when the sum is at ``sum_cap`` and it wants to grow.
    """
    at_low = (xa <= lower + 1e-15) & (g > 0)
    at_up = (xa >= upper - 1e-15) & (g < 0)
    total = xa[:, sum_idx].sum(axis=1)
    at_cap = total >= sum_cap - 1e-15
    fixed = at_low | at_up
    for j in sum_idx:
        # on the stationarity edge, variables that want to grow are held
        fixed[:, j] |= at_cap & (g[:, j] < 0)
    return ~fixed


def _damped_step(g, h, free, lam):
    """Newton step of the free block: eigenvalue floor plus Levenberg-Marquardt damping.

    Returns the gradient restricted to the free parameters ``gf`` and the step (m, k)
    (zero for held parameters).
    """
    fixed = ~free
    gf = np.where(free, g, 0.0)
    mask = free[:, :, None] & free[:, None, :]
    hf = np.where(mask, h, 0.0) + np.eye(g.shape[1]) * fixed[:, :, None]
    evals, evecs = np.linalg.eigh(hf)
    emax = np.max(np.abs(evals), axis=1, keepdims=True)
    emax = np.where(emax > 0, emax, 1.0)
    floor = np.maximum(np.abs(evals), 1e-10 * emax) + lam[:, None] * emax
    coef = np.einsum("nji,nj->ni", evecs, gf) / floor
    step = -np.einsum("nij,nj->ni", evecs, coef)
    return gf, np.where(free, step, 0.0)


def _hopeless(gf, step, fa, target):
    """Members that cannot reach ``target`` even with 10 x the predicted decrease."""
    decrease = -0.5 * np.einsum("ni,ni->n", gf, step)
    return fa - 10.0 * decrease - 0.05 > target


def _drop(gf, step, xa, fa, rows, target, target_x):
    """Members to abandon: :func:`_hopeless`, or (``target_x`` given) in the basin of the
    optimum already found (within :data:`MERGE_DIST` of it and not below it)."""
    out = _hopeless(gf, step, fa, target[rows])
    if target_x is not None:
        near = np.max(np.abs(xa - target_x[rows]), axis=1) <= MERGE_DIST
        out |= near & (fa >= target[rows])
    return out


def _trial_point(xa, step, lower, upper, sum_idx, sum_cap, soft_lower):
    """``xa + step``, stopped short of soft lower bounds, projected onto the feasible set."""
    trial = xa + step
    if soft_lower is not None:
        soft = np.asarray(soft_lower, dtype=bool)[None, :] & (trial < lower)
        soft &= xa > lower + SOFT_FLOOR
        trial = np.where(soft, lower + 0.1 * (xa - lower), trial)
    return _project(trial, lower, upper, sum_idx, sum_cap)


def _accept(st, rows, xa, fa, trial, ft, ftol, xtol):
    """Accept improving trial points, update the damping and flag converged members.

    A tiny gain only means convergence for an undamped (pure Newton) step; in the quadratic
    regime the next gain is about gain^2 / previous gain, so a member also stops when that
    prediction is already below the tolerance.
    """
    better = np.isfinite(ft) & (ft < fa)
    moved = np.max(np.abs(trial - xa), axis=1)
    undamped = st.lam[rows] == 0.0
    gain = fa - ft
    tol = ftol * (1.0 + np.abs(fa))
    prev = st.last_gain[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        predicted = np.where(prev > gain, gain * gain / prev, np.inf)
    quadratic = (gain <= 1e-8 * (1.0 + np.abs(fa))) & (predicted <= tol)
    small = better & undamped & ((gain <= tol) | (moved <= xtol) | quadratic)
    st.last_gain[rows] = np.where(better & undamped, gain, np.inf)
    # accept improving steps; their derivatives must be recomputed
    acc = rows[better]
    st.x[acc] = trial[better]
    st.f[acc] = ft[better]
    st.stale[acc] = True
    st.lam[acc] = np.where(st.lam[acc] > 1e-3, st.lam[acc] / 100.0, 0.0)
    rej = rows[~better]
    st.lam[rej] = np.maximum(st.lam[rej] * 10.0, 1e-4)
    # no improving step left: optimum reached (within rounding) or hopelessly damped
    stuck = ~better & ((moved <= xtol) | (st.lam[rows] > 1e8))
    finished = small | stuck
    st.converged[rows[finished]] = True
    st.done[rows[finished]] = True


def minimize_batch(
    fgh: FGH, fval: FVal, x0: ArrayLike, lower: ArrayLike, upper: ArrayLike,
    sum_idx: Sequence[int], sum_cap: float, *, max_iter: int = 100, ftol: float = 1e-9,
    xtol: float = 1e-9, soft_lower: ArrayLike | None = None, target: np.ndarray | None = None,
    target_x: np.ndarray | None = None, f_start: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    target_x : ndarray, shape (n, k), optional
        Where ``target`` was reached: a member within :data:`MERGE_DIST` of it (and not
        below ``target``) is in that optimum's basin and is dropped too.
    f_start : ndarray, shape (n,), optional
        ``f`` at ``x0`` when ``fgh``'s values are approximate (float32 derivatives): every
        value compared or returned then comes from ``fval`` or from here.
    ftol, xtol : float
        A member has converged when an accepted step lowers ``f`` by at most ``ftol * (1 +
        |f|)`` or moves no parameter by more than ``xtol``, or when no step lowers ``f``.

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

    The method is described in the module docstring.
    """
    st = _start(fgh, x0, f_start)
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    for _ in range(max_iter):
        rows = np.flatnonzero(~st.done)
        if rows.size == 0:
            break
        st.n_iter[rows] += 1
        _refresh(fgh, st, rows)
        xa, fa, g = st.x[rows], st.f[rows], st.grad[rows]
        free = _free_mask(xa, g, lower, upper, sum_idx, sum_cap)
        gf, step = _damped_step(g, st.hess[rows], free, st.lam[rows])
        if target is not None:
            hopeless = _drop(gf, step, xa, fa, rows, target, target_x)
            st.done[rows[hopeless]] = True
            keep = ~hopeless
            rows, xa, fa, step = rows[keep], xa[keep], fa[keep], step[keep]
            if rows.size == 0:
                continue
        trial = _trial_point(xa, step, lower, upper, sum_idx, sum_cap, soft_lower)
        ft = np.asarray(fval(trial, rows), dtype=float)
        _accept(st, rows, xa, fa, trial, ft, ftol, xtol)
    return st.x, st.f, st.converged, st.n_iter
