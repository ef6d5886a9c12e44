"""Up-front checks of one input image (nipype-free): each returns the list of its problems.

Every problem is one line that names the file and says what to do; nothing raises, so the
up-front check (:mod:`bids_dfc.inputs.preflight`) reports every problem of every subject at
once. The same limits hold later inside the workflow (:mod:`bids_dfc.preproc.validate`,
:func:`bids_dfc.preproc.signal.sanitise_bold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nb
import numpy as np

from bids_dfc.preproc.signal import MIN_VOLUMES, detect_nonsteady

#: plausible voxel edge lengths (mm): outside them the header's units or zooms are wrong
BOLD_VOXEL_MM = (0.5, 10.0)
T1W_VOXEL_MM = (0.2, 6.0)
#: RepetitionTime above this is almost surely in milliseconds
MAX_TR_S = 100.0
#: largest fraction of NaN/inf values the preprocessing replaces by 0 (sanitise_bold)
MAX_NONFINITE = 0.01


@dataclass
class BoldFacts:
    """What the resource estimate needs of a run that passed its checks."""

    n_voxels: int
    n_volumes: int
    tr: float


def _load(path: Path, what: str) -> tuple[nb.Nifti1Image | None, list[str]]:
    try:
        img = cast(nb.Nifti1Image, nb.load(str(path)))
        img.header.get_data_shape()
    except Exception as exc:  # nibabel raises many types for corrupt files
        return None, [f"{path}: cannot read this {what} ({type(exc).__name__}: {exc}); it is "
                      "corrupt or not NIfTI: re-export it (e.g. dcm2niix)"]
    return img, []


def _geometry(img: nb.Nifti1Image, path: Path, what: str, limits: tuple[float, float]
              ) -> list[str]:
    """Orientation (qform/sform) and voxel-size problems."""
    hdr = img.header
    problems = []
    affine = img.affine
    codes = (int(hdr["sform_code"]), int(hdr["qform_code"]))
    if codes == (0, 0):
        problems.append(f"{path}: no orientation (sform_code and qform_code are both 0), so "
                        f"left and right are unknown; fix the {what}'s header at conversion")
    elif not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        problems.append(f"{path}: the {what}'s voxel-to-world matrix is singular or not "
                        "finite; fix its qform/sform at conversion")
    zooms = [float(z) for z in hdr.get_zooms()[:3]]
    if any(not limits[0] <= z <= limits[1] for z in zooms):
        problems.append(f"{path}: voxel size {' x '.join(f'{z:g}' for z in zooms)} mm is "
                        f"implausible for a {what} (expected {limits[0]:g}-{limits[1]:g} mm per "
                        "edge); the header's zooms or units are wrong")
    return problems


def _repetition_time(path: Path, metadata: dict) -> tuple[float | None, list[str]]:
    tr = metadata.get("RepetitionTime")
    if tr is None:
        return None, [f"{path}: RepetitionTime is missing: add \"RepetitionTime\" (in seconds) "
                      "to the run's JSON sidecar"]
    if isinstance(tr, bool) or not isinstance(tr, (int, float)) or not tr > 0:
        return None, [f"{path}: RepetitionTime must be a positive number of seconds, got "
                      f"{tr!r}; fix the JSON sidecar"]
    if tr > MAX_TR_S:
        return None, [f"{path}: RepetitionTime {tr:g} is probably in milliseconds; BIDS wants "
                      f"seconds ({tr / 1000:g}): fix the JSON sidecar"]
    return float(tr), []


def _values(data: np.ndarray, path: Path) -> list[str]:
    """All-zero, constant and NaN problems of a run's data."""
    n_bad = data.size - int(np.count_nonzero(np.isfinite(data)))
    if n_bad > MAX_NONFINITE * data.size:
        return [f"{path}: {100 * n_bad / data.size:.1f}% of the values are NaN or infinite "
                f"(at most {100 * MAX_NONFINITE:g}% can be repaired); fix the conversion or "
                "exclude the run with --bids-filter-file"]
    if n_bad == data.size:
        low = high = np.nan
    elif n_bad:  # a few: the workflow sets them to 0 (sanitise_bold)
        clean = np.where(np.isfinite(data), data, np.nan)
        low, high = np.nanmin(clean), np.nanmax(clean)
    else:
        low, high = data.min(), data.max()
    if not low < high:
        return [f"{path}: every value is {low:g}: the run holds no signal; fix the "
                "conversion or exclude the run with --bids-filter-file"]
    return []


def check_bold_run(path: Path, metadata: dict, dummy_scans: int | str
                   ) -> tuple[BoldFacts | None, list[str]]:
    """Every up-front problem of one BOLD run (header, sidecar, data, usable volumes)."""
    img, problems = _load(path, "BOLD run")
    if img is None:
        return None, problems
    shape = img.shape
    if len(shape) != 4 or shape[3] < 2:
        return None, [f"{path}: a BOLD run must be 4-D (x, y, z, time), this image has shape "
                      f"{shape}; check the conversion, or exclude it with --bids-filter-file"]
    problems += _geometry(img, path, "BOLD run", BOLD_VOXEL_MM)
    tr, tr_problems = _repetition_time(path, metadata)
    problems += tr_problems
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # truncated or corrupt data block
        return None, problems + [f"{path}: cannot read the image data ({type(exc).__name__}: "
                                 f"{exc}); the file is truncated or corrupt: re-export it"]
    value_problems = _values(data, path)
    problems += value_problems
    if not value_problems:
        problems += _usable_volumes(data, path, dummy_scans)
    facts = BoldFacts(int(np.prod(shape[:3])), int(shape[3]), tr) if tr else None
    return (None if problems else facts), problems


def _usable_volumes(data: np.ndarray, path: Path, dummy_scans: int | str) -> list[str]:
    if dummy_scans == "auto":  # as the workflow detects them, on the repaired data
        finite = np.isfinite(data)
        n_dummy = detect_nonsteady(data if finite.all() else np.where(finite, data, 0))
    else:
        n_dummy = int(dummy_scans)
    n_left = data.shape[3] - n_dummy
    if n_left >= MIN_VOLUMES:
        return []
    how = "detected (--dummy-scans auto)" if dummy_scans == "auto" else "dropped"
    return [f"{path}: {data.shape[3]} volumes, {n_left} after the {n_dummy} non-steady-state "
            f"volumes {how}; dynamic connectivity needs at least {MIN_VOLUMES}: exclude the run "
            "with --bids-filter-file, or give a smaller --dummy-scans"]


def check_t1w_image(path: Path) -> list[str]:
    """Every up-front problem of one T1w image."""
    img, problems = _load(path, "T1w image")
    if img is None:
        return problems
    shape = img.shape
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        return [f"{path}: a T1w image must be 3-D, this one has shape {shape}; keep one volume "
                "or select another T1w with --bids-filter-file"]
    problems += _geometry(img, path, "T1w image", T1W_VOXEL_MM)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:
        return problems + [f"{path}: cannot read the image data ({type(exc).__name__}: {exc}); "
                           "the file is truncated or corrupt: re-export it"]
    low, high = np.nanmin(data), np.nanmax(data)
    if not low < high:
        problems.append(f"{path}: the T1w image is constant (no anatomy); fix the conversion "
                        "or select another T1w with --bids-filter-file")
    return problems
