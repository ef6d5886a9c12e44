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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._bivariate import tsum
from ._checks import check_series
from ._newton import minimize_batch

#: Upper bound of alpha + beta (strict stationarity, as required by the method).
GARCH_MAX_PERSISTENCE = 1.0 - 1e-6
_ALPHA_GRID = (0.0, 0.03, 0.08, 0.15, 0.3)
_BETA_GRID = (0.0, 0.25, 0.5, 0.7, 0.8, 0.88, 0.93, 0.97)
_BETA_BANDS = ((0.0, 0.6), (0.6, 0.9), (0.9, 1.0))


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


def _band_starts(y2, bc):
    """Best (alpha, beta) grid start of every series in each band of beta.

    The grid uses the variance-targeting ``w = 1 - alpha - beta`` (unit mean square).
    Returns the starts ``x0`` (n_bands * N, 3), band-major, and the series of each row.
    """
    n_s = y2.shape[1]
    grid = [(a, b) for a in _ALPHA_GRID for b in _BETA_GRID if a + b < 0.99]
    starts = np.array([[max(1.0 - a - b, 0.01), a, b] for a, b in grid])
    g_n = len(starts)
    theta = np.repeat(starts, n_s, axis=0)  # start-major, series-minor
    vals = _negll(theta, np.tile(y2, (1, g_n)), np.tile(bc, g_n)).reshape(g_n, n_s)
    x0, owner = [], []
    for lo, hi in _BETA_BANDS:
        in_band = np.array([lo <= b < hi for _, b in grid])
        band_vals = np.where(in_band[:, None], vals, np.inf)
        x0.append(starts[np.argmin(band_vals, axis=0)])
        owner.append(np.arange(n_s))
    return np.concatenate(x0), np.concatenate(owner)


def fit_garch(
    x: ArrayLike, *, names: Sequence[str] | None = None, max_iter: int = 200
) -> GarchResult:
    """Fit a zero-mean Gaussian GARCH(1,1) to every column of ``x``.

    The fit is deterministic: a grid of (alpha, beta) starts (with the variance-targeting
    ``w = (1 - alpha - beta) v``) picks the best start per series in each of three bands
    of beta, a batched projected Newton method with exact derivatives refines all of them
    at once, and the best of the three optima is kept (short series can have several
    local optima).

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
    n_t, n_s = y.shape
    # the GARCH likelihood can have several local optima (short series): refine from the
    # best grid point of each band of beta and keep the best result
    x0, owner = _band_starts(y2, bc)

    lower = np.array([1e-8, 0.0, 0.0])
    upper = np.array([10.0, 1.0, 1.0])

    def fval(th: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return _negll(th, np.take(y2, owner[rows], axis=1), bc[owner[rows]])

    def fgh(th: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _negll_fgh(th, np.take(y2, owner[rows], axis=1), bc[owner[rows]])

    thetas, fmins, convs, _ = minimize_batch(
        fgh, fval, x0, lower, upper, [1, 2], GARCH_MAX_PERSISTENCE, max_iter=max_iter
    )
    pick = np.argmin(fmins.reshape(len(_BETA_BANDS), n_s), axis=0) * n_s + np.arange(n_s)
    theta, fmin, conv = thetas[pick], fmins[pick], convs[pick]
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
