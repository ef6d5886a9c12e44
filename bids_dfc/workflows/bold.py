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

from bids_dfc.derivatives import OUTPUT_NAMES, software_versions
from bids_dfc.interfaces.bids import DerivativesDataSink
from bids_dfc.interfaces.bold import (
    AnatToBold,
    CoregisterBold,
    MotionCorrect,
    ResampleToTemplate,
    ValidateBold,
)
from bids_dfc.interfaces.confounds import ComputeConfounds
from bids_dfc.interfaces.denoise import DenoiseBold
from bids_dfc.workflows.fields import ANAT_FIELDS, BOLD_OUTPUTS, Derivative

#: ``SoftwareVersions`` of the BOLD sidecars, in this order
VERSIONED = ("bids_dfc", "antspyx", "nilearn", "nipype", "numpy", "scipy")
#: inputnode of :func:`init_bold_std_wf`
BOLD_STD_INPUTS = ["bold_file", "tr", "matrices", "boldref", "boldref2anat_xfm",
                   "anat2std_xfm", "template_ref", "template_mask", "confounds_file"]


def _wants_template(output_spaces) -> bool:
    return any(space != "native" for space in (output_spaces or ()))


def _bold_desc(*, dummy_scans, band, smoothing_fwhm, acompcor_components, fd_threshold,
               confound_groups, sloppy) -> tuple[str, tuple[str, ...]]:
    """Methods text of :func:`init_bold_wf` and the bibliography keys it cites, in order."""
    text = (
        f"The first {dummy_scans} volumes{' (detected)' if dummy_scans == 'auto' else ''} of "
        "each BOLD run were discarded. Head motion was corrected by rigid registration of "
        "every volume to a reference volume (ANTsPy, mean squares; the 6 parameters, "
        "framewise displacement (Power et al. 2012) and DVARS were recorded). The mean "
        "motion-corrected volume was registered rigidly to the skull-stripped T1w (mutual "
        "information). Anatomical CompCor (Behzadi et al. 2007; Muschelli et al. 2014) "
        "components were extracted "
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
    return text, ("power2012", "behzadi2007", "muschelli2014", "lindquist2019")


def _denoise_node(name, *, confound_groups, band, fd_threshold, smoothing_fwhm, **kwargs):
    return pe.Node(DenoiseBold(groups=list(confound_groups), band_pass=band,
                               fd_threshold=fd_threshold, smoothing_fwhm=float(smoothing_fwhm)),
                   name=name, **kwargs)


def init_bold_wf(*, bold_file, dummy_scans, band_pass, smoothing_fwhm, acompcor_components,
                 confound_groups, random_seed: int, metadata=None, fd_threshold=None,
                 output_spaces=("native",), template=None, sloppy=False, omp_nthreads=1,
                 name="bold_wf"):
    """Preprocess and denoise one BOLD run (the study's FSL FEAT steps, with antspyx).

    Parameters
    ----------
    bold_file : str
        Raw BOLD run (used for messages and the workflow's description).
    dummy_scans : int or "auto"
        Non-steady-state volumes to drop (``auto``: detected from the global signal).
    band_pass : (float, float) or None
        Band-pass edges in Hz applied to data and confounds alike.
    smoothing_fwhm : float
        Gaussian FWHM (mm) within the brain mask; 0 for none.
    acompcor_components : int or float
        aCompCor components (a number, or a variance fraction in (0, 1)).
    confound_groups : sequence of str
        Confounds regressed: ``"acompcor"`` (the study's) and/or ``"motion"`` (6 parameters).
    random_seed : int
        Seed (>= 0) of the registrations' sampling, the same as the anatomical workflow's:
        results are deterministic.
    metadata : dict, optional
        Its BIDS sidecar (``RepetitionTime``; otherwise the header's TR).
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

    Returns
    -------
    nipype Workflow
        ``inputnode``: ``bold_file`` and the anat outputnode fields; ``outputnode``: see
        ``docs/architecture.md`` (plus sidecar contents ``confounds_meta``,
        ``denoise_meta``, ``coreg_report``, ``masks_report`` and ``tr``).
    """
    seed = int(random_seed)
    band = None if band_pass is None else tuple(band_pass)
    denoising = {"confound_groups": confound_groups, "band": band,
                 "fd_threshold": fd_threshold, "smoothing_fwhm": smoothing_fwhm}
    workflow = pe.Workflow(name=name)
    workflow.__desc__, workflow.__citations__ = _bold_desc(
        dummy_scans=dummy_scans, acompcor_components=acompcor_components, sloppy=sloppy,
        **denoising)
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
    denoise = _denoise_node("denoise", **denoising)
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
        std_wf = init_bold_std_wf(band_pass=band, smoothing_fwhm=smoothing_fwhm,
                                  confound_groups=confound_groups, fd_threshold=fd_threshold)
        workflow.connect([
            (validate, std_wf, [("out_file", "inputnode.bold_file"), ("tr", "inputnode.tr")]),
            (hmc, std_wf, [("matrices", "inputnode.matrices"),
                           ("boldref", "inputnode.boldref")]),
            (coreg, std_wf, [("boldref2anat_xfm", "inputnode.boldref2anat_xfm")]),
            (inputnode, std_wf, [("anat2std_xfm", "inputnode.anat2std_xfm"),
                                 ("template_ref", "inputnode.template_ref"),
                                 ("template_mask", "inputnode.template_mask")]),
            (confounds, std_wf, [("out_file", "inputnode.confounds_file")]),
            (std_wf, outputnode, [("outputnode.bold_std", "bold_std")]),
        ])  # fmt: skip
    return workflow


def init_bold_std_wf(*, band_pass, smoothing_fwhm, confound_groups, fd_threshold,
                     name="bold_std_wf"):
    """The run's denoising in template space (docs/methods-bold.md, step 9).

    The raw (dummy-free) volumes are resampled once onto the template grid through motion +
    coregistration + normalisation, then denoised as in native space, with the native-space
    confounds and the template brain mask.

    Parameters
    ----------
    band_pass, smoothing_fwhm, confound_groups, fd_threshold
        As :func:`init_bold_wf` (the same denoising in both spaces).
    name : str
        Workflow name.

    Returns
    -------
    nipype Workflow
        ``inputnode``: ``BOLD_STD_INPUTS``; ``outputnode``: ``bold_std``.
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=BOLD_STD_INPUTS), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["bold_std"]), name="outputnode")
    to_std = pe.Node(ResampleToTemplate(), name="to_std", mem_gb=1.5)
    denoise_std = _denoise_node(
        "denoise_std", confound_groups=confound_groups, fd_threshold=fd_threshold,
        band=None if band_pass is None else tuple(band_pass), smoothing_fwhm=smoothing_fwhm,
        mem_gb=1.5)  # fmt: skip
    workflow.connect([
        (inputnode, to_std, [("bold_file", "in_file"), ("tr", "tr"), ("matrices", "matrices"),
                             ("boldref", "boldref"), ("boldref2anat_xfm", "boldref2anat_xfm"),
                             ("anat2std_xfm", "anat2std_xfm"), ("template_ref", "template_ref"),
                             ("template_mask", "template_mask")]),
        (to_std, denoise_std, [("out_file", "in_file")]),
        (inputnode, denoise_std, [("template_mask", "mask_file"),
                                  ("confounds_file", "confounds_file"), ("tr", "tr")]),
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
    """Sidecar of the BOLD outputs: ``base`` (with the software versions), TR, dummies
    dropped, denoising settings."""
    import json

    meta = dict(base or {})
    meta.update({"RepetitionTime": tr, "NumberOfVolumesDiscardedByUser": n_dummy,
                 "SkullStripped": False})
    if denoise_meta:
        with open(denoise_meta) as fh:
            meta["Denoising"] = json.load(fh)
    return meta


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


_BOLD_META_INPUTS = ["tr", "n_dummy", "denoise_meta", "base"]
_JSON_META_INPUTS = ["path", "extra"]
#: sidecar nodes of the BOLD derivatives: name -> (function, its input names, the inputnode
#: fields it reads -> its inputs)
_META_NODES = {
    "meta_preproc": (_bold_meta, _BOLD_META_INPUTS, [("tr", "tr"), ("n_dummy", "n_dummy")]),
    "meta_denoised": (_bold_meta, _BOLD_META_INPUTS, [("tr", "tr"), ("n_dummy", "n_dummy"),
                                                      ("denoise_meta", "denoise_meta")]),
    "meta_confounds": (_load_json, _JSON_META_INPUTS, [("confounds_meta", "path")]),
    "meta_xfm": (_load_json, _JSON_META_INPUTS, [("coreg_report", "path")]),
    "meta_mask": (_load_json, _JSON_META_INPUTS, [("masks_report", "path")]),
}


def _bold_outputs(space: str | None) -> list[tuple[Derivative, str | None]]:
    """(derivative, the node giving its sidecar or None) of a run; ``space``: template name
    of the template-space output (None: native only)."""
    rows = [(Derivative(field, node, OUTPUT_NAMES[field].sink(), meta), meta_node)
            for field, node, meta, meta_node in (
                ("bold_preproc", "ds_preproc", None, "meta_preproc"),
                ("bold_denoised", "ds_denoised", None, "meta_denoised"),
                ("bold_ref", "ds_boldref", {"Description": "mean motion-corrected volume"},
                 None),
                ("bold_mask", "ds_mask", None, "meta_mask"),
                ("confounds_tsv", "ds_confounds", None, "meta_confounds"),
                ("boldref2anat_xfm", "ds_bold2t1w", None, "meta_xfm"),
                ("anat2boldref_xfm", "ds_t1w2bold", None, "meta_xfm"),
            )]
    if space:
        rows.append((Derivative("bold_std", "ds_std", OUTPUT_NAMES["bold_std"].sink(space=space)),
                     "meta_denoised"))
    return rows


def _meta_nodes(base: dict) -> dict:
    """The Function nodes that build the sidecars of the BOLD derivatives."""
    versions = {"SoftwareVersions": software_versions(*VERSIONED)}
    static = {
        "meta_preproc": {"base": dict(base, Description="dummy volumes dropped, head motion "
                                                        "corrected (native BOLD grid)",
                                      **versions)},
        "meta_denoised": {"base": dict(base, Description="confounds regressed, band-passed, "
                                                         "smoothed within the brain mask",
                                       **versions)},
        "meta_xfm": {"extra": {"Description": "rigid BOLD reference <-> T1w (ITK, "
                                              "ants.apply_transforms point-map convention)"}},
        "meta_mask": {"extra": {"Description": "T1w brain mask projected onto the BOLD grid"}},
    }
    nodes = {}
    for name, (function, input_names, _) in _META_NODES.items():
        node = pe.Node(niu.Function(function=function, input_names=input_names,
                                    output_names=["meta"]), name=name,
                       run_without_submitting=True)
        for key, value in static.get(name, {}).items():
            setattr(node.inputs, key, value)
        nodes[name] = node
    return nodes


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
    fields = [f for f in BOLD_OUTPUTS if f not in ("n_dummy", "tr")] + ["n_dummy", "tr"]
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    base = {"Sloppy": True, "SloppyWarning": "not for research use"} if sloppy else {}
    if template is not None:
        base["Template"] = getattr(template, "name", str(template))
    metas = _meta_nodes(base)
    for node_name, (_, _, connections) in _META_NODES.items():
        workflow.connect([(inputnode, metas[node_name], connections)])
    space = (getattr(template, "name", None) or "template") if _wants_template(
        output_spaces) else None
    for row, meta_node in _bold_outputs(space):
        kwargs = dict(row.sink)
        if row.meta is not None:
            kwargs["meta_dict"] = dict(base, **row.meta)
        sink = pe.Node(DerivativesDataSink(base_directory=str(output_dir),
                                           source_file=str(bold_file), **kwargs),
                       name=row.node, run_without_submitting=True)
        if row.field.endswith("_xfm"):
            workflow.connect(inputnode, (row.field, _first), sink, "in_file")
        else:
            workflow.connect(inputnode, row.field, sink, "in_file")
        if meta_node:
            workflow.connect(metas[meta_node], "meta", sink, "meta_dict")
    return workflow
