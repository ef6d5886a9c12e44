"""Figures of the participant report (matplotlib Agg and nilearn.plotting), files in, PNG out.

Every function takes file paths, writes one PNG atomically and returns its path:

- :func:`plot_skullstrip` -- T1w with grey matter shaded, the WM and CSF borders and the
  brain-mask outline;
- :func:`plot_registration` -- an image resampled into another space under the other
  space's contours (T1w -> template, BOLD reference -> T1w);
- :func:`plot_seeds` -- each seed's weights on the subject's own BOLD reference;
- :func:`plot_motion` -- the six motion parameters and framewise displacement;
- :func:`plot_carpets` -- carpet plots before and after denoising;
- :func:`plot_networks` -- network series and the DCC trace of the primary pair;
- :func:`plot_dfc_intervals` -- every pair's dFC SD with its bootstrap interval.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from bids_dfc.connectivity.weights import weighted_centroid
from bids_dfc.io import save_figure

__all__ = ["plot_carpets", "plot_dfc_intervals", "plot_motion", "plot_networks",
           "plot_registration", "plot_seeds", "plot_skullstrip"]

#: the skull-strip figure: grey matter shaded, the borders of WM and CSF and the brain mask
#: as lines (the GM label shares every border with WM, CSF or the mask, so a GM outline
#: would be hidden under theirs)
GM_FILL = "#ffd700"
BORDERS = {2: ("#2ab0e8", "white-matter border"), 3: ("#ff00ff", "CSF border")}
MASK_COLOUR = "r"
#: a weight colour scale drawn beside the seed panels, not inside them
SEED_CMAP = "autumn"


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


def _legend_outside(ax):
    """The legend right of the axes (constrained layout makes room), never over the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False,
              fontsize=10)


def _img3d(path):
    img = nb.load(path)
    if img.ndim == 4:
        from nilearn.image import index_img

        img = index_img(img, 0)
    return nb.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)


def plot_skullstrip(t1w, mask, dseg, out_png) -> Path:
    """T1w in three rows of axial/coronal/sagittal cuts: grey matter shaded yellow, the
    white-matter (blue) and CSF (magenta) borders, the brain mask (red); a key below."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from nilearn import plotting

    plt = _plt()
    fig = plt.figure(figsize=(12, 7.0))
    anat = _img3d(t1w)
    labels = np.rint(np.asarray(_img3d(dseg).dataobj)) if dseg else None
    key_h = 0.06  # the key's strip at the bottom

    def tissue(value):
        return nb.Nifti1Image((labels == value).astype(np.float32), anat.affine)

    for k, mode in enumerate(("z", "y", "x")):
        ax = fig.add_axes([0, 1 - (k + 1) * (1 - key_h) / 3, 1, (1 - key_h) / 3])
        disp = plotting.plot_anat(anat, display_mode=mode, cut_coords=7, axes=ax,
                                  annotate=k == 0, dim=0, black_bg=True, colorbar=False)
        if labels is not None:
            if np.any(labels == 1):
                disp.add_overlay(tissue(1), cmap=ListedColormap([GM_FILL]), vmin=0.5,
                                 vmax=1.5, threshold=0.5, transparency=0.45)
            for value, (colour, _) in BORDERS.items():
                if np.any(labels == value):
                    disp.add_contours(tissue(value), levels=[0.5], colors=colour,
                                      linewidths=0.9)
        disp.add_contours(_img3d(mask), levels=[0.5], colors=MASK_COLOUR, linewidths=1.2)
    handles = [Patch(color=GM_FILL, alpha=0.6, label="grey matter")] if dseg else []
    handles += [Line2D([], [], color=c, lw=2, label=lab) for c, lab in BORDERS.values()
                if dseg] + [Line2D([], [], color=MASK_COLOUR, lw=2, label="brain mask")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               fontsize=10, bbox_to_anchor=(0.5, 0.0))
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
    """One ortho panel per seed on the BOLD reference, cut at the seed's centroid; the
    weights' colour scale in its own column at the right, clear of the panels' labels."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle
    from nilearn import plotting

    plt = _plt()
    info = pd.read_csv(seed_info, sep="\t", keep_default_na=False)
    ref = _img3d(bold_ref)
    w = nb.load(weights)
    data = np.asarray(w.dataobj, dtype=np.float32)
    data = data[..., None] if data.ndim == 3 else data
    n = data.shape[3]
    fig = plt.figure(figsize=(12, 3.0 * n))
    panels = 0.9  # width of the panels; the colour bar sits right of them
    for k in range(n):
        vol = data[..., k]
        ax = fig.add_axes([0, 1 - (k + 1) / n, panels, 1 / n])
        centre = weighted_centroid(vol, w.affine) if vol.sum() > 0 else None
        disp = plotting.plot_anat(ref, cut_coords=centre, axes=ax, dim=-0.2, black_bg=True,
                                  draw_cross=False, colorbar=False)
        disp.add_overlay(nb.Nifti1Image(vol, w.affine), cmap=SEED_CMAP, vmin=0, vmax=1,
                         threshold=1e-3, colorbar=False)
        row = info.iloc[k]
        text = (f"{row['name']} ({row.get('network', '')}): {row.get('n_voxels', '?')} voxels, "
                f"{100 * float(row.get('fraction_in_mask', np.nan)):.0f}% in brain mask"
                + ("  [nearest-voxel fallback]" if str(row.get("fallback")) == "True" else ""))
        disp.title(text, size=11, bgcolor="black", color="white")
    fig.add_artist(Rectangle((panels, 0), 1 - panels, 1, transform=fig.transFigure,
                             color="black", zorder=-1))  # the bar's column, black as the panels
    cax = fig.add_axes([panels + 0.02, 0.2, 0.015, 0.6])
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps[SEED_CMAP]), cax=cax)
    bar.set_label("seed weight", color="white", fontsize=12)
    bar.ax.tick_params(colors="white", labelsize=11)
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
        _legend_outside(ax)
    fd = conf["framewise_displacement"].to_numpy(dtype=float) if "framewise_displacement" \
        in conf else np.full(len(conf), np.nan)
    axes[2].plot(fd, color="k", lw=1)
    axes[2].axhline(np.nanmean(fd), color="r", ls="--", lw=1,
                    label=f"mean FD {np.nanmean(fd):.3f} mm")
    axes[2].set_ylabel("FD (mm)")
    axes[2].set_xlabel("volume (after dropping non-steady-state volumes)")
    _legend_outside(axes[2])
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
        ax = fig.add_axes([0.06, 0.57 - 0.48 * k, 0.92, 0.36])  # room for the time axis
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
    _legend_outside(axes[0])
    r = dcc[f"{a}__{b}"].to_numpy(dtype=float)
    row = dfc.iloc[0]
    axes[1].plot(t, r, color="k", lw=1.2, label=f"DCC {a}-{b}")
    axes[1].axhline(row["dcc_mean"], color="r", lw=1, label=f"mean {row['dcc_mean']:.3f}")
    low, high = row.get("dcc_sd_ci_low", np.nan), row.get("dcc_sd_ci_high", np.nan)
    interval = "" if pd.isna(low) or pd.isna(high) else f";\n95% interval {low:.3f}-{high:.3f}"
    axes[1].fill_between(t, row["dcc_mean"] - row["dcc_sd"], row["dcc_mean"] + row["dcc_sd"],
                         color="r", alpha=0.15,
                         label=f"± 1 SD {row['dcc_sd']:.3f} (dFC{interval})")
    axes[1].axhline(row["pearson_r"], color="#55a868", ls="--", lw=1,
                    label=f"static r {row['pearson_r']:.3f}")
    axes[1].set_ylim(-1, 1)
    axes[1].set_ylabel("conditional correlation")
    axes[1].set_xlabel("time (s)" if tr else "volume")
    _legend_outside(axes[1])
    return _save(fig, out_png)


def plot_dfc_intervals(dfc_tsv, out_png) -> Path:
    """The dFC SD of every pair (dots, primary pair on top) with its bootstrap percentile
    interval (bars); a pair without an interval (a joint fit) is a dot only."""
    plt = _plt()
    dfc = pd.read_csv(dfc_tsv, sep="\t", na_values=["n/a"])
    n = len(dfc)
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.42 * n), layout="constrained")
    y = np.arange(n)[::-1]
    sd = dfc["dcc_sd"].to_numpy(dtype=float)
    low = dfc["dcc_sd_ci_low"].to_numpy(dtype=float)
    high = dfc["dcc_sd_ci_high"].to_numpy(dtype=float)
    has = np.isfinite(low) & np.isfinite(high)
    ax.hlines(y[has], low[has], high[has], color="#4c72b0", lw=3, alpha=0.55,
              label="95% bootstrap interval")
    ax.plot(sd, y, "o", color="k", ms=6, label="dFC (SD of the DCC series)")
    labels = [f"{a}-{b}" + (f" ({lev})" if isinstance(lev, str) else "")
              for a, b, lev in zip(dfc["seed_a"], dfc["seed_b"], dfc.get("level", [None] * n))]
    ax.set_yticks(y, labels, fontsize=11)
    ax.set_ylim(-0.7, n - 0.3)
    right = 1.05 * float(np.nanmax(np.r_[sd, high[has], 0.01]))
    ax.set_xlim(-0.02 * right, right)  # dots at 0 (constant correlation) drawn whole
    ax.set_xlabel("SD over time of the conditional correlation", fontsize=11)
    ax.grid(axis="x", color="#ddd")
    _legend_outside(ax)
    return _save(fig, out_png)
