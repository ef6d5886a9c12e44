"""Spatial steps of the functional workflow around motion correction (antspyx + numpy).

* :func:`epi_mask` -- brain mask of a BOLD reference from its intensities;
* :func:`coregister` -- rigid BOLD reference <-> T1w registration with a failure check;
* :func:`project_anat` -- T1w brain mask and tissue maps brought onto the BOLD grid,
  eroded white-matter and CSF masks for aCompCor;
* :func:`template_sampler` / :func:`resample_to_template` -- every volume to template space
  in a single interpolation (head motion + coregistration + normalisation combined).

All matrices are RAS world millimetres; transforms written to disk are ITK ``.mat`` files in
the point-map convention of ``ants.apply_transforms``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from bids_dfc.errors import BidsDfcError, RegistrationError
from bids_dfc.preproc.ants_utils import ants_seed_value, largest_component
from bids_dfc.preproc.motion import (
    _init_worker,
    read_ants_affine,
    to_ants,
    write_ants_affine,
)
from bids_dfc.preproc.workers import spawn_pool

if TYPE_CHECKING:
    import nibabel as nb

PathLike = str | os.PathLike

#: coregistration settings: iterations, shrink factors, smoothing sigmas, sampling, step
COREG_SETTINGS = {
    "default": ("200x100x50", "4x2x1", "2x1x0", 0.3, 0.1),
    "sloppy": ("100x50", "4x2", "2x1", 0.25, 0.1),
}
#: smallest Dice between the BOLD brain mask and the coregistered T1w brain mask accepted
MIN_COREG_DICE = 0.6


def epi_mask(ref: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Brain mask of a mean/reference EPI volume from its intensities (BET's role).

    ``nilearn.masking.compute_epi_mask`` (the histogram's first deep minimum between
    background and brain, with opening and the largest connected component), then holes
    filled.
    """
    import nibabel as nb
    from nilearn.masking import compute_epi_mask

    data = np.asarray(ref, dtype=np.float32)
    if (data > 0).sum() < 10:
        raise BidsDfcError("the BOLD reference volume is empty (all voxels <= 0)")
    mask = compute_epi_mask(nb.Nifti1Image(data, affine), opening=2).get_fdata() > 0
    return ndi.binary_fill_holes(largest_component(mask))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two binary arrays (0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / total) if total else 0.0


def _world_box(shape: Sequence[int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)], dtype=float)
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    return world.min(0), world.max(0)


def boxes_overlap(shape_a: Sequence[int], affine_a: np.ndarray, shape_b: Sequence[int],
                  affine_b: np.ndarray) -> bool:
    """Whether the world bounding boxes of two grids intersect."""
    lo_a, hi_a = _world_box(shape_a, affine_a)
    lo_b, hi_b = _world_box(shape_b, affine_b)
    return bool(np.all(hi_a >= lo_b) and np.all(hi_b >= lo_a))


def coregister(boldref: np.ndarray, bold_affine: np.ndarray, bold_mask: np.ndarray,
               t1w_brain: np.ndarray, t1w_affine: np.ndarray, t1w_mask: np.ndarray, *,
               out_dir: PathLike, source: str = "BOLD", sloppy: bool = False, seed: int,
               min_dice: float = MIN_COREG_DICE) -> dict:
    """Rigid registration of the BOLD reference to the skull-stripped T1w (Mattes MI).

    The BOLD reference is the fixed image (its small grid keeps the metric cheap); the
    search starts from the alignment of the two brains' centres of mass.  The result is
    checked: the T1w brain mask brought onto the BOLD grid must overlap the BOLD brain
    mask with a Dice of at least ``min_dice``, else :class:`RegistrationError`.

    Returns
    -------
    dict
        ``anat2boldref`` / ``boldref2anat`` (``.mat`` paths, ``ants.apply_transforms``
        point maps: fixed BOLD <- moving T1w, and fixed T1w <- moving BOLD), ``matrix``
        (RAS BOLD-world -> T1w-world), ``dice``, ``header_overlap`` (bool).
    """
    import nibabel as nb

    overlap = boxes_overlap(np.shape(boldref), bold_affine, np.shape(t1w_brain), t1w_affine)
    if not overlap:
        warnings.warn(f"{source}: the BOLD and T1w fields of view do not overlap in world "
                      "coordinates (inconsistent headers?); starting the coregistration "
                      "from the brains' centres of mass.", stacklevel=2)
    bmask = np.asarray(bold_mask, bool)
    fixed = os.path.join(str(out_dir), "coreg_fixed.nii")
    moving = os.path.join(str(out_dir), "coreg_moving.nii")
    nb.save(nb.Nifti1Image(np.where(ndi.binary_dilation(bmask, iterations=1), boldref, 0.0)
                           .astype(np.float32), bold_affine), fixed)
    nb.save(nb.Nifti1Image(np.where(np.asarray(t1w_mask) > 0, t1w_brain, 0.0)
                           .astype(np.float32), t1w_affine), moving)
    task = {"fixed": fixed, "moving": moving, "prefix": os.path.join(str(out_dir), "coreg_"),
            "setting": COREG_SETTINGS["sloppy" if sloppy else "default"], "seed": int(seed)}
    # a fresh single-threaded process: ITK fixes its thread count at first use and a
    # multi-threaded Mattes metric does not give bit-identical results from run to run
    with spawn_pool(1, initializer=_init_worker, initargs=(1,)) as pool:
        mat = pool.submit(_coreg_worker, task).result()  # BOLD-world -> T1w-world
    for path in (fixed, moving):
        os.unlink(path)
    anat2bold = write_ants_affine(mat, os.path.join(str(out_dir), "anat2boldref_xfm.mat"))
    bold2anat = write_ants_affine(np.linalg.inv(mat),
                                  os.path.join(str(out_dir), "boldref2anat_xfm.mat"))
    t1mask_bold = resample_to_grid(np.asarray(t1w_mask, np.float32), t1w_affine, [anat2bold],
                                   np.shape(boldref), bold_affine) > 0.5
    score = dice(t1mask_bold, bmask)
    if score < min_dice:
        raise RegistrationError(
            f"{source}: BOLD -> T1w coregistration failed: the T1w brain mask overlaps the "
            f"BOLD brain mask with Dice {score:.2f} < {min_dice} after registration"
            + ("" if overlap else " (the images did not overlap in world space at all)")
            + ". Check that the run and the T1w belong to the same participant and that "
              "their NIfTI orientation headers are right.")
    return {"anat2boldref": anat2bold, "boldref2anat": bold2anat, "matrix": mat,
            "dice": score, "header_overlap": overlap}


def _coreg_worker(task: dict) -> np.ndarray:
    """Worker: the rigid Mattes-MI antsRegistration of :func:`coregister`, from files."""
    import ants
    import nibabel as nb
    from ants.internal import get_pointer_string

    fixed_img, moving_img = (cast("nb.Nifti1Image", nb.load(task["fixed"])),
                             cast("nb.Nifti1Image", nb.load(task["moving"])))
    fixed = to_ants(fixed_img.get_fdata(dtype=np.float32), fixed_img.affine)
    moving = to_ants(moving_img.get_fdata(dtype=np.float32), moving_img.affine)
    iters, shrink, sigmas, rate, step = task["setting"]
    fs, ms = get_pointer_string(fixed), get_pointer_string(moving)
    prefix = task["prefix"]
    args = ["--dimensionality", "3", "--float", "1", "--collapse-output-transforms", "1",
            "--output", prefix, "--interpolation", "Linear",
            "--winsorize-image-intensities", "[0.005,0.995]",
            "--initial-moving-transform", f"[{fs},{ms},1]",
            "--transform", f"Rigid[{step}]",
            "--metric", f"Mattes[{fs},{ms},1,32,Regular,{rate}]",
            "--convergence", f"[{iters},1e-7,10]", "--shrink-factors", shrink,
            "--smoothing-sigmas", f"{sigmas}vox",
            "--random-seed", str(ants_seed_value(task["seed"])), "--verbose", "0"]
    ants.registration(args, None)
    mat = read_ants_affine(prefix + "0GenericAffine.mat")
    os.unlink(prefix + "0GenericAffine.mat")
    return mat


def resample_to_grid(data: np.ndarray, affine: np.ndarray, transforms: Sequence[PathLike],
                     shape: Sequence[int], ref_affine: np.ndarray,
                     interpolator: str = "linear") -> np.ndarray:
    """Resample a 3-D array onto another grid with ``ants.apply_transforms``."""
    import ants

    ref = to_ants(np.zeros(tuple(shape)[:3], np.float32), ref_affine)
    out = ants.apply_transforms(ref, to_ants(data, affine), list(transforms),
                                interpolator=interpolator)
    return out.numpy()


def _erode_mm(mask: np.ndarray, zooms: npt.ArrayLike, mm: float) -> np.ndarray:
    """Voxels farther than ``mm`` from the mask's edge (distance transform on its box)."""
    if mm <= 0 or not mask.any():
        return mask
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - 1, 0)
    hi = np.minimum(idx.max(0) + 2, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = np.zeros(mask.shape, bool)
    # padded with background, so the grid's own edge counts as the mask's edge
    dist = ndi.distance_transform_edt(np.pad(mask[box], 1), sampling=zooms)
    out[box] = dist[1:-1, 1:-1, 1:-1] > mm
    return out


def project_anat(t1w_mask: np.ndarray, tpms: Sequence[np.ndarray | None],
                 t1w_affine: np.ndarray, anat2boldref: list, shape: Sequence[int],
                 bold_affine: np.ndarray, *,
                 wm_erode_mm: float = 3.0, csf_erode_mm: float = 1.5,
                 gm_exclude_mm: float = 2.0, min_voxels: int = 5) -> dict:
    """T1w brain mask and eroded WM / CSF masks on the BOLD grid.

    WM and CSF are the voxels with probability > 0.9 in T1w space, eroded by
    ``wm_erode_mm`` / ``csf_erode_mm`` (distance to the tissue's edge), minus every voxel
    within ``gm_exclude_mm`` of grey matter (GM probability > 0.05; as fMRIPrep does, so
    that thin CSF such as the interhemispheric fissure, blurred with the cortex beside it
    by the BOLD point spread, cannot turn a network's own signal into a CompCor
    component), resampled linearly onto the BOLD grid and thresholded at 0.99 (a BOLD
    voxel entirely inside the eroded tissue), then restricted to the BOLD brain mask.
    When fewer than ``min_voxels`` survive, the BOLD-space threshold is relaxed (0.9, 0.75,
    0.5) and the value used is reported.

    Parameters
    ----------
    tpms : sequence of arrays
        ``[GM, WM, CSF]`` probability maps on the T1w grid (GM may be None: then no GM
        exclusion).
    """
    zooms = np.sqrt((t1w_affine[:3, :3] ** 2).sum(0))
    xfms = [anat2boldref] if isinstance(anat2boldref, (str, os.PathLike)) else anat2boldref
    brain = resample_to_grid(np.asarray(t1w_mask, np.float32), t1w_affine, xfms,
                             shape, bold_affine) > 0.5
    near_gm = None
    if tpms[0] is not None and gm_exclude_mm > 0:
        near_gm = ndi.distance_transform_edt(np.asarray(tpms[0]) <= 0.05,
                                             sampling=zooms) <= gm_exclude_mm
    out: dict[str, np.ndarray | float] = {"brain": brain}
    for name, tpm, erode in (("wm", tpms[1], wm_erode_mm), ("csf", tpms[2], csf_erode_mm)):
        tissue = _erode_mm(np.asarray(tpm) > 0.9, zooms, erode)
        if near_gm is not None:
            tissue &= ~near_gm
        frac = resample_to_grid(tissue.astype(np.float32), t1w_affine, xfms, shape,
                                bold_affine)
        for thr in (0.99, 0.9, 0.75, 0.5):
            mask = (frac >= thr) & brain
            if mask.sum() >= min_voxels:
                break
        out[name] = mask
        out[f"{name}_threshold"] = thr
    return out


def template_sampler(template_ref: np.ndarray, template_affine: np.ndarray,
                     boldref_affine: np.ndarray, transforms: Sequence[PathLike],
                     out_dir: PathLike, template_mask: np.ndarray | None = None) -> dict:
    """BOLD-reference world coordinates of the template voxels (one composed field).

    ``transforms`` are the ``ants.apply_transforms`` list from template to BOLD reference
    (``anat2std_xfm + boldref2anat_xfm``).  Only the voxels of ``template_mask`` (or all)
    are kept.
    """
    import ants

    fixed = to_ants(np.asarray(template_ref, np.float32), template_affine)
    moving = to_ants(np.zeros((2, 2, 2), np.float32), boldref_affine)
    field_file = ants.apply_transforms(fixed, moving, list(transforms),
                                       compose=os.path.join(str(out_dir), "tpl2bold_"))
    field = ants.image_read(field_file).numpy()  # (X, Y, Z, 3) LPS displacement
    os.unlink(field_file)
    shape = np.shape(template_ref)[:3]
    inside = (np.ones(shape, bool) if template_mask is None
              else np.asarray(template_mask) > 0)
    idx = np.argwhere(inside)
    world = idx @ template_affine[:3, :3].T + template_affine[:3, 3]
    disp = field[inside] * np.array([-1.0, -1.0, 1.0])
    return {"points": world + disp, "mask": inside}


def resample_to_template(bold: np.ndarray, bold_affine: np.ndarray, matrices: np.ndarray,
                         points: np.ndarray, order: int = 3) -> np.ndarray:
    """Sample every volume at the template points moved by that volume's head motion.

    Parameters
    ----------
    bold : ndarray (X, Y, Z, T)
        Raw (dummy-dropped) run.
    matrices : ndarray (T, 4, 4)
        Reference-world -> volume-world motion matrices.
    points : ndarray (N, 3)
        BOLD-reference world coordinates of the template voxels.

    Returns
    -------
    ndarray (T, N) float32
    """
    inv_aff = np.linalg.inv(bold_affine)
    out = np.empty((bold.shape[-1], len(points)), np.float32)
    homog = np.column_stack([points, np.ones(len(points))])
    for t in range(bold.shape[-1]):
        vox = (inv_aff @ matrices[t] @ homog.T)[:3]
        vol = np.asarray(bold[..., t], dtype=np.float32)
        out[t] = ndi.map_coordinates(vol, vox, order=order, mode="constant", cval=0.0,
                                     prefilter=order > 1)
    np.maximum(out, 0.0, out=out)
    return out
