"""Denoising of a BOLD run: confound regression with the band-pass applied to data and
confounds alike, optional FD censoring, then smoothing inside the brain mask.

The maths is :func:`bids_dfc.preproc.denoise.denoise_core` (signal.py underneath).
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

from bids_dfc.preproc.denoise import denoise_core, denoise_fmriprep_core


class _DenoiseBaseInputSpec(BaseInterfaceInputSpec):
    """The inputs both denoising interfaces take."""

    in_file = File(exists=True, mandatory=True, desc="4-D run (native or template)")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the same grid")
    confounds_file = File(exists=True, mandatory=True, desc="confounds TSV")
    tr = traits.Float(mandatory=True)
    band_pass = traits.Either(None, traits.Tuple(traits.Either(None, traits.Float),
                                                 traits.Either(None, traits.Float)),
                              mandatory=True, desc="band-pass edges, Hz (None: open)")
    fd_threshold = traits.Either(None, traits.Float, default=None, usedefault=True)
    smoothing_fwhm = traits.Float(mandatory=True, desc="Gaussian FWHM, mm")


class _DenoiseInputSpec(_DenoiseBaseInputSpec):
    groups = traits.List(traits.Str, mandatory=True, desc="confound groups to regress")


def _write_denoised(img, data, info: dict) -> tuple[str, str]:
    """The denoised series (float32, on ``img``'s grid and header) and its description."""
    hdr = img.header.copy()
    hdr.set_data_dtype(np.float32)
    hdr.set_slope_inter(1.0, 0.0)
    path = os.path.abspath("bold_denoised.nii")
    nb.Nifti1Image(data, img.affine, hdr).to_filename(path)
    meta = os.path.abspath("denoise.json")
    with open(meta, "w") as fh:
        json.dump(info, fh, indent=2)
    return path, meta


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
        self._results["out_file"], self._results["out_meta"] = _write_denoised(img, out, info)
        del out
        os.unlink("denoised.npy")
        return runtime


class _DenoiseFmriprepInputSpec(_DenoiseBaseInputSpec):
    # in_file, mask_file, confounds_file: fMRIPrep's preproc BOLD, its brain mask and its
    # desc-confounds_timeseries.tsv
    strategy = traits.Str(mandatory=True, desc="a preproc.fmriprep_confounds strategy")
    n_compcor = traits.Float(mandatory=True, desc="aCompCor components per mask")
    dummy_scans = traits.Either(None, traits.Int, traits.Str, mandatory=True,
                                desc="leading volumes dropped; 'auto': fMRIPrep's flags")


class _DenoiseFmriprepOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="denoised, band-passed, smoothed steady volumes")
    out_meta = File(exists=True, desc="JSON: the strategy, columns and settings used")
    confounds_kept = File(exists=True, desc="the confounds table's rows of the kept volumes")
    n_dummy = traits.Int(desc="leading volumes dropped")


class DenoiseFmriprep(SimpleInterface):
    """Denoise an fMRIPrep BOLD series with a named strategy of its confounds."""

    input_spec = _DenoiseFmriprepInputSpec
    output_spec = _DenoiseFmriprepOutputSpec

    def _run_interface(self, runtime):
        img = nb.load(self.inputs.in_file)
        mask = np.asanyarray(nb.load(self.inputs.mask_file).dataobj) > 0
        zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
        band = self.inputs.band_pass
        out, info, kept = denoise_fmriprep_core(
            np.asanyarray(img.dataobj), mask, zooms, self.inputs.confounds_file,
            self.inputs.tr, strategy=self.inputs.strategy, n_compcor=self.inputs.n_compcor,
            dummy_scans=self.inputs.dummy_scans, fd_threshold=self.inputs.fd_threshold,
            band=None if band is None else tuple(band), fwhm=self.inputs.smoothing_fwhm)
        self._results["out_file"], self._results["out_meta"] = _write_denoised(img, out, info)
        self._results["confounds_kept"] = os.path.abspath("confounds_kept.tsv")
        kept.to_csv(self._results["confounds_kept"], sep="\t", index=False, na_rep="n/a")
        self._results["n_dummy"] = int(info["NonSteadyStateVolumes"])
        return runtime
