"""Seed and atlas weights on an image grid (nipype-free).

Partial-volume spheres, atlas labels on the BOLD grid, and warps of template-space weight
maps to the BOLD grid.

Sub-voxel seeds (docs/seeds.md): the template-space partial-volume weight map of a seed is
warped to the BOLD grid with linear interpolation, i.e. sampled at each BOLD voxel centre,
which gives partial-volume weights on the BOLD grid; series are the weighted mean (weights
renormalised to sum 1).  If the warped weights sum to less than :data:`MIN_WEIGHT` (a seed
falling between BOLD voxel centres), the seed falls back to the single BOLD voxel nearest to
its warped centre (located by warping a Gaussian blob centred on the seed, of width one BOLD
voxel, and taking its maximum) and ``fallback`` is set in the seed table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import nibabel as nb
import numpy as np
import numpy.typing as npt
import pandas as pd

from bids_dfc.connectivity.seeds import check_seeds_in_fov
from bids_dfc.errors import InputError
from bids_dfc.preproc.ants_utils import node_tmpdir

PathLike = str | os.PathLike


def sphere_weights(center_mm: npt.ArrayLike, radius_mm: float, affine: np.ndarray,
                   shape: Sequence[int], *, supersample: int = 7) -> np.ndarray:
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


def seed_weight_maps(seeds: pd.DataFrame, ref_img: nb.spatialimages.SpatialImage, *,
                     supersample: int = 7) -> nb.Nifti1Image:
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
        for r in cast("Iterable[Any]", seeds.itertuples())  # fields of float columns
    ]
    out = nb.Nifti1Image(np.stack(maps, axis=-1), ref_img.affine)
    out.set_data_dtype(np.float32)
    return out


def atlas_to_grid(atlas_img: nb.spatialimages.SpatialImage, labels: pd.DataFrame,
                  ref_img: nb.spatialimages.SpatialImage) -> tuple[nb.Nifti1Image, bool]:
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


def weighted_centroid(weights: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the weighted centroid of a 3D weight map."""
    ijk = np.argwhere(weights > 0)
    w = weights[weights > 0].astype(float)
    centre = (ijk * w[:, None]).sum(axis=0) / w.sum()
    return affine[:3, :3] @ centre + affine[:3, 3]


#: warped weights summing to less than this (in BOLD voxels) trigger the nearest-voxel fallback
MIN_WEIGHT = 0.05


def _warp_volume(vol: np.ndarray, src_affine: np.ndarray, reference: PathLike,
                 transforms: Sequence[PathLike], interp: str, cwd: PathLike) -> np.ndarray:
    """Warp one 3D array (on ``src_affine``'s grid) onto ``reference`` with antspyx."""
    import ants

    ref = cast(nb.Nifti1Image, nb.load(reference))
    if not transforms:  # same space: resample only (nothing to do on the same grid)
        if vol.shape == ref.shape[:3] and np.allclose(src_affine, ref.affine, atol=1e-3):
            return vol.astype(np.float64)
        from nilearn.image import resample_img

        out = resample_img(
            nb.Nifti1Image(vol.astype(np.float32), src_affine), target_affine=ref.affine,
            target_shape=ref.shape[:3], interpolation="linear" if interp == "linear"
            else "nearest", force_resample=True, copy_header=True,
        )
        return np.asarray(out.dataobj, dtype=np.float64)
    src = Path(cwd) / "_warp_in.nii.gz"
    nb.save(nb.Nifti1Image(vol.astype(np.float32), src_affine), src)
    with node_tmpdir(cwd):
        warped = ants.apply_transforms(
            fixed=ants.image_read(str(reference)), moving=ants.image_read(str(src)),
            transformlist=list(transforms), interpolator=interp,
            whichtoinvert=[False] * len(transforms),
        )
        return warped.numpy().astype(np.float64)


def _mask_on(mask_file: PathLike, ref: nb.Nifti1Image, cwd: PathLike) -> np.ndarray:
    """Boolean brain mask on ``ref``'s grid (nearest-neighbour resampled when needed)."""
    img = cast(nb.Nifti1Image, nb.load(mask_file))
    data = np.asarray(img.dataobj)
    if data.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-3):
        # ref was loaded from a file, so it has a file name
        data = _warp_volume(data > 0, img.affine, cast(str, ref.get_filename()), [],
                            "nearest", cwd)
    return data > 0


def _gaussian_blob(center: npt.ArrayLike, sigma_mm: float,
                   img: nb.spatialimages.SpatialImage) -> np.ndarray:
    shape = img.shape[:3]
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    return np.exp(-np.sum((world - np.asarray(center)) ** 2, axis=-1) / (2 * sigma_mm**2))


def warp_weights_core(maps_file: PathLike, seeds: pd.DataFrame, reference: PathLike,
                      transforms: Sequence[PathLike], mask_file: PathLike,
                      cwd: PathLike) -> tuple[nb.Nifti1Image, pd.DataFrame]:
    """Bring template-space seed weight maps onto the BOLD grid and describe each seed.

    Returns the 4D BOLD-grid weight image and a table with, per seed, ``index`` (its
    volume in the image, from 1, as in a BIDS dseg.tsv), ``name``, ``network``, the
    template coordinates and radius, ``n_voxels``
    (voxels with a weight > 0), ``effective_voxels`` (sum of weights), ``volume_mm3``,
    ``fraction_in_mask`` (weight inside the BOLD brain mask / total), ``fallback`` and the
    weighted centroid on the BOLD grid (``centre_x/y/z``, scanner mm).
    """
    maps = cast(nb.Nifti1Image, nb.load(maps_file))
    ref = cast(nb.Nifti1Image, nb.load(reference))
    data = np.asarray(maps.dataobj, dtype=np.float32)
    if data.ndim == 3:
        data = data[..., None]
    mask = _mask_on(mask_file, ref, cwd)
    zooms = np.asarray(ref.header.get_zooms()[:3], dtype=float)
    out = np.zeros(ref.shape[:3] + (data.shape[3],), dtype=np.float32)
    rows = []
    for k, seed in enumerate(cast("Iterable[Any]", seeds.itertuples())):  # seeds table rows
        w = np.clip(_warp_volume(data[..., k], maps.affine, reference, transforms, "linear",
                                 cwd), 0, None)
        fallback = bool(w.sum() < MIN_WEIGHT)
        if fallback:
            blob = _gaussian_blob((seed.x, seed.y, seed.z), zooms.max(), maps)
            located = _warp_volume(blob, maps.affine, reference, transforms, "linear", cwd)
            if located.max() <= 0:
                raise InputError(
                    f"Seed {seed.name!r} lands outside the BOLD field of view after warping; "
                    "check the registration in the report or the seed coordinates."
                )
            w = np.zeros_like(w)
            w[np.unravel_index(np.argmax(located), located.shape)] = 1.0
        out[..., k] = w
        total = float(w.sum())
        centre = weighted_centroid(w, ref.affine)
        rows.append({
            "index": k + 1, "name": seed.name, "network": seed.network, "x": seed.x, "y": seed.y,
            "z": seed.z, "radius_mm": seed.radius_mm, "n_voxels": int((w > 0).sum()),
            "effective_voxels": round(total, 4),
            "volume_mm3": round(total * float(np.prod(zooms)), 2),
            "fraction_in_mask": round(float(w[mask].sum() / total), 4),
            "fallback": fallback,
            "centre_x": round(centre[0], 2), "centre_y": round(centre[1], 2),
            "centre_z": round(centre[2], 2),
        })
    img = nb.Nifti1Image(out, ref.affine)
    img.set_data_dtype(np.float32)
    return img, pd.DataFrame(rows)
