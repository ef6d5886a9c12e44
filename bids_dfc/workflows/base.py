"""The participant workflow: anat -> bold (per run) -> connectivity -> derivatives, and reports."""

from __future__ import annotations

import logging
from pathlib import Path

from nipype.pipeline import engine as pe

from bids_dfc import __version__
from bids_dfc.derivatives import staging_dir
from bids_dfc.templates import get_template
from bids_dfc.workflows.anat import init_anat_derivatives_wf, init_anat_wf
from bids_dfc.workflows.bold import init_bold_derivatives_wf, init_bold_wf
from bids_dfc.workflows.connectivity import (
    init_connectivity_derivatives_wf,
    init_connectivity_wf,
)
from bids_dfc.workflows.fields import ANAT_FIELDS

LOGGER = logging.getLogger("bids_dfc")

def init_bids_dfc_wf(config, subjects):
    """Top-level workflow: one sub-workflow per participant.

    Parameters
    ----------
    config : bids_dfc.config.Config
        Settings of the run (read here, passed on as plain values).
    subjects : list of bids_dfc.inputs.raw.SubjectData
        The checked raw files of each participant.
    """
    wf = pe.Workflow(name=f"bids_dfc_{__version__.replace('.', '_')}_wf")
    template = get_template(config.workflow.template, config.workflow.template_resolution)
    LOGGER.info("template: %s (%s, %s mm)", template.name, template.source, template.resolution)
    for data in subjects:
        wf.add_nodes([init_single_subject_wf(data, config=config, template=template)])
    return wf


def _run_name(bold_file: Path) -> str:
    stem = bold_file.name.split(".")[0]
    return "bold_" + "".join(ch if ch.isalnum() else "_" for ch in stem.removesuffix("_bold"))


def init_single_subject_wf(data, *, config, template):
    """Everything for one participant: anatomy once, then every BOLD run.

    Parameters
    ----------
    data : bids_dfc.inputs.raw.SubjectData
        The participant's T1w and BOLD runs (with their metadata).
    config : bids_dfc.config.Config
        Settings of the run.
    template : bids_dfc.templates.TemplateSpec
        The standard space.
    """
    ex, opts = config.execution, config.workflow
    output_dir = str(staging_dir(ex.output_dir))  # moved into place when it finished
    spaces = list(opts.output_spaces)
    if opts.seed_space == "template" and "template" not in spaces:
        spaces.append("template")  # template-space seeds need the template-space BOLD
    wf = pe.Workflow(name=f"sub_{data.subject}_wf")
    wf.__desc__ = (
        f"Results included in this report were generated with *bids_dfc* {__version__}, "
        "which is based on *Nipype* (Gorgolewski et al. 2011) and *ANTsPy* (Avants et al. "
        "2008; Tustison et al. 2021)."
    )
    wf.__citations__ = ("gorgolewski2011", "avants2008", "tustison2021")
    anat_wf = init_anat_wf(template=template, sloppy=ex.sloppy, random_seed=ex.random_seed)
    anat_wf.inputs.inputnode.t1w = str(data.t1w)
    anat_ds = init_anat_derivatives_wf(output_dir=output_dir, template=template, sloppy=ex.sloppy)
    anat_ds.inputs.inputnode.source_file = str(data.t1w)
    wf.connect([(anat_wf, anat_ds, _pairs_into(anat_ds, anat_wf))])

    for bold_file in data.bold:
        run = _run_name(bold_file)
        metadata = data.bold_metadata[str(bold_file)]
        bold_wf = init_bold_wf(
            bold_file=str(bold_file), metadata=metadata, dummy_scans=opts.dummy_scans,
            band_pass=opts.band_pass, smoothing_fwhm=opts.smoothing_fwhm,
            acompcor_components=opts.acompcor_components, fd_threshold=opts.fd_threshold,
            confound_groups=tuple(opts.confounds),
            output_spaces=tuple(spaces), template=template, sloppy=ex.sloppy,
            omp_nthreads=ex.omp_nthreads, random_seed=ex.random_seed, name=f"{run}_wf",
        )  # fmt: skip
        bold_wf.inputs.inputnode.bold_file = str(bold_file)
        wf.connect([(anat_wf, bold_wf, [(f"outputnode.{f}", f"inputnode.{f}")
                                        for f in ANAT_FIELDS])])  # fmt: skip
        bold_ds = init_bold_derivatives_wf(
            output_dir=output_dir, bold_file=str(bold_file), metadata=metadata,
            template=template, output_spaces=tuple(spaces), sloppy=ex.sloppy,
            name=f"{run}_derivatives_wf",
        )  # fmt: skip
        wf.connect([(bold_wf, bold_ds, _pairs_into(bold_ds, bold_wf))])

        conn_wf = init_connectivity_wf(
            seeds_file=opts.seeds, atlas=opts.atlas, atlas_labels=opts.atlas_labels,
            seed_space=opts.seed_space, network_weighting=opts.network_weighting,
            dcc_mode=opts.dcc_mode, dfc_bootstrap=opts.dfc_bootstrap,
            random_seed=ex.random_seed, name=f"{run}_connectivity_wf",
        )  # fmt: skip
        conn_wf.inputs.inputnode.bold_file = str(bold_file)
        taken = {"inputnode.bold_file"}  # set above; each other field from one source only
        for src_wf in (bold_wf, anat_wf):
            pairs = [p for p in _pairs_into(conn_wf, src_wf) if p[1] not in taken]
            taken.update(p[1] for p in pairs)
            wf.connect([(src_wf, conn_wf, pairs)])
        conn_ds = init_connectivity_derivatives_wf(
            output_dir=output_dir, seed_space=opts.seed_space, atlas=opts.atlas,
            template_name=template.name, name=f"{run}_connectivity_derivatives_wf",
        )  # fmt: skip
        conn_ds.inputs.inputnode.source_file = str(bold_file)
        wf.connect([(conn_wf, conn_ds, _pairs_into(conn_ds, conn_wf))])
    return wf


def _fields(wf, node: str) -> list[str]:
    return list(wf.get_node(node).inputs.copyable_trait_names())


def _pairs_into(dst_wf, src_wf) -> list[tuple[str, str]]:
    """Connect every ``src_wf`` outputnode field to the ``dst_wf`` inputnode field of that name."""
    outputs = set(_fields(src_wf, "outputnode"))
    return [(f"outputnode.{f}", f"inputnode.{f}") for f in _fields(dst_wf, "inputnode")
            if f in outputs]  # fmt: skip
