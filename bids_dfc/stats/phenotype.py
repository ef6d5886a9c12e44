"""Phenotype checks and derived clinical variables (pure pandas, no I/O).

Derived variables follow the study (docs/group.md):

* pain relief % = 100 x (pre - post) / pre of a 0-10 "pain now" rating;
* responder = relief >= a threshold (30 % in the study: ``GroupOptions.responder_threshold``);
* temporal summation of pain (TSP) = 100 x (peak - first) / first of N ratings in order.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from bids_dfc.errors import InputError

__all__ = [
    "coerce_numeric",
    "expand_columns",
    "relief_percent",
    "require_columns",
    "responder",
    "tsp_percent",
]


def require_columns(names: Iterable[str], available: Iterable[str], *, what: str = "column",
                    source: str = "the joined phenotype") -> None:
    """Raise :class:`InputError` when a user-named column does not exist.

    Parameters
    ----------
    names : iterable of str
        Column names the user asked for.
    available : iterable of str
        Columns that exist.
    what : str
        The option the names came from (used in the message), e.g. ``"--outcome"``.
    source : str
        Where the columns were looked for.

    Examples
    --------
    >>> require_columns(["age"], ["participant_id", "age"])
    """
    available = list(available)
    missing = [n for n in names if n not in available]
    if missing:
        raise InputError(
            f"{what}: column(s) {', '.join(repr(m) for m in missing)} not found in {source}; "
            f"available columns: {', '.join(available)}"
        )


def _natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def expand_columns(spec: str | Sequence[str], available: Sequence[str], *,
                   what: str = "--tsp-columns") -> list[str]:
    """Turn a list of column names or one glob pattern into an ordered list of columns.

    Parameters
    ----------
    spec : str or sequence of str
        Either explicit names (kept in the given order) or a single glob pattern such as
        ``"tsp_*"`` (matches sorted in natural order, so ``tsp_2`` precedes ``tsp_10``).
    available : sequence of str
        Existing columns.
    what : str
        Option name used in error messages.

    Returns
    -------
    list of str

    Examples
    --------
    >>> expand_columns("t_*", ["id", "t_10", "t_2", "t_1"])
    ['t_1', 't_2', 't_10']
    """
    if isinstance(spec, str):
        spec = [spec]
    spec = list(spec)
    if len(spec) == 1 and any(ch in spec[0] for ch in "*?["):
        matched = sorted(fnmatch.filter(list(available), spec[0]), key=_natural_key)
        if not matched:
            raise InputError(
                f"{what}: pattern {spec[0]!r} matches no column; available columns: "
                f"{', '.join(available)}"
            )
        return matched
    require_columns(spec, available, what=what)
    return spec


def _cell(frame: pd.DataFrame, row: Any, col: str) -> Any:
    """``frame.at[row, col]`` (any scalar type)."""
    return frame.at[row, col]


def coerce_numeric(frame: pd.DataFrame, columns: Iterable[str], *,
                   sources: Mapping[str, str] | None = None,
                   id_column: str = "participant_id") -> pd.DataFrame:
    """Convert columns to float, naming the row and column of any non-numeric value.

    Missing values (``n/a``, empty) are allowed and become NaN.

    Parameters
    ----------
    frame : pandas.DataFrame
        Table with string or numeric columns.
    columns : iterable of str
        Columns that must be numeric.
    sources : dict, optional
        Maps a column to a description of its file (e.g. ``"phenotype/pain.tsv"``); when the
        frame has a ``_line`` column its value is quoted as the file's line number.
    id_column : str
        Identifier quoted in the message.

    Returns
    -------
    pandas.DataFrame
        A copy with the columns converted to float.
    """
    out = frame.copy()
    sources = sources or {}
    for col in columns:
        raw = out[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            i = bad[bad].index[0]
            where = sources.get(col, "the phenotype")
            line = f", line {int(_cell(out, i, '_line'))}" if "_line" in out.columns else ""
            ident = f" ({id_column} {_cell(out, i, id_column)})" if id_column in out.columns else ""
            raise InputError(
                f"{where}{line}{ident}, column {col!r}: value {raw[i]!r} is not a number; "
                "fix the value or write n/a for a missing one"
            )
        out[col] = num.astype(float)
    return out


def relief_percent(pre: ArrayLike, post: ArrayLike) -> np.ndarray:
    """Pain relief in percent, 100 x (pre - post) / pre.

    Parameters
    ----------
    pre, post : array-like
        Pain ratings before and after treatment (NaN for missing).

    Returns
    -------
    numpy.ndarray
        Relief in %; NaN where a rating is missing or ``pre`` is 0 (relief undefined).

    Examples
    --------
    >>> relief_percent([8, 5, 0], [4, 5, 1]).tolist()
    [50.0, 0.0, nan]
    """
    pre = np.asarray(pre, dtype=float)
    post = np.asarray(post, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = 100.0 * (pre - post) / pre
    rel[pre == 0] = np.nan
    return rel


def responder(relief: ArrayLike, *, threshold: float) -> np.ndarray:
    """Responder status, ``relief >= threshold`` (1.0 / 0.0, NaN where relief is missing).

    The study's threshold (30 %) is ``bids_dfc.config.GroupOptions.responder_threshold``.

    Examples
    --------
    >>> responder([30.0, 29.9, float("nan")], threshold=30.0).tolist()
    [1.0, 0.0, nan]
    """
    relief = np.asarray(relief, dtype=float)
    out = (relief >= threshold).astype(float)
    out[np.isnan(relief)] = np.nan
    return out


def tsp_percent(ratings: ArrayLike) -> np.ndarray:
    """Temporal summation of pain: % change of the peak rating from the first rating.

    Parameters
    ----------
    ratings : array-like, shape (n_subjects, n_ratings)
        Ratings in the order they were given.

    Returns
    -------
    numpy.ndarray
        ``100 x (max - first) / first``; NaN when any rating is missing or the first is 0.

    Examples
    --------
    >>> tsp_percent([[2, 4, 3], [5, 5, 4]]).tolist()
    [100.0, 0.0]
    """
    r = np.atleast_2d(np.asarray(ratings, dtype=float))
    first = r[:, 0]
    peak = r.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tsp = 100.0 * (peak - first) / first
    tsp[np.isnan(r).any(axis=1) | (first == 0)] = np.nan
    return tsp
