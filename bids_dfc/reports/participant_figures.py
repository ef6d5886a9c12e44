"""Figures of the participant report (matplotlib Agg and nilearn.plotting), files in, PNG out.

Every function takes file paths, writes one PNG atomically and returns its path:

- :func:`plot_skullstrip` -- T1w with the brain-mask outline and GM/WM/CSF contours;
- :func:`plot_registration` -- an image resampled into another space under the other
  space's contours (T1w -> template, BOLD reference -> T1w);
- :func:`plot_seeds` -- each seed's weights on the subject's own BOLD reference;
- :func:`plot_motion` -- the six motion parameters and framewise displacement;
- :func:`plot_carpets` -- carpet plots before and after denoising;
- :func:`plot_networks` -- network series and the DCC trace of the primary pair.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from bids_dfc.connectivity.weights import weighted_centroid
from bids_dfc.io import save_figure

__all__ = ["plot_carpets", "plot_motion", "plot_networks", "plot_registration",
           "plot_seeds", "plot_skullstrip"]

TISSUE_COLOURS = {1: "#e8c82a", 2: "#2ab0e8", 3: "#e8552a"}  # GM, WM, CSF


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    try:
        return save_figure(fig, path, dpi=90, format="png", facecolor="white")
    finally:
        _plt().close(fig)


def _img3d(path):
    img = nb.load(path)
    if img.ndim == 4:
        from nilearn.image import index_img

        img = index_img(img, 0)
    return nb.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)


def plot_skullstrip(t1w, mask, dseg, out_png) -> Path:
    """T1w in three rows of axial/coronal/sagittal cuts: brain mask (red) and tissues."""
    from nilearn import plotting

    plt = _plt()
    fig = plt.figure(figsize=(12, 6.6))
    anat = _img3d(t1w)
    seg = _img3d(dseg) if dseg else None
    for k, mode in enumerate(("z", "y", "x")):
        ax = fig.add_axes([0, 1 - (k + 1) / 3, 1, 1 / 3])
        disp = plotting.plot_anat(anat, display_mode=mode, cut_coords=7, axes=ax,
                                  annotate=k == 0, dim=0, black_bg=True, colorbar=False)
        if seg is not None:
            data = np.asarray(seg.dataobj)
            for value, colour in TISSUE_COLOURS.items():
                if np.any(np.rint(data) == value):
                    disp.add_contours(nb.Nifti1Image((np.rint(data) == value).astype(np.float32),
                                                     seg.affine), levels=[0.5], colors=colour,
                                      linewidths=0.6)
        disp.add_contours(_img3d(mask), levels=[0.5], colors="r", linewidths=1.2)
    return _save(fig, out_png)


def plot_registration(background, contour_imgs, out_png, *, labels=None) -> Path:
    """``background`` (already in the target space) under the target's contours.

    Parameters
    ----------
    background : path
        The moving image after resampling into the target space.
    contour_imgs : list of path
        Target-space masks drawn as outlines (first red, then blue, green).
    """
    from nilearn import plotting

    plt = _plt()
    fig = plt.figure(figsize=(12, 4.6))
    bg = _img3d(background)
    colours = ["r", "#2ab0e8", "#55e82a"]
    for k, mode in enumerate(("z", "x")):
        ax = fig.add_axes([0, 1 - (k + 1) / 2, 1, 1 / 2])
        disp = plotting.plot_anat(bg, display_mode=mode, cut_coords=7, axes=ax,
                                  annotate=k == 0, dim=-0.2, black_bg=True, colorbar=False)
        for c, img in enumerate(contour_imgs):
            if img:
                disp.add_contours(_img3d(img), levels=[0.5], colors=colours[c % 3],
                                  linewidths=1.0)
    if labels:
        fig.text(0.01, 0.01, "  ".join(f"{c}: {lab}" for c, lab in zip(("red", "blue"), labels)),
                 color="white", fontsize=9)
    return _save(fig, out_png)


def plot_seeds(bold_ref, weights, seed_info, out_png) -> Path:
    """One ortho panel per seed on the BOLD reference, cut at the seed's centroid."""
    from nilearn import plotting

    plt = _plt()
    info = pd.read_csv(seed_info, sep="\t", keep_default_na=False)
    ref = _img3d(bold_ref)
    w = nb.load(weights)
    data = np.asarray(w.dataobj, dtype=np.float32)
    data = data[..., None] if data.ndim == 3 else data
    n = data.shape[3]
    fig = plt.figure(figsize=(12, 3.0 * n))
    for k in range(n):
        vol = data[..., k]
        ax = fig.add_axes([0, 1 - (k + 1) / n, 1, 1 / n])
        centre = weighted_centroid(vol, w.affine) if vol.sum() > 0 else None
        disp = plotting.plot_anat(ref, cut_coords=centre, axes=ax, dim=-0.2, black_bg=True,
                                  draw_cross=False)
        disp.add_overlay(nb.Nifti1Image(vol, w.affine), cmap="autumn", vmin=0, vmax=1,
                         threshold=1e-3)
        row = info.iloc[k]
        text = (f"{row['name']} ({row.get('network', '')}): {row.get('n_voxels', '?')} voxels, "
                f"{100 * float(row.get('fraction_in_mask', np.nan)):.0f}% in brain mask"
                + ("  [nearest-voxel fallback]" if str(row.get("fallback")) == "True" else ""))
        disp.title(text, size=10, bgcolor="black", color="white")
    return _save(fig, out_png)


def plot_motion(confounds_tsv, out_png) -> Path:
    """Translations (mm), rotations (degrees) and framewise displacement (mm)."""
    plt = _plt()
    conf = pd.read_csv(confounds_tsv, sep="\t", na_values=["n/a"])
    fig, axes = plt.subplots(3, 1, figsize=(12, 6.5), sharex=True, layout="constrained")
    for ax, cols, unit, scale in (
        (axes[0], ["trans_x", "trans_y", "trans_z"], "translation (mm)", 1.0),
        (axes[1], ["rot_x", "rot_y", "rot_z"], "rotation (deg)", 180 / np.pi),
    ):
        for col in cols:
            if col in conf:
                ax.plot(conf[col].to_numpy(dtype=float) * scale, lw=1, label=col)
        ax.set_ylabel(unit)
        ax.legend(loc="upper right", ncol=3, fontsize=8)
    fd = conf["framewise_displacement"].to_numpy(dtype=float) if "framewise_displacement" \
        in conf else np.full(len(conf), np.nan)
    axes[2].plot(fd, color="k", lw=1)
    axes[2].axhline(np.nanmean(fd), color="r", ls="--", lw=1,
                    label=f"mean FD {np.nanmean(fd):.3f} mm")
    axes[2].set_ylabel("FD (mm)")
    axes[2].set_xlabel("volume (after dropping non-steady-state volumes)")
    axes[2].legend(loc="upper right", fontsize=8)
    return _save(fig, out_png)


def plot_carpets(bold_before, bold_after, mask, out_png, *, tr=None) -> Path:
    """Carpet plots (voxels x time, z-scored) before and after denoising."""
    from nilearn import plotting

    plt = _plt()
    fig = plt.figure(figsize=(12, 7.8))
    mask_img = _img3d(mask)
    mask_img = nb.Nifti1Image((np.asarray(mask_img.dataobj) > 0).astype(np.uint8),
                              mask_img.affine)
    for k, (path, title) in enumerate(((bold_before, "before denoising (preprocessed)"),
                                       (bold_after, "after denoising"))):
        ax = fig.add_axes([0.06, 0.57 - 0.5 * k, 0.92, 0.37])
        img = nb.load(path)
        plotting.plot_carpet(img, mask_img=mask_img, axes=ax, t_r=tr, title=title,
                             figure=fig, standardize="zscore_sample")
    return _save(fig, out_png)


def plot_networks(timeseries_tsv, dcc_tsv, dfc_tsv, out_png, *, tr=None) -> Path:
    """The primary pair's series (z-scored) and its DCC trace with mean and +- SD."""
    plt = _plt()
    ts = pd.read_csv(timeseries_tsv, sep="\t")
    dcc = pd.read_csv(dcc_tsv, sep="\t")
    dfc = pd.read_csv(dfc_tsv, sep="\t")
    a, b = str(dfc.loc[0, "seed_a"]), str(dfc.loc[0, "seed_b"])
    t = np.arange(len(ts)) * (tr or 1.0)
    fig, axes = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, layout="constrained")
    for name, colour in ((a, "#4c72b0"), (b, "#dd8452")):
        x = ts[name].to_numpy(dtype=float)
        axes[0].plot(t, (x - x.mean()) / x.std(), lw=1, color=colour, label=name)
    axes[0].set_ylabel("z-scored signal")
    axes[0].legend(loc="upper right", ncol=2, fontsize=8)
    r = dcc[f"{a}__{b}"].to_numpy(dtype=float)
    row = dfc.iloc[0]
    axes[1].plot(t, r, color="k", lw=1.2, label=f"DCC {a}-{b}")
    axes[1].axhline(row["dcc_mean"], color="r", lw=1, label=f"mean {row['dcc_mean']:.3f}")
    axes[1].fill_between(t, row["dcc_mean"] - row["dcc_sd"], row["dcc_mean"] + row["dcc_sd"],
                         color="r", alpha=0.15, label=f"+- SD {row['dcc_sd']:.3f} (dFC)")
    axes[1].axhline(row["pearson_r"], color="#55a868", ls="--", lw=1,
                    label=f"static r {row['pearson_r']:.3f}")
    axes[1].set_ylim(-1, 1)
    axes[1].set_ylabel("conditional correlation")
    axes[1].set_xlabel("time (s)" if tr else "volume")
    axes[1].legend(loc="lower right", ncol=4, fontsize=8)
    return _save(fig, out_png)
