"""Denoising of a run (nipype-free): confound selection, regression, band-pass, smoothing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from bids_dfc.errors import InputError
from bids_dfc.preproc.signal import censor_mask, denoise, smooth_within_mask

#: confound groups that can be regressed, and the columns they select
CONFOUND_GROUPS = {
    "motion": lambda cols: [c for c in cols if c.startswith(("trans_", "rot_"))],
    "acompcor": lambda cols: [c for c in cols if c.startswith("a_comp_cor_")],
}


def select_confounds(table: pd.DataFrame, groups: Iterable[str]) -> list[str]:
    """Columns of ``table`` selected by the confound ``groups`` ("motion", "acompcor")."""
    cols: list[str] = []
    for group in groups:
        if group not in CONFOUND_GROUPS:
            raise InputError(f"unknown confound group {group!r}; choose from "
                             f"{sorted(CONFOUND_GROUPS)}")
        cols += [c for c in CONFOUND_GROUPS[group](table.columns) if c not in cols]
    return cols


def denoise_core(data: np.ndarray, mask: np.ndarray, zooms: npt.ArrayLike, table: pd.DataFrame,
                 tr: float, *,
                 groups: Sequence[str], band: tuple[float | None, float | None] | None,
                 fwhm: float, fd_threshold: float | None = None,
                 out: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Denoise and smooth a 4-D run inside ``mask``.

    Returns the denoised 4-D array (zero outside the mask; ``out`` may be a preallocated
    (memory-mapped) array) and a dict describing what was done.
    """

    mask = np.asarray(mask, bool)
    if len(table) != data.shape[-1]:
        raise InputError(f"the confounds table has {len(table)} rows but the run has "
                         f"{data.shape[-1]} volumes")
    cols = select_confounds(table, groups)
    conf = table[cols].to_numpy(dtype=float) if cols else None
    fd = (table["framewise_displacement"].to_numpy(dtype=float)
          if "framewise_displacement" in table else np.zeros(len(table)))
    keep = censor_mask(fd, fd_threshold)
    series = data[mask].T
    clean = denoise(series, conf, tr, band, keep=keep)
    del series
    if out is None:
        out = np.zeros(data.shape, np.float32)
    for t in range(data.shape[-1]):
        vol = np.zeros(mask.shape, np.float32)
        vol[mask] = clean[t]
        out[..., t] = smooth_within_mask(vol, mask, zooms, fwhm)
    info = {"Confounds": cols, "ConfoundGroups": list(groups),
            "BandPassHz": list(band) if band is not None else None,
            "Filter": "Butterworth order 5, zero-phase (sosfiltfilt), applied to data and "
                      "confounds alike before the regression",
            "Detrend": "linear, data and confounds",
            "SmoothingFWHMmm": fwhm, "SmoothingMethod": "Gaussian within the brain mask "
                                                         "(normalised convolution)",
            "FramewiseDisplacementThreshold": fd_threshold,
            "CensoredVolumes": np.flatnonzero(~keep).tolist(),
            "CensoredVolumesHandling": "excluded from the regression fit; in the series "
                                       "they hold cubic-spline interpolated values"}
    return out, info
