"""Checks of a BOLD run before any work (nipype-free): TR, shape, usable volumes, dummy scans."""

from __future__ import annotations

from typing import cast

import nibabel as nb
import numpy as np

from bids_dfc.errors import InputError
from bids_dfc.preproc.signal import check_enough_volumes, detect_nonsteady, sanitise_bold


def repetition_time(bold_file: str, metadata: dict | None) -> float:
    """TR in seconds from the BIDS metadata, else from the NIfTI header."""
    if metadata and metadata.get("RepetitionTime"):
        return float(metadata["RepetitionTime"])
    hdr = cast(nb.Nifti1Image, nb.load(bold_file)).header
    zooms = hdr.get_zooms()
    units = hdr.get_xyzt_units()[1]
    if len(zooms) > 3 and zooms[3] > 0:
        return float(zooms[3]) / (1000.0 if units == "msec" else 1.0)
    raise InputError(f"{bold_file}: no RepetitionTime in the JSON sidecar and none in the "
                     "NIfTI header; add RepetitionTime (seconds) to the sidecar.")


def validate_bold_core(bold_file: str, dummy_scans: int | str,
                       metadata: dict | None = None) -> dict:
    """Load a run, check it, drop the non-steady-state volumes.

    ``dummy_scans`` is a number of volumes or ``"auto"`` (detected from the global
    signal, :func:`bids_dfc.preproc.signal.detect_nonsteady`).
    """

    img = cast(nb.Nifti1Image, nb.load(bold_file))
    if img.ndim != 4:
        raise InputError(f"{bold_file}: a BOLD run must be 4-D, this image has shape "
                         f"{img.shape}.")
    tr = repetition_time(bold_file, metadata)
    data, n_bad = sanitise_bold(np.asanyarray(img.dataobj), bold_file)
    if isinstance(dummy_scans, str):
        if dummy_scans != "auto":
            raise InputError(f"--dummy-scans must be a number or 'auto', got {dummy_scans!r}")
        n_dummy = detect_nonsteady(data)
    else:
        n_dummy = int(dummy_scans)
        if n_dummy < 0:
            raise InputError(f"--dummy-scans must be >= 0, got {n_dummy}")
    check_enough_volumes(data.shape[-1] - n_dummy, n_dummy, bold_file)
    return {"data": data[..., n_dummy:], "affine": img.affine, "tr": tr, "n_dummy": n_dummy,
            "n_sanitised": n_bad, "header": img.header}
