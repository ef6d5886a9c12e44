"""Validation of the functional workflow on a real scan: studyforrest sub-02.

Runs the anatomical and functional workflows (default settings, not sloppy) on
``/work/shared/data/studyforrest/sub-02`` (T1w 0.7 mm; oblique BOLD 80x80x35, 3x3x3.3 mm,
156 volumes, TR 2 s) and saves overlay images and a summary to
``validation/results/bold/``:

* ``coreg_boldspace.png`` -- BOLD reference with the T1w brain mask (red) and white-matter
  edge (yellow) brought into BOLD space by the inverse coregistration;
* ``coreg_t1wspace.png`` -- T1w with the edges of the BOLD reference resampled into T1w
  space (the same transform, other direction);
* ``acompcor_masks.png`` -- eroded WM (blue) and CSF (green) masks on the BOLD reference;
* ``confounds.png`` -- motion parameters, FD, DVARS and the aCompCor components;
* ``carpet.png`` -- in-brain voxels x time before (motion-corrected) and after denoising;
* ``summary.json`` -- the figures quoted in the report (FD, Dice, tSNR, timings ...).

Usage::

    .venv/bin/python validation/validate_bold.py [--data DIR] [--work DIR] [--nprocs 2]

It needs /work/shared (not part of the test suite).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/studyforrest")
OUT = ROOT / "validation" / "results" / "bold"


def build(data: Path, work: Path, nprocs: int):
    from nipype.pipeline import engine as pe

    from bids_dfc.templates import get_template
    from bids_dfc.workflows.anat import init_anat_wf
    from bids_dfc.workflows.bold import ANAT_FIELDS, init_bold_wf

    t1w = data / "sub-02" / "anat" / "sub-02_T1w.nii.gz"
    bold = data / "sub-02" / "func" / "sub-02_task-localizer_bold.nii.gz"
    meta = json.loads(bold.with_name("sub-02_task-localizer_bold.json").read_text())
    template = get_template("auto", 2)
    wf = pe.Workflow(name="validate_bold", base_dir=str(work))
    anat = init_anat_wf(template=template, omp_nthreads=nprocs, random_seed=1)
    anat.inputs.inputnode.t1w = str(t1w)
    func = init_bold_wf(bold_file=str(bold), metadata=meta, template=template,
                        omp_nthreads=nprocs, random_seed=1)
    wf.connect([(anat, func, [(f"outputnode.{f}", f"inputnode.{f}") for f in ANAT_FIELDS])])
    return wf, t1w, bold


def _edges(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    mask = mask > 0
    return mask & ~ndi.binary_erosion(mask)


def _panel(axes, background, overlays, title):
    """Three orthogonal middle slices of ``background`` with binary ``overlays``."""
    centre = [s // 2 for s in background.shape]
    for ax, axis in zip(axes, range(3)):
        sl = [slice(None)] * 3
        sl[axis] = centre[axis]
        ax.imshow(np.rot90(background[tuple(sl)]), cmap="gray",
                  vmax=np.percentile(background, 99.5))
        for mask, colour in overlays:
            m = np.rot90(mask[tuple(sl)].astype(float))
            ax.imshow(np.ma.masked_where(m == 0, m), cmap=matplotlib.colors.ListedColormap(
                [colour]), alpha=0.9, interpolation="nearest")
        ax.axis("off")
    axes[0].set_title(title, loc="left", fontsize=9)


def figures(node: Path, t1w: Path) -> dict:
    from bids_dfc.preproc.boldreg import dice, epi_mask, resample_to_grid

    ref = nb.load(node / "hmc" / "boldref.nii")
    refd = ref.get_fdata()
    brain = nb.load(node / "anat2bold" / "bold_mask.nii").get_fdata() > 0
    wm = nb.load(node / "anat2bold" / "wm_mask.nii").get_fdata() > 0
    csf = nb.load(node / "anat2bold" / "csf_mask.nii").get_fdata() > 0
    epi = epi_mask(refd, ref.affine)
    OUT.mkdir(parents=True, exist_ok=True)

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    _panel(axes, refd, [(_edges(brain), "red")], "BOLD reference, T1w brain mask edge (red)")
    fig.savefig(OUT / "coreg_boldspace.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    t1 = nb.load(t1w)
    coreg = json.loads((node / "coreg" / "coreg.json").read_text())
    xfm = sorted((node / "coreg").glob("boldref2anat_xfm.mat"))
    ref_t1 = resample_to_grid(refd.astype(np.float32), ref.affine, [str(xfm[0])],
                              t1.shape, t1.affine)
    from scipy import ndimage as ndi

    grad = ndi.gaussian_gradient_magnitude(ref_t1, 1.5)
    inside = ref_t1 > 0
    bold_edges = grad > np.percentile(grad[inside], 90) if inside.any() else grad > 0
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    _panel(axes, t1.get_fdata(), [(bold_edges, "yellow")],
           "T1w, edges of the BOLD reference after coregistration (yellow)")
    fig.savefig(OUT / "coreg_t1wspace.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    _panel(axes, refd, [(wm, "deepskyblue"), (csf, "lime")],
           "aCompCor masks: eroded WM (blue), CSF (green)")
    fig.savefig(OUT / "acompcor_masks.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    conf = pd.read_csv(node / "confounds" / "confounds.tsv", sep="\t", na_values="n/a")
    fig, axes = plt.subplots(4, 1, figsize=(9, 8), sharex=True)
    conf[["trans_x", "trans_y", "trans_z"]].plot(ax=axes[0], lw=1)
    axes[0].set_ylabel("mm")
    np.rad2deg(conf[["rot_x", "rot_y", "rot_z"]]).plot(ax=axes[1], lw=1)
    axes[1].set_ylabel("deg")
    conf[["framewise_displacement", "std_dvars"]].plot(ax=axes[2], lw=1)
    comps = [c for c in conf if c.startswith("a_comp_cor")]
    (conf[comps] + 3 * np.arange(len(comps))).plot(ax=axes[3], lw=0.8, legend=False)
    axes[3].set_ylabel("aCompCor (offset)")
    axes[3].set_xlabel("volume")
    fig.savefig(OUT / "confounds.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    pre = nb.load(node / "hmc" / "bold_hmc.nii").get_fdata(dtype=np.float32)[brain]
    den = nb.load(node / "denoise" / "bold_denoised.nii").get_fdata(dtype=np.float32)[brain]
    tsnr = pre.mean(1) / np.maximum(pre.std(1), 1e-6)
    order = np.argsort(-tsnr)  # stable ordering for both panels
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, data, title in ((axes[0], pre, "motion-corrected (z-scored)"),
                            (axes[1], den, "denoised (z-scored)")):
        z = (data - data.mean(1, keepdims=True)) / np.maximum(data.std(1, keepdims=True),
                                                              1e-6)
        ax.imshow(z[order], aspect="auto", cmap="gray", vmin=-2, vmax=2,
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("volume")
    axes[0].set_ylabel("in-brain voxels (by tSNR)")
    fig.savefig(OUT / "carpet.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    meta = json.loads((node / "confounds" / "confounds.json").read_text())
    gs_pre = np.corrcoef(pre.mean(0), conf["framewise_displacement"].fillna(0))[0, 1]
    gs_den = np.corrcoef(den.mean(0), conf["framewise_displacement"].fillna(0))[0, 1]
    return {
        "n_volumes_after_dummies": int(len(conf)),
        "mean_fd_mm": float(conf["framewise_displacement"].mean()),
        "max_fd_mm": float(conf["framewise_displacement"].max()),
        "max_abs_translation_mm": float(conf[["trans_x", "trans_y", "trans_z"]].abs().max()
                                        .max()),
        "max_abs_rotation_deg": float(np.rad2deg(conf[["rot_x", "rot_y", "rot_z"]].abs()
                                                 .max().max())),
        "coreg_dice_t1w_mask_vs_epi_mask": coreg["BrainMaskDice"],
        "bold_mask_dice_vs_epi_mask": dice(brain, epi),
        "bold_mask_voxels": int(brain.sum()), "wm_voxels": int(wm.sum()),
        "csf_voxels": int(csf.sum()),
        "acompcor_variance_explained": [meta[c]["VarianceExplained"] for c in comps],
        "median_tsnr_motion_corrected": float(np.median(tsnr)),
        "corr_global_signal_fd_before": float(gs_pre),
        "corr_global_signal_fd_after": float(gs_den),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--work", default=None, help="working directory (default: temp)")
    parser.add_argument("--nprocs", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        wf, t1w, _ = build(Path(args.data), work, args.nprocs)
        start = time.perf_counter()
        wf.run(plugin="MultiProc", plugin_args={"n_procs": args.nprocs})
        wall = time.perf_counter() - start
        summary = figures(work / "validate_bold" / "bold_wf", t1w)
    summary["wall_s_anat_plus_bold"] = wall
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
