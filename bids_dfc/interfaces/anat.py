"""Anatomical processing with antspyx: N4, template registration + brain mask, tissues.

Each step is a plain ``*_core`` function (paths in, paths out) wrapped by a thin nipype
``SimpleInterface``.  antspyx objects never leave a function; temporary files go to the
node's folder (:class:`~bids_dfc.preproc.ants_utils.node_tmpdir`).

Brain extraction reuses the normalisation: the N4-corrected head is registered to the
template brain (affine on the head below a 180 mm field of view, then affine + SyN on the
roughly masked head), the template brain mask is brought back through the inverse transforms
and refined (holes filled, largest component, cut to the head's foreground).  Tissue
probabilities come from Atropos initialised with the template's GM/WM/CSF maps warped to the
subject (or from intensity k-means when the template has no tissue maps).
"""

from __future__ import annotations

import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from bids_dfc.preproc.anat import (
    check_registration,
    n4_core,
    register_core,
    segment_core,
)
from bids_dfc.preproc.ants_utils import (
    ants_threads,
    node_tmpdir,
)


class _N4InputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="raw T1w")
    sloppy = traits.Bool(False, usedefault=True, desc="fewer iterations (not for research)")
    sanitise = traits.Bool(False, usedefault=True, desc="zero NaN/inf voxels instead of failing")
    num_threads = traits.Int(1, usedefault=True, desc="ITK threads")


class _N4OutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="bias-corrected T1w, float32, 99th pct of head = 1000")


class N4BiasCorrection(SimpleInterface):
    """N4 bias-field correction (antspyx) of the T1w head; see :func:`n4_core`."""

    input_spec = _N4InputSpec
    output_spec = _N4OutputSpec

    def _run_interface(self, runtime):
        with node_tmpdir(runtime.cwd), ants_threads(self.inputs.num_threads):
            self._results["out_file"] = n4_core(
                self.inputs.in_file, os.path.join(runtime.cwd, "t1w_n4.nii.gz"),
                sloppy=self.inputs.sloppy, sanitise=self.inputs.sanitise)
        return runtime


class _RegisterInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="N4-corrected T1w head")
    source_file = traits.Str("", usedefault=True, desc="raw file named in error messages")
    template = File(exists=True, mandatory=True, desc="template T1w")
    template_mask = File(exists=True, mandatory=True, desc="template brain mask")
    sloppy = traits.Bool(False, usedefault=True)
    random_seed = traits.Int(mandatory=True, desc="--random-seed (>= 0)")
    num_threads = traits.Int(1, usedefault=True)


class _RegisterOutputSpec(TraitedSpec):
    anat2std_xfm = traits.List(File(exists=True), desc="[warp, affine], apply order")
    std2anat_xfm = traits.List(File(exists=True), desc="[inverse affine, inverse warp]")
    t1w_std = File(exists=True, desc="T1w resampled on the template grid")
    out_mask = File(exists=True, desc="brain mask, T1w grid (uint8)")
    out_brain = File(exists=True, desc="skull-stripped T1w")
    qc = traits.Dict(desc="registration quality figures")


class TemplateRegistration(SimpleInterface):
    """Affine + SyN registration of the T1w to the template, brain mask from the template,
    quality check; see :func:`register_core` and :func:`check_registration`."""

    input_spec = _RegisterInputSpec
    output_spec = _RegisterOutputSpec

    def _run_interface(self, runtime):
        with node_tmpdir(runtime.cwd), ants_threads(self.inputs.num_threads):
            res = register_core(self.inputs.in_file, self.inputs.template,
                                self.inputs.template_mask, runtime.cwd,
                                sloppy=self.inputs.sloppy, random_seed=self.inputs.random_seed)
        check_registration(res["qc"], self.inputs.source_file or self.inputs.in_file)
        self._results.update(
            anat2std_xfm=res["anat2std_xfm"], std2anat_xfm=res["std2anat_xfm"],
            t1w_std=res["t1w_std"], out_mask=res["brain_mask"], out_brain=res["t1w_brain"],
            qc=res["qc"])
        return runtime


class _SegmentInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="skull-stripped T1w")
    in_mask = File(exists=True, mandatory=True, desc="brain mask")
    priors = traits.List(File(exists=True), desc="template [GM, WM, CSF] maps (optional)")
    std2anat_xfm = traits.List(File(exists=True), desc="template -> T1w, apply order")
    sloppy = traits.Bool(False, usedefault=True)
    num_threads = traits.Int(1, usedefault=True)


class _SegmentOutputSpec(TraitedSpec):
    tpms = traits.List(File(exists=True), desc="[GM, WM, CSF] probability maps")
    dseg = File(exists=True, desc="0 background, 1 GM, 2 WM, 3 CSF")


class TissueSegmentation(SimpleInterface):
    """Atropos tissue segmentation with warped template priors; see :func:`segment_core`."""

    input_spec = _SegmentInputSpec
    output_spec = _SegmentOutputSpec

    def _run_interface(self, runtime):
        priors = list(self.inputs.priors) if self.inputs.priors else None
        with node_tmpdir(runtime.cwd), ants_threads(self.inputs.num_threads):
            res = segment_core(self.inputs.in_file, self.inputs.in_mask, runtime.cwd,
                               priors=priors, std2anat_xfm=list(self.inputs.std2anat_xfm or []),
                               sloppy=self.inputs.sloppy)
        self._results.update(tpms=res["tpms"], dseg=res["dseg"])
        return runtime
