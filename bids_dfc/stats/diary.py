"""Pain-diary summaries of a crossover trial (nipype-free): the area under the curve of a
daily diary outcome over days 1..horizon, as observed or with last observation carried
forward (docs/trial.md).

* ``observed``: the trapezoidal rule with unit day spacing over the observed days; an
  interior gap is bridged by the straight line between its observed neighbours (the
  trapezoid over the gap's full width); n/a when day 1 or day ``horizon`` is missing.
* ``locf``: a missing day takes the last observed value (leading missing days the first
  observed value), then the same trapezoid; n/a only when no day up to ``horizon`` was
  observed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ANALYSES", "diary_auc", "locf"]

#: the two analyses of missing diary entries: without imputation, and the sensitivity one
ANALYSES = ("observed", "locf")


def locf(values: np.ndarray) -> np.ndarray:
    """Last observation carried forward; leading missing values take the first observed
    one. All-missing stays all-missing.

    >>> locf(np.array([np.nan, 2.0, np.nan, 4.0, np.nan])).tolist()
    [2.0, 2.0, 2.0, 4.0, 4.0]
    """
    values = np.asarray(values, dtype=float)
    seen = np.flatnonzero(~np.isnan(values))
    if seen.size == 0:
        return values.copy()
    # index of the last observed day at or before each day (the first one before it)
    last = np.maximum.accumulate(np.where(~np.isnan(values), np.arange(values.size), -1))
    return values[np.where(last < 0, seen[0], last)]


def diary_auc(values: np.ndarray, horizon: int, analysis: str = "observed") -> float:
    """AUC (value x days) of one participant-period's diary over days 1..``horizon``.

    ``values[k]`` is day ``k + 1`` (NaN = missing entry). Returns NaN where the analysis
    defines no AUC (see the module docstring).

    >>> diary_auc(np.array([4.0, np.nan, 6.0, 5.0]), 4)  # the gap bridged: 5 + 5 + 5.5
    15.5
    >>> diary_auc(np.array([4.0, np.nan, 6.0, 5.0]), 4, "locf")  # 4, 4, 6, 5: 4 + 5 + 5.5
    14.5
    """
    if analysis not in ANALYSES:
        raise ValueError(f"analysis must be one of {ANALYSES}, got {analysis!r}")
    values = np.asarray(values, dtype=float)
    if horizon < 2 or horizon > values.size:
        raise ValueError(f"horizon {horizon} must be in 2..{values.size} (the diary's days)")
    window = values[:horizon]
    if analysis == "locf":
        window = locf(window)
        if np.isnan(window).all():
            return float("nan")
    if np.isnan(window[0]) or np.isnan(window[-1]):
        return float("nan")
    days = np.flatnonzero(~np.isnan(window)).astype(float)
    kept = window[~np.isnan(window)]
    return float(np.sum((kept[1:] + kept[:-1]) / 2.0 * np.diff(days)))
