"""Comparison estimators: static Pearson correlation and tapered sliding-window correlation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ._checks import check_pairs, check_series


def _pairs_or_all(pairs, n):
    if pairs is None:
        return np.array([(i, j) for i in range(n) for j in range(i + 1, n)], dtype=int)
    return check_pairs(pairs, n)


def pearson_correlation(
    x: ArrayLike,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Static Pearson correlation of every pair of columns.

    Parameters
    ----------
    x : array_like, shape (T, N)
        Time points in rows, series in columns (N >= 2, T >= 50).
    pairs : sequence of (int, int), optional
        Pairs to return; all ``i < j`` pairs in row-major order by default.
    names : sequence of str, optional
        Column names for error messages.

    Returns
    -------
    ndarray, shape (P,)

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((60, 3))
    >>> pearson_correlation(x).shape
    (3,)
    """
    arr = check_series(x, names=names, min_series=2)
    idx = _pairs_or_all(pairs, arr.shape[1])
    r = np.corrcoef(arr, rowvar=False)
    return r[idx[:, 0], idx[:, 1]]


def taper_weights(window: int, taper: str = "gaussian", sigma: float | None = None) -> np.ndarray:
    """Window weights of length ``window`` (they need not sum to one).

    ``"boxcar"``: all ones. ``"gaussian"``: ``exp(-(k - c)^2 / (2 sigma^2))`` with
    ``c = (window - 1) / 2`` and ``sigma = window / 4`` by default (in samples).
    """
    if taper == "boxcar":
        return np.ones(window)
    if taper == "gaussian":
        sd = window / 4.0 if sigma is None else float(sigma)
        if not sd > 0:
            raise ValueError(f"sigma must be positive; got {sigma}")
        k = np.arange(window) - (window - 1) / 2.0
        return np.exp(-0.5 * (k / sd) ** 2)
    raise ValueError(f"taper must be 'gaussian' or 'boxcar'; got {taper!r}")


def sliding_window_correlation(
    x: ArrayLike,
    window: int,
    taper: str = "gaussian",
    sigma: float | None = None,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    names: Sequence[str] | None = None,
    chunk_size: int = 4096,
) -> np.ndarray:
    """Tapered sliding-window correlation (Lindquist et al. 2014, section 2.2).

    For each window position the weighted Pearson correlation
    ``sum w (x - mx)(y - my) / sqrt(sum w (x - mx)^2 sum w (y - my)^2)`` is computed, with
    weighted means ``mx = sum w x / sum w``. The window advances one sample at a time and
    its value is assigned to the window's centre sample ``t0 + (window - 1) // 2``; the
    ``window - 1`` samples at the edges without a full window are NaN, so the output has
    one row per time point like :func:`bids_dfc.dfc.dcc`.

    Parameters
    ----------
    x : array_like, shape (T, N)
        Time points in rows, series in columns.
    window : int
        Window length in samples (3 <= window <= T).
    taper : {"gaussian", "boxcar"}
        Weights within the window (see :func:`taper_weights`).
    sigma : float, optional
        Gaussian taper SD in samples (default ``window / 4``).
    pairs : sequence of (int, int), optional
        Pairs to compute; all ``i < j`` pairs in row-major order by default.
    names : sequence of str, optional
        Column names for error messages.
    chunk_size : int
        Pairs per batch (memory only; results do not depend on it).

    Returns
    -------
    ndarray, shape (T, P)

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((80, 2))
    >>> r = sliding_window_correlation(x, 20)
    >>> r.shape, bool(np.isnan(r[0, 0])), bool(np.isfinite(r[40, 0]))
    ((80, 1), True, True)
    """
    from scipy.ndimage import correlate1d  # here: DCC runs never import scipy.ndimage

    arr = check_series(x, names=names, min_series=2)
    n_t = arr.shape[0]
    if isinstance(window, bool) or int(window) != window or not 3 <= window <= n_t:
        raise ValueError(f"window must be an integer between 3 and {n_t} samples; got {window}")
    window = int(window)
    w = taper_weights(window, taper, sigma)
    w = w / w.sum()
    idx = _pairs_or_all(pairs, arr.shape[1])
    n_win = n_t - window + 1
    first = (window - 1) // 2
    # local origin per column keeps the moment sums well conditioned
    xs = (arr - arr.mean(axis=0)) / arr.std(axis=0)

    def wsum(v: np.ndarray) -> np.ndarray:
        # sum_k w[k] v[t0 + k] for every window start t0 (moving weighted average)
        full = correlate1d(v, w, axis=0, mode="constant", origin=-(window // 2))
        return full[:n_win]

    mean = wsum(xs)
    var = wsum(xs * xs) - mean * mean
    out = np.full((n_t, idx.shape[0]), np.nan)
    for lo in range(0, idx.shape[0], chunk_size):
        i, j = idx[lo : lo + chunk_size, 0], idx[lo : lo + chunk_size, 1]
        cov = wsum(xs[:, i] * xs[:, j]) - mean[:, i] * mean[:, j]
        den = np.sqrt(np.clip(var[:, i] * var[:, j], 0.0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.clip(cov / den, -1.0, 1.0)
        out[first : first + n_win, lo : lo + chunk_size] = r
    return out
