"""Check every participant dFC table before the group level uses any of them.

Each ``*_seg-seeds_dfc.tsv`` is read as text and compared with what the participant level
writes (:func:`bids_dfc.connectivity.tables.dfc_core`, ``docs/outputs-connectivity.md``):
complete lines (a file cut short loses its final newline or fields of its last line), the
columns ``seed_a, seed_b, dcc_sd, dcc_mean, pearson_r, a, b, converged, n_volumes`` (and
``mean_fd`` when FD QC or a test needs it; the ``--dfc-bootstrap`` interval columns when
present), numbers where numbers belong (finite, in range),
one row per seed pair with the primary pair among them, the seed pairs the other runs have,
and one file per run. Every problem of every file is collected first; one
:class:`~bids_dfc.errors.InputError` then lists them, one line per file, each naming the file
(relative to output_dir), what is wrong and what to do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bids_dfc.derivatives import parse_entities
from bids_dfc.errors import InputError

__all__ = ["REQUIRED_COLUMNS", "RUN_ENTITIES", "DfcTable", "check_dfc_files"]

#: the entities of a participant dFC file that identify its run
RUN_ENTITIES = ("sub", "ses", "task", "acq", "run")
#: columns every participant dFC table has (``mean_fd`` too, checked when it is needed)
REQUIRED_COLUMNS = ("seed_a", "seed_b", "dcc_sd", "dcc_mean", "pearson_r", "a", "b",
                    "converged", "n_volumes")
#: numeric columns: (n/a allowed, lowest value, highest value); the writer puts n/a for NaN
NUMERIC = {"dcc_sd": (True, 0.0, None), "dcc_mean": (True, -1.0, 1.0),
           "pearson_r": (True, -1.0, 1.0), "a": (True, None, None), "b": (True, None, None),
           "n_volumes": (False, 1.0, None), "mean_fd": (True, 0.0, None),
           # the SD's bootstrap interval (n/a when --dfc-bootstrap is off; older tables
           # have no such columns)
           "dcc_sd_ci_low": (True, 0.0, None), "dcc_sd_ci_high": (True, 0.0, None),
           "dcc_sd_boot_n": (True, 0.0, None)}
MISSING = ("n/a", "")
TRUTH = {"true": True, "1": True, "false": False, "0": False}
#: slack of the range checks (the writer rounds to 6 significant digits)
_TOL = 1e-6


@dataclass
class DfcTable:
    """A participant dFC file that passed every check."""

    rel: str  #: path relative to output_dir
    entities: dict[str, str]  #: its :data:`RUN_ENTITIES`
    frame: pd.DataFrame  #: typed: numbers float (``n_volumes`` int), ``converged`` bool


@dataclass
class _File:
    rel: str
    entities: dict[str, str]
    frame: pd.DataFrame | None
    problems: list[str]
    fixes: list[str]

    def bad(self, problem: str, fix: str) -> None:
        self.problems.append(problem)
        if fix not in self.fixes:
            self.fixes.append(fix)


def _lines(where: np.ndarray) -> str:
    """``line 3`` / ``lines 3, 7`` / ``lines 3, 7 and 5 more`` from 0-based row numbers."""
    rows = [int(i) + 2 for i in np.flatnonzero(where)]
    more = f" and {len(rows) - 2} more" if len(rows) > 2 else ""
    return f"line{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:2]))}{more}"


def _read(path: Path, f: _File, rerun: str) -> None:
    """Split the file into cells (``f.frame``, strings), or record why it cannot be."""
    before = len(f.problems)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return f.bad(f"cannot be read ({exc.strerror})", "check its permissions")
    except UnicodeDecodeError:
        return f.bad("not UTF-8 text (damaged)", rerun)
    if not text:
        return f.bad("empty file (0 bytes; cut short)", rerun)
    lines = [ln.removesuffix("\r") for ln in text.split("\n")]
    cut = lines[-1] != ""  # the writer ends every line, the last one too
    lines = lines if cut else lines[:-1]
    header = [c.strip() for c in lines[0].split("\t")]
    if cut and len(lines) == 1:
        return f.bad("cut short inside the header line", rerun)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        f.bad(f"missing column(s) {', '.join(missing)}", rerun)
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        f.bad(f"column(s) {', '.join(twice)} appear twice in the header", rerun)
    if len(lines) == 1:
        return f.bad("header only, no data rows (cut short)", rerun)
    fields = np.array([ln.count("\t") + 1 for ln in lines[1:]])
    short = fields != len(header)
    if cut:
        f.bad(f"line {len(lines)} is cut off (no line end, {fields[-1]} of {len(header)} "
              "fields)", rerun)
        short[-1] = False
    if short.any():
        f.bad(f"{_lines(short)}: wrong number of fields (the header has {len(header)})", rerun)
    if len(f.problems) == before:
        f.frame = pd.DataFrame([[c.strip() for c in ln.split("\t")] for ln in lines[1:]],
                               columns=header)


def _check_numbers(frame: pd.DataFrame, f: _File, rerun: str,
                   fd_needed_by: str | None) -> None:
    """Numeric columns: numbers, finite, in range; n/a only where the writer may put it."""
    for col, (may_miss, low, high) in NUMERIC.items():
        if col not in frame.columns:
            continue
        cells = frame[col]
        missing = cells.isin(MISSING).to_numpy()
        values = pd.to_numeric(cells.where(~missing), errors="coerce").to_numpy(dtype=float)
        text = ~missing & np.isnan(values)
        if text.any():
            f.bad(f"column {col}, {_lines(text)}: {cells[text].iloc[0]!r} is not a number",
                  rerun)
        inf = np.isinf(values)
        if inf.any():
            f.bad(f"column {col}, {_lines(inf)}: {cells[inf].iloc[0]} is not a finite number",
                  rerun)
        need = f" ({fd_needed_by} needs it)" if col == "mean_fd" else ""
        if missing.any() and (not may_miss or (col == "mean_fd" and fd_needed_by)):
            f.bad(f"column {col}, {_lines(missing)}: n/a where a value is required{need}",
                  rerun)
        finite = np.isfinite(values)
        out = finite & (((values < low - _TOL) if low is not None else False)
                        | ((values > high + _TOL) if high is not None else False))
        if out.any():
            span = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            f.bad(f"column {col}, {_lines(out)}: {cells[out].iloc[0]} is outside {span}",
                  rerun)
        if col == "n_volumes" and (finite & (values != np.round(values))).any():
            f.bad(f"column {col}, {_lines(finite & (values != np.round(values)))}: "
                  "not a whole number", rerun)
        if col == "mean_fd" and len(np.unique(values[finite])) > 1:
            f.bad("column mean_fd differs between rows (the writer copies one value per run)",
                  rerun)
    if fd_needed_by and "mean_fd" not in frame.columns:
        f.bad(f"no mean_fd column ({fd_needed_by} needs it)", rerun)


def _check_rows(frame: pd.DataFrame, f: _File, rerun: str) -> None:
    """Seed names present, ``converged`` a truth value, one row per (unordered) seed pair."""
    for col in ("seed_a", "seed_b"):
        empty = frame[col].isin(MISSING).to_numpy()
        if empty.any():
            f.bad(f"column {col}, {_lines(empty)}: empty seed name", rerun)
    flag = ~frame["converged"].str.lower().isin(list(TRUTH)).to_numpy()
    if flag.any():
        f.bad(f"column converged, {_lines(flag)}: {frame['converged'][flag].iloc[0]!r} is "
              "not True or False", rerun)
    same = (frame["seed_a"] == frame["seed_b"]).to_numpy()
    if same.any():
        f.bad(f"{_lines(same)}: a seed paired with itself", rerun)
    key = pd.Series([tuple(sorted(p)) for p in zip(frame["seed_a"], frame["seed_b"])])
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        at = int(np.flatnonzero(dup)[0])
        rows = _lines((key == key[at]).to_numpy())
        f.bad(f"seed pair {frame['seed_a'].iloc[at]}-{frame['seed_b'].iloc[at]} has more than "
              f"one row ({rows}; one row per pair)", rerun)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The cells of a checked file as numbers and booleans (other columns stay text)."""
    frame = frame.copy()
    for col in NUMERIC:
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col].where(~frame[col].isin(MISSING)))
    frame["n_volumes"] = frame["n_volumes"].astype(int)
    frame["converged"] = frame["converged"].str.lower().map(TRUTH).astype(bool)
    return frame


def _check_file(output_dir: Path, path: Path, fd_needed_by: str | None) -> _File:
    rel = path.relative_to(output_dir).as_posix()
    ent = {k: v for k, v in parse_entities(path).items() if k in RUN_ENTITIES}
    f = _File(rel, ent, None, [], [])
    folder = rel.split("/")
    if "sub" not in ent:
        f.bad("the file name has no sub- entity", "remove it (not a bids_dfc output)")
        return f
    rerun = f"rerun the participant level for sub-{ent['sub']}"
    if folder[0] != f"sub-{ent['sub']}" or (
            folder[1].startswith("ses-") and folder[1] != f"ses-{ent.get('ses')}"):
        f.bad(f"named for sub-{ent['sub']}{'_ses-' + ent['ses'] if 'ses' in ent else ''} but "
              f"lies in {'/'.join(folder[:-1])}/", "move it out of output_dir")
    _read(path, f, rerun)
    if f.frame is not None:
        _check_numbers(f.frame, f, rerun, fd_needed_by)
        _check_rows(f.frame, f, rerun)
    return f


def _check_pairs(files: list[_File], pair: Sequence[str], general: list[str]) -> None:
    """The primary pair in every file (or one line for a ``--pair`` no file has); the same
    seed pairs in every file."""
    frames = {f.rel: f.frame for f in files if f.frame is not None}
    read = [f for f in files if f.rel in frames]
    pair_a, pair_b = pair
    has = {rel: bool(((t["seed_a"] == pair_a) & (t["seed_b"] == pair_b)).any())
           for rel, t in frames.items()}
    sets = {rel: frozenset(zip(t["seed_a"], t["seed_b"])) for rel, t in frames.items()}
    if read and not any(has.values()):
        seen = sorted({f"{a}-{b}" for s in sets.values() for a, b in s})
        general.append(f"  --pair {pair_a} {pair_b}: no file has a row with seed_a {pair_a} "
                       f"and seed_b {pair_b} (the files have {', '.join(seen[:8])}"
                       f"{', ...' if len(seen) > 8 else ''}) -> give --pair as the participant "
                       "outputs name it")
        return
    for f in read:
        if not has[f.rel]:
            f.bad(f"no {pair_a}-{pair_b} row (the primary pair)",
                  f"rerun the participant level for sub-{f.entities['sub']}")
    # the reference is the most common set, the larger one on a tie (cut files lose pairs)
    counts = Counter(sets.values())
    ref = max(counts, key=lambda s: (counts[s], len(s))) if counts else frozenset()
    for f in read:
        lost = sorted(f"{a}-{b}" for a, b in ref - sets[f.rel] - {(pair_a, pair_b)})
        extra = sorted(f"{a}-{b}" for a, b in sets[f.rel] - ref)
        if lost or extra:  # the primary pair is reported above
            f.bad(f"seed pairs differ from those of {counts[ref]} other file(s) (missing "
                  f"{', '.join(lost) or 'none'}; extra {', '.join(extra) or 'none'})",
                  f"rerun the participant level for sub-{f.entities['sub']}")


def _check_runs(files: list[_File]) -> None:
    """One file per run: no two files with the same sub, ses, task, acq and run entities."""
    named = [f for f in files if "sub" in f.entities]
    keys = {f.rel: tuple(f.entities.get(k, "") for k in RUN_ENTITIES) for f in named}
    counts = Counter(keys.values())
    for f in named:
        if counts[keys[f.rel]] > 1:
            others = [g.rel for g in named if keys[g.rel] == keys[f.rel] and g is not f]
            f.bad(f"a second file for the same run (also {', '.join(others)})",
                  "keep one file per run: move the other copies out of output_dir")


def check_dfc_files(output_dir: Path, files: Sequence[Path], *, pair: Sequence[str],
                    fd_needed_by: str | None) -> list[DfcTable]:
    """Check every participant dFC file; return them typed, or raise :class:`InputError`
    listing every problem of every file (one line per file).

    Parameters
    ----------
    output_dir : Path
        The derivatives folder (file names in messages are relative to it).
    files : sequence of Path
        The ``*_seg-seeds_dfc.tsv`` files under ``output_dir``.
    pair : (str, str)
        The primary pair: a row ``seed_a == pair[0]``, ``seed_b == pair[1]`` must exist.
    fd_needed_by : str or None
        What needs ``mean_fd`` (e.g. ``"FD QC (--max-mean-fd 0.5)"``): the column is then
        required and n/a is refused. None: ``mean_fd`` may be absent or n/a.
    """
    checked = [_check_file(output_dir, p, fd_needed_by) for p in files]
    general: list[str] = []
    _check_pairs(checked, pair, general)
    _check_runs(checked)
    bad = [f for f in checked if f.problems]
    if bad or general:
        raise InputError(_message(output_dir, checked, bad, general))
    return [DfcTable(f.rel, f.entities, _typed(f.frame)) for f in checked
            if f.frame is not None]  # every file, once all passed


def _message(output_dir: Path, checked: list[_File], bad: list[_File],
             general: list[str]) -> str:
    head = (f"{len(bad)} of {len(checked)} participant dFC files in {output_dir} cannot be "
            if bad else f"the participant dFC files in {output_dir} cannot be ")
    lines = [head + "used; nothing was computed and group/ was left as it was:", *general]
    lines += [f"  {f.rel}: {'; '.join(f.problems)} -> {'; '.join(f.fixes)}" for f in bad]
    rerun = sorted({f.entities["sub"] for f in bad
                    if any(x.startswith("rerun") for x in f.fixes)})
    if rerun:
        lines.append(f"  to rerun them: bids-dfc <bids_dir> {output_dir} participant "
                     f"--participant-label {' '.join(rerun)}")
    return "\n".join(lines)
