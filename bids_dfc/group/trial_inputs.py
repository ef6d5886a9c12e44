"""Read and check the crossover trial's phenotype files before any model is fitted
(docs/trial.md).

``phenotype/trial_allocation.tsv`` turns the trial analysis on; ``phenotype/pain_diary.tsv``
is then required, ``phenotype/adverse_events.tsv`` and ``phenotype/questionnaires.tsv`` are
optional. Every problem of every file is collected first; one
:class:`~bids_dfc.errors.InputError` then lists them, one line each naming the file, the
line(s) and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bids_dfc.errors import InputError
from bids_dfc.stats.trial import TrialData

__all__ = ["TRIAL_INPUTS", "read_trial"]

#: the trial's files in the raw dataset's phenotype/ folder, by role
TRIAL_INPUTS = {
    "allocation": "phenotype/trial_allocation.tsv",
    "diary": "phenotype/pain_diary.tsv",
    "binary": "phenotype/adverse_events.tsv",
    "questionnaires": "phenotype/questionnaires.tsv",
}
#: the numeric rating scale of every diary outcome
DIARY_RANGE = (0.0, 10.0)
_KEYS = ["participant_id", "period"]


def _lines(mask: Iterable) -> str:
    """``line 3`` / ``lines 3, 7`` / ``lines 3, 7 and 5 more`` (file lines, header = 1)."""
    rows = [int(r) for r in mask]
    more = f" and {len(rows) - 2} more" if len(rows) > 2 else ""
    return f"line{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:2]))}{more}"


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, text: str) -> None:
        self.lines.append(f"  {name}: {text}")


def _read(path: Path, name: str, problems: _Problems) -> pd.DataFrame | None:
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                            na_values=["n/a", ""])
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        problems.add(name, f"not a readable tab-separated table ({exc}); save it as UTF-8 "
                           "TSV with one header line")
        return None
    frame.columns = [c.strip() for c in frame.columns]
    frame["_line"] = np.arange(len(frame)) + 2
    return frame


def _participant_ids(frame: pd.DataFrame) -> pd.Series:
    ids = frame["participant_id"].astype("string").str.strip()
    return ids.where(ids.isna() | ids.str.startswith("sub-"), "sub-" + ids)


def _integers(frame: pd.DataFrame, column: str, name: str, problems: _Problems, low: int,
              high: int | None = None) -> pd.Series | None:
    """The column as integers in low..high, or None after recording the bad lines."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != np.round(values)) | (values < low)
    if high is not None:
        bad |= values > high
    if bad.any():
        first = frame.loc[bad, column].iloc[0]
        span = f"{low}..{high}" if high is not None else f"{low} or more"
        problems.add(name, f"{_lines(frame.loc[bad, '_line'])}: {column} "
                           f"{'n/a' if pd.isna(first) else repr(first)} is not a whole "
                           f"number in {span}; correct the {column} of those rows")
        return None
    return values.astype(int)


def _common(frame: pd.DataFrame, name: str, problems: _Problems,
            extra_keys: tuple[str, ...] = (), duplicates: bool = True) -> pd.DataFrame | None:
    """participant_id + period (+ extra keys) present, valid and unique."""
    keys = [*_KEYS, *extra_keys]
    missing = [c for c in keys if c not in frame.columns]
    if missing:
        problems.add(name, f"no column {', '.join(missing)} (columns: "
                           f"{', '.join(c for c in frame.columns if c != '_line')}); the "
                           f"first columns must be {', '.join(keys)}")
        return None
    ok = True
    empty = frame["participant_id"].isna()
    if empty.any():
        problems.add(name, f"{_lines(frame.loc[empty, '_line'])}: participant_id is empty; "
                           "give every row its participant")
        ok = False
    frame = frame.assign(participant_id=_participant_ids(frame))
    period = _integers(frame, "period", name, problems, 1)
    if not ok or period is None:
        return None
    frame = frame.assign(period=period)
    if not duplicates:
        return frame
    dup = frame.duplicated(keys, keep=False) & ~empty
    if dup.any():
        first = frame[dup].iloc[0]
        what = ", ".join(f"{k} {first[k]}" for k in keys)
        problems.add(name, f"{_lines(frame.loc[dup, '_line'])}: duplicate rows for the same "
                           f"{' x '.join(keys)} (e.g. {what}); keep one row each")
        return None
    return frame


def _value_columns(frame: pd.DataFrame, name: str, problems: _Problems,
                   keys: Sequence[str]) -> list[str]:
    columns = [c for c in frame.columns if c not in (*keys, "_line")]
    if not columns:
        problems.add(name, f"no data column after {', '.join(keys)}; add at least one")
    return columns


def _numbers(frame: pd.DataFrame, columns: list[str], name: str, problems: _Problems,
             low: float | None = None, high: float | None = None,
             binary: bool = False) -> dict[str, pd.Series]:
    """Columns as floats (NaN = n/a); bad cells recorded per column."""
    out = {}
    for column in columns:
        cells = frame[column]
        values = pd.to_numeric(cells, errors="coerce")
        text = cells.notna() & values.isna()
        if text.any():
            problems.add(name, f"{_lines(frame.loc[text, '_line'])}: {column} "
                               f"{cells[text].iloc[0]!r} is not a number (n/a marks a "
                               "missing value)")
            continue
        if binary:
            bad = values.notna() & ~values.isin([0, 1])
            rule = "0 or 1"
        else:
            bad = values.notna() & ~np.isfinite(values)
            if low is not None:
                bad |= values < low
            if high is not None:
                bad |= values > high
            rule = f"in {low:g}-{high:g}" if low is not None else "finite"
        if bad.any():
            problems.add(name, f"{_lines(frame.loc[bad, '_line'])}: {column} "
                               f"{cells[bad].iloc[0]} is not {rule}; correct those entries "
                               "or mark them n/a")
            continue
        out[column] = values.astype(float)
    return out


def _unallocated(frame: pd.DataFrame, alloc_keys: set, name: str, problems: _Problems,
                 allocation_name: str) -> None:
    keys = list(zip(frame["participant_id"], frame["period"]))
    bad = np.array([k not in alloc_keys for k in keys], dtype=bool)
    if bad.any():
        first = frame[bad].iloc[0]
        problems.add(name, f"{_lines(frame.loc[bad, '_line'])}: {first['participant_id']} "
                           f"period {first['period']} is not in {allocation_name}; add its "
                           "allocation or remove the rows")


def _allocation(frame: pd.DataFrame, reference: str,
                problems: _Problems) -> pd.DataFrame | None:
    name = TRIAL_INPUTS["allocation"]
    alloc = _common(frame, name, problems)
    if alloc is None:
        return None
    if "treatment" not in alloc.columns:
        problems.add(name, "no treatment column; give each participant and period its "
                           "treatment label")
        return None
    labels = alloc["treatment"].astype("string").str.strip()
    empty = labels.isna() | (labels == "")
    if empty.any():
        first = alloc[empty].iloc[0]
        problems.add(name, f"{_lines(alloc.loc[empty, '_line'])}: no treatment label (e.g. "
                           f"{first['participant_id']} period {first['period']}); fill in "
                           "the treatment given")
    present = sorted(set(labels.dropna()) - {""})
    if reference not in present:
        problems.add("--trial-reference", f"{reference!r} is not a treatment of {name} "
                                          f"(treatments: {', '.join(present) or 'none'}); "
                                          "pass --trial-reference with one of them")
    if len(present) < 2:
        problems.add(name, f"only {len(present)} treatment label(s) ({', '.join(present)}): "
                           "a crossover trial compares at least 2")
    return alloc.assign(treatment=labels)


def _diary(frame: pd.DataFrame, alloc: pd.DataFrame | None, n_days: int,
           problems: _Problems) -> tuple[pd.DataFrame | None, list[str]]:
    name, alloc_name = TRIAL_INPUTS["diary"], TRIAL_INPUTS["allocation"]
    if "day" not in frame.columns:
        problems.add(name, "no day column; the diary is long format: participant_id, "
                           "period, day, then the outcomes")
        return None, []
    day = _integers(frame, "day", name, problems, 1, n_days)
    # duplicates judged on the day numbers, so "07" and "7" are the same day; the other
    # columns are checked whatever the days are (every problem reported at once)
    diary = _common(frame if day is None else frame.assign(day=day), name, problems,
                    extra_keys=("day",), duplicates=day is not None)
    outcomes = _value_columns(frame, name, problems, [*_KEYS, "day"])
    values = _numbers(frame, outcomes, name, problems, *DIARY_RANGE)
    if diary is None or day is None or len(values) < len(outcomes) or not outcomes:
        return None, outcomes
    diary = diary.assign(**values)
    if alloc is not None:
        _unallocated(diary, _keys(alloc), name, problems, alloc_name)
        observed = diary[outcomes].notna().any(axis=1)
        have = _keys(diary[observed])
        empty = alloc[[k not in have for k in zip(alloc["participant_id"], alloc["period"])]]
        if len(empty):
            first = empty.iloc[0]
            problems.add(name, f"{len(empty)} allocated period(s) have no diary entry at all "
                               f"(e.g. {first['participant_id']} period {first['period']}, "
                               f"{alloc_name} {_lines(empty['_line'])}); add the entries, or "
                               "remove the allocation of a period the participant never "
                               "started (the mixed model analyses the periods they have)")
    return diary, outcomes


def _keys(frame: pd.DataFrame) -> set:
    return set(zip(frame["participant_id"], frame["period"]))


def _per_period(frame: pd.DataFrame, role: str, alloc: pd.DataFrame | None,
                problems: _Problems) -> tuple[pd.DataFrame, list[str]] | None:
    """An optional table of one row per participant and period (0/1 or scores)."""
    name = TRIAL_INPUTS[role]
    checked = _common(frame, name, problems)
    if checked is None:
        return None
    columns = _value_columns(checked, name, problems, _KEYS)
    values = _numbers(checked, columns, name, problems, binary=role == "binary")
    if len(values) < len(columns) or not columns:
        return None
    if alloc is not None:
        _unallocated(checked, _keys(alloc), name, problems, TRIAL_INPUTS["allocation"])
    return checked.assign(**values)[[*_KEYS, *columns]], columns


def read_trial(bids_dir: str | os.PathLike, *, reference: str, horizons: Sequence[int],
               n_days: int) -> TrialData | None:
    """The trial's inputs, checked; None when the dataset has no trial_allocation.tsv.

    Raises :class:`InputError` listing every problem (file, lines, what to do).
    """
    root = Path(bids_dir)
    if not (root / TRIAL_INPUTS["allocation"]).is_file():
        return None
    problems = _Problems()
    notes: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    for role, name in TRIAL_INPUTS.items():
        path = root / name
        if not path.is_file():
            if role == "diary":
                problems.add(name, "not found: the trial analysis (on because "
                                   f"{TRIAL_INPUTS['allocation']} exists) needs the daily "
                                   "diary (participant_id, period, day, one column per "
                                   "outcome)")
            continue
        if not path.with_suffix(".json").is_file():
            notes.append(f"{name} has no JSON sidecar describing its columns (BIDS "
                         "recommends one)")
        frame = _read(path, name, problems)
        if frame is not None:
            frames[role] = frame
    for horizon in horizons:
        if not 2 <= int(horizon) <= n_days:
            problems.add("--trial-horizons", f"{horizon} is outside 2..{n_days} (the diary's "
                                             "days, --trial-days)")
    alloc = diary = None
    outcomes: list[str] = []
    if "allocation" in frames:
        alloc = _allocation(frames["allocation"], reference, problems)
    if "diary" in frames:
        diary, outcomes = _diary(frames["diary"], alloc, n_days, problems)
    optional = {role: _per_period(frames[role], role, alloc, problems)
                for role in ("binary", "questionnaires") if role in frames}
    if problems.lines:
        raise InputError("the crossover trial's inputs have problems (nothing was written):\n"
                         + "\n".join(problems.lines))
    assert alloc is not None and diary is not None
    binary_frame, binary_cols = optional.get("binary") or (None, [])
    quest_frame, quest_cols = optional.get("questionnaires") or (None, [])
    return TrialData(
        allocation=alloc[[*_KEYS, "treatment"]].reset_index(drop=True),
        diary=diary[[*_KEYS, "day", *outcomes]].reset_index(drop=True),
        diary_outcomes=outcomes, n_days=int(n_days),
        binary=binary_frame, binary_outcomes=binary_cols,
        questionnaires=quest_frame, questionnaire_outcomes=quest_cols, notes=notes)
