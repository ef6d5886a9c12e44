"""Anatomical workflow: N4, template registration + brain mask, tissue segmentation.

The study used FSL (optiBET skull strip, FNIRT to MNI152 2 mm); we use antspyx, and reuse one
registration for both skull stripping and normalisation (see
:mod:`bids_dfc.interfaces.anat`).
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_dfc.interfaces.anat import N4BiasCorrection, TemplateRegistration, TissueSegmentation
from bids_dfc.workflows.fields import ANAT_OUTPUTS

#: Labels of ``t1w_dseg``.
DSEG_LABELS = {0: "background", 1: "GM", 2: "WM", 3: "CSF"}
SLOPPY_WARNING = "sloppy mode: reduced iterations, NOT FOR RESEARCH USE"


def _versions() -> dict:
    import ants
    import nipype

    from bids_dfc import __version__

    return {"bids_dfc": __version__, "antspyx": ants.__version__, "nipype": nipype.__version__}


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


def init_anat_wf(*, template, sloppy: bool = False, omp_nthreads: int = 1,
                 random_seed: int | None = None, sanitise: bool = False,
                 name: str = "anat_wf") -> pe.Workflow:
    """Build the anatomical preprocessing workflow.

    Parameters
    ----------
    template : bids_dfc.templates.TemplateSpec
        Standard space (from :func:`bids_dfc.templates.get_template`).
    sloppy : bool
        Fewer iterations and coarser schedules -- tests and the demo only, NOT for research.
    omp_nthreads : int
        Accepted for symmetry with the other builders; the antspyx nodes run with one ITK
        thread each so that reruns are reproducible (parallelism comes from running nodes
        and participants side by side).
    random_seed : int, optional
        Seed passed to antsRegistration (same seed, same result).
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
    >>> wf = init_anat_wf(template=get_template("MNI152NLin2009aSym", 2), sloppy=True)
    >>> sorted(wf.list_node_names())[:2]
    ['inputnode', 'n4']
    """
    wf = pe.Workflow(name=name)
    iters = "reduced ('sloppy', not for research use) " if sloppy else ""
    wf.__desc__ = (
        "The T1-weighted image was corrected for intensity non-uniformity with N4 "
        "(Tustison et al. 2010) as implemented in ANTsPy. It was registered to the "
        f"{template.name} template ({template.resolution} mm; source: {template.source}) "
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
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=ANAT_OUTPUTS), name="outputnode")
    outputnode.inputs.template_ref = template.t1w
    outputnode.inputs.template_mask = template.brain_mask

    # one ITK thread in every antspyx node: multi-threaded ANTs registration (random metric
    # sampling split across threads) gives different transforms on every run, even with a
    # fixed seed, and ITK keeps the thread count of a process's first call, so a multi-threaded
    # N4 would make a later registration in the same worker multi-threaded too.
    # ``omp_nthreads`` is kept in the signature for the non-ANTs steps.
    n4 = pe.Node(N4BiasCorrection(sloppy=sloppy, sanitise=sanitise, num_threads=1),
                 name="n4", n_procs=1, mem_gb=1.0)
    reg = pe.Node(
        TemplateRegistration(template=template.t1w, template_mask=template.brain_mask,
                             sloppy=sloppy, random_seed=random_seed, num_threads=1),
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
    from bids_dfc.interfaces.bids import DerivativesDataSink

    wf = pe.Workflow(name=name)
    fields = ["source_file", "t1w_preproc", "t1w_mask", "t1w_dseg", "t1w_tpms",
              "anat2std_xfm", "std2anat_xfm", "t1w_std", "registration_qc"]  # fmt: skip
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    base = {**template.metadata(), "SoftwareVersions": _versions()}
    if sloppy:
        base["Warning"] = SLOPPY_WARNING
    tpl = template.name

    def _sink(node_name, field, meta, map_over=None, **kwargs):
        cls = (pe.MapNode(DerivativesDataSink(base_directory=str(output_dir), **kwargs),
                          iterfield=["in_file", *map_over], name=node_name,
                          run_without_submitting=True)
               if map_over else
               pe.Node(DerivativesDataSink(base_directory=str(output_dir), **kwargs),
                       name=node_name, run_without_submitting=True))
        cls.inputs.meta_dict = {**base, **meta}
        wf.connect([(inputnode, cls, [("source_file", "source_file"), (field, "in_file")])])
        return cls

    _sink("ds_t1w_preproc", "t1w_preproc",
          {"Description": "N4 bias-corrected T1w (ANTsPy n4_bias_field_correction), "
                          "native grid, head not stripped", "SkullStripped": False},
          desc="preproc", suffix="T1w", extension=".nii.gz")
    ds_mask = _sink("ds_t1w_mask", "t1w_mask", {}, desc="brain", suffix="mask",
                    extension=".nii.gz")
    mask_meta = pe.Node(niu.Function(input_names=["meta", "qc"], output_names=["meta"],
                                     function=_with_qc), name="mask_meta",
                        run_without_submitting=True)
    mask_meta.inputs.meta = {
        **base, "Type": "Brain", "Description": "template brain mask warped to the T1w "
        "through the inverse SyN transforms (>= 0.5), holes filled, largest component, cut "
        "to the head foreground"}
    wf.connect([(inputnode, mask_meta, [("registration_qc", "qc")]),
                (mask_meta, ds_mask, [("meta", "meta_dict")])])
    _sink("ds_t1w_dseg", "t1w_dseg",
          {"Labels": {str(k): v for k, v in DSEG_LABELS.items()},
           "Description": "argmax of the Atropos posteriors inside the brain mask"},
          suffix="dseg", extension=".nii.gz")
    tpms = _sink("ds_t1w_tpms", "t1w_tpms",
                 {"Description": "Atropos posterior probability"},
                 map_over=["label"], suffix="probseg", extension=".nii.gz")
    tpms.inputs.label = ["GM", "WM", "CSF"]
    _sink("ds_t1w_std", "t1w_std",
          {"Description": f"preprocessed T1w resampled on the {tpl} grid (linear) through "
                          "the forward transforms", "SkullStripped": False},
          space=tpl, desc="preproc", suffix="T1w", extension=".nii.gz")
    fwd = _sink("ds_anat2std_xfm", "anat2std_xfm",
                {"FromSpace": "T1w", "ToSpace": tpl,
                 "ApplyOrder": "transform list for ants.apply_transforms (antsApplyTransforms "
                               "-t, in this order) to resample the T1w onto the template: "
                               "[desc-warp, desc-affine], no inversion flags"},
                map_over=["desc", "extension"], suffix="xfm",
                extra_entities={"from": "T1w", "to": tpl, "mode": "image"})
    fwd.inputs.desc = ["warp", "affine"]
    fwd.inputs.extension = [".nii.gz", ".txt"]
    inv = _sink("ds_std2anat_xfm", "std2anat_xfm",
                {"FromSpace": tpl, "ToSpace": "T1w",
                 "ApplyOrder": "transform list for ants.apply_transforms (antsApplyTransforms "
                               "-t, in this order) to resample template images onto the T1w: "
                               "[desc-affine, desc-warp]; the affine is already inverted "
                               "(ITK text file), no inversion flags"},
                map_over=["desc", "extension"], suffix="xfm",
                extra_entities={"from": tpl, "to": "T1w", "mode": "image"})
    inv.inputs.desc = ["affine", "warp"]
    inv.inputs.extension = [".txt", ".nii.gz"]
    return wf
