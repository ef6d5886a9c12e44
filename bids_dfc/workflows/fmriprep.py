"""The fMRIPrep ingress: one run's fMRIPrep outputs -> the connectivity workflow's inputs.

It fills every field of ``workflows/fields.py``'s ``CONNECTIVITY_INPUTS`` from fMRIPrep's
files (docs/fmriprep.md), in place of ``init_anat_wf`` + ``init_bold_wf``: the BOLD series
is denoised with a named strategy of fMRIPrep's confounds (the same regression, band-pass
and smoothing as the raw mode), in template space for template-space seeds, in the
subject's BOLD space (``space-T1w`` or fMRIPrep 23.2+'s boldref space) for native seeds.
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_dfc.interfaces.bold import InvertAffine
from bids_dfc.interfaces.denoise import DenoiseFmriprep
from bids_dfc.preproc.fmriprep_confounds import STRATEGIES, describe
from bids_dfc.workflows.fields import CONNECTIVITY_INPUTS

__all__ = ["init_fmriprep_bold_wf"]


def _ingress_desc(*, version, template, seed_space, native_space, strategy, n_compcor,
                  band, smoothing_fwhm, fd_threshold) -> tuple[str, tuple[str, ...]]:
    """Methods text of :func:`init_fmriprep_bold_wf` and the bibliography keys it cites."""
    where = (f"in {template} space" if seed_space == "template" else
             "in the subject's T1w space" if native_space == "T1w" else
             "in the BOLD series' own reference space")
    text = (
        f"The BOLD series preprocessed by *fMRIPrep* {version or '(version not recorded)'} "
        f"(Esteban et al. 2019) {where} were used, with fMRIPrep's brain mask and confounds "
        "table. The volumes fMRIPrep flagged as non-steady-state were discarded. Denoising "
        f"followed the '{strategy}' strategy: {describe(strategy, n_compcor)}. The confounds "
        f"were regressed out after band-pass filtering data and confounds alike ({band} Hz, "
        "Butterworth; Lindquist et al. 2019)"
        + (f", censoring volumes with FD > {fd_threshold} mm from the fit" if fd_threshold
           else "")
        + f", and the result was smoothed within the brain mask ({smoothing_fwhm} mm FWHM)."
    )
    return text, ("esteban2019", *STRATEGIES[strategy].citations, "lindquist2019")


def init_fmriprep_bold_wf(*, run, std2anat, version, seed_space, strategy, n_compcor,
                          dummy_scans, band_pass, smoothing_fwhm, fd_threshold=None,
                          name="fmriprep_bold_wf"):
    """Denoise one run of fMRIPrep derivatives for the connectivity workflow.

    Parameters
    ----------
    run : bids_dfc.inputs.fmriprep.FmriprepRun
        The run's checked files (``run.native`` is used for ``seed_space="native"``).
    std2anat : str or None
        fMRIPrep's ``from-<template>_to-T1w_mode-image_xfm.h5`` (native seeds only).
    version : str or None
        fMRIPrep's version (methods text).
    seed_space : {"native", "template"}
    strategy, n_compcor : str, float
        Denoising strategy (``preproc/fmriprep_confounds.py``) and aCompCor components per
        mask.
    dummy_scans : int, "auto" or None
        Leading volumes dropped ("auto"/None: fMRIPrep's non-steady-state flags).
    band_pass, smoothing_fwhm, fd_threshold
        As for the raw mode's ``init_bold_wf``.
    name : str
        Workflow name.

    Outputs (outputnode)
    --------------------
    ``CONNECTIVITY_INPUTS`` (``workflows/fields.py``), plus ``denoise_meta`` (JSON).
    """
    if seed_space == "native" and run.native is None:
        raise ValueError("native-space seeds need the run's native fMRIPrep files")
    workflow = pe.Workflow(name=name)
    workflow.__desc__, workflow.__citations__ = _ingress_desc(
        version=version, template=run.template, seed_space=seed_space,
        native_space=run.native.space if run.native else None, strategy=strategy,
        n_compcor=n_compcor, band=tuple(band_pass) if band_pass else None,
        smoothing_fwhm=smoothing_fwhm, fd_threshold=fd_threshold)
    outputnode = pe.Node(niu.IdentityInterface(fields=[*CONNECTIVITY_INPUTS, "denoise_meta"]),
                         name="outputnode")
    outputnode.inputs.bold_file = str(run.source)
    # seeds are drawn on the template grid of fMRIPrep's own template-space mask
    outputnode.inputs.template_mask = outputnode.inputs.template_ref = str(run.mask)
    denoise = pe.Node(DenoiseFmriprep(
        confounds_file=str(run.confounds), tr=float(run.tr), strategy=strategy,
        n_compcor=float(n_compcor), dummy_scans=dummy_scans,
        band_pass=tuple(band_pass) if band_pass else None, fd_threshold=fd_threshold,
        smoothing_fwhm=float(smoothing_fwhm)), name="denoise", mem_gb=2)
    workflow.connect([(denoise, outputnode, [("out_meta", "denoise_meta"),
                                             ("confounds_kept", "confounds_tsv")])])
    if seed_space == "template":
        bold = run.aroma_bold if STRATEGIES[strategy].bold_desc != "preproc" else run.bold
        denoise.inputs.in_file, denoise.inputs.mask_file = str(bold), str(run.mask)
        workflow.connect(denoise, "out_file", outputnode, "bold_std")
        return workflow

    native = run.native
    denoise.inputs.in_file, denoise.inputs.mask_file = str(native.bold), str(native.mask)
    outputnode.inputs.bold_mask, outputnode.inputs.bold_ref = str(native.mask), str(native.boldref)
    outputnode.inputs.std2anat_xfm = [str(std2anat)]
    workflow.connect(denoise, "out_file", outputnode, "bold_denoised")
    if native.space == "T1w":
        outputnode.inputs.anat2boldref_xfm = []  # the series is on the T1w's space already
    else:
        invert = pe.Node(InvertAffine(in_file=str(native.boldref2anat)), name="t1w_to_boldref")
        workflow.connect(invert, "out_file", outputnode, "anat2boldref_xfm")
    return workflow
