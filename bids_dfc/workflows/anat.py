"""Anatomical workflow: N4, template registration + brain mask, tissue segmentation.

The study used FSL (optiBET skull strip, FNIRT to MNI152 2 mm); we use antspyx, and reuse one
registration for both skull stripping and normalisation (see
:mod:`bids_dfc.interfaces.anat`; docs/methods-anat.md explains each step).
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_dfc.derivatives import OUTPUT_NAMES, software_versions
from bids_dfc.interfaces.anat import N4BiasCorrection, TemplateRegistration, TissueSegmentation
from bids_dfc.interfaces.bids import DerivativesDataSink
from bids_dfc.workflows.fields import ANAT_OUTPUTS, Derivative

#: Labels of ``t1w_dseg``.
DSEG_LABELS = {0: "background", 1: "GM", 2: "WM", 3: "CSF"}
SLOPPY_WARNING = "sloppy mode: reduced iterations, NOT FOR RESEARCH USE"
#: ``SoftwareVersions`` of the anatomical sidecars, in this order
VERSIONED = ("bids_dfc", "antspyx", "nipype")


def _with_qc(meta, qc):
    """Add the registration quality figures to a sidecar dict (Function node helper)."""
    out = dict(meta)
    if isinstance(qc, dict) and qc:
        out["RegistrationQC"] = {
            "CorrelationWithTemplate": round(float(qc["correlation"]), 4),
            "TemplateMaskOnHead": round(float(qc["mask_in_head"]), 4),
            "BrainVolumeMl": round(float(qc["brain_volume_ml"]), 1),
        }
    return out


#: the work to cite for each template the methods text can name
TEMPLATE_CITATIONS = {"MNI152NLin2009aSym": ("fonov2011", "Fonov et al. 2011"),
                      "MNI152NLin2009cAsym": ("fonov2011", "Fonov et al. 2011"),
                      "MNI152NLin6Asym": ("evans2012", "Evans et al. 2012")}


def _anat_desc(template, sloppy: bool) -> tuple[str, tuple[str, ...]]:
    """Methods text of :func:`init_anat_wf` and the bibliography keys it cites, in order."""
    iters = "reduced ('sloppy', not for research use) " if sloppy else ""
    template_key, cite = TEMPLATE_CITATIONS.get(template.name, (None, ""))
    keys = ("tustison2010",) + ((template_key,) if template_key else ())
    cite = f"{cite}; " if cite else ""
    source = template.source
    if source == "nilearn-bundled":
        keys += ("abraham2014",)
        source = "as shipped with nilearn, Abraham et al. 2014"
    else:
        source = f"source: {source}"
    text = (
        "The T1-weighted image was corrected for intensity non-uniformity with N4 "
        "(Tustison et al. 2010) as implemented in ANTsPy. It was registered to the "
        f"{template.name} template ({cite}{template.resolution} mm; {source}) "
        "with antsRegistration (Avants et al. 2008): an affine registration of the head "
        "(field of view cut 180 mm below the vertex) to the template brain, then affine and "
        f"symmetric diffeomorphic (SyN) registration with {iters}iterations and Mattes mutual "
        "information. The template brain mask, brought into the T1w space through the "
        "inverse transforms, gave the brain mask (filled, largest component, restricted to "
        "the head's foreground). Grey matter, white matter and CSF were segmented with "
        "Atropos (Avants et al. 2011) "
        + ("initialised with the template's tissue probability maps warped to the T1w."
           if template.has_tissue_priors else "initialised with intensity k-means.")
    )
    return text, keys + ("avants2008", "avants2011")


def init_anat_wf(*, template, random_seed: int, sloppy: bool = False, sanitise: bool = False,
                 name: str = "anat_wf") -> pe.Workflow:
    """Build the anatomical preprocessing workflow (docs/methods-anat.md).

    Parameters
    ----------
    template : bids_dfc.templates.TemplateSpec
        Standard space (from :func:`bids_dfc.templates.get_template`).
    random_seed : int
        Seed (>= 0) of antsRegistration's metric sampling: same seed, same result. Every
        bids_dfc seed means the same in the anatomical and the BOLD steps
        (:func:`bids_dfc.preproc.ants_utils.ants_seed_value` gives what ANTs receives).
    sloppy : bool
        Fewer iterations and coarser schedules -- tests and the demo only, NOT for research.
    sanitise : bool
        Zero NaN/inf voxels of the T1w with a warning instead of stopping with an error.
    name : str
        Workflow name.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``inputnode.t1w``; outputs listed in ``ANAT_OUTPUTS`` (see
        docs/architecture.md): ``anat2std_xfm`` = [warp, affine] and ``std2anat_xfm`` =
        [inverse affine, inverse warp], both in ``ants.apply_transforms`` order, no inversion.

    Examples
    --------
    >>> from bids_dfc.templates import get_template
    >>> wf = init_anat_wf(template=get_template("MNI152NLin2009aSym", 2), random_seed=0,
    ...                   sloppy=True)
    >>> sorted(wf.list_node_names())[:2]
    ['inputnode', 'n4']
    """
    wf = pe.Workflow(name=name)
    wf.__desc__, wf.__citations__ = _anat_desc(template, sloppy)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=ANAT_OUTPUTS), name="outputnode")
    outputnode.inputs.template_ref = template.t1w
    outputnode.inputs.template_mask = template.brain_mask

    # one ITK thread in every antspyx node: multi-threaded ANTs registration (random metric
    # sampling split across threads) gives different transforms on every run, even with a
    # fixed seed, and ITK keeps the thread count of a process's first call, so a multi-threaded
    # N4 would make a later registration in the same worker multi-threaded too.
    n4 = pe.Node(N4BiasCorrection(sloppy=sloppy, sanitise=sanitise, num_threads=1),
                 name="n4", n_procs=1, mem_gb=1.0)
    reg = pe.Node(
        TemplateRegistration(template=template.t1w, template_mask=template.brain_mask,
                             sloppy=sloppy, random_seed=int(random_seed), num_threads=1),
        name="register", n_procs=1, mem_gb=1.5)
    seg = pe.Node(TissueSegmentation(sloppy=sloppy, num_threads=1),
                  name="segment", n_procs=1, mem_gb=1.5)
    if template.has_tissue_priors:
        seg.inputs.priors = [template.gm, template.wm, template.csf]

    wf.connect([
        (inputnode, n4, [("t1w", "in_file")]),
        (inputnode, reg, [("t1w", "source_file")]),
        (n4, reg, [("out_file", "in_file")]),
        (reg, seg, [("out_brain", "in_file"), ("out_mask", "in_mask"),
                    ("std2anat_xfm", "std2anat_xfm")]),
        (n4, outputnode, [("out_file", "t1w_preproc")]),
        (reg, outputnode, [("out_brain", "t1w_brain"), ("out_mask", "t1w_mask"),
                           ("anat2std_xfm", "anat2std_xfm"), ("std2anat_xfm", "std2anat_xfm"),
                           ("t1w_std", "t1w_std"), ("qc", "registration_qc")]),
        (seg, outputnode, [("dseg", "t1w_dseg"), ("tpms", "t1w_tpms")]),
    ])  # fmt: skip
    return wf


#: ``ApplyOrder`` of the transform sidecars
_FWD_ORDER = ("transform list for ants.apply_transforms (antsApplyTransforms -t, in this "
              "order) to resample the T1w onto the template: [desc-warp, desc-affine], no "
              "inversion flags")
_INV_ORDER = ("transform list for ants.apply_transforms (antsApplyTransforms -t, in this "
              "order) to resample template images onto the T1w: [desc-affine, desc-warp]; the "
              "affine is already inverted (ITK text file), no inversion flags")
#: sidecar of the brain mask (completed by the registration quality figures)
_MASK_META = {"Type": "Brain", "Description": "template brain mask warped to the T1w through "
              "the inverse SyN transforms (>= 0.5), holes filled, largest component, cut to "
              "the head foreground"}


def _anat_outputs(tpl: str) -> list[Derivative]:
    """The anatomical derivatives (docs/outputs-anat.md), for template name ``tpl``."""
    names = OUTPUT_NAMES
    return [
        Derivative("t1w_preproc", "ds_t1w_preproc", names["t1w_preproc"].sink(),
                   {"Description": "N4 bias-corrected T1w (ANTsPy n4_bias_field_correction), "
                                   "native grid, head not stripped", "SkullStripped": False}),
        # its sidecar is completed by the mask_meta node (registration quality figures)
        Derivative("t1w_mask", "ds_t1w_mask", names["t1w_mask"].sink(), {}),
        Derivative("t1w_dseg", "ds_t1w_dseg", names["t1w_dseg"].sink(),
                   {"Labels": {str(k): v for k, v in DSEG_LABELS.items()},
                    "Description": "argmax of the Atropos posteriors inside the brain mask"}),
        Derivative("t1w_tpms", "ds_t1w_tpms", names["t1w_tpms"].sink(),
                   {"Description": "Atropos posterior probability"},
                   map_over={"label": ["GM", "WM", "CSF"]}),
        Derivative("t1w_std", "ds_t1w_std", names["t1w_std"].sink(space=tpl),
                   {"Description": f"preprocessed T1w resampled on the {tpl} grid (linear) "
                                   "through the forward transforms", "SkullStripped": False}),
        Derivative("anat2std_xfm", "ds_anat2std_xfm", names["anat2std_xfm"].sink(to=tpl),
                   {"FromSpace": "T1w", "ToSpace": tpl, "ApplyOrder": _FWD_ORDER},
                   map_over={"desc": ["warp", "affine"], "extension": [".nii.gz", ".txt"]}),
        Derivative("std2anat_xfm", "ds_std2anat_xfm", names["std2anat_xfm"].sink(**{"from": tpl}),
                   {"FromSpace": tpl, "ToSpace": "T1w", "ApplyOrder": _INV_ORDER},
                   map_over={"desc": ["affine", "warp"], "extension": [".txt", ".nii.gz"]}),
    ]


def _add_sink(wf, inputnode, output_dir, row: Derivative, base: dict):
    """A (Map)Node ``DerivativesDataSink`` storing ``row.field`` with ``base`` + ``row.meta``."""
    interface = DerivativesDataSink(base_directory=str(output_dir), **row.sink)
    if row.map_over:
        node = pe.MapNode(interface, iterfield=["in_file", *row.map_over], name=row.node,
                          run_without_submitting=True)
    else:
        node = pe.Node(interface, name=row.node, run_without_submitting=True)
    node.inputs.meta_dict = {**base, **row.meta}
    for key, values in row.map_over.items():
        setattr(node.inputs, key, values)
    wf.connect([(inputnode, node, [("source_file", "source_file"), (row.field, "in_file")])])
    return node


def init_anat_derivatives_wf(*, output_dir, template, sloppy: bool = False,
                             name: str = "anat_derivatives_wf") -> pe.Workflow:
    """Write the anatomical outputs as BIDS-Derivatives, each with a JSON sidecar.

    Files (``<p>`` = ``sub-X[_ses-Y]``, ``<tpl>`` = template name), in ``sub-X/[ses-Y/]anat``:
    ``<p>_desc-preproc_T1w.nii.gz``, ``<p>_desc-brain_mask.nii.gz``, ``<p>_dseg.nii.gz``,
    ``<p>_label-{GM,WM,CSF}_probseg.nii.gz``, ``<p>_space-<tpl>_desc-preproc_T1w.nii.gz``,
    ``<p>_from-T1w_to-<tpl>_mode-image_desc-{affine,warp}_xfm.{txt,nii.gz}`` and
    ``<p>_from-<tpl>_to-T1w_mode-image_desc-{affine,warp}_xfm.{txt,nii.gz}`` (docs/outputs-anat.md
    gives the apply order).

    Parameters
    ----------
    output_dir : str
        Derivatives dataset root.
    template : bids_dfc.templates.TemplateSpec
        The template of the anatomical workflow (recorded in every sidecar).
    sloppy : bool
        Record that the outputs come from the reduced 'sloppy' schedules.
    name : str
        Workflow name.
    """
    wf = pe.Workflow(name=name)
    fields = ["source_file", "t1w_preproc", "t1w_mask", "t1w_dseg", "t1w_tpms",
              "anat2std_xfm", "std2anat_xfm", "t1w_std", "registration_qc"]  # fmt: skip
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    base = {**template.metadata(), "SoftwareVersions": software_versions(*VERSIONED)}
    if sloppy:
        base["Warning"] = SLOPPY_WARNING
    sinks = {row.field: _add_sink(wf, inputnode, output_dir, row, base)
             for row in _anat_outputs(template.name)}
    mask_meta = pe.Node(niu.Function(input_names=["meta", "qc"], output_names=["meta"],
                                     function=_with_qc), name="mask_meta",
                        run_without_submitting=True)
    mask_meta.inputs.meta = {**base, **_MASK_META}
    wf.connect([(inputnode, mask_meta, [("registration_qc", "qc")]),
                (mask_meta, sinks["t1w_mask"], [("meta", "meta_dict")])])
    return wf
