"""Joint DCC(1,1): one (a, b) for all N series, full N-variate quasi-likelihood."""

from __future__ import annotations

import numpy as np

from ._grid import grid_points


def _s_series(z, b):
    """``S_1 = 0``, ``S_t = (z_{t-1} z_{t-1}' - Qbar) + b S_{t-1}``, shape (T, N, N)."""
    n_t, n_s = z.shape
    qbar = z.T @ z / n_t
    s = np.zeros((n_t, n_s, n_s))
    for t in range(1, n_t):
        s[t] = np.outer(z[t - 1], z[t - 1]) - qbar + b * s[t - 1]
    return qbar, s


def joint_correlations(z: np.ndarray, a: float, b: float) -> np.ndarray:
    """R_t (T, N, N) of the joint model."""
    qbar, s = _s_series(z, b)
    q = qbar + a * s
    d = 1.0 / np.sqrt(np.einsum("tii->ti", q))
    return q * d[:, :, None] * d[:, None, :]


def joint_negll(z: np.ndarray, a: float, b: float) -> float:
    """Minus Engle's correlation log-likelihood L_C of the joint model (z'z term dropped)."""
    r = joint_correlations(z, a, b)
    try:
        chol = np.linalg.cholesky(r)
    except np.linalg.LinAlgError:
        return np.inf
    logdet = 2.0 * np.log(np.einsum("tii->ti", chol)).sum(axis=1)
    sol = np.linalg.solve(chol, z[:, :, None])[:, :, 0]
    quad = (sol * sol).sum(axis=1) - (z * z).sum(axis=1)
    val = 0.5 * np.sum(logdet + quad)
    return float(val) if np.isfinite(val) else np.inf


def fit_joint(z: np.ndarray, *, max_persistence: float) -> tuple[float, float, float, bool]:
    """Grid over the feasible triangle, then bounded SLSQP refinement from the best point.

    Returns
    -------
    a, b, negll, converged
    """
    from scipy.optimize import minimize  # here: the pairwise path never imports scipy.optimize

    f_const = joint_negll(z, 0.0, 0.0)
    pts = grid_points(max_persistence)
    vals = [joint_negll(z, a, b) for a, b in pts]
    start = np.array(pts[int(np.argmin(vals))])

    def fun(p: np.ndarray) -> float:
        return joint_negll(z, p[0], p[1])

    res = minimize(
        fun,
        start,
        method="SLSQP",
        bounds=[(0.0, 1.0), (0.0, 1.0)],
        constraints=[{"type": "ineq", "fun": lambda p: max_persistence - p[0] - p[1]}],
        options={"ftol": 1e-12, "maxiter": 200},
    )
    cands = [(f_const, 0.0, 0.0, True), (min(vals), start[0], start[1], False)]
    x = np.clip(res.x, 0.0, 1.0)
    if x.sum() <= max_persistence:
        cands.append((fun(x), x[0], x[1], bool(res.success)))
    f, a, b, conv = min(cands, key=lambda c: c[0])
    if a == 0.0:
        b = 0.0
    return float(a), float(b), float(f), bool(conv or res.success)
