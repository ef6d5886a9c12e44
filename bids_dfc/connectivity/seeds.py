"""Seed tables and atlas label tables: reading, checking, naming (nipype-free).

Everything here works on tables, arrays and in-memory nibabel images; nothing reads the
workflow configuration (weights.py and series.py hold the maps and series).  The nipype
interfaces in :mod:`bids_dfc.interfaces.connectivity`
read files, call these functions and write the results.

Conventions
-----------
* A *seeds table* has the columns ``name, x, y, z, radius_mm, network`` (world
  coordinates in mm of the template, sphere radius in mm).  The study's four seeds are the
  default (``bids_dfc/data/seeds.tsv``).
* A *weight map* holds, for every voxel, the fraction of the voxel inside the seed sphere
  (partial volume, estimated by supersampling each voxel), so a seed smaller than a voxel
  still has non-zero weights.  Region series are weighted means with these weights.
* Network series are the mean of their seeds' series, each seed with equal weight (the
  study's "average time series of the seeds within each network"), or, optionally, weighted
  by each seed's total weight (``"voxel"``: every voxel of the network counts once).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, cast

import nibabel as nb
import numpy as np
import pandas as pd

from bids_dfc.errors import InputError

if TYPE_CHECKING:
    #: what ``DataFrame.iterrows`` yields on the RangeIndex of a table read from a file
    _Rows = Iterator[tuple[int, pd.Series]]

__all__ = [
    "PAIR_SEP",
    "SEED_COLUMNS",
    "check_seeds_in_fov",
    "default_seeds_file",
    "primary_pair",
    "read_atlas_labels",
    "read_seeds",
]

SEED_COLUMNS = ("name", "x", "y", "z", "radius_mm", "network")
#: separator of the two region names in a pair's column name (``DMN__DeS``)
PAIR_SEP = "__"


def default_seeds_file() -> Path:
    """Path of the bundled seeds table (the study's PCC, mPFC, PAG and RVM)."""
    return Path(str(resources.files("bids_dfc") / "data" / "seeds.tsv"))


def _row_label(i: int, name: str | None = None) -> str:
    # i is the 0-based data row; the file line is i + 2 (one header line)
    label = f"row {i + 1} (line {i + 2})"
    return f"{label}, seed {name!r}" if name else label


def read_seeds(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate a seeds table.

    Parameters
    ----------
    path : str or Path, optional
        Tab-separated file with the columns ``name, x, y, z, radius_mm, network`` (extra
        columns are kept).  Default: the bundled study seeds.

    Returns
    -------
    pandas.DataFrame
        One row per seed; ``x, y, z, radius_mm`` as float, ``name, network`` as str.

    Raises
    ------
    InputError
        Missing columns, empty names, duplicate names, names that clash with a network name
        or contain ``"__"``, non-numeric or non-finite coordinates, radius <= 0; the
        message names the file and the row.

    Examples
    --------
    >>> seeds = read_seeds()
    >>> list(seeds["name"])
    ['PCC', 'mPFC', 'PAG', 'RVM']
    """
    path = Path(path) if path is not None else default_seeds_file()
    out = _parse_rows(_read_table(path), path)
    _check_rows(out, path)
    return out.reset_index(drop=True)


def _read_table(path: Path) -> pd.DataFrame:
    """The seeds TSV as strings, with every required column and at least one row."""
    if not path.is_file():
        raise InputError(f"Seeds table {path} does not exist; pass an existing TSV file.")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several parser errors
        raise InputError(f"Seeds table {path} could not be read as TSV: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in SEED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"Seeds table {path} lacks the column(s) {missing}; it has {list(table.columns)}. "
            f"The header must be tab-separated: {', '.join(SEED_COLUMNS)}."
        )
    if table.empty:
        raise InputError(f"Seeds table {path} has no rows; give at least two seeds.")
    return table


def _parse_rows(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Names and networks stripped and non-empty, coordinates and radius finite floats."""
    out = table.copy()
    for col in ("name", "network"):
        out[col] = out[col].str.strip()
    numbers: dict[str, list[float]] = {col: [] for col in ("x", "y", "z", "radius_mm")}
    for i, row in cast("_Rows", out.iterrows()):
        name = row["name"]
        if not name:
            raise InputError(f"Seeds table {path}, {_row_label(i)}: the seed name is empty.")
        if PAIR_SEP in name:
            raise InputError(
                f"Seeds table {path}, {_row_label(i, name)}: names may not contain "
                f"{PAIR_SEP!r} (it separates the two names of a pair)."
            )
        if not row["network"]:
            raise InputError(f"Seeds table {path}, {_row_label(i, name)}: network is empty.")
        for col in ("x", "y", "z", "radius_mm"):
            try:
                value = float(str(row[col]).strip())
            except ValueError:
                value = np.nan
            if not np.isfinite(value):
                raise InputError(
                    f"Seeds table {path}, {_row_label(i, name)}: column {col!r} is "
                    f"{row[col]!r}, not a finite number (mm)."
                )
            numbers[col].append(value)
        if numbers["radius_mm"][-1] <= 0:
            raise InputError(
                f"Seeds table {path}, {_row_label(i, name)}: radius_mm is "
                f"{numbers['radius_mm'][-1]:g}, it must be > 0 mm."
            )
    for col, values in numbers.items():
        out[col] = np.asarray(values, dtype=float)
    return out


def _check_rows(out: pd.DataFrame, path: Path) -> None:
    """Seed names unique and distinct from the network names."""
    dup = out["name"][out["name"].duplicated()].tolist()
    if dup:
        raise InputError(f"Seeds table {path}: seed names must be unique; repeated: {dup}.")
    clash = sorted(set(out["name"]) & set(out["network"]))
    if clash:
        raise InputError(
            f"Seeds table {path}: {clash} is used both as a seed name and as a network "
            "name; rename one (both become columns of the time-series table)."
        )


def check_seeds_in_fov(seeds: pd.DataFrame, img: nb.spatialimages.SpatialImage,
                       *, source: str = "seeds table") -> None:
    """Raise :class:`InputError` if a seed centre lies outside the image's field of view.

    Parameters
    ----------
    seeds : pandas.DataFrame
        Output of :func:`read_seeds`.
    img : nibabel image
        The template (or any image whose grid the seeds will be drawn on).
    source : str
        Name of the seeds file, for the message.
    """
    shape = np.asarray(img.shape[:3])
    inv = np.linalg.inv(img.affine)
    for i, row in cast("_Rows", seeds.iterrows()):
        ijk = inv @ np.array([row["x"], row["y"], row["z"], 1.0])
        if np.any(ijk[:3] < -0.5) or np.any(ijk[:3] > shape - 0.5):
            raise InputError(
                f"In {source}, {_row_label(i, row['name'])}: the centre "
                f"({row['x']:g}, {row['y']:g}, {row['z']:g}) mm lies outside the template's "
                f"field of view (voxel {np.round(ijk[:3], 1).tolist()} of a {shape.tolist()} "
                "grid). Are the coordinates in the template's (MNI) space, in mm?"
            )


def read_atlas_labels(path: str | Path) -> pd.DataFrame:
    """Read an atlas labels table (BIDS ``dseg.tsv`` style: ``index``, ``name``).

    An optional ``network`` column assigns regions to networks.  Returns a DataFrame with
    ``index`` (int) and ``name`` (str), sorted by index; raises :class:`InputError` naming
    the row on non-integer indices, empty or duplicate names, index 0 (background).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Atlas labels table {path} does not exist.")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("index", "name") if c not in table.columns]
    if missing:
        raise InputError(
            f"Atlas labels table {path} lacks the column(s) {missing} (has "
            f"{list(table.columns)}); it needs tab-separated 'index' and 'name' columns."
        )
    idx = []
    for i, row in cast("_Rows", table.iterrows()):
        try:
            value = int(str(row["index"]).strip())
        except ValueError:
            raise InputError(
                f"Atlas labels table {path}, {_row_label(i)}: index {row['index']!r} is not "
                "an integer."
            ) from None
        if value <= 0:
            raise InputError(
                f"Atlas labels table {path}, {_row_label(i)}: index {value} must be > 0 "
                "(0 is background)."
            )
        name = str(row["name"]).strip()
        if not name or PAIR_SEP in name:
            raise InputError(
                f"Atlas labels table {path}, {_row_label(i)}: name {name!r} is empty or "
                f"contains {PAIR_SEP!r}."
            )
        idx.append(value)
    out = table.copy()
    out["index"] = np.asarray(idx, dtype=int)
    out["name"] = out["name"].str.strip()
    for col in ("index", "name"):
        dup = out[col][out[col].duplicated()].tolist()
        if dup:
            raise InputError(f"Atlas labels table {path}: repeated {col} values {dup}.")
    return out.sort_values("index").reset_index(drop=True)


def primary_pair(network_names: Iterable[str]) -> tuple[str, str] | None:
    """The network pair reported first: (DMN, DeS) when both exist, else the first two."""
    names = list(network_names)
    if "DMN" in names and "DeS" in names:
        return ("DMN", "DeS")
    return (names[0], names[1]) if len(names) >= 2 else None


