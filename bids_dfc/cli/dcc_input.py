"""Reading and checking the ``bids-dfc-dcc`` input table, every problem at once.

The file is decoded as strict UTF-8 (a leading byte-order mark is dropped), split into
fields with the csv module (tabs; commas for ``.csv``) and checked cell by cell before any
estimation starts. Each problem names the file, the line (1-based, as an editor numbers
it), the column (1-based number and region name) and what to do; the first
:data:`MAX_LISTED` are listed, then how many more there are.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bids_dfc.dfc import MIN_TIMEPOINTS
from bids_dfc.errors import InputError

#: problems listed in one report; the rest are counted
MAX_LISTED = 20
#: cells that spreadsheets and other tools write for a missing value
MISSING = {"nan", "-nan", "+nan", "na", "n/a", "#n/a", "null", "none", "missing", "."}
#: |r| above which two series are the same signal (the DCC engine's own limit)
PERFECT_R = 1.0 - 1e-9
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")


@dataclass
class Table:
    """A checked table: region names, values (T, N) and each row's line in the file."""

    path: Path
    names: list[str]
    values: np.ndarray
    lines: np.ndarray


class Problems:
    """The problems found in one file: the first :data:`MAX_LISTED` kept, all counted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []
        self.total = 0

    def add(self, where: str, text: str) -> None:
        self.total += 1
        if len(self.items) < MAX_LISTED:
            self.items.append(f"{self.path}, {where}: {text}" if where else f"{self.path}: {text}")

    def raise_if_any(self) -> None:
        """Raise one InputError listing the problems (one line each) if there are any."""
        if not self.total:
            return
        lines = list(self.items)
        if self.total > 1:
            more = self.total - len(self.items)
            listed = f"the first {len(self.items)} above, and {more} more" if more else "above"
            lines.append(f"{self.path}: {self.total} problems in the table ({listed}); "
                         "nothing was computed")
        raise InputError("\n".join(lines))


def column(names: list[str], j: int) -> str:
    """``column 3 'PAG'`` for the 0-based column index ``j``."""
    return f"column {j + 1} {names[j]!r}" if j < len(names) else f"column {j + 1}"


def separator(path: Path) -> str:
    return "," if path.suffix.lower() == ".csv" else "\t"


def read_bytes(path: Path) -> bytes:
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise InputError(f"{path}: {what}")
    try:
        return path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror})") from None


def decode(path: Path, data: bytes) -> str:
    """The text of the file: strict UTF-8, a leading byte-order mark dropped."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"{path}: the file is UTF-16 text (Excel's 'Unicode text'); it must "
                         "be saved as UTF-8 (in Excel: 'CSV UTF-8' or tab-separated text)")
    if data.startswith(b"PK\x03\x04"):
        raise InputError(f"{path}: this is a zip or Excel (.xlsx) file, not a text table; "
                         "export it as tab-separated (.tsv) or comma-separated (.csv) UTF-8 text")
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(_not_utf8(path, data, skip + err.start)) from None


def _not_utf8(path: Path, data: bytes, offset: int) -> str:
    sep = separator(path).encode()
    start = data.rfind(b"\n", 0, offset) + 1
    end = min(k for k in (data.find(b"\n", offset), len(data)) if k >= 0)
    line = data.count(b"\n", 0, offset) + 1
    col = data.count(sep, start, offset) + 1
    fields = data[start:end].split(sep)
    field = fields[col - 1].decode("cp1252", errors="replace").strip() if col <= len(fields) else ""
    return (f"{path}, line {line}, column {col}: byte 0x{data[offset]:02x} at byte offset "
            f"{offset} is not UTF-8 (the cell reads {field[:40]!r} as Latin-1/Windows-1252); "
            "the file must be saved as UTF-8 text (Excel: 'CSV UTF-8'; or "
            f"iconv -f WINDOWS-1252 -t UTF-8 {path.name} > utf8-{path.name})")


def _records(path: Path, text: str, sep: str):
    """(line number, fields) of every record (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as err:
        raise InputError(f"{path}, line {reader.line_num}: cannot be split into "
                         f"fields ({err}); is it a text table?") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_header(path: Path, fields: list[str], line: int, problems: Problems) -> list[str]:
    """Region names from the header row; problems with them are added to ``problems``."""
    sep = separator(path)
    names = [h.strip() for h in fields]
    if len(names) == 1 and ("," in names[0] or "\t" in names[0]):
        other = "comma" if sep == "\t" else "tab"
        raise InputError(
            f"{path}: only one column found; the file looks {other}-separated: "
            "use the .csv extension for comma-separated files and .tsv for tab-separated"
        )
    if names and all(_is_number(n) for n in names):
        problems.add(f"line {line}", f"the header cells are numbers ({', '.join(names[:3])}"
                     f"{', ...' if len(names) > 3 else ''}); the first row must name the regions")
        return names
    seen: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        where = f"line {line}, column {j + 1}"
        if not name:
            problems.add(where, "empty region name; every column needs a name in the header row")
            continue
        if _is_number(name):
            problems.add(where, f"header cell {name!r} is a number; the first row must name the "
                         "regions")
        if "__" in name:
            problems.add(where, f"region name {name!r} contains '__', which separates the two "
                         "regions in pair names (A__B); rename it")
        seen.setdefault(name, []).append(j + 1)
    for name, cols in seen.items():
        if len(cols) > 1:
            problems.add(f"line {line}, columns {', '.join(map(str, cols))}",
                         f"duplicated region name {name!r}; region names must be unique")
    return names


def cell_problem(cell: str, sep: str) -> str | None:
    """What is wrong with one data cell, or None if it is a finite number."""
    text = cell.strip()
    if not text:
        return "empty cell (a missing value: interpolate it or drop the time point)"
    try:
        value = float(text)
    except ValueError:
        if text.lower() in MISSING:
            return f"missing value {cell!r} (interpolate it or drop the time point)"
        if sep == "\t" and _DECIMAL_COMMA.fullmatch(text):
            return f"{cell!r} is not a number (a decimal comma? write {text.replace(',', '.')})"
        return f"{cell!r} is not a number"
    if math.isnan(value):
        return f"missing value {cell!r} (NaN; interpolate it or drop the time point)"
    if math.isinf(value):
        return f"non-finite value {cell!r}; replace it by a number or drop the time point"
    return None


def _ragged(fields: list[str], n: int) -> str:
    k = len(fields)
    what = "too many" if k > n else "too few"
    hint = ""
    if k > n and not any(f.strip() for f in fields[n:]):
        hint = " (an extra separator at the end of the line?)"
    elif k == 1 and n > 1:
        hint = " (the wrong separator on this line?)"
    return f"{k} field(s) where the header has {n} ({what}{hint})"


def read_rows(path: Path, records, names: list[str], problems: Problems):
    """Values (T, N; NaN where a cell is unusable) and each row's line in the file."""
    n, sep = len(names), separator(path)
    rows: list[list[float]] = []
    lines: list[int] = []
    blank: list[int] = []
    nan_row = [math.nan] * n
    for line, fields in records:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            blank.append(line)
            continue
        for empty in blank:  # only blank lines followed by data are a problem
            problems.add(f"line {empty}", f"empty line between data rows (a missing time "
                         f"point?); delete it or fill in its {n} values")
        blank.clear()
        lines.append(line)
        if len(fields) != n:
            problems.add(f"line {line}", _ragged(fields, n))
            rows.append(nan_row)
            continue
        try:
            vals = [float(f) for f in fields]
        except ValueError:
            vals = [math.nan] * n
        if not all(map(math.isfinite, vals)):
            for j, cell in enumerate(fields):
                text = cell_problem(cell, sep)
                if text is not None:
                    problems.add(f"line {line}, {column(names, j)}", text)
                    vals[j] = math.nan
                else:
                    vals[j] = float(cell)
        rows.append(vals)
    return np.array(rows, dtype=float).reshape(len(rows), n), np.array(lines, dtype=int)


def check_columns(values: np.ndarray, lines: np.ndarray, names: list[str],
                  problems: Problems) -> None:
    """Constant columns, too few time points, too few regions."""
    n_t, n = values.shape
    if n_t >= 2:
        with warnings.catch_warnings():  # all-NaN columns (every cell bad) are skipped
            warnings.simplefilter("ignore", RuntimeWarning)
            sd = np.nanstd(values, axis=0)
            scale = np.nanmax(np.abs(values), axis=0)
        for j in np.flatnonzero(sd <= 1e-8 * scale):
            vals = values[np.isfinite(values[:, j]), j]
            if vals.size < 2:
                continue
            what = (f"constant (every value is {vals[0]:g})" if np.all(vals == vals[0])
                    else f"nearly constant (SD {sd[j]:.3g} for values up to {scale[j]:.3g})")
            problems.add(column(names, j), f"{what}; its correlation with other regions is "
                         "undefined: drop the column (an empty ROI?)")
    if n_t < MIN_TIMEPOINTS:
        span = f" (lines {lines[0]}-{lines[-1]})" if n_t else ""
        problems.add("", f"{n_t} time points{span}; at least {MIN_TIMEPOINTS} are needed (rows "
                     "are time points and columns regions: is the table transposed?)")
    if n < 2:
        problems.add("", f"{n} region column(s); at least 2 are needed")


def read_table(path: Path) -> Table:
    """Read and check the whole table; raises InputError listing every problem found."""
    path = Path(path)
    text = decode(path, read_bytes(path))
    problems = Problems(path)
    records = _records(path, text, separator(path))
    header = next(((line, f) for line, f in records if f and any(c.strip() for c in f)), None)
    if header is None:
        raise InputError(f"{path}: empty file; expected a header row of region names")
    names = check_header(path, header[1], header[0], problems)
    values, lines = read_rows(path, records, names, problems)
    check_columns(values, lines, names, problems)
    problems.raise_if_any()
    return Table(path, names, values, lines)


def perfectly_correlated(table: Table, problems: Problems, block: int = 256) -> None:
    """Pairs of columns that are the same signal up to scale and offset (DCC undefined)."""
    x = table.values
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    n_t, n = z.shape
    for lo in range(0, n, block):
        gram = z[:, lo:lo + block].T @ z[:, lo:] / n_t
        for i, j in zip(*np.nonzero(np.abs(gram) > PERFECT_R), strict=True):
            if i < j:
                problems.add(f"{column(table.names, lo + i)} and {column(table.names, lo + j)}",
                             f"(almost) perfectly correlated (r = {gram[i, j]:.10f}); their "
                             "DCC is undefined: drop one of them")
