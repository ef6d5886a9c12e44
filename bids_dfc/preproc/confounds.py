"""Confound time series of a run (nipype-free): motion, FD, DVARS, aCompCor, fMRIPrep names."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bids_dfc.preproc.motion import grid_centre, matrix_to_params
from bids_dfc.preproc.signal import acompcor, dvars, framewise_displacement

MOTION_COLUMNS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def confounds_core(data: np.ndarray, affine: np.ndarray, brain: np.ndarray, wm: np.ndarray,
                   csf: np.ndarray, matrices: np.ndarray, tr: float, *,
                   high_pass: float | None, n_components: float,
                   fd_threshold: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Head-motion parameters, FD, DVARS and aCompCor of a motion-corrected run.

    Parameters
    ----------
    data : ndarray (X, Y, Z, T)
        Motion-corrected run.
    brain, wm, csf : bool ndarray (X, Y, Z)
        Brain mask and eroded noise-ROI masks on the same grid.
    matrices : ndarray (T, 4, 4)
        Reference-world -> volume-world head-motion matrices.
    high_pass : float or None
        aCompCor's cosine high-pass cut-off (Hz).
    n_components : int or float
        aCompCor components (a number, or a variance fraction in (0, 1)).
    fd_threshold : float, optional
        When given, one ``motion_outlier_NN`` column per volume with FD above it.

    Returns
    -------
    table : DataFrame (T rows)
    meta : dict
        JSON sidecar: per-column descriptions; aCompCor variance explained and mask sizes.
    """

    centre = grid_centre(data.shape, affine)
    params = np.array([matrix_to_params(m, centre) for m in matrices])
    table = pd.DataFrame(params, columns=MOTION_COLUMNS)
    fd = framewise_displacement(params)
    table["framewise_displacement"] = fd
    dv, std_dv = dvars(data[np.asarray(brain, bool)].T)
    table["dvars"] = dv
    table["std_dvars"] = std_dv
    noise = np.asarray(wm, bool) | np.asarray(csf, bool)
    comps, explained = acompcor(data[noise].T, tr, high_pass=high_pass,
                                n_components=n_components)
    meta: dict = {
        "trans_x": {"Description": "Head translation along x (RAS), relative to the "
                                   "motion-correction reference", "Units": "mm"},
        "rot_x": {"Description": "Head rotation about x through the BOLD grid centre; "
                                 "R = Rz Ry Rx", "Units": "rad"},
        "framewise_displacement": {"Description": "Power et al. 2012, 50 mm sphere",
                                   "Units": "mm"},
        "dvars": {"Description": "RMS of the temporal difference in the brain mask after "
                                 "scaling the median in-brain value to 1000"},
        "std_dvars": {"Description": "DVARS / its expectation under stationarity "
                                     "(Nichols 2013)"},
    }
    cumulative = np.cumsum(explained)
    for k in range(comps.shape[1]):
        name = f"a_comp_cor_{k:02d}"
        table[name] = comps[:, k]
        meta[name] = {"Method": "aCompCor", "Mask": "combined WM+CSF (eroded)",
                      "VarianceExplained": float(explained[k]),
                      "CumulativeVarianceExplained": float(cumulative[k]), "Retained": True}
    meta["aCompCor"] = {"NumberOfComponents": int(comps.shape[1]),
                        "RequestedComponents": n_components,
                        "WMVoxels": int(np.asarray(wm, bool).sum()),
                        "CSFVoxels": int(np.asarray(csf, bool).sum()),
                        "HighPassCutoffHz": high_pass,
                        "PreFilter": "mean, linear trend and cosine drifts below the "
                                     "cut-off removed; each voxel scaled to unit variance"}
    if fd_threshold:
        bad = np.flatnonzero(np.nan_to_num(fd, nan=0.0) > fd_threshold)
        for k, vol in enumerate(bad):
            col = np.zeros(len(table))
            col[vol] = 1.0
            table[f"motion_outlier_{k:02d}"] = col
        meta["Censoring"] = {"FramewiseDisplacementThreshold": fd_threshold,
                             "CensoredVolumes": bad.tolist()}
    return table, meta
