"""Bivariate DCC(1,1) quasi-likelihood for many pairs at once, with exact derivatives.

For one pair with standardised residuals ``z1, z2`` (length T) and ``Qbar`` = the
second-moment matrix ``mean(z z')``, the recursion ``Q_1 = Qbar``,
``Q_t = (1 - a - b) Qbar + a z_{t-1} z_{t-1}' + b Q_{t-1}`` is written as
``Q_t = Qbar + a S_t(b)`` with ``S_1 = 0`` and ``S_t = (z_{t-1} z_{t-1}' - Qbar) + b S_{t-1}``,
which makes ``Q`` linear in ``a`` and gives cheap exact derivatives in ``b``
(``dS/db`` and ``d2S/db2`` follow the same recursion). With
``rho_t = q12 / sqrt(q11 q22)`` the minimised function is

    F(a, b) = 1/2 sum_t [log(1 - rho_t^2) + (z1^2 + z2^2 - 2 rho_t z1 z2) / (1 - rho_t^2)
                          - (z1^2 + z2^2)],

i.e. minus Engle's (2002) correlation log-likelihood ``L_C`` (the ``z'z`` term does not
depend on (a, b) and is dropped, so ``F = 0`` for a constant zero correlation).
Arrays are time-major: ``(T, m)`` with one column per pair.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


class PairData:
    """Standardised residual products of a set of pairs (columns).

    ``e`` is stored time-major as (T, 3, m): rows ``z1^2 - qbar11``, ``z2^2 - qbar22``,
    ``z1 z2 - qbar12``; ``s = z1^2 + z2^2`` and ``c = z1 z2`` are (T, m).
    """

    s: np.ndarray
    c: np.ndarray
    qbar: np.ndarray
    e: np.ndarray

    def __init__(self, zi: np.ndarray, zj: np.ndarray) -> None:
        self.s = zi * zi + zj * zj
        self.c = zi * zj
        prods = np.stack([zi * zi, zj * zj, self.c], axis=1)
        self.qbar = np.stack([tsum(prods[:, k]) for k in range(3)]) / zi.shape[0]
        self.e = prods - self.qbar[None, :, :]

    def take(self, rows: ArrayLike) -> PairData:
        """Subset of the pairs ``rows`` (self when ``rows`` is everything, in order)."""
        rows = np.asarray(rows)
        if rows.size == self.s.shape[1] and np.array_equal(rows, np.arange(rows.size)):
            return self
        out = PairData.__new__(PairData)
        if rows.size and rows[-1] - rows[0] + 1 == rows.size and np.all(np.diff(rows) == 1):
            sl = slice(int(rows[0]), int(rows[-1]) + 1)  # a run: views, no copy
            out.s, out.c, out.qbar, out.e = (
                self.s[:, sl],
                self.c[:, sl],
                self.qbar[:, sl],
                self.e[..., sl],
            )
            return out
        out.s = np.take(self.s, rows, axis=1)
        out.c = np.take(self.c, rows, axis=1)
        out.qbar = np.take(self.qbar, rows, axis=1)
        out.e = np.take(self.e, rows, axis=2)
        return out

    def single(self) -> PairData:
        """The same pairs in float32: for the derivatives that only steer the Newton steps
        (about half the time of float64; values, and so acceptance, stay float64)."""
        out = PairData.__new__(PairData)
        f32 = np.float32
        out.s, out.c = self.s.astype(f32), self.c.astype(f32)
        out.qbar, out.e = self.qbar.astype(f32), self.e.astype(f32)
        return out


def tsum(x: np.ndarray) -> np.ndarray:
    """Sum a (T, m) array over time (axis 0), bit-identically for every ``m``.

    numpy reduces axis 0 of a row-major (T, m >= 2) array in time order for each column,
    but a single column, or a column-major array, would be summed pairwise (different
    rounding). A lone column is therefore duplicated and column-major input copied, so a
    pair's result never depends on its batch.
    """
    if x.shape[1] == 1:
        return np.add.reduce(np.concatenate([x, x], axis=1), axis=0)[:1]
    if abs(x.strides[1]) > abs(x.strides[0]):  # time-contiguous layout: would go pairwise
        x = np.ascontiguousarray(x)
    return np.add.reduce(x, axis=0)


def recursion(e: np.ndarray, b: np.ndarray | float, order: int = 0) -> np.ndarray:
    """``S_1 = 0``, ``S_t = e_{t-1} + b S_{t-1}`` and optionally its b-derivatives.

    Parameters
    ----------
    e : ndarray, shape (T, ..., m)
        Innovations, time first.
    b : ndarray, shape (m,) or float
    order : int
        0: returns ``S`` only; 2: returns ``W`` (T, 3, ..., m) holding ``S``, ``dS/db`` and
        ``(d2S/db2) / 2`` (all obey ``X_t = Y_{t-1} + b X_{t-1}`` with ``Y`` the previous
        level: ``e``, ``S``, ``dS/db``).
    """
    n_t, rest = e.shape[0], e.shape[1:]
    w = np.empty((n_t, order + 2) + rest, dtype=np.result_type(e, b))
    w[:, 0] = e
    w[0, 1:] = 0.0
    # one flat row per time point: two ufunc calls per step on contiguous rows (half the
    # time of the broadcast (levels, ..., m) form; the same operations, the same bits)
    k = int(np.prod(rest, dtype=int))
    flat = w.reshape(n_t, -1)
    coef = np.tile(np.broadcast_to(np.asarray(b, dtype=w.dtype), rest).reshape(-1), order + 1)
    mul, add = np.multiply, np.add
    for t in range(1, n_t):
        row = flat[t, k:]
        mul(flat[t - 1, k:], coef, out=row)
        add(row, flat[t - 1, :-k], out=row)
    return w[:, 1] if order == 0 else w[:, 1:]


def _nll_terms(rho, s, c):
    u = 1.0 - rho * rho
    bad = ~(u > 0)
    u = np.where(bad, 1.0, u)
    iu = 1.0 / u
    n = s - 2.0 * rho * c
    val = np.log(u) + n * iu - s
    return np.where(bad, np.inf, val), iu, n


def correlation(data: PairData, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Conditional correlation series ``rho`` (T, m) for per-pair parameters."""
    q = data.qbar[None] + a * recursion(data.e, b)
    return q[:, 2] / np.sqrt(q[:, 0] * q[:, 1])


def value_const(data: PairData) -> np.ndarray:
    """``F`` at ``a = 0`` (constant correlation ``Qbar12 / sqrt(Qbar11 Qbar22)``), (m,)."""
    rho = data.qbar[2] / np.sqrt(data.qbar[0] * data.qbar[1])
    val, _, _ = _nll_terms(np.broadcast_to(rho, data.s.shape), data.s, data.c)
    return 0.5 * tsum(val)


def value(data: PairData, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``F(a, b)`` per pair (m,) for per-pair ``a``, ``b`` (m,)."""
    val, _, _ = _nll_terms(correlation(data, a, b), data.s, data.c)
    return 0.5 * tsum(val)


def value_fgh(
    data: PairData, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``F``, its gradient (m, 2) and Hessian (m, 2, 2) in ``(a, b)``, in the dtype of
    ``data`` (float32 data: ``a`` and ``b`` are rounded to float32 too).

    With ``q_k = qbar_k + a S_k``: ``dq/da = S``, ``dq/db = a S'``, ``d2q/da db = S'``,
    ``d2q/db2 = a S''`` (``'`` = d/db); the chain rule goes through
    ``rho = q12 (q11 q22)^(-1/2)`` and ``f(rho) = log(1 - rho^2) + n / (1 - rho^2)``.
    """
    a, b = np.asarray(a, dtype=data.e.dtype), np.asarray(b, dtype=data.e.dtype)
    w = recursion(data.e, b, order=2)
    s0, s1, s2h = w[:, 0], w[:, 1], w[:, 2]
    q = data.qbar[None, :2] + a * s0[:, :2]
    inv = 1.0 / q
    al = s0[:, :2] * inv  # (dq/da) / q
    ga = s1[:, :2] * inv  # (d2q/dadb) / q
    be = a * ga  # (dq/db) / q
    de = (2.0 * a) * (s2h[:, :2] * inv)  # (d2q/db2) / q
    ginv = np.sqrt(inv[:, 0] * inv[:, 1])
    rho = (data.qbar[2] + a * s0[:, 2]) * ginv
    ma = -0.5 * (al[:, 0] + al[:, 1])
    mb = -0.5 * (be[:, 0] + be[:, 1])
    maa = 0.5 * (al[:, 0] * al[:, 0] + al[:, 1] * al[:, 1])
    mab = -0.5 * (ga[:, 0] + ga[:, 1] - al[:, 0] * be[:, 0] - al[:, 1] * be[:, 1])
    mbb = -0.5 * (de[:, 0] + de[:, 1] - be[:, 0] * be[:, 0] - be[:, 1] * be[:, 1])
    a12 = ginv * s0[:, 2]
    g12 = ginv * s1[:, 2]
    b12 = a * g12
    ra = a12 + rho * ma
    rb = b12 + rho * mb
    raa = ma * (ra + a12) + rho * maa
    rab = mb * ra + g12 + b12 * ma + rho * mab
    rbb = mb * (rb + b12) + (2.0 * a) * (ginv * s2h[:, 2]) + rho * mbb
    val, iu, n = _nll_terms(rho, data.s, data.c)
    d1 = 2.0 * iu * (rho * n * iu - rho - data.c)
    d2 = 2.0 * iu * iu * (n - 1.0 - rho * rho - 4.0 * data.c * rho + 4.0 * rho * rho * n * iu)
    f = 0.5 * tsum(val)
    g = 0.5 * np.stack([tsum(d1 * ra), tsum(d1 * rb)], axis=1)
    haa = tsum(d2 * ra * ra + d1 * raa)
    hab = tsum(d2 * ra * rb + d1 * rab)
    hbb = tsum(d2 * rb * rb + d1 * rbb)
    h = 0.5 * np.stack([np.stack([haa, hab], axis=1), np.stack([hab, hbb], axis=1)], axis=1)
    return f, g, h
