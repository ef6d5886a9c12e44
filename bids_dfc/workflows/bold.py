"""Functional workflow of one BOLD run, and the derivatives it writes.

Order of operations (``docs/methods-bold.md`` explains each choice):
dummy volumes dropped -> rigid head-motion correction (antspyx) -> mean reference and EPI
brain mask -> rigid BOLD -> T1w coregistration (checked) -> T1w brain mask and eroded WM/CSF
masks onto the BOLD grid -> confounds (motion, FD, DVARS, aCompCor) -> confound regression
with data and confounds band-passed alike (optional FD censoring) -> smoothing within the
brain mask.  Optionally the same denoising in template space after a single interpolation
of the raw volumes through motion + coregistration + normalisation.
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_dfc.config import DEFAULT_CONFOUNDS
from bids_dfc.workflows.fields import ANAT_FIELDS, BOLD_OUTPUTS


def _wants_template(output_spaces) -> bool:
    return any(space != "native" for space in (output_spaces or ()))


def init_bold_wf(*, bold_file, metadata=None, dummy_scans=4, band_pass=(0.01, 0.1),
                 smoothing_fwhm=4.0, acompcor_components=5, fd_threshold=None,
                 output_spaces=("native",), template=None, sloppy=False, omp_nthreads=1,
                 random_seed=None, confound_groups=DEFAULT_CONFOUNDS,
                 name="bold_wf"):
    """Preprocess and denoise one BOLD run (the study's FSL FEAT steps, with antspyx).

    Parameters
    ----------
    bold_file : str
        Raw BOLD run (used for messages and the workflow's description).
    metadata : dict, optional
        Its BIDS sidecar (``RepetitionTime``; otherwise the header's TR).
    dummy_scans : int or "auto"
        Non-steady-state volumes to drop (``auto``: detected from the global signal).
    band_pass : (float, float) or None
        Band-pass edges in Hz applied to data and confounds alike.
    smoothing_fwhm : float
        Gaussian FWHM (mm) within the brain mask; 0 for none.
    acompcor_components : int or float
        aCompCor components (a number, or a variance fraction in (0, 1)).
    fd_threshold : float, optional
        Censor volumes above this framewise displacement (mm) from the regression.
    output_spaces : sequence of str
        ``"native"`` always; any other entry (``"template"`` or a template name) also
        writes the denoised run in the anat workflow's template space.
    template : TemplateSpec, optional
        Template used (its name labels the template-space output).
    sloppy : bool
        Cheaper registrations: for tests and demos only, NOT for research use.
    omp_nthreads : int
        Worker processes of the motion correction (every registration is single-threaded,
        so results do not depend on it).
    random_seed : int, optional
        Seed of the registrations' sampling (0 when None): results are deterministic.
    confound_groups : sequence of str
        Confounds regressed: ``"acompcor"`` (the default, the study's) and/or ``"motion"``
        (6 parameters).

    Returns
    -------
    nipype Workflow
        ``inputnode``: ``bold_file`` and the anat outputnode fields; ``outputnode``: see
        ``docs/architecture.md`` (plus sidecar contents ``confounds_meta``,
        ``denoise_meta``, ``coreg_report``, ``masks_report`` and ``tr``).
    """
    from bids_dfc.interfaces.bold import (
        AnatToBold,
        CoregisterBold,
        MotionCorrect,
        ResampleToTemplate,
        ValidateBold,
    )
    from bids_dfc.interfaces.confounds import ComputeConfounds
    from bids_dfc.interfaces.denoise import DenoiseBold

    seed = 0 if random_seed is None else int(random_seed)
    band = None if band_pass is None else tuple(band_pass)
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        f"The first {dummy_scans} volumes{' (detected)' if dummy_scans == 'auto' else ''} of "
        "each BOLD run were discarded. Head motion was corrected by rigid registration of "
        "every volume to a reference volume (ANTsPy, mean squares; the 6 parameters, "
        "framewise displacement (Power et al. 2012) and DVARS were recorded). The mean "
        "motion-corrected volume was registered rigidly to the skull-stripped T1w (mutual "
        "information). Anatomical CompCor (Behzadi et al. 2007) components were extracted "
        "from eroded white-matter and CSF masks after high-pass filtering "
        f"({acompcor_components} components). The confounds ({', '.join(confound_groups)}) "
        "were regressed out after band-pass filtering data and confounds alike "
        f"({band} Hz, Butterworth; Lindquist et al. 2019)"
        + (f", censoring volumes with FD > {fd_threshold} mm from the fit" if fd_threshold
           else "")
        + f", and the result was smoothed within the brain mask ({smoothing_fwhm} mm FWHM)."
        + (" This run was processed in *sloppy* mode (not for research use)." if sloppy
           else "")
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["bold_file", *ANAT_FIELDS]),
                        name="inputnode")
    inputnode.inputs.bold_file = bold_file
    outputnode = pe.Node(niu.IdentityInterface(fields=BOLD_OUTPUTS), name="outputnode")

    validate = pe.Node(ValidateBold(dummy_scans=dummy_scans, metadata=dict(metadata or {})),
                       name="validate")
    hmc = pe.Node(MotionCorrect(n_jobs=omp_nthreads, sloppy=sloppy, seed=seed), name="hmc",
                  n_procs=omp_nthreads, mem_gb=0.5)
    coreg = pe.Node(CoregisterBold(source_file=str(bold_file), sloppy=sloppy, seed=seed),
                    name="coreg")
    anat2bold = pe.Node(AnatToBold(), name="anat2bold")
    confounds = pe.Node(ComputeConfounds(high_pass=band[0] if band and band[0] else None,
                                         n_components=float(acompcor_components),
                                         fd_threshold=fd_threshold), name="confounds")
    denoise = pe.Node(DenoiseBold(groups=list(confound_groups), band_pass=band,
                                  fd_threshold=fd_threshold,
                                  smoothing_fwhm=float(smoothing_fwhm)), name="denoise")
    workflow.connect([
        (inputnode, validate, [("bold_file", "bold_file")]),
        (validate, hmc, [("out_file", "in_file")]),
        (hmc, coreg, [("boldref", "boldref"), ("bold_mask", "bold_mask")]),
        (inputnode, coreg, [("t1w_brain", "t1w_brain"), ("t1w_mask", "t1w_mask")]),
        (hmc, anat2bold, [("boldref", "boldref")]),
        (coreg, anat2bold, [("anat2boldref_xfm", "anat2boldref_xfm")]),
        (inputnode, anat2bold, [("t1w_mask", "t1w_mask"), ("t1w_tpms", "t1w_tpms"),
                                ("t1w_dseg", "t1w_dseg")]),
        (hmc, confounds, [("out_file", "in_file"), ("matrices", "matrices")]),
        (validate, confounds, [("tr", "tr")]),
        (anat2bold, confounds, [("bold_mask", "bold_mask"), ("wm_mask", "wm_mask"),
                                ("csf_mask", "csf_mask")]),
        (hmc, denoise, [("out_file", "in_file")]),
        (anat2bold, denoise, [("bold_mask", "mask_file")]),
        (confounds, denoise, [("out_file", "confounds_file")]),
        (validate, denoise, [("tr", "tr")]),
        (hmc, outputnode, [("boldref", "bold_ref"), ("out_file", "bold_preproc")]),
        (anat2bold, outputnode, [("bold_mask", "bold_mask"), ("wm_mask", "wm_mask_bold"),
                                 ("csf_mask", "csf_mask_bold"), ("report", "masks_report")]),
        (coreg, outputnode, [("boldref2anat_xfm", "boldref2anat_xfm"),
                             ("anat2boldref_xfm", "anat2boldref_xfm"),
                             ("report", "coreg_report")]),
        (confounds, outputnode, [("out_file", "confounds_tsv"),
                                 ("out_meta", "confounds_meta")]),
        (denoise, outputnode, [("out_file", "bold_denoised"), ("out_meta", "denoise_meta")]),
        (validate, outputnode, [("n_dummy", "n_dummy"), ("tr", "tr")]),
    ])  # fmt: skip

    if _wants_template(output_spaces):
        to_std = pe.Node(ResampleToTemplate(), name="to_std", mem_gb=1.5)
        denoise_std = pe.Node(DenoiseBold(groups=list(confound_groups), band_pass=band,
                                          fd_threshold=fd_threshold,
                                          smoothing_fwhm=float(smoothing_fwhm)),
                              name="denoise_std", mem_gb=1.5)
        workflow.connect([
            (validate, to_std, [("out_file", "in_file"), ("tr", "tr")]),
            (hmc, to_std, [("matrices", "matrices"), ("boldref", "boldref")]),
            (coreg, to_std, [("boldref2anat_xfm", "boldref2anat_xfm")]),
            (inputnode, to_std, [("anat2std_xfm", "anat2std_xfm"),
                                 ("template_ref", "template_ref"),
                                 ("template_mask", "template_mask")]),
            (to_std, denoise_std, [("out_file", "in_file")]),
            (inputnode, denoise_std, [("template_mask", "mask_file")]),
            (confounds, denoise_std, [("out_file", "confounds_file")]),
            (validate, denoise_std, [("tr", "tr")]),
            (denoise_std, outputnode, [("out_file", "bold_std")]),
        ])  # fmt: skip
    return workflow


def _load_json(path=None, extra=None):
    import json

    meta = {}
    if path:
        with open(path) as fh:
            meta = json.load(fh)
    meta.update(extra or {})
    return meta


def _bold_meta(tr, n_dummy, denoise_meta=None, base=None):
    """Sidecar of the BOLD outputs: TR, dummies dropped, denoising settings, versions."""
    import json

    import ants
    import nilearn
    import nipype
    import numpy
    import scipy

    import bids_dfc

    meta = dict(base or {})
    meta.update({"RepetitionTime": tr, "NumberOfVolumesDiscardedByUser": n_dummy,
                 "SkullStripped": False,
                 "SoftwareVersions": {"bids_dfc": bids_dfc.__version__,
                                      "antspyx": ants.__version__,
                                      "nilearn": nilearn.__version__,
                                      "nipype": nipype.__version__,
                                      "numpy": numpy.__version__, "scipy": scipy.__version__}})
    if denoise_meta:
        with open(denoise_meta) as fh:
            meta["Denoising"] = json.load(fh)
    return meta


def init_bold_derivatives_wf(*, output_dir, bold_file, metadata=None, template=None,
                             output_spaces=("native",), sloppy=False,
                             name="bold_derivatives_wf"):
    """Write a run's derivatives under fMRIPrep / XCP-D names, each with a JSON sidecar.

    ``sub-X[_ses-Y]_task-T[_run-R]_`` + ``desc-preproc_bold``, ``desc-denoised_bold``,
    ``boldref``, ``desc-brain_mask``, ``desc-confounds_timeseries.tsv``,
    ``from-boldref_to-T1w_mode-image_xfm.mat`` (and its inverse), and
    ``space-<template>_desc-denoised_bold`` when a template space is requested.
    Its inputnode fields carry the names of :func:`init_bold_wf`'s outputnode.
    """
    from bids_dfc.interfaces.bids import DerivativesDataSink

    fields = [f for f in BOLD_OUTPUTS if f not in ("n_dummy", "tr")] + ["n_dummy", "tr"]
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    base = {"Sloppy": True, "SloppyWarning": "not for research use"} if sloppy else {}
    if template is not None:
        base["Template"] = getattr(template, "name", str(template))
    meta_pre = pe.Node(niu.Function(function=_bold_meta, input_names=["tr", "n_dummy",
                                                                      "denoise_meta", "base"],
                                    output_names=["meta"]), name="meta_preproc",
                       run_without_submitting=True)
    meta_pre.inputs.base = dict(base, Description="dummy volumes dropped, head motion "
                                                  "corrected (native BOLD grid)")
    meta_den = pe.Node(niu.Function(function=_bold_meta, input_names=["tr", "n_dummy",
                                                                      "denoise_meta", "base"],
                                    output_names=["meta"]), name="meta_denoised",
                       run_without_submitting=True)
    meta_den.inputs.base = dict(base, Description="confounds regressed, band-passed, "
                                                  "smoothed within the brain mask")
    meta_conf = pe.Node(niu.Function(function=_load_json, input_names=["path", "extra"],
                                     output_names=["meta"]), name="meta_confounds",
                        run_without_submitting=True)
    meta_xfm = pe.Node(niu.Function(function=_load_json, input_names=["path", "extra"],
                                    output_names=["meta"]), name="meta_xfm",
                       run_without_submitting=True)
    meta_xfm.inputs.extra = {"Description": "rigid BOLD reference <-> T1w (ITK, "
                                            "ants.apply_transforms point-map convention)"}
    meta_mask = pe.Node(niu.Function(function=_load_json, input_names=["path", "extra"],
                                     output_names=["meta"]), name="meta_mask",
                        run_without_submitting=True)
    meta_mask.inputs.extra = {"Description": "T1w brain mask projected onto the BOLD grid"}

    def sink(nm, **kw):
        return pe.Node(DerivativesDataSink(base_directory=str(output_dir),
                                           source_file=str(bold_file), **kw),
                       name=nm, run_without_submitting=True)

    ds = {
        "bold_preproc": sink("ds_preproc", desc="preproc", suffix="bold",
                             extension=".nii.gz"),
        "bold_denoised": sink("ds_denoised", desc="denoised", suffix="bold",
                              extension=".nii.gz"),
        "bold_ref": sink("ds_boldref", suffix="boldref", extension=".nii.gz",
                         meta_dict=dict(base, Description="mean motion-corrected volume")),
        "bold_mask": sink("ds_mask", desc="brain", suffix="mask", extension=".nii.gz"),
        "confounds_tsv": sink("ds_confounds", desc="confounds", suffix="timeseries",
                              extension=".tsv"),
        "boldref2anat_xfm": sink("ds_bold2t1w", suffix="xfm", extension=".mat",
                                 extra_entities={"from": "boldref", "to": "T1w",
                                                 "mode": "image"}),
        "anat2boldref_xfm": sink("ds_t1w2bold", suffix="xfm", extension=".mat",
                                 extra_entities={"from": "T1w", "to": "boldref",
                                                 "mode": "image"}),
    }
    workflow.connect([
        (inputnode, meta_pre, [("tr", "tr"), ("n_dummy", "n_dummy")]),
        (inputnode, meta_den, [("tr", "tr"), ("n_dummy", "n_dummy"),
                               ("denoise_meta", "denoise_meta")]),
        (inputnode, meta_conf, [("confounds_meta", "path")]),
        (inputnode, meta_xfm, [("coreg_report", "path")]),
        (inputnode, meta_mask, [("masks_report", "path")]),
        (meta_pre, ds["bold_preproc"], [("meta", "meta_dict")]),
        (meta_den, ds["bold_denoised"], [("meta", "meta_dict")]),
        (meta_conf, ds["confounds_tsv"], [("meta", "meta_dict")]),
        (meta_xfm, ds["boldref2anat_xfm"], [("meta", "meta_dict")]),
        (meta_xfm, ds["anat2boldref_xfm"], [("meta", "meta_dict")]),
        (meta_mask, ds["bold_mask"], [("meta", "meta_dict")]),
    ])  # fmt: skip
    for field, node in ds.items():
        if field.endswith("_xfm"):
            workflow.connect(inputnode, (field, _first), node, "in_file")
        else:
            workflow.connect(inputnode, field, node, "in_file")
    if _wants_template(output_spaces):
        space = getattr(template, "name", None) or "template"
        ds_std = sink("ds_std", space=space, desc="denoised", suffix="bold",
                      extension=".nii.gz")
        workflow.connect([(inputnode, ds_std, [("bold_std", "in_file")]),
                          (meta_den, ds_std, [("meta", "meta_dict")])])
    return workflow


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value
