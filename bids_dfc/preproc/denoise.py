"""Denoising of a run (nipype-free): confound selection, regression, band-pass, smoothing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from bids_dfc.errors import InputError
from bids_dfc.preproc.fmriprep_confounds import load_strategy, read_confounds
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
    out = denoise_volumes(data, mask, zooms, conf, keep, tr, band=band, fwhm=fwhm, out=out)
    info = {"Confounds": cols, "ConfoundGroups": list(groups),
            **_filter_info(band, fwhm, fd_threshold, np.flatnonzero(~keep).tolist())}
    return out, info


def _filter_info(band: tuple[float | None, float | None] | None, fwhm: float,
                 fd_threshold: float | None, censored: list[int]) -> dict:
    return {"BandPassHz": list(band) if band is not None else None,
            "Filter": "Butterworth order 5, zero-phase (sosfiltfilt), applied to data and "
                      "confounds alike before the regression",
            "Detrend": "linear, data and confounds",
            "SmoothingFWHMmm": fwhm, "SmoothingMethod": "Gaussian within the brain mask "
                                                         "(normalised convolution)",
            "FramewiseDisplacementThreshold": fd_threshold,
            "CensoredVolumes": censored,
            "CensoredVolumesHandling": "excluded from the regression fit; in the series "
                                       "they hold cubic-spline interpolated values"}


def denoise_volumes(data: np.ndarray, mask: np.ndarray, zooms: npt.ArrayLike,
                    confounds: np.ndarray | None, keep: np.ndarray, tr: float, *,
                    band: tuple[float | None, float | None] | None, fwhm: float,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Regress ``confounds`` (T, C) from the voxels in ``mask`` with data and confounds
    band-passed alike (censored volumes ``keep`` False left out of the fit), then smooth
    each volume within the mask; zero outside it (``out``: preallocated array)."""
    mask = np.asarray(mask, bool)
    series = data[mask].T
    clean = denoise(series, confounds, tr, band, keep=keep)
    del series
    if out is None:
        out = np.zeros(data.shape, np.float32)
    for t in range(data.shape[-1]):
        vol = np.zeros(mask.shape, np.float32)
        vol[mask] = clean[t]
        out[..., t] = smooth_within_mask(vol, mask, zooms, fwhm)
    return out


def denoise_fmriprep_core(data: np.ndarray, mask: np.ndarray, zooms: npt.ArrayLike,
                          confounds_tsv: str, tr: float, *, strategy: str, n_compcor: float,
                          dummy_scans: int | str | None, fd_threshold: float | None,
                          band: tuple[float | None, float | None] | None, fwhm: float
                          ) -> tuple[np.ndarray, dict, pd.DataFrame]:
    """Denoise an fMRIPrep BOLD series with a named strategy of its confounds table.

    The leading non-steady-state volumes are dropped (fMRIPrep keeps them in its series and
    flags them in the table); then as :func:`denoise_core`, with the regressors of
    :func:`bids_dfc.preproc.fmriprep_confounds.load_strategy`. Returns the denoised series
    of the kept volumes, a description, and the confounds table's rows of those volumes.
    """
    regressors, keep, info = load_strategy(confounds_tsv, strategy, n_compcor=n_compcor,
                                           fd_threshold=fd_threshold, dummy_scans=dummy_scans)
    n_dummy = info["NonSteadyStateVolumes"]
    if len(regressors) + n_dummy != data.shape[-1]:
        raise InputError(f"{confounds_tsv}: {len(regressors) + n_dummy} rows, but the BOLD "
                         f"series has {data.shape[-1]} volumes")
    kept = np.asarray(data[..., n_dummy:])
    conf = regressors.to_numpy(dtype=float) if regressors.shape[1] else None
    out = denoise_volumes(kept, mask, zooms, conf, keep, tr, band=band, fwhm=fwhm)
    info.update(_filter_info(band, fwhm, fd_threshold, info["CensoredVolumes"]))
    table, _ = read_confounds(confounds_tsv)
    return out, info, table.iloc[n_dummy:]
