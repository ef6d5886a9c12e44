"""Univariate Gaussian GARCH(1,1), fitted to many series at once.

Conventions (identical to the ``arch`` package with ``mean="Zero"``, ``vol="GARCH"``,
``p=1, q=1``, ``dist="normal"``, so that log-likelihoods can be compared one to one):

* each series is demeaned first (its sample mean is subtracted); ``x`` below is demeaned;
* ``s2[0] = w + (alpha + beta) * bc`` with the backcast ``bc`` = exponentially weighted mean of
  the first ``min(75, T)`` squared values (weights ``0.94**k``, normalised), and
  ``s2[t] = w + alpha * x[t-1]**2 + beta * s2[t-1]`` for ``t >= 1``;
* log-likelihood ``-1/2 sum_t (log(2 pi) + log s2[t] + x[t]**2 / s2[t])``;
* bounds ``1e-8 v <= w <= 10 v`` (``v`` = mean of ``x**2``), ``0 <= alpha, beta`` and
  ``alpha + beta <= 1 - 1e-6``;
* standardised residuals ``z = x / sqrt(s2)``.

The maximum is searched over the closed set, faces included (see :func:`fit_garch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._bivariate import recursion, tsum
from ._checks import check_series
from ._newton import minimize_batch

#: Upper bound of alpha + beta (strict stationarity, as required by the method).
GARCH_MAX_PERSISTENCE = 1.0 - 1e-6
#: Bounds of ``w`` in units of the mean square ``v``.
_W_LOW, _W_HIGH = 1e-8, 10.0
#: Start grid over the closed feasible set (plus the cap face, alpha + beta at its bound).
_ALPHA_GRID = (0.0, 0.01, 0.03, 0.08, 0.15, 0.25, 0.4, 0.6, 0.85)
_BETA_GRID = (0.0, 0.4, 0.65, 0.8, 0.88, 0.93, 0.96, 0.98, 0.99, 0.996)
#: Bands of beta of the start groups (off the cap face).
_BAND_EDGES = (0.6, 0.9)
#: Fisher-scoring steps of the profiled ``w`` at every grid point.
_W_STEPS = 3


@dataclass
class GarchResult:
    """Univariate GARCH(1,1) fits of N series.

    Attributes
    ----------
    params : ndarray, shape (N, 3)
        Columns ``w`` (in the squared units of the input), ``alpha``, ``beta``.
    sigma2 : ndarray, shape (T, N)
        Conditional variances.
    std_resid : ndarray, shape (T, N)
        Standardised residuals ``(x - mean) / sqrt(sigma2)``.
    loglik : ndarray, shape (N,)
        Gaussian log-likelihood at the estimate (constants included, as in ``arch``).
    converged : ndarray of bool, shape (N,)
        Whether the optimiser met its convergence criterion.
    mean : ndarray, shape (N,)
        The subtracted sample means.
    """

    params: np.ndarray
    sigma2: np.ndarray
    std_resid: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    mean: np.ndarray


def backcast(x: np.ndarray) -> np.ndarray:
    """Starting variance of the recursion, per column (``arch``'s exponential backcast).

    Parameters
    ----------
    x : ndarray, shape (T, N)
        Demeaned series.

    Returns
    -------
    ndarray, shape (N,)
    """
    tau = min(75, x.shape[0])
    w = 0.94 ** np.arange(tau)
    w = w / w.sum()
    return tsum(w[:, None] * x[:tau] ** 2)


def garch_sigma2(x: np.ndarray, params: ArrayLike, bc: np.ndarray | None = None) -> np.ndarray:
    """Conditional variances for given parameters (a loop over time, vectorised over series).

    Parameters
    ----------
    x : ndarray, shape (T, N)
        Demeaned series.
    params : ndarray, shape (N, 3)
        ``w, alpha, beta`` per series.
    bc : ndarray, shape (N,), optional
        Backcast; computed with :func:`backcast` when omitted.

    Returns
    -------
    ndarray, shape (T, N)
    """
    params = np.asarray(params, dtype=float)
    bc = backcast(x) if bc is None else bc
    w, alpha, beta = params[:, 0], params[:, 1], params[:, 2]
    s2 = np.empty_like(x)
    s2[0] = w + (alpha + beta) * bc
    x2 = x * x
    for t in range(1, x.shape[0]):
        s2[t] = w + alpha * x2[t - 1] + beta * s2[t - 1]
    return s2


def _negll(theta, y2, bc):
    """Half the Gaussian negative log-likelihood without the 2 pi constant; members in columns."""
    w, alpha, beta = theta[:, 0], theta[:, 1], theta[:, 2]
    s2 = w + (alpha + beta) * bc
    total = 0.5 * (np.log(s2) + y2[0] / s2)
    for t in range(1, y2.shape[0]):
        s2 = w + alpha * y2[t - 1] + beta * s2
        total = total + 0.5 * (np.log(s2) + y2[t] / s2)
    return np.where(np.isfinite(total), total, np.inf)


def _negll_fgh(theta, y2, bc):
    """Value, gradient and Hessian of :func:`_negll` by forward recursion of derivatives."""
    w, alpha, beta = theta[:, 0], theta[:, 1], theta[:, 2]
    m = theta.shape[0]
    s2 = w + (alpha + beta) * bc
    d = np.stack([np.ones(m), bc * np.ones(m), bc * np.ones(m)])  # ds2/d(w, alpha, beta)
    dwb = np.zeros(m)
    dab = np.zeros(m)
    dbb = np.zeros(m)
    f = np.zeros(m)
    g = np.zeros((3, m))
    h = np.zeros((3, 3, m))
    n_t = y2.shape[0]
    for t in range(n_t):
        if t > 0:
            dwb = d[0] + beta * dwb
            dab = d[1] + beta * dab
            dbb = 2.0 * d[2] + beta * dbb
            d = np.stack([1.0 + beta * d[0], y2[t - 1] + beta * d[1], s2 + beta * d[2]])
            s2 = w + alpha * y2[t - 1] + beta * s2
        inv = 1.0 / s2
        f += 0.5 * (np.log(s2) + y2[t] * inv)
        n1 = 0.5 * (1.0 - y2[t] * inv) * inv
        n2 = 0.5 * (2.0 * y2[t] * inv - 1.0) * inv * inv
        g += n1 * d
        h += n2 * d[:, None, :] * d[None, :, :]
        h[0, 2] += n1 * dwb
        h[1, 2] += n1 * dab
        h[2, 2] += n1 * dbb
    h[2, 0] = h[0, 2]
    h[2, 1] = h[1, 2]
    return f, g.T, np.moveaxis(h, 2, 0)


def _standardise(x):
    """Demean every column and scale it to unit mean square.

    Returns the means (N,), the mean squares ``v`` of the demeaned series (N,), the scaled
    series ``y`` (T, N), ``y**2`` and the backcast of ``y``.
    """
    n_t = x.shape[0]
    mean = tsum(x) / n_t
    xc = x - mean
    v = tsum(xc * xc) / n_t
    y = xc / np.sqrt(v)
    y2 = y * y
    bc = backcast(y)
    return mean, v, y, y2, bc


def _profile_w(y2, a_t, b_t):
    """Approximately best ``w`` for fixed (alpha, beta), where ``s2 = w a_t + b_t``.

    ``s2`` is linear in ``w``: ``a_t`` (T, 1) = ``sum_{k <= t} beta^k`` and ``b_t`` (T, N)
    holds the alpha and backcast terms. Starts at the ``w`` that matches the mean of ``s2``
    to the mean square (1), then takes ``_W_STEPS`` Fisher-scoring steps (always downhill
    in expectation, no logarithm needed). Returns ``w`` (N,) and the value of
    :func:`_negll` there (N,).
    """
    w = np.clip((1.0 - tsum(b_t) / a_t.shape[0]) / np.mean(a_t), _W_LOW, _W_HIGH)
    for _ in range(_W_STEPS):
        inv = 1.0 / (w * a_t + b_t)
        grad = tsum(a_t * inv * (1.0 - y2 * inv))
        info = tsum(a_t * a_t * inv * inv)
        w = np.clip(w - grad / info, _W_LOW, _W_HIGH)
    s2 = w * a_t + b_t
    val = 0.5 * tsum(np.log(s2) + y2 / s2)
    return w, np.where(np.isfinite(val), val, np.inf)


def _grid_points():
    """The (alpha, beta) grid over the closed feasible set: both axes and the cap face.

    Returns the points (G, 2) and the start group of each (G,): the three bands of beta
    off the cap (``< 0.6``, ``0.6-0.9``, ``>= 0.9``; alpha = 0 and beta = 0 included), and
    the cap face ``alpha + beta = GARCH_MAX_PERSISTENCE`` (group 3).
    """
    pts = [(a, b) for b in _BETA_GRID for a in _ALPHA_GRID if a + b <= 0.999]
    group = [int(np.searchsorted(_BAND_EDGES, b, side="right")) for _, b in pts]
    cap_alphas = (*_ALPHA_GRID, GARCH_MAX_PERSISTENCE)
    pts += [(a, GARCH_MAX_PERSISTENCE - a) for a in cap_alphas]
    group += [len(_BAND_EDGES) + 1] * len(cap_alphas)
    return np.array(pts), np.array(group)


def _grid_starts(y2, bc):
    """Best grid point (with its profiled ``w``) of every series in each start group.

    Returns ``x0`` (n_groups * N, 3) as ``(w, alpha, beta)``, group-major, and the start
    group of each row. Every grid value is the likelihood of a feasible point, so the
    best start of each group is a point the refinement can only improve on.
    """
    n_t, n_s = y2.shape
    pts, group = _grid_points()
    t = np.arange(n_t)[:, None]
    vals = np.empty((len(pts), n_s))
    ws = np.empty((len(pts), n_s))
    filt, filt_beta = None, None
    for g, (a, b) in enumerate(pts):
        if b != filt_beta:  # S_t = sum_k beta^k y2[t-1-k]; points come grouped by beta
            filt, filt_beta = recursion(y2, b), b
        a_t = (1.0 - b ** (t + 1.0)) / (1.0 - b)
        b_t = a * filt + ((a + b) * b**t) * bc
        ws[g], vals[g] = _profile_w(y2, a_t, b_t)
    x0 = []
    for k in range(int(group.max()) + 1):
        best = np.argmin(np.where((group == k)[:, None], vals, np.inf), axis=0)
        x0.append(np.column_stack([ws[best, np.arange(n_s)], pts[best]]))
    n_groups = len(x0)
    return np.concatenate(x0), np.repeat(np.arange(n_groups), n_s)


def _theta(u, slack):
    """``(w, alpha, beta)`` from search coordinates: ``u`` itself, or on ``slack`` rows
    ``u = (w, alpha, s)`` with ``beta = GARCH_MAX_PERSISTENCE - alpha - s``."""
    theta = u.copy()
    theta[slack, 2] = np.maximum(GARCH_MAX_PERSISTENCE - u[slack, 1] - u[slack, 2], 0.0)
    return theta


def _to_slack(theta):
    """The slack coordinates ``(w, alpha, s)`` of points ``(w, alpha, beta)``."""
    u = theta.copy()
    u[:, 2] = np.maximum(GARCH_MAX_PERSISTENCE - theta[:, 1] - theta[:, 2], 0.0)
    return u


def _slack_fgh(f, g, h, slack):
    """Chain rule to the slack coordinates on ``slack`` rows (``d beta / d(alpha, s) = -1``).

    Written out element by element (no matrix product), so that every row's result is the
    same whatever the batch holds.
    """
    g, h = g.copy(), h.copy()
    gs, hs = g[slack], h[slack]
    g[slack, 1] = gs[:, 1] - gs[:, 2]
    g[slack, 2] = -gs[:, 2]
    hu = hs.copy()
    hu[:, 0, 1] = hu[:, 1, 0] = hs[:, 0, 1] - hs[:, 0, 2]
    hu[:, 0, 2] = hu[:, 2, 0] = -hs[:, 0, 2]
    hu[:, 1, 1] = hs[:, 1, 1] - 2.0 * hs[:, 1, 2] + hs[:, 2, 2]
    hu[:, 1, 2] = hu[:, 2, 1] = hs[:, 2, 2] - hs[:, 1, 2]
    h[slack] = hu
    return f, g, h


def _search(y2, bc, max_iter):
    """Best ``(w, alpha, beta)`` of every series (standardised), its value and convergence.

    The likelihood can have several local optima, on the faces too: the best grid point of
    every start group is refined and the best result kept.
    """
    n_s = y2.shape[1]
    x0, group = _grid_starts(y2, bc)
    owner = np.tile(np.arange(n_s), int(group.max()) + 1)
    slack = group == group.max()  # cap-face starts search in (w, alpha, s) coordinates
    x0[slack] = _to_slack(x0[slack])
    lower = np.array([_W_LOW, 0.0, 0.0])
    upper = np.array([_W_HIGH, 1.0, 1.0])

    def fval(u: np.ndarray, rows: np.ndarray) -> np.ndarray:
        th = _theta(u, slack[rows])
        return _negll(th, np.take(y2, owner[rows], axis=1), bc[owner[rows]])

    def fgh(u: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        th = _theta(u, slack[rows])
        f, g, h = _negll_fgh(th, np.take(y2, owner[rows], axis=1), bc[owner[rows]])
        return _slack_fgh(f, g, h, slack[rows])

    us, fmins, convs, _ = minimize_batch(
        fgh, fval, x0, lower, upper, [1, 2], GARCH_MAX_PERSISTENCE, max_iter=max_iter
    )
    thetas = _theta(us, slack)
    pick = np.argmin(fmins.reshape(-1, n_s), axis=0) * n_s + np.arange(n_s)
    return thetas[pick], fmins[pick], convs[pick]


def fit_garch(
    x: ArrayLike, *, names: Sequence[str] | None = None, max_iter: int = 200
) -> GarchResult:
    """Fit a zero-mean Gaussian GARCH(1,1) to every column of ``x``.

    The fit is deterministic and searches the closed parameter set, boundary included:

    1. a grid of 51 (alpha, beta) points covering the triangle, its two axes (alpha = 0,
       beta = 0) and the cap face ``alpha + beta = GARCH_MAX_PERSISTENCE``, with ``w``
       profiled out at each point (``s2`` is linear in ``w``: Fisher scoring in ``w``), is
       evaluated for all series at once;
    2. the best grid point of every series in each of four start groups (three bands of
       beta off the cap face, and the cap face) is refined by a batched projected Newton
       method with exact derivatives; the cap-face starts search in the coordinates
       ``(w, alpha, s)``, ``beta = GARCH_MAX_PERSISTENCE - alpha - s``, so that the cap is
       the simple bound ``s = 0`` along which they can move;
    3. the best of the four optima is kept. The Newton method only accepts improving steps,
       so the result is never worse than the best grid point.

    Short or near-integrated series can have several local optima, on the faces too
    (issue 17: the former three-start search ended below them on 29 of 239 benchmark
    series; ``benchmarks/bench_garch.py``).

    Parameters
    ----------
    x : array_like, shape (T, N)
        Time points in rows, one series per column; each column is demeaned first.
    names : sequence of str, optional
        Column names used in error messages.
    max_iter : int
        Maximum Newton iterations.

    Returns
    -------
    GarchResult

    Raises
    ------
    ValueError
        On NaN/inf, constant columns or fewer than 50 time points.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> res = fit_garch(rng.standard_normal((120, 3)))
    >>> res.params.shape, res.std_resid.shape
    ((3, 3), (120, 3))
    """
    x = check_series(x, names=names)
    mean, v, y, y2, bc = _standardise(x)
    n_t = y.shape[0]
    theta, fmin, conv = _search(y2, bc, max_iter)
    s2 = garch_sigma2(y, theta, bc)
    params = theta.copy()
    params[:, 0] *= v
    loglik = -fmin - 0.5 * n_t * (np.log(2.0 * np.pi) + np.log(v))
    return GarchResult(
        params=params,
        sigma2=s2 * v,
        std_resid=y / np.sqrt(s2),
        loglik=loglik,
        converged=conv,
        mean=mean,
    )
