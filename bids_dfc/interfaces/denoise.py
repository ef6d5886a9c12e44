"""Denoising of a BOLD run: confound regression with the band-pass applied to data and
confounds alike, optional FD censoring, then smoothing inside the brain mask.

The maths is :func:`bids_dfc.signal.denoise` and :func:`bids_dfc.signal.smooth_within_mask`.
"""

from __future__ import annotations

import json
import os

import nibabel as nb
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from bids_dfc.config import DEFAULT_CONFOUNDS
from bids_dfc.errors import InputError

#: confound groups that can be regressed, and the columns they select
CONFOUND_GROUPS = {
    "motion": lambda cols: [c for c in cols if c.startswith(("trans_", "rot_"))],
    "acompcor": lambda cols: [c for c in cols if c.startswith("a_comp_cor_")],
}


def select_confounds(table: pd.DataFrame, groups) -> list[str]:
    """Columns of ``table`` selected by the confound ``groups`` ("motion", "acompcor")."""
    cols: list[str] = []
    for group in groups:
        if group not in CONFOUND_GROUPS:
            raise InputError(f"unknown confound group {group!r}; choose from "
                             f"{sorted(CONFOUND_GROUPS)}")
        cols += [c for c in CONFOUND_GROUPS[group](table.columns) if c not in cols]
    return cols


def denoise_core(data: np.ndarray, mask: np.ndarray, zooms, table: pd.DataFrame, tr: float, *,
                 groups=DEFAULT_CONFOUNDS, band=(0.01, 0.1),
                 fd_threshold: float | None = None, fwhm: float = 4.0,
                 out: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Denoise and smooth a 4-D run inside ``mask``.

    Returns the denoised 4-D array (zero outside the mask; ``out`` may be a preallocated
    (memory-mapped) array) and a dict describing what was done.
    """
    from bids_dfc.signal import censor_mask, denoise, smooth_within_mask

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


class _DenoiseInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4-D run (native or template)")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the same grid")
    confounds_file = File(exists=True, mandatory=True, desc="confounds TSV")
    tr = traits.Float(mandatory=True)
    groups = traits.List(traits.Str, list(DEFAULT_CONFOUNDS), usedefault=True)
    band_pass = traits.Either(None, traits.Tuple(traits.Either(None, traits.Float),
                                                 traits.Either(None, traits.Float)),
                              default=(0.01, 0.1), usedefault=True)
    fd_threshold = traits.Either(None, traits.Float, default=None, usedefault=True)
    smoothing_fwhm = traits.Float(4.0, usedefault=True)


class _DenoiseOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="denoised, band-passed, smoothed run")
    out_meta = File(exists=True, desc="JSON: the settings used")


class DenoiseBold(SimpleInterface):
    """Regress confounds (band-passed like the data), censor, smooth within the mask."""

    input_spec = _DenoiseInputSpec
    output_spec = _DenoiseOutputSpec

    def _run_interface(self, runtime):
        img = nb.load(self.inputs.in_file)
        mask = np.asanyarray(nb.load(self.inputs.mask_file).dataobj) > 0
        table = pd.read_csv(self.inputs.confounds_file, sep="\t", na_values="n/a")
        zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
        band = self.inputs.band_pass
        out = np.lib.format.open_memmap(os.path.abspath("denoised.npy"), mode="w+",
                                        dtype=np.float32, shape=img.shape)
        out, info = denoise_core(np.asanyarray(img.dataobj), mask, zooms, table,
                                 self.inputs.tr, groups=self.inputs.groups,
                                 band=None if band is None else tuple(band),
                                 fd_threshold=self.inputs.fd_threshold,
                                 fwhm=self.inputs.smoothing_fwhm, out=out)
        hdr = img.header.copy()
        hdr.set_data_dtype(np.float32)
        hdr.set_slope_inter(1.0, 0.0)
        path = os.path.abspath("bold_denoised.nii")
        nb.Nifti1Image(out, img.affine, hdr).to_filename(path)
        del out
        os.unlink("denoised.npy")
        meta = os.path.abspath("denoise.json")
        with open(meta, "w") as fh:
            json.dump(info, fh, indent=2)
        self._results["out_file"] = path
        self._results["out_meta"] = meta
        return runtime
