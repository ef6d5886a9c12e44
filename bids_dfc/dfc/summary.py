"""Summaries of dynamic connectivity series (the dFC measures reported per pair)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def dfc_summary(R: ArrayLike, thresholds: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """Summarise conditional correlation series over time.

    Parameters
    ----------
    R : array_like, shape (T,) or (T, P)
        Correlation series, time in rows (NaN rows, e.g. the edges of a sliding-window
        series, are ignored).
    thresholds : sequence of float, optional
        For each threshold ``c``: the fraction of (non-NaN) time points with ``R > c``
        (``frac_above_<c>``) and with ``R < c`` (``frac_below_<c>``).

    Returns
    -------
    dict of str to ndarray, each of shape (P,)
        ``sd``: standard deviation over time with ``ddof=1`` (the sample SD, as MATLAB's
        ``std``; the primary dFC measure of Lindquist et al. 2014 and the study);
        ``mean``: mean over time; ``n``: number of time points used; plus the threshold
        fractions when requested. Ready for ``pandas.DataFrame(...)``.

    Examples
    --------
    >>> out = dfc_summary(np.array([[0.1, 0.5], [0.3, 0.5], [0.5, 0.5]]), thresholds=[0.2])
    >>> [round(float(v), 3) for v in out["sd"]], [round(float(v), 3) for v in out["frac_above_0.2"]]
    ([0.2, 0.0], [0.667, 1.0])
    """
    arr = np.asarray(R, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"R must be (T,) or (T, P); got shape {arr.shape}")
    ok = np.isfinite(arr)
    n = ok.sum(axis=0)
    if np.any(n < 2):
        col = int(np.flatnonzero(n < 2)[0])
        raise ValueError(f"column {col} of R has fewer than 2 finite values; cannot summarise")
    flat = np.nanmax(arr, axis=0) == np.nanmin(arr, axis=0)  # exactly 0, not rounding noise
    out = {
        "sd": np.where(flat, 0.0, np.nanstd(arr, axis=0, ddof=1)),
        "mean": np.nanmean(arr, axis=0),
        "n": n,
    }
    for c in [] if thresholds is None else thresholds:
        c = float(c)
        with np.errstate(invalid="ignore"):
            out[f"frac_above_{c:g}"] = np.round((ok & (arr > c)).sum(axis=0) / n, 12)
            out[f"frac_below_{c:g}"] = np.round((ok & (arr < c)).sum(axis=0) / n, 12)
    return out
