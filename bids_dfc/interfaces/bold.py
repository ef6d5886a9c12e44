"""Thin nipype interfaces of the spatial BOLD steps (maths in :mod:`bids_dfc.preproc.motion`,
:mod:`bids_dfc.preproc.boldreg` and :mod:`bids_dfc.preproc.signal`).

Intermediate images are written uncompressed (``.nii``) in the node's folder: gzip would
cost more than the step itself on a 4-D run; the derivatives sink compresses the outputs.
"""

from __future__ import annotations

import json
import os

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from bids_dfc.errors import InputError
from bids_dfc.preproc.ants_utils import invert_affine, node_tmpdir
from bids_dfc.preproc.boldreg import (
    coregister,
    epi_mask,
    project_anat,
    resample_to_template,
    template_sampler,
)
from bids_dfc.preproc.motion import motion_correct, pick_reference
from bids_dfc.preproc.validate import validate_bold_core


def _save(data, affine, name, dtype=np.float32, header=None) -> str:
    img = nb.Nifti1Image(np.asarray(data, dtype=dtype), affine, header)
    img.set_data_dtype(dtype)
    path = os.path.abspath(name)
    img.to_filename(path)
    return path


class _ValidateBoldInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="raw 4-D BOLD run")
    dummy_scans = traits.Either(traits.Int, traits.Str, mandatory=True,
                                desc="volumes to drop, or 'auto'")
    metadata = traits.Dict(desc="BIDS sidecar of the run")


class _ValidateBoldOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="run without its non-steady-state volumes (float32)")
    n_dummy = traits.Int(desc="volumes dropped")
    tr = traits.Float(desc="repetition time (s)")
    n_sanitised = traits.Int(desc="NaN/inf values replaced by 0")


class ValidateBold(SimpleInterface):
    """Check a BOLD run (4-D, TR, finite values, length) and drop its dummy volumes."""

    input_spec = _ValidateBoldInputSpec
    output_spec = _ValidateBoldOutputSpec

    def _run_interface(self, runtime):
        meta = self.inputs.metadata if isdefined(self.inputs.metadata) else None
        out = validate_bold_core(self.inputs.bold_file, self.inputs.dummy_scans, meta)
        hdr = out["header"].copy()
        hdr.set_xyzt_units("mm", "sec")
        zooms = list(hdr.get_zooms()[:3]) + [out["tr"]]
        hdr.set_data_shape(out["data"].shape)
        hdr.set_zooms(zooms)
        self._results["out_file"] = _save(out["data"], out["affine"], "bold_trimmed.nii",
                                          header=hdr)
        for key in ("n_dummy", "tr", "n_sanitised"):
            self._results[key] = out[key]
        return runtime


class _MotionCorrectInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="dummy-dropped 4-D run")
    n_jobs = traits.Int(1, usedefault=True, desc="worker processes")
    sloppy = traits.Bool(False, usedefault=True)
    seed = traits.Int(mandatory=True, desc="seed of the metric sampling (>= 0)")


class _MotionCorrectOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="motion-corrected run (float32, reference grid)")
    boldref = File(exists=True, desc="mean of the motion-corrected run")
    bold_mask = File(exists=True, desc="EPI brain mask of the mean (intensity based)")
    matrices = File(exists=True, desc=".npy (T, 4, 4) reference-world -> volume-world")
    ref_index = traits.Int(desc="volume used as the motion-correction target")


class MotionCorrect(SimpleInterface):
    """Rigid head-motion correction (antspyx, one registration per volume).

    The target is the volume most similar to the median of the first 20 volumes; the
    reference output is the mean of the corrected run.
    """

    input_spec = _MotionCorrectInputSpec
    output_spec = _MotionCorrectOutputSpec

    def _run_interface(self, runtime):
        from scipy import ndimage as ndi

        img = nb.load(self.inputs.in_file)
        data = np.asanyarray(img.dataobj)
        idx = pick_reference(data)
        target = _save(data[..., idx], img.affine, "hmc_target.nii")
        mask = epi_mask(data[..., idx], img.affine)
        mask_file = _save(ndi.binary_dilation(mask, iterations=2), img.affine,
                          "hmc_mask.nii", np.uint8)
        del data
        with node_tmpdir(runtime.cwd):
            mats, corrected = motion_correct(self.inputs.in_file, target, mask_file,
                                             n_jobs=self.inputs.n_jobs,
                                             sloppy=self.inputs.sloppy,
                                             seed=self.inputs.seed, tmpdir=runtime.cwd)
        hdr = img.header.copy()
        hdr.set_data_dtype(np.float32)
        self._results["out_file"] = _save(corrected, img.affine, "bold_hmc.nii", header=hdr)
        mean = corrected.mean(-1)
        self._results["boldref"] = _save(mean, img.affine, "boldref.nii")
        self._results["bold_mask"] = _save(epi_mask(mean, img.affine), img.affine,
                                           "epi_mask.nii", np.uint8)
        np.save("hmc_matrices.npy", mats)
        self._results["matrices"] = os.path.abspath("hmc_matrices.npy")
        self._results["ref_index"] = idx
        return runtime


class _CoregisterInputSpec(BaseInterfaceInputSpec):
    boldref = File(exists=True, mandatory=True)
    bold_mask = File(exists=True, mandatory=True, desc="EPI brain mask")
    t1w_brain = File(exists=True, mandatory=True)
    t1w_mask = File(exists=True, mandatory=True)
    source_file = traits.Str("BOLD", usedefault=True, desc="raw run, for messages")
    sloppy = traits.Bool(False, usedefault=True)
    seed = traits.Int(mandatory=True, desc="seed of the metric sampling (>= 0)")


class _CoregisterOutputSpec(TraitedSpec):
    boldref2anat_xfm = traits.List(File(exists=True), desc="apply order, moving BOLD -> T1w")
    anat2boldref_xfm = traits.List(File(exists=True), desc="apply order, moving T1w -> BOLD")
    report = File(exists=True, desc="JSON: Dice of the brain masks, header overlap")


class CoregisterBold(SimpleInterface):
    """Rigid BOLD reference -> T1w registration (Mattes MI), checked by mask overlap.

    The registration runs single-threaded in a fresh process (bit-identical reruns)."""

    input_spec = _CoregisterInputSpec
    output_spec = _CoregisterOutputSpec

    def _run_interface(self, runtime):

        ref = nb.load(self.inputs.boldref)
        t1 = nb.load(self.inputs.t1w_brain)
        with node_tmpdir(runtime.cwd):
            res = coregister(ref.get_fdata(dtype=np.float32), ref.affine,
                             nb.load(self.inputs.bold_mask).get_fdata() > 0,
                             t1.get_fdata(dtype=np.float32), t1.affine,
                             nb.load(self.inputs.t1w_mask).get_fdata() > 0,
                             out_dir=runtime.cwd, source=self.inputs.source_file,
                             sloppy=self.inputs.sloppy, seed=self.inputs.seed)
        self._results["boldref2anat_xfm"] = [res["boldref2anat"]]
        self._results["anat2boldref_xfm"] = [res["anat2boldref"]]
        report = os.path.abspath("coreg.json")
        with open(report, "w") as fh:
            json.dump({"BrainMaskDice": res["dice"], "HeaderOverlap": res["header_overlap"],
                       "Matrix_boldref_to_T1w_RAS": res["matrix"].tolist()}, fh, indent=2)
        self._results["report"] = report
        return runtime


class _AnatToBoldInputSpec(BaseInterfaceInputSpec):
    boldref = File(exists=True, mandatory=True)
    t1w_mask = File(exists=True, mandatory=True)
    t1w_tpms = InputMultiObject(File(exists=True), desc="[GM, WM, CSF] probability maps")
    t1w_dseg = File(exists=True, desc="labels 1 GM, 2 WM, 3 CSF (used without t1w_tpms)")
    anat2boldref_xfm = InputMultiObject(File(exists=True), mandatory=True)


class _AnatToBoldOutputSpec(TraitedSpec):
    bold_mask = File(exists=True, desc="T1w brain mask on the BOLD grid")
    wm_mask = File(exists=True, desc="eroded WM mask on the BOLD grid")
    csf_mask = File(exists=True, desc="eroded CSF mask on the BOLD grid")
    report = File(exists=True, desc="JSON: voxel counts and thresholds of the masks")


class AnatToBold(SimpleInterface):
    """Bring the T1w brain mask and eroded WM/CSF masks onto the BOLD grid."""

    input_spec = _AnatToBoldInputSpec
    output_spec = _AnatToBoldOutputSpec

    def _run_interface(self, runtime):

        ref = nb.load(self.inputs.boldref)
        mask = nb.load(self.inputs.t1w_mask)
        if isdefined(self.inputs.t1w_tpms) and len(self.inputs.t1w_tpms) >= 3:
            tpms = [nb.load(f).get_fdata(dtype=np.float32) for f in self.inputs.t1w_tpms[:3]]
        elif isdefined(self.inputs.t1w_dseg):
            dseg = np.asanyarray(nb.load(self.inputs.t1w_dseg).dataobj)
            tpms = [(dseg == k).astype(np.float32) for k in (1, 2, 3)]
        else:
            raise InputError("AnatToBold needs t1w_tpms ([GM, WM, CSF]) or t1w_dseg")
        with node_tmpdir(runtime.cwd):
            res = project_anat(mask.get_fdata() > 0, tpms, mask.affine,
                               list(self.inputs.anat2boldref_xfm), ref.shape[:3], ref.affine)
        for key, name in (("brain", "bold_mask"), ("wm", "wm_mask"), ("csf", "csf_mask")):
            self._results[name] = _save(res[key], ref.affine, f"{name}.nii", np.uint8)
        report = os.path.abspath("masks.json")
        with open(report, "w") as fh:
            json.dump({"BrainVoxels": int(res["brain"].sum()),
                       "WMVoxels": int(res["wm"].sum()), "CSFVoxels": int(res["csf"].sum()),
                       "WMThreshold": res["wm_threshold"],
                       "CSFThreshold": res["csf_threshold"]}, fh, indent=2)
        self._results["report"] = report
        return runtime


class _ToTemplateInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="dummy-dropped raw run")
    matrices = File(exists=True, mandatory=True, desc="head-motion matrices (.npy)")
    boldref = File(exists=True, mandatory=True)
    boldref2anat_xfm = InputMultiObject(File(exists=True), mandatory=True)
    anat2std_xfm = InputMultiObject(File(exists=True), mandatory=True)
    template_ref = File(exists=True, mandatory=True)
    template_mask = File(exists=True, mandatory=True)
    tr = traits.Float(mandatory=True)


class _ToTemplateOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="run in template space (inside the template mask)")


class ResampleToTemplate(SimpleInterface):
    """All volumes to template space in one cubic B-spline interpolation that combines the
    head-motion, coregistration and normalisation transforms."""

    input_spec = _ToTemplateInputSpec
    output_spec = _ToTemplateOutputSpec

    def _run_interface(self, runtime):

        tpl = nb.load(self.inputs.template_ref)
        tmask = nb.load(self.inputs.template_mask)
        ref = nb.load(self.inputs.boldref)
        with node_tmpdir(runtime.cwd):
            samp = template_sampler(tpl.get_fdata(dtype=np.float32), tpl.affine, ref.affine,
                                    list(self.inputs.anat2std_xfm)
                                    + list(self.inputs.boldref2anat_xfm),
                                    runtime.cwd, tmask.get_fdata() > 0)
        img = nb.load(self.inputs.in_file)
        series = resample_to_template(np.asanyarray(img.dataobj), img.affine,
                                      np.load(self.inputs.matrices), samp["points"])
        path = os.path.abspath("bold_std.nii")
        shape = tpl.shape[:3] + (series.shape[0],)
        out = np.lib.format.open_memmap(os.path.abspath("bold_std.npy"), mode="w+",
                                        dtype=np.float32, shape=shape)
        out[samp["mask"]] = series.T
        std = nb.Nifti1Image(out, tpl.affine)
        std.header.set_xyzt_units("mm", "sec")
        std.header.set_zooms(tuple(std.header.get_zooms()[:3]) + (self.inputs.tr,))
        std.to_filename(path)
        del out
        os.unlink("bold_std.npy")
        self._results["out_file"] = path
        return runtime


class _InvertAffineInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="ITK affine transform (.txt or .mat)")


class _InvertAffineOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="its inverse (.mat)")


class InvertAffine(SimpleInterface):
    """Invert an affine transform file (fMRIPrep's boldref -> T1w into T1w -> boldref)."""

    input_spec = _InvertAffineInputSpec
    output_spec = _InvertAffineOutputSpec

    def _run_interface(self, runtime):
        self._results["out_file"] = str(invert_affine(self.inputs.in_file,
                                                      os.path.abspath("inverse.mat")))
        return runtime
