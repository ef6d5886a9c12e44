"""Small helpers that make antspyx behave inside nipype nodes.

antspyx writes its temporary files (registration outputs, Atropos posteriors) through
:func:`tempfile.mktemp`, reads its thread count from ITK's environment and takes its random
seed from a module-level setting.  Inside a nipype node each of these must be pointed at the
node itself, so that parallel nodes never share temporary files and reruns are reproducible.

The public API (stable, imported by the BOLD interfaces too):

- :class:`node_tmpdir` -- context manager pointing ``TMPDIR`` at the node's working directory;
- :class:`ants_threads` -- set ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` (call or ``with``);
- :class:`ants_seed` -- fix the random seed antspyx passes to ``antsRegistration``;
- :func:`ants_seed_value` -- the ``--random-seed`` value antsRegistration gets for our seed;
- :func:`read_finite_image` -- read an image with antspyx, refusing NaN/inf voxels;
- :func:`head_mask` -- foreground (head) mask of a structural image (and its helpers);
- :func:`write_composite_transform` -- an ``antsApplyTransforms`` list as one ITK
  composite ``.h5`` (fMRIPrep's ``*_mode-image_xfm.h5`` format);
- :func:`invert_affine` -- the inverse of an ITK affine transform file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from scipy import ndimage

from bids_dfc.errors import InputError

if TYPE_CHECKING:
    import ants
    import nibabel as nib

__all__ = [
    "node_tmpdir",
    "ants_threads",
    "ants_seed",
    "ants_seed_value",
    "read_finite_image",
    "write_composite_transform",
    "invert_affine",
    "head_mask",
    "largest_component",
    "fill_holes",
    "otsu_threshold",
]

_THREADS_VAR = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


class node_tmpdir:  # noqa: N801 - used like a function, as contextlib managers are
    """Point ``TMPDIR`` (and :mod:`tempfile`'s cached default) at a directory.

    Parameters
    ----------
    path : str or Path, optional
        Directory for temporary files; default: the current working directory, which
        is the node's own folder when called from a nipype interface's ``_run_interface``.

    Examples
    --------
    >>> import tempfile
    >>> with node_tmpdir("/tmp") as d:
    ...     tempfile.gettempdir() == d
    True
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = str(Path(path if path is not None else os.getcwd()).absolute())
        self._old_env: str | None = None
        self._old_cached: str | None = None

    def __enter__(self) -> str:
        Path(self.path).mkdir(parents=True, exist_ok=True)
        self._old_env = os.environ.get("TMPDIR")
        self._old_cached = tempfile.tempdir
        os.environ["TMPDIR"] = self.path
        tempfile.tempdir = self.path
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._old_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = self._old_env
        tempfile.tempdir = self._old_cached


class ants_threads:  # noqa: N801
    """Set the number of ITK threads antspyx uses.

    Works both as a plain call (the setting stays) and as a context manager (the previous
    value is restored on exit).  ITK reads the variable once per process, when antspyx first
    runs a filter, and keeps that thread count: set it before the first antspyx call of a
    process (a nipype node running in a fresh worker does so).  For bit-identical reruns use
    one thread from the start (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1`` in the environment).

    Parameters
    ----------
    n : int
        Number of threads, >= 1.

    Examples
    --------
    >>> import os
    >>> with ants_threads(1):
    ...     os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"]
    '1'
    """

    def __init__(self, n: int) -> None:
        n = int(n)
        if n < 1:
            raise InputError(f"The number of ANTs threads must be >= 1, got {n}.")
        self.n = n
        self._old = os.environ.get(_THREADS_VAR)
        os.environ[_THREADS_VAR] = str(n)

    def __enter__(self) -> int:
        return self.n

    def __exit__(self, *exc: object) -> None:
        if self._old is None:
            os.environ.pop(_THREADS_VAR, None)
        else:
            os.environ[_THREADS_VAR] = self._old


def ants_seed_value(seed: int) -> int:
    """The ``--random-seed`` passed to antsRegistration for our ``seed`` (any int >= 0).

    ANTs takes 0 as "no seed" (seeded from the clock: a different result on every run), and
    our default ``--random-seed`` is 0, so every seed is shifted by one.

    Examples
    --------
    >>> ants_seed_value(0), ants_seed_value(41)
    (1, 42)
    """
    return int(seed) % 2147483646 + 1


class ants_seed:  # noqa: N801
    """Make ``ants.registration`` pass ``--random-seed`` to antsRegistration.

    antspyx takes the seed from ``ants.config._random_seed`` (its ``registration`` function
    silently ignores a ``random_seed`` keyword).  The value passed is :func:`ants_seed_value`
    of ``seed`` (never 0, which ANTs would treat as unseeded): every bids_dfc seed is an int
    >= 0 and means the same in the anatomical and the BOLD steps.

    Parameters
    ----------
    seed : int
        Seed for the metric's random sampling (``--random-seed``).
    """

    def __init__(self, seed: int) -> None:
        import ants.config

        self._config = ants.config
        self.seed = ants_seed_value(seed)
        self._old = ants.config._random_seed

    def __enter__(self) -> int:
        self._config._random_seed = self.seed
        return self.seed

    def __exit__(self, *exc: object) -> None:
        self._config._random_seed = self._old


def read_finite_image(path: str | os.PathLike, *, sanitise: bool = False) -> ants.ANTsImage:
    """Read an image with antspyx and check it holds only finite values.

    Parameters
    ----------
    path : str or Path
        Image file.
    sanitise : bool
        If True, NaN/inf voxels are set to 0 (and a warning is issued) instead of raising.

    Returns
    -------
    ants.ANTsImage
        The image as float32.

    Raises
    ------
    InputError
        If the file holds NaN or infinite voxels and ``sanitise`` is False.
    """
    import warnings

    import ants
    import nibabel as nib

    try:
        raw = np.asanyarray(cast("nib.Nifti1Image", nib.load(str(path))).dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad files
        raise InputError(f"Cannot read {path} as a NIfTI image: {exc}") from exc
    if raw.ndim != 3:
        raise InputError(f"{path} must be a 3-D image, it has shape {raw.shape}.")
    # ITK's NIfTI reader turns NaN into 0 silently: check with nibabel first
    bad = ~np.isfinite(raw)
    n_bad = int(bad.sum())
    if n_bad and not sanitise:
        raise InputError(
            f"{path} has {n_bad} NaN or infinite voxels; fix or re-export the image "
            "(e.g. replace them with 0) and rerun."
        )
    img = ants.image_read(str(path), pixeltype="float")
    if n_bad:
        warnings.warn(f"{path}: {n_bad} NaN/inf voxels set to 0.", stacklevel=2)
        data = img.numpy()
        data[bad] = 0
        img = img.new_image_like(data)
    return img


def superior_mm(img: ants.ANTsImage) -> np.ndarray:
    """Superior coordinate (mm, ITK/LPS physical space: +z is superior) of every voxel.

    Built by broadcasting one axis at a time: a single float32 volume, no (3, N) grids.
    """
    row = np.asarray(img.direction)[2] * np.asarray(img.spacing)
    axes = [np.arange(n, dtype=np.float32) * np.float32(row[k]) for k, n in enumerate(img.shape)]
    return (np.float32(img.origin[2]) + axes[0][:, None, None] + axes[1][None, :, None]
            + axes[2][None, None, :])


def head_mask(img: ants.ANTsImage, *, fov_mm: float | None = None) -> ants.ANTsImage:
    """Foreground (head) mask of a T1w by Otsu thresholding, largest component, holes filled.

    With ``fov_mm`` the mask keeps only the ``fov_mm`` mm below the top of the head (drops
    the neck, like FSL's robustfov).

    Parameters
    ----------
    img : ants.ANTsImage
        Structural image (any orientation; "superior" is taken from its header).
    fov_mm : float, optional
        Height of the kept field of view.

    Returns
    -------
    ants.ANTsImage
        Float image with 1 inside the head.
    """
    data = img.numpy()
    positive = data[data > 0]
    if positive.size == 0:
        raise InputError("The image is empty (no positive voxel).")
    hi = np.percentile(positive, 99.5)
    # zeros included: on an already skull-stripped image Otsu then splits background from
    # brain (on positive voxels only it would split CSF/GM from WM)
    thr = otsu_threshold(np.clip(data[np.isfinite(data)], 0, hi))
    fg = largest_component(ndimage.binary_closing(data > 0.5 * thr, iterations=2))
    fg = fill_holes(fg)
    fg = img.new_image_like(fg.astype("float32"))
    if fov_mm is not None:
        z = superior_mm(img)
        top = z[fg.numpy() > 0].max()
        fg = fg.new_image_like(fg.numpy() * (z > top - fov_mm))
    return fg


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 6-connected component of a boolean array (the array itself if <= 1)."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill 3D holes, then 2D holes slice by slice along each axis (a head mask is open
    where the field of view cuts the neck, so its dark inside is not a closed 3D hole)."""
    out = ndimage.binary_fill_holes(mask)
    filled = out.copy()
    for axis in range(3):
        moved = np.moveaxis(out, axis, 0)
        slices = np.stack([ndimage.binary_fill_holes(sl) for sl in moved])
        filled |= np.moveaxis(slices, 0, axis)
    return filled


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximal between-class variance) of a 1-D sample."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between))])


def warp_to(moving: str | os.PathLike, fixed: str | os.PathLike,
            transforms: Sequence[str | os.PathLike] | None, out_file: str | os.PathLike, *,
            interpolator: str = "linear") -> Path:
    """Resample ``moving`` into ``fixed``'s grid through ``transforms`` (apply order)."""
    import ants

    transforms = [str(t) for t in (transforms or [])]
    with node_tmpdir(Path(out_file).parent):
        fixed_img = ants.image_read(str(fixed))
        moving_img = ants.image_read(str(moving))
        if fixed_img.dimension == 4:
            fixed_img = ants.slice_image(fixed_img, axis=3, idx=0)
        if moving_img.dimension == 4:
            moving_img = ants.slice_image(moving_img, axis=3, idx=0)
        if transforms:
            out = ants.apply_transforms(fixed=fixed_img, moving=moving_img,
                                        transformlist=transforms, interpolator=interpolator,
                                        whichtoinvert=[False] * len(transforms))
        else:
            out = ants.resample_image_to_target(moving_img, fixed_img, interp_type=interpolator)
        ants.image_write(out, str(out_file))
    return Path(out_file)


def write_composite_transform(transforms: Sequence[str | os.PathLike],
                              out_file: str | os.PathLike) -> Path:
    """Write an ``antsApplyTransforms`` transform list as one ITK composite ``.h5``.

    ``transforms`` is in ``ants.apply_transforms`` order (the last one is applied first):
    affine ``.mat``/``.txt`` files and displacement-field ``.nii.gz`` warps. The file is
    written by ITK's own HDF5 transform writer, the format of antsRegistration's
    ``--write-composite-transform`` and so of fMRIPrep's ``*_mode-image_xfm.h5``; applied
    through ``ants.apply_transforms`` it maps exactly as the list does.
    """
    import ants

    loaded = [ants.transform_from_displacement_field(ants.image_read(str(path)))
              if str(path).endswith((".nii", ".nii.gz")) else ants.read_transform(str(path))
              for path in transforms]
    out = Path(out_file)
    ants.write_transform(ants.compose_ants_transforms(loaded), str(out))
    return out


def invert_affine(in_file: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """Write the inverse of an ITK affine transform (``.txt`` or ``.mat``) as ``.mat``
    (fMRIPrep's ``from-boldref_to-T1w`` coregistration -> the T1w-to-boldref direction that
    ``ants.apply_transforms`` lists take)."""
    import ants

    out = Path(out_file)
    ants.write_transform(ants.read_transform(str(in_file)).invert(), str(out))
    return out
