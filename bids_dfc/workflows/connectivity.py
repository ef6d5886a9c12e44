"""Connectivity workflows: seeds -> region and network series -> DCC -> derivatives."""

from __future__ import annotations

import re
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_dfc.derivatives import OUTPUT_NAMES
from bids_dfc.derivatives.sidecars import ATLAS_META, DFC_META, RELMAT_MEASURE, SEED_TABLE
from bids_dfc.interfaces.bids import DerivativesDataSink
from bids_dfc.interfaces.connectivity import (
    ComputeDCC,
    ExtractSeries,
    MakeSeedMaps,
    WarpAtlas,
    WarpSeedMaps,
)
from bids_dfc.workflows.fields import (
    ATLAS_DFC_INPUTS,
    ATLAS_OUTPUTS,
    CONNECTIVITY_INPUTS,
    SEED_OUTPUTS,
    Derivative,
)

__all__ = ["atlas_entity", "init_atlas_dfc_wf", "init_connectivity_derivatives_wf",
           "init_connectivity_wf"]

def atlas_entity(atlas) -> str:
    """``seg-`` value for an atlas file: its ``atlas-`` entity, else its alphanumeric stem.

    >>> atlas_entity("/x/tpl-MNI_atlas-Schaefer100_dseg.nii.gz")
    'Schaefer100'
    >>> atlas_entity("/x/my_parcels.nii.gz")
    'myparcels'
    """
    name = Path(str(atlas)).name
    found = re.search(r"(?:^|_)atlas-([a-zA-Z0-9]+)", name)
    if found:
        return found.group(1)
    stem = name.split(".")[0]
    return re.sub(r"[^a-zA-Z0-9]", "", stem) or "atlas"


def _connectivity_desc(*, seeds_file, atlas, seed_space, network_weighting, dcc_mode,
                       dfc_bootstrap) -> tuple[str, tuple[str, ...]]:
    """Methods text of :func:`init_connectivity_wf` and the bibliography keys it cites."""
    n_seeds = "the four seeds of the study" if seeds_file is None else "user-given seeds"
    text = (
        f"Seed time series were extracted for {n_seeds} (spheres in template space, "
        "posterior cingulate and medial prefrontal cortex for the default mode network, "
        "periaqueductal grey and rostral ventral medulla for the descending pain-modulatory "
        "pathway, by default). "
        + ("Each sphere was drawn as a partial-volume weight map on the template grid and "
           "brought into the subject's native BOLD space by applying the inverse of the "
           "nonlinear T1w-to-template and the BOLD-to-T1w transforms in one linear "
           "interpolation (antspyx), so that seeds smaller than a BOLD voxel keep non-zero "
           "weights; a seed whose warped weights vanished fell back to the voxel nearest "
           "its warped centre. " if seed_space == "native" else
           "Seeds were drawn as partial-volume weight maps on the grid of the template-space "
           "BOLD series. ")
        + "Seed series were the weighted mean of the denoised BOLD signal, and network series "
        + ("the mean of their seeds' series (each seed with equal weight). "
           if network_weighting == "equal" else
           "the voxel-weighted mean of all their seeds' voxels. ")
        + "Dynamic functional connectivity between the networks and between every seed pair "
        f"{'(and every atlas region pair) ' if atlas else ''}was estimated with dynamic "
        "conditional correlation (DCC; Engle 2002, Lindquist et al. 2014): a Gaussian "
        "GARCH(1,1) model (Bollerslev 1986) per standardised series, then a DCC(1,1) model "
        f"({'jointly for all series' if dcc_mode == 'joint' else 'for each pair'}) fitted by "
        "deterministic maximisation of the quasi-likelihood. The dFC summary is the "
        "standard deviation over time of the DCC series."
    )
    keys = ("engle2002", "lindquist2014", "bollerslev1986")
    if not dfc_bootstrap:
        return text, keys
    return text + (
        f" The precision of each seed pair's dFC SD was estimated by a parametric bootstrap: "
        f"{dfc_bootstrap} series of the run's length were simulated from the pair's fitted "
        "DCC-GARCH model and refitted in the same way, and the 2.5th and 97.5th percentiles "
        "of their SDs give a 95% percentile interval (Efron & Tibshirani 1993)."
        + (" Pairs fitted jointly have no interval." if dcc_mode == "joint" else "")
    ), (*keys, "efron1993")


def init_connectivity_wf(*, seed_space, network_weighting, dcc_mode, dfc_bootstrap,
                         random_seed, seeds_file=None, atlas=None, atlas_labels=None,
                         name="connectivity_wf"):
    """Seeds (and optionally an atlas) -> region and network series -> DCC.

    docs/seeds.md describes the seeds, weights and atlases, docs/dcc.md the estimator.

    Parameters
    ----------
    seed_space : {"native", "template"}
        ``native``: seed weight maps are warped into the subject's BOLD space through the
        inverse nonlinear transforms (``anat2boldref_xfm + std2anat_xfm``, the study's
        approach); ``template``: extracted from the template-space BOLD (``bold_std``).
    network_weighting : {"equal", "voxel"}
        How seed series are averaged into network series.
    dcc_mode : {"pairwise", "joint"}
        DCC of every pair on its own, or one joint DCC of all seeds/regions.
    dfc_bootstrap : int
        Parametric-bootstrap replicates of each seed pair's SD (0: off; the atlas has none).
    random_seed : int
        Seed of the bootstrap.
    seeds_file : str or Path, optional
        Seeds TSV (``name, x, y, z, radius_mm, network``); default: the study's four seeds.
    atlas, atlas_labels : str or Path, optional
        Labelled atlas in template space and its labels TSV (``index, name[, network]``):
        adds :func:`init_atlas_dfc_wf`.
    name : str
        Workflow name.

    Inputs (inputnode)
    ------------------
    bold_file : raw BOLD (names the outputs); bold_denoised, bold_mask, bold_ref : native
    BOLD grid; bold_std : template-space BOLD (``seed_space="template"`` only);
    template_ref, template_mask : template; anat2boldref_xfm, std2anat_xfm : transform lists;
    confounds_tsv : for the mean framewise displacement.

    Outputs (outputnode)
    --------------------
    seed_timeseries, seed_dcc, seed_dfc, seed_weights, seed_info, dfc_meta and, with an
    atlas, atlas_timeseries, atlas_dcc, atlas_dfc, atlas_dseg, atlas_info, atlas_relmats,
    atlas_relmat_stats, atlas_meta.
    """
    _check_space(seed_space)
    if (atlas is None) != (atlas_labels is None):
        raise ValueError("an atlas needs its labels table (and labels need an atlas)")
    workflow = pe.Workflow(name=name)
    workflow.__desc__, workflow.__citations__ = _connectivity_desc(
        seeds_file=seeds_file, atlas=atlas, seed_space=seed_space,
        network_weighting=network_weighting, dcc_mode=dcc_mode, dfc_bootstrap=dfc_bootstrap)
    inputnode = pe.Node(niu.IdentityInterface(fields=CONNECTIVITY_INPUTS), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=SEED_OUTPUTS + ATLAS_OUTPUTS),
                         name="outputnode")
    xfms = _add_seed_branch(workflow, inputnode, outputnode, seeds_file=seeds_file,
                            seed_space=seed_space, network_weighting=network_weighting,
                            dcc_mode=dcc_mode, n_boot=(dfc_bootstrap, random_seed))
    if atlas is None:
        return workflow

    atlas_wf = init_atlas_dfc_wf(atlas=atlas, atlas_labels=atlas_labels, seed_space=seed_space,
                                 network_weighting=network_weighting, dcc_mode=dcc_mode)
    workflow.connect([
        (inputnode, atlas_wf, [(f, f"inputnode.{f}") for f in ATLAS_DFC_INPUTS]),
        (atlas_wf, outputnode, [(f"outputnode.{f}", f) for f in ATLAS_OUTPUTS]),
    ])  # fmt: skip
    if seed_space == "native":
        workflow.connect(xfms, "out", atlas_wf, "inputnode.transforms")
    return workflow


def _check_space(seed_space) -> None:
    if seed_space not in ("native", "template"):
        raise ValueError(f"seed_space must be 'native' or 'template', got {seed_space!r}")


def _add_seed_branch(workflow, inputnode, outputnode, *, seeds_file, seed_space,
                     network_weighting, dcc_mode, n_boot):
    """Seed maps -> warp -> seed and network series -> DCC, in ``workflow`` itself;
    ``n_boot``: (bootstrap replicates, random seed) of the SD intervals.

    Returns the node merging the two transform lists (the atlas branch warps with it too).
    """
    make_maps = pe.Node(MakeSeedMaps(), name="make_seed_maps")
    if seeds_file is not None:
        make_maps.inputs.seeds_file = str(seeds_file)
    warp = pe.Node(WarpSeedMaps(), name="warp_seed_maps")
    extract = pe.Node(ExtractSeries(network_weighting=network_weighting),
                      name="extract_seed_series")
    dcc = pe.Node(ComputeDCC(mode=dcc_mode, level="seed", n_boot=n_boot[0],
                             random_seed=n_boot[1]), name="seed_dcc", mem_gb=1)
    xfms = pe.Node(niu.Merge(2, ravel_inputs=True), name="merge_xfms", run_without_submitting=True)

    if seed_space == "native":
        workflow.connect([
            (inputnode, make_maps, [("template_ref", "reference")]),
            (inputnode, xfms, [("anat2boldref_xfm", "in1"), ("std2anat_xfm", "in2")]),
            (xfms, warp, [("out", "transforms")]),
            (inputnode, warp, [("bold_ref", "reference"), ("bold_mask", "mask")]),
            (inputnode, extract, [("bold_denoised", "bold_file")]),
        ])
    else:
        workflow.connect([
            (inputnode, make_maps, [("bold_std", "reference")]),
            (inputnode, warp, [("bold_std", "reference"), ("template_mask", "mask")]),
            (inputnode, extract, [("bold_std", "bold_file")]),
        ])
    workflow.connect([
        (make_maps, warp, [("out_file", "in_file"), ("seeds_tsv", "seeds_tsv")]),
        (warp, extract, [("out_file", "weights"), ("seed_info", "region_info")]),
        (extract, dcc, [("timeseries", "timeseries")]),
        (warp, dcc, [("seed_info", "region_info")]),
        (inputnode, dcc, [("confounds_tsv", "confounds")]),
        (extract, outputnode, [("timeseries", "seed_timeseries")]),
        (dcc, outputnode, [("dcc_series", "seed_dcc"), ("dfc", "seed_dfc"),
                           ("meta", "dfc_meta")]),
        (warp, outputnode, [("out_file", "seed_weights"), ("seed_info", "seed_info")]),
    ])
    return xfms


def init_atlas_dfc_wf(*, atlas, atlas_labels, seed_space, network_weighting, dcc_mode,
                      name="atlas_dfc_wf"):
    """Atlas -> BOLD grid -> region series -> DCC of every region pair and relmats.

    Parameters
    ----------
    atlas, atlas_labels : str or Path
        Labelled atlas in template space and its labels TSV (docs/seeds.md).
    seed_space, network_weighting, dcc_mode
        As :func:`init_connectivity_wf` (the atlas follows the seeds).
    name : str
        Workflow name.

    Returns
    -------
    nipype Workflow
        ``inputnode``: ``ATLAS_DFC_INPUTS`` + ``transforms`` (native space only);
        ``outputnode``: the ``atlas_*`` fields of :func:`init_connectivity_wf`.
    """
    _check_space(seed_space)
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=[*ATLAS_DFC_INPUTS, "transforms"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=ATLAS_OUTPUTS), name="outputnode")
    warp_atlas = pe.Node(WarpAtlas(atlas=str(atlas), labels=str(atlas_labels)),
                         name="warp_atlas")
    extract_atlas = pe.Node(ExtractSeries(network_weighting=network_weighting),
                            name="extract_atlas_series")
    atlas_dcc = pe.Node(ComputeDCC(mode=dcc_mode, level="region", relmats=True, n_boot=0,
                                   random_seed=0),  # no SD intervals: too many pairs
                        name="atlas_dcc", mem_gb=2)
    if seed_space == "native":
        workflow.connect([
            (inputnode, warp_atlas, [("template_ref", "template"), ("bold_ref", "reference"),
                                     ("bold_mask", "mask"), ("transforms", "transforms")]),
            (inputnode, extract_atlas, [("bold_denoised", "bold_file")]),
        ])
    else:
        workflow.connect([
            (inputnode, warp_atlas, [("template_ref", "template"), ("bold_std", "reference"),
                                     ("template_mask", "mask")]),
            (inputnode, extract_atlas, [("bold_std", "bold_file")]),
        ])
    workflow.connect([
        (warp_atlas, extract_atlas, [("out_file", "weights"), ("region_info", "region_info")]),
        (extract_atlas, atlas_dcc, [("timeseries", "timeseries")]),
        (warp_atlas, atlas_dcc, [("region_info", "region_info")]),
        (inputnode, atlas_dcc, [("confounds_tsv", "confounds")]),
        (extract_atlas, outputnode, [("timeseries", "atlas_timeseries")]),
        (warp_atlas, outputnode, [("out_file", "atlas_dseg"), ("region_info", "atlas_info")]),
        (atlas_dcc, outputnode, [("dcc_series", "atlas_dcc"), ("dfc", "atlas_dfc"),
                                 ("relmat_files", "atlas_relmats"),
                                 ("relmat_stats", "atlas_relmat_stats"),
                                 ("meta", "atlas_meta")]),
    ])
    return workflow


def _merge_meta(static, dynamic):
    out = dict(static)
    out.update(dynamic or {})
    return out


def _connect_meta(workflow, inputnode, field, sink):
    """Sidecar = the static column descriptions + the run's own fit information."""
    merge = pe.Node(niu.Function(function=_merge_meta, input_names=["static", "dynamic"],
                                 output_names=["meta"]), name=f"merge_{field}",
                    run_without_submitting=True)
    merge.inputs.static = dict(sink.inputs.meta_dict)
    workflow.connect([(inputnode, merge, [(field, "dynamic")]),
                      (merge, sink, [("meta", "meta_dict")])])


def _seed_outputs(space: str | None) -> list[Derivative]:
    """The seed outputs (docs/outputs-connectivity.md); ``space`` labels the maps when the
    seeds were drawn in template space."""
    where = {"space": space} if space else {}
    names = OUTPUT_NAMES
    return [
        Derivative("seed_timeseries", "ds_seed_timeseries", names["seed_timeseries"].sink(),
                   {"Description": "Weighted mean BOLD series of each seed, then of each "
                                   "network (mean of its seeds)."}),
        Derivative("seed_dcc", "ds_seed_dcc", names["seed_dcc"].sink(),
                   {"Description": "DCC series, one column per pair 'A__B'."}),
        Derivative("seed_dfc", "ds_seed_dfc", names["seed_dfc"].sink(), DFC_META),
        Derivative("seed_weights", "ds_seed_weights", names["seed_weights"].sink(**where),
                   {"Description": "Partial-volume seed weights on this run's BOLD grid; "
                                   "volume k is the seed with index k in the matching "
                                   "seg-seeds_dseg.tsv."}),
        Derivative("seed_info", "ds_seed_info", names["seed_info"].sink(**where), SEED_TABLE),
    ]


#: one relmat per statistic, in ComputeDCC's order
RELMAT_STATS = ("dccsd", "dccmean", "pearsoncorrelation")


def _atlas_outputs(aseg: str, space: str | None) -> list[Derivative]:
    """The atlas outputs; ``aseg``: the ``seg-`` entity of the atlas (the relmats apart)."""
    where = {"space": space} if space else {}
    names = OUTPUT_NAMES
    return [
        Derivative("atlas_timeseries", "ds_atlas_timeseries",
                   names["atlas_timeseries"].sink(seg=aseg),
                   {"Description": "Mean denoised BOLD series of each atlas region (one "
                                   "column per region, named as in the dseg.tsv; then one "
                                   "per network when the labels give networks), one row "
                                   "per volume after the dropped non-steady-state volumes."}),
        Derivative("atlas_dcc", "ds_atlas_dcc", names["atlas_dcc"].sink(seg=aseg),
                   {"Description": "DCC series of the atlas region pairs, one column per "
                                   "pair 'A__B', one row per volume."}),
        Derivative("atlas_dfc", "ds_atlas_dfc", names["atlas_dfc"].sink(seg=aseg), DFC_META),
        Derivative("atlas_dseg", "ds_atlas_dseg", names["atlas_dseg"].sink(seg=aseg, **where),
                   ATLAS_META),
        Derivative("atlas_info", "ds_atlas_info",
                   {**names["atlas_info"].sink(seg=aseg, **where), "write_sidecar": False}),
    ]


#: sidecars completed by the run's own fit information: stored field -> its inputnode field
_FIT_META = {"seed_dfc": "dfc_meta", "atlas_dfc": "atlas_meta"}


def _add_sink(workflow, inputnode, output_dir, row: Derivative, in_file=None):
    """A ``DerivativesDataSink`` for ``row``; ``in_file``: (node, output) giving the file
    instead of the inputnode field ``row.field``."""
    kwargs = dict(row.sink)
    if row.meta is not None:
        kwargs["meta_dict"] = row.meta
    node = pe.Node(DerivativesDataSink(base_directory=str(output_dir), **kwargs),
                   name=row.node, run_without_submitting=True)
    src, out = in_file or (inputnode, row.field)
    workflow.connect([(inputnode, node, [("source_file", "source_file")]),
                      (src, node, [(out, "in_file")])])
    if row.field in _FIT_META:
        _connect_meta(workflow, inputnode, _FIT_META[row.field], node)
    return node


def init_connectivity_derivatives_wf(*, output_dir, seed_space, atlas=None, template_name=None,
                                     name="connectivity_derivatives_wf"):
    """Write the connectivity outputs as BIDS-Derivatives (see ``docs/outputs-connectivity.md``).

    Parameters
    ----------
    output_dir : str or Path
        Derivatives dataset root.
    seed_space : {"native", "template"}
        Adds ``space-<template_name>`` to the seed/atlas maps when ``"template"``.
    atlas : str or Path, optional
        The atlas (its name gives the ``seg-`` entity of the atlas outputs).
    template_name : str, optional
        Template name for ``space-`` (template seed space only).
    name : str
        Workflow name.

    Inputs (inputnode): ``source_file`` (raw BOLD) and every outputnode field of
    :func:`init_connectivity_wf`.
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["source_file", *SEED_OUTPUTS, *ATLAS_OUTPUTS]), name="inputnode")
    space = template_name if seed_space == "template" and template_name else None
    for row in _seed_outputs(space):
        _add_sink(workflow, inputnode, output_dir, row)
    if atlas is None:
        return workflow

    aseg = atlas_entity(atlas)
    for row in _atlas_outputs(aseg, space):
        _add_sink(workflow, inputnode, output_dir, row)
    for k, stat in enumerate(RELMAT_STATS):
        pick = pe.Node(niu.Select(index=k), name=f"select_relmat_{stat}",
                       run_without_submitting=True)
        workflow.connect(inputnode, "atlas_relmats", pick, "inlist")
        row = Derivative("atlas_relmats", f"ds_relmat_{stat}",
                         OUTPUT_NAMES["atlas_relmats"].sink(seg=aseg, stat=stat),
                         {"Description": f"Region x region matrix of {stat}; rows and "
                                         "columns in the order of the dseg.tsv.",
                          # BEP017 (relationship matrices) keys
                          "RelationshipMeasure": RELMAT_MEASURE[stat],
                          "Weighted": True, "Directed": False, "ValidDiagonal": False,
                          "StorageFormat": "Full"})
        _add_sink(workflow, inputnode, output_dir, row, in_file=(pick, "out"))
    return workflow
