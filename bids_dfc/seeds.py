"""Seeds, atlases and region time series: the pure maths behind the connectivity step.

Everything here works on tables, arrays and in-memory nibabel images; nothing reads the
workflow configuration.  The nipype interfaces in :mod:`bids_dfc.interfaces.connectivity`
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

from importlib import resources
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from bids_dfc.errors import InputError

__all__ = [
    "PAIR_SEP",
    "SEED_COLUMNS",
    "atlas_to_grid",
    "check_seeds_in_fov",
    "default_seeds_file",
    "label_mean_series",
    "network_series",
    "primary_pair",
    "read_atlas_labels",
    "read_seeds",
    "seed_weight_maps",
    "sphere_weights",
    "weighted_centroid",
    "weighted_mean_series",
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
    out = table.copy()
    for col in ("name", "network"):
        out[col] = out[col].str.strip()
    numbers = {col: [] for col in ("x", "y", "z", "radius_mm")}
    for i, row in out.iterrows():
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
    dup = out["name"][out["name"].duplicated()].tolist()
    if dup:
        raise InputError(f"Seeds table {path}: seed names must be unique; repeated: {dup}.")
    clash = sorted(set(out["name"]) & set(out["network"]))
    if clash:
        raise InputError(
            f"Seeds table {path}: {clash} is used both as a seed name and as a network "
            "name; rename one (both become columns of the time-series table)."
        )
    return out.reset_index(drop=True)


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
    for i, row in seeds.iterrows():
        ijk = inv @ np.array([row["x"], row["y"], row["z"], 1.0])
        if np.any(ijk[:3] < -0.5) or np.any(ijk[:3] > shape - 0.5):
            raise InputError(
                f"In {source}, {_row_label(i, row['name'])}: the centre "
                f"({row['x']:g}, {row['y']:g}, {row['z']:g}) mm lies outside the template's "
                f"field of view (voxel {np.round(ijk[:3], 1).tolist()} of a {shape.tolist()} "
                "grid). Are the coordinates in the template's (MNI) space, in mm?"
            )


def sphere_weights(center_mm, radius_mm: float, affine: np.ndarray, shape,
                   *, supersample: int = 7) -> np.ndarray:
    """Partial-volume weights of a sphere on a voxel grid.

    Each voxel's weight is the fraction of ``supersample**3`` regularly spaced points
    inside the voxel that fall within ``radius_mm`` of ``center_mm``.  If no point falls
    inside (a sphere much smaller than a voxel), the voxel containing the centre gets
    weight 1, so the map is never empty for a centre inside the grid.

    Parameters
    ----------
    center_mm : sequence of 3 float
        Centre in world coordinates (mm).
    radius_mm : float
        Radius in mm, > 0.
    affine : ndarray (4, 4)
        Voxel-to-world affine of the grid.
    shape : sequence of 3 int
        Grid shape.
    supersample : int
        Points per voxel edge.

    Returns
    -------
    ndarray, float32, ``shape``
        Weights in [0, 1].

    Examples
    --------
    >>> w = sphere_weights((15, 15, 15), 10.0, np.eye(4), (30, 30, 30))
    >>> bool(abs(w.sum() - 4 / 3 * np.pi * 1000) < 20)
    True
    """
    shape = tuple(int(s) for s in shape[:3])
    center = np.asarray(center_mm, dtype=float)
    inv = np.linalg.inv(affine)
    c_ijk = (inv @ np.append(center, 1.0))[:3]
    # bounding box in voxel indices: radius along each voxel axis (conservative)
    col_norms = np.linalg.norm(affine[:3, :3], axis=0)
    half = radius_mm / col_norms + 1.0
    lo = np.maximum(np.floor(c_ijk - half).astype(int), 0)
    hi = np.minimum(np.ceil(c_ijk + half).astype(int) + 1, shape)
    weights = np.zeros(shape, dtype=np.float32)
    if np.any(hi <= lo):
        return weights
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    sub = np.stack(np.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3)
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
    vox = np.stack(grids, -1).reshape(-1, 3).astype(float)
    pts = (vox[:, None, :] + sub[None, :, :]).reshape(-1, 3)
    world = pts @ affine[:3, :3].T + affine[:3, 3]
    inside = np.sum((world - center) ** 2, axis=1) <= radius_mm**2
    frac = inside.reshape(len(vox), -1).mean(axis=1)
    idx = vox.astype(int)
    weights[idx[:, 0], idx[:, 1], idx[:, 2]] = frac
    if weights.sum() == 0:
        near = np.round(c_ijk).astype(int)
        if np.all(near >= 0) and np.all(near < shape):
            weights[tuple(near)] = 1.0
    return weights


def seed_weight_maps(seeds: pd.DataFrame, ref_img, *, supersample: int = 7) -> nb.Nifti1Image:
    """4D image of partial-volume sphere weights, one volume per seed, on ``ref_img``'s grid.

    Parameters
    ----------
    seeds : pandas.DataFrame
        Output of :func:`read_seeds`.
    ref_img : nibabel image
        Grid (template, or template-space BOLD).
    supersample : int
        See :func:`sphere_weights`.

    Returns
    -------
    nibabel.Nifti1Image
        float32, shape ``ref_img.shape[:3] + (n_seeds,)``.
    """
    check_seeds_in_fov(seeds, ref_img)
    maps = [
        sphere_weights((r.x, r.y, r.z), r.radius_mm, ref_img.affine, ref_img.shape[:3],
                       supersample=supersample)
        for r in seeds.itertuples()
    ]
    out = nb.Nifti1Image(np.stack(maps, axis=-1), ref_img.affine)
    out.set_data_dtype(np.float32)
    return out


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
    for i, row in table.iterrows():
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


def atlas_to_grid(atlas_img, labels: pd.DataFrame, ref_img) -> tuple[nb.Nifti1Image, bool]:
    """Bring a labelled atlas onto the template grid, checking it against its labels.

    The atlas is resampled with nearest-neighbour interpolation when its grid (shape or
    affine) differs from ``ref_img``'s.

    Returns
    -------
    (nibabel.Nifti1Image, bool)
        Integer atlas on the reference grid and whether it was resampled.

    Raises
    ------
    InputError
        Non-integer values, labels present in the atlas but absent from the table (or the
        reverse), or regions that vanish on the template grid (wrong space).
    """
    data = np.asanyarray(atlas_img.dataobj)
    if data.ndim != 3:
        raise InputError(f"The atlas must be a 3D label image, got shape {data.shape}.")
    if not np.allclose(data, np.round(data)):
        raise InputError("The atlas has non-integer values; give a discrete label image.")
    present = set(np.unique(np.round(data).astype(int)).tolist()) - {0}
    listed = set(labels["index"].tolist())
    unlisted = sorted(present - listed)
    if unlisted:
        raise InputError(f"Atlas values {unlisted[:10]} have no row in the labels table.")
    absent = sorted(listed - present)
    if absent:
        raise InputError(f"Labels table indices {absent[:10]} do not occur in the atlas image.")
    resampled = False
    same_grid = atlas_img.shape[:3] == ref_img.shape[:3] and np.allclose(
        atlas_img.affine, ref_img.affine, atol=1e-3)
    if not same_grid:
        from nilearn.image import resample_to_img

        atlas_img = resample_to_img(
            nb.Nifti1Image(np.round(data).astype(np.int32), atlas_img.affine), ref_img,
            interpolation="nearest", force_resample=True, copy_header=True,
        )
        resampled = True
    out = np.round(np.asanyarray(atlas_img.dataobj)).astype(np.int32)
    lost = sorted(listed - set(np.unique(out).tolist()))
    if lost:
        names = labels.set_index("index").loc[lost, "name"].tolist()
        raise InputError(
            f"Atlas regions {names[:10]} vanish on the template grid: the atlas does not "
            "cover the template's field of view (is it in the template's space?)."
        )
    return nb.Nifti1Image(out, ref_img.affine), resampled


def _check_data(data: np.ndarray) -> np.ndarray:
    if data.ndim != 4:
        raise InputError(f"Expected a 4D BOLD series, got shape {data.shape}.")
    return data


def weighted_mean_series(data: np.ndarray, weights: np.ndarray, *,
                         names=None) -> np.ndarray:
    """Weighted mean time series of several regions.

    Voxels whose series is constant over time (zero outside the data's brain mask, for
    instance) carry no signal and are left out; the remaining weights are renormalised.

    Parameters
    ----------
    data : ndarray (X, Y, Z, T)
        BOLD series.
    weights : ndarray (X, Y, Z) or (X, Y, Z, K)
        Non-negative weights per region on the same grid.
    names : list of str, optional
        Region names, for error messages.

    Returns
    -------
    ndarray (T, K)

    Raises
    ------
    InputError
        Grid mismatch, or a region whose weighted voxels all have constant series.
    """
    data = _check_data(data)
    weights = weights[..., None] if weights.ndim == 3 else weights
    if weights.shape[:3] != data.shape[:3]:
        raise InputError(
            f"Weight maps {weights.shape[:3]} and BOLD {data.shape[:3]} are not on one grid."
        )
    k = weights.shape[3]
    names = list(names) if names is not None else [f"region {i}" for i in range(k)]
    support = np.any(weights > 0, axis=3)
    ts = data[support].astype(np.float64)  # (V, T)
    varying = ts.std(axis=1) > 0
    w = weights[support].astype(np.float64) * varying[:, None]  # (V, K)
    total = w.sum(axis=0)
    empty = [names[i] for i in np.flatnonzero(total <= 0)]
    if empty:
        raise InputError(
            f"Regions {empty} cover no voxel with a varying BOLD signal (outside the brain "
            "mask or the field of view of this run); check the seeds and the registration."
        )
    return (ts.T @ w) / total


def label_mean_series(data: np.ndarray, labels: np.ndarray, indices) -> np.ndarray:
    """Mean series of each label of a discrete image (constant voxels left out).

    Parameters
    ----------
    data : ndarray (X, Y, Z, T)
    labels : ndarray (X, Y, Z) int
    indices : sequence of int
        Label values, one output column each.

    Returns
    -------
    ndarray (T, K)
    """
    data = _check_data(data)
    if labels.shape != data.shape[:3]:
        raise InputError(f"Labels {labels.shape} and BOLD {data.shape[:3]} grids differ.")
    out = np.empty((data.shape[3], len(indices)))
    for j, value in enumerate(indices):
        ts = data[labels == value].astype(np.float64)
        ts = ts[ts.std(axis=1) > 0]
        if len(ts) == 0:
            raise InputError(f"Atlas region {value} covers no voxel with a varying signal.")
        out[:, j] = ts.mean(axis=0)
    return out


def network_series(series: pd.DataFrame, networks: dict, *, weighting: str = "equal",
                   seed_weights: dict | None = None) -> pd.DataFrame:
    """Average seed series into network series.

    Parameters
    ----------
    series : pandas.DataFrame (T, seeds)
        One column per seed.
    networks : dict
        Seed name -> network name.
    weighting : {"equal", "voxel"}
        ``"equal"``: every seed of a network counts the same (the study's average of the
        seed series); ``"voxel"``: each seed weighted by its total voxel weight, so every
        voxel of the network counts the same.
    seed_weights : dict, optional
        Seed name -> total weight (needed for ``"voxel"``).

    Returns
    -------
    pandas.DataFrame (T, networks), networks in order of first appearance.
    """
    if weighting not in ("equal", "voxel"):
        raise InputError(f"network weighting must be 'equal' or 'voxel', got {weighting!r}.")
    if weighting == "voxel" and not seed_weights:
        raise InputError("'voxel' network weighting needs the seeds' total weights.")
    out = {}
    for net in dict.fromkeys(networks[s] for s in series.columns):
        members = [s for s in series.columns if networks[s] == net]
        w = np.array([seed_weights[s] if weighting == "voxel" else 1.0 for s in members])
        out[net] = series[members].to_numpy() @ (w / w.sum())
    return pd.DataFrame(out, index=series.index)


def primary_pair(network_names) -> tuple[str, str] | None:
    """The network pair reported first: (DMN, DeS) when both exist, else the first two."""
    names = list(network_names)
    if "DMN" in names and "DeS" in names:
        return ("DMN", "DeS")
    return (names[0], names[1]) if len(names) >= 2 else None


def weighted_centroid(weights: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the weighted centroid of a 3D weight map."""
    ijk = np.argwhere(weights > 0)
    w = weights[weights > 0].astype(float)
    centre = (ijk * w[:, None]).sum(axis=0) / w.sum()
    return affine[:3, :3] @ centre + affine[:3, 3]
