"""Slow, obviously-correct reference DCC(1,1) used to check the fast engine.

Written independently of ``bids_dfc.dfc``: explicit loops over time with full matrices
(``np.linalg.det``, ``np.linalg.inv``), Engle's (2002) recursion written literally, and
``scipy.optimize.minimize`` (SLSQP, the stationarity constraint explicit) from several
fixed starting points. Same conventions as the engine: ``Qbar = mean_t z_t z_t'``,
``Q_1 = Qbar``, objective ``-1/2 sum_t (log|R_t| + z_t' R_t^-1 z_t - z_t' z_t)``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.signal import lfilter

STARTS = [(0.01, 0.95), (0.08, 0.85), (0.15, 0.5), (0.02, 0.3)]


def reference_R(z, a, b):
    """R_t (T, N, N) by the literal recursion."""
    n_t, n_s = z.shape
    qbar = np.zeros((n_s, n_s))
    for t in range(n_t):
        qbar += np.outer(z[t], z[t])
    qbar /= n_t
    q = qbar.copy()
    out = np.empty((n_t, n_s, n_s))
    for t in range(n_t):
        if t > 0:
            q = (1.0 - a - b) * qbar + a * np.outer(z[t - 1], z[t - 1]) + b * q
        d = np.diag(1.0 / np.sqrt(np.diag(q)))
        out[t] = d @ q @ d
    return out


def reference_loglik(z, a, b):
    """Engle's correlation log-likelihood L_C at (a, b), one matrix at a time."""
    if a < 0 or b < 0:  # SLSQP's finite differences may step outside the bounds
        return -np.inf
    rs = reference_R(z, a, b)
    total = 0.0
    for t in range(z.shape[0]):
        r = rs[t]
        det = np.linalg.det(r)
        if not det > 0:
            return -np.inf
        zt = z[t]
        total += np.log(det) + zt @ np.linalg.inv(r) @ zt - zt @ zt
    return -0.5 * total


def reference_fit(z, max_persistence=1.0 - 1e-4):
    """Maximise the likelihood from every start in STARTS (and the a = 0 solution).

    Returns
    -------
    a, b, loglik
    """
    best = (0.0, 0.0, reference_loglik(z, 0.0, 0.0))
    for start in STARTS:
        res = minimize(
            lambda p: -reference_loglik(z, p[0], p[1]),
            np.array(start),
            method="SLSQP",
            bounds=[(0.0, 1.0), (0.0, 1.0)],
            constraints=[{"type": "ineq", "fun": lambda p: max_persistence - p[0] - p[1]}],
            options={"ftol": 1e-13, "maxiter": 500},
        )
        a, b = np.clip(res.x, 0.0, 1.0)
        if a + b <= max_persistence:
            ll = reference_loglik(z, a, b)
            if ll > best[2]:
                best = (a, b, ll)
    return best


# ---- a second, vectorised evaluation route for the dense-grid battery -------------------


def lfilter_loglik(z1, z2, a, b):
    """L_C of a bivariate model for one b and an array of a values (scipy.signal.lfilter).

    The recursion ``Q_t = (1 - a - b) Qbar + a zz_{t-1} + b Q_{t-1}`` is run as an IIR
    filter with initial state ``Q_1 = Qbar`` (independent of the engine's ``S``-form).
    """
    a = np.atleast_1d(np.asarray(a, dtype=float))
    n_t = z1.shape[0]
    prods = np.stack([z1 * z1, z2 * z2, z1 * z2])
    qbar = prods.mean(axis=1)
    # drive[t] = (1 - a - b) qbar + a prods[t-1], for t >= 1
    drive = (1.0 - a - b)[:, None, None] * qbar[None, :, None] + a[:, None, None] * prods[
        None, :, :-1
    ]
    zi = b * qbar[None, :, None] * np.ones((a.size, 3, 1))  # makes Q_1 = Qbar: y1 = d + b Qbar
    q_rest = lfilter([1.0], [1.0, -b], drive, axis=2, zi=zi)[0]
    q = np.concatenate([np.broadcast_to(qbar[None, :, None], (a.size, 3, 1)), q_rest], axis=2)
    rho = q[:, 2] / np.sqrt(q[:, 0] * q[:, 1])
    u = 1.0 - rho**2
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.log(u) + (z1**2 + z2**2 - 2 * rho * z1 * z2) / u - (z1**2 + z2**2)
    ll = -0.5 * val.sum(axis=1)
    del n_t
    return np.where(np.isfinite(ll), ll, -np.inf)


def dense_multistart_fit(z1, z2, max_persistence=1.0 - 1e-4, n_grid=50, n_starts=4):
    """Dense grid over the triangle, then L-BFGS-B/SLSQP from the best grid points.

    Returns
    -------
    a, b, loglik
    """
    bs = np.linspace(0.0, max_persistence, n_grid)
    points, vals = [], []
    for b in bs:
        avals = np.linspace(0.0, max_persistence - b, n_grid)
        ll = lfilter_loglik(z1, z2, avals, b)
        points.extend((a, b) for a in avals)
        vals.extend(ll)
    vals = np.array(vals)
    order = np.argsort(-vals, kind="stable")[:n_starts]
    best = (points[order[0]][0], points[order[0]][1], vals[order[0]])
    for k in order:
        res = minimize(
            lambda p: -lfilter_loglik(z1, z2, p[0], p[1])[0],
            np.array(points[k]),
            method="SLSQP",
            bounds=[(0.0, 1.0), (0.0, 1.0)],
            constraints=[{"type": "ineq", "fun": lambda p: max_persistence - p[0] - p[1]}],
            options={"ftol": 1e-13, "maxiter": 300},
        )
        a, b = np.clip(res.x, 0.0, 1.0)
        if a + b <= max_persistence:
            ll = lfilter_loglik(z1, z2, a, b)[0]
            if ll > best[2]:
                best = (a, b, ll)
    return best
