"""Head-motion correction of a BOLD run with antspyx, one rigid registration per volume.

Conventions (the same as the demo truth, ``docs/demo.md``):

* matrices are 4x4, RAS+ world millimetres; the matrix of volume ``i`` maps a point of the
  reference volume's world to where that point of the head sits in volume ``i``
  (antsRegistration's fixed -> moving point map, with the reference as fixed image);
* the six parameters are ``trans_x, trans_y, trans_z`` (mm) and ``rot_x, rot_y, rot_z``
  (radians) of ``p -> R (p - c) + c + t`` with ``R = Rz @ Ry @ Rx`` and ``c`` the centre of
  the BOLD grid.

Speed: each volume is registered to the reference with a cheap two-level rigid setting
(mean squared difference on a 30 % regular sample inside the dilated brain mask, 30 then
15 iterations at half then full resolution).  Volumes are independent, so they are shared among
``n_jobs`` worker processes, each running ITK single-threaded with the same random seed:
the result does not depend on ``n_jobs``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

from bids_dfc.preproc.ants_utils import ants_seed_value
from bids_dfc.preproc.workers import spawn_pool

if TYPE_CHECKING:
    import ants
    import nibabel as nb

PathLike = str | os.PathLike

_LPS = np.diag([-1.0, -1.0, 1.0])

#: registration settings: (iterations per level, shrink factors, smoothing sigmas (voxels),
#: sampling rate, gradient step)
MC_SETTINGS = {
    "default": ("30x15", "2x1", "1x0", 0.3, 0.15),
    "sloppy": ("20x10", "2x1", "1x0", 0.3, 0.2),
}


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """``Rz(rz) @ Ry(ry) @ Rx(rx)`` for angles in radians.

    Examples
    --------
    >>> np.allclose(rotation_matrix(0, 0, np.pi / 2) @ [1, 0, 0], [0, 1, 0])
    True
    """
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def params_to_matrix(params: npt.ArrayLike, centre: npt.ArrayLike) -> np.ndarray:
    """4x4 matrix of ``p -> R (p - c) + c + t`` from ``(tx, ty, tz, rx, ry, rz)``."""
    params = np.asarray(params, dtype=float)
    rot = rotation_matrix(*params[3:])
    mat = np.eye(4)
    mat[:3, :3] = rot
    mat[:3, 3] = np.asarray(centre) + params[:3] - rot @ np.asarray(centre)
    return mat


def matrix_to_params(matrix: npt.ArrayLike, centre: npt.ArrayLike) -> np.ndarray:
    """The six parameters of a rigid 4x4 matrix about ``centre`` (inverse of
    :func:`params_to_matrix`, for ``|rot_y| < pi/2``).

    Examples
    --------
    >>> p = [1.0, -2.0, 0.5, 0.01, -0.02, 0.03]
    >>> np.allclose(matrix_to_params(params_to_matrix(p, [3, 4, 5]), [3, 4, 5]), p)
    True
    """
    matrix = np.asarray(matrix, dtype=float)
    rot = matrix[:3, :3]
    ry = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    rx = np.arctan2(rot[2, 1], rot[2, 2])
    rz = np.arctan2(rot[1, 0], rot[0, 0])
    centre = np.asarray(centre, dtype=float)
    trans = matrix[:3, 3] - centre + rot @ centre
    return np.concatenate([trans, [rx, ry, rz]])


def grid_centre(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World (RAS mm) coordinates of the centre of a grid."""
    centre = (np.asarray(shape[:3], dtype=float) - 1.0) / 2.0
    return affine[:3, :3] @ centre + affine[:3, 3]


def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """An ``ants.ANTsImage`` (float32) holding ``data`` on the grid of a NIfTI ``affine``."""
    import ants

    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    direction = _LPS @ affine[:3, :3] / spacing
    return ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32),
                           origin=[float(v) for v in _LPS @ affine[:3, 3]],
                           spacing=[float(v) for v in spacing], direction=direction)


def ants_to_ras(parameters: npt.ArrayLike, fixed_parameters: npt.ArrayLike) -> np.ndarray:
    """RAS 4x4 matrix of an ITK affine (``y = A (x - c) + c + t`` in LPS)."""
    par = np.asarray(parameters, dtype=float)
    mat = np.eye(4)
    mat[:3, :3] = par[:9].reshape(3, 3)
    centre = np.asarray(fixed_parameters, dtype=float)[:3]
    mat[:3, 3] = par[9:12] + centre - mat[:3, :3] @ centre
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ mat @ flip


def write_ants_affine(matrix: np.ndarray, path: PathLike) -> str:
    """Write a RAS 4x4 matrix (fixed-world -> moving-world point map) as an ITK ``.mat``."""
    import ants

    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps = flip @ np.asarray(matrix, dtype=float) @ flip
    tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                    matrix=lps[:3, :3], translation=lps[:3, 3],
                                    center=(0.0, 0.0, 0.0))
    ants.write_transform(tx, str(path))
    return str(path)


def read_ants_affine(path: PathLike) -> np.ndarray:
    """Read an ITK affine ``.mat`` file as a RAS 4x4 matrix."""
    import ants

    tx = ants.read_transform(str(path))
    return ants_to_ras(tx.parameters, tx.fixed_parameters)


def pick_reference(data: np.ndarray, n_candidates: int = 20) -> int:
    """Index of the volume (among the first ``n_candidates``) closest to their median.

    A single real volume makes a sharp motion-correction target; choosing the one most
    like the median of the first volumes avoids a volume caught mid-movement.
    """
    n = min(n_candidates, data.shape[-1])
    first = np.asarray(data[..., :n], dtype=np.float32)
    median = np.median(first, axis=-1)
    cost = ((first - median[..., None]) ** 2).reshape(-1, n).sum(0)
    return int(np.argmin(cost))


def register_rigid(fixed: ants.ANTsImage, moving: ants.ANTsImage, *, prefix: str,
                   metric: str = "MeanSquares", setting: tuple = MC_SETTINGS["default"],
                   fixed_mask: ants.ANTsImage | None = None,
                   seed: int, initial: str | None = None) -> np.ndarray:
    """Rigid antsRegistration of ``moving`` to ``fixed``; returns the RAS fixed->moving matrix.

    ``initial`` is an ITK transform file to start from; by default the images' geometric
    centres are aligned (identity on a shared grid, with the rotation centre in the middle).
    """
    import ants
    from ants.internal import get_pointer_string

    iterations, shrink, sigmas, rate, step = setting
    fix_s, mov_s = get_pointer_string(fixed), get_pointer_string(moving)
    bins = 1 if metric.upper() in ("GC", "MEANSQUARES") else 32
    init = initial if initial is not None else f"[{fix_s},{mov_s},0]"
    args = ["--dimensionality", "3", "--float", "1", "--collapse-output-transforms", "1",
            "--output", prefix, "--interpolation", "Linear", "--winsorize-image-intensities",
            "[0.005,0.995]", "--initial-moving-transform", init,
            "--transform", f"Rigid[{step}]",
            "--metric", f"{metric}[{fix_s},{mov_s},1,{bins},Regular,{rate}]",
            "--convergence", f"[{iterations},1e-6,10]", "--shrink-factors", shrink,
            "--smoothing-sigmas", f"{sigmas}vox", "--random-seed", str(ants_seed_value(seed)),
            "--verbose", "0"]
    if fixed_mask is not None:
        args += ["--masks", get_pointer_string(fixed_mask)]
    ants.registration(args, None)
    out = prefix + "0GenericAffine.mat"
    matrix = read_ants_affine(out)
    Path(out).unlink()
    return matrix


def _init_worker(threads: int) -> None:
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)


def _register_chunk(task: dict) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Worker: register volumes ``task['indices']`` of the run to the reference and resample
    them on the reference grid.  Everything is read from files (nothing ANTs is pickled)."""
    import ants
    import nibabel as nb

    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
    img = cast("nb.Nifti1Image", nb.load(task["bold_file"]))
    affine = img.affine
    ref = to_ants(np.asanyarray(cast("nb.Nifti1Image", nb.load(task["ref_file"])).dataobj),
                  affine)
    mask = to_ants(
        np.asanyarray(cast("nb.Nifti1Image", nb.load(task["mask_file"])).dataobj) > 0, affine)
    mats, vols = [], []
    for idx in task["indices"]:
        data = np.asarray(img.dataobj[..., idx], dtype=np.float32)
        moving = to_ants(data, affine)
        mat = register_rigid(ref, moving, prefix=os.path.join(task["tmpdir"], f"v{idx:05d}_"),
                             setting=task["setting"], fixed_mask=mask, seed=task["seed"],
                             metric="MeanSquares")
        xfm = write_ants_affine(mat, os.path.join(task["tmpdir"], f"v{idx:05d}.mat"))
        out = ants.apply_transforms(ref, moving, [xfm], interpolator="bSpline")
        Path(xfm).unlink()
        mats.append(mat)
        vols.append(np.maximum(out.numpy(), 0.0))
    return list(task["indices"]), np.stack(mats), np.stack(vols, axis=-1)


def motion_correct(bold_file: PathLike, ref_file: PathLike, mask_file: PathLike, *,
                   n_jobs: int = 1, sloppy: bool = False, seed: int,
                   tmpdir: PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Register every volume of ``bold_file`` rigidly to ``ref_file`` and resample it.

    Parameters
    ----------
    bold_file, ref_file, mask_file : str
        4-D run, 3-D reference on the same grid, brain mask restricting the metric.
    n_jobs : int
        Worker processes (each single-threaded).
    sloppy : bool
        Fewer iterations and samples (tests and demos only).
    seed : int
        Seed of the metric's sampling.

    Returns
    -------
    matrices : ndarray (T, 4, 4)
        RAS reference-world -> volume-world matrix of every volume.
    corrected : ndarray (X, Y, Z, T) float32
        The volumes resampled on the reference (cubic B-spline, clipped at 0).
    """
    import nibabel as nb

    n_vol = cast("nb.Nifti1Image", nb.load(bold_file)).shape[3]
    tmpdir = str(tmpdir or os.getcwd())
    setting = MC_SETTINGS["sloppy" if sloppy else "default"]
    n_jobs = max(1, min(int(n_jobs), n_vol))
    chunks = [list(range(start, n_vol, n_jobs)) for start in range(n_jobs)]
    tasks = [{"bold_file": str(bold_file), "ref_file": str(ref_file),
              "mask_file": str(mask_file), "indices": chunk, "setting": setting,
              "seed": int(seed), "tmpdir": tmpdir} for chunk in chunks]
    # always in fresh single-threaded processes: ITK fixes its thread count at first use,
    # so running in this process could use more threads and change the last digits
    with spawn_pool(n_jobs, initializer=_init_worker, initargs=(1,)) as pool:
        results = list(pool.map(_register_chunk, tasks))
    shape = cast("nb.Nifti1Image", nb.load(ref_file)).shape[:3]
    matrices = np.empty((n_vol, 4, 4))
    corrected = np.empty(tuple(shape) + (n_vol,), np.float32)
    for indices, mats, vols in results:
        matrices[indices] = mats
        corrected[..., indices] = vols
    return matrices, corrected
