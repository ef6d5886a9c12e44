"""A synthetic head (brain, CSF, skull, scalp, neck, face, eyes) in template space, and the
rendering of a subject's T1w image in its own native space.

The brain comes from the MNI152 2009a symmetric template that nilearn ships inside its
package (no download): its brain-extracted T1, GM and WM maps and brain mask. Everything
outside the brain is synthesised from distances to a smoothed brain envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from bids_dfc.demo.geometry import Warp, apply_affine, grid_points

#: Tissue intensities of the T1w image (WM ~ 870 comes from the template itself).
T1_INTENSITY = {"csf": 250.0, "skull": 60.0, "fat": 950.0, "skin": 650.0,
                "muscle": 430.0, "eye": 180.0, "cord": 760.0}
#: Tissue intensities of the BOLD (T2*-weighted EPI) image, before the bias field.
BOLD_INTENSITY = {"gm": 750.0, "wm": 600.0, "csf": 1000.0, "skull": 30.0, "fat": 150.0,
                  "skin": 250.0, "muscle": 300.0, "eye": 950.0, "cord": 650.0}
#: Padding (mm) added around the template grid: (-x, +x), (-y, +y), (-z, +z).
PAD_MM = ((20, 20), (20, 26), (46, 20))


@dataclass
class HeadModel:
    """Tissue maps of the synthetic head on a padded template-space grid.

    Attributes
    ----------
    affine : ndarray (4, 4)
        Voxel to template (MNI152NLin2009aSym) mm.
    brain_mask : ndarray
        The template brain mask (0/1 float32); the truth brain mask of every subject.
    gm, wm, csf : ndarray
        Tissue fractions (float32). ``csf`` holds brain CSF (mask - GM - WM) plus the
        sub-arachnoid shell just outside the mask.
    t1 : ndarray
        T1w intensity (no noise, no bias).
    s0 : ndarray
        BOLD baseline (T2*-weighted) intensity.
    """

    affine: np.ndarray
    brain_mask: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    t1: np.ndarray
    s0: np.ndarray

    def sample(self, name: str, points, order: int = 1) -> np.ndarray:
        """Interpolate map ``name`` at template points ``(N, 3)``; 0 outside the grid."""
        vox = apply_affine(np.linalg.inv(self.affine), points).T
        return ndi.map_coordinates(getattr(self, name), vox, order=order, mode="constant",
                                   cval=0.0)


def _load_template(resolution: int):
    """The 1 mm template maps; for 2 mm, block averages of 2x2x2 voxels (faster and
    anti-aliased compared with nilearn's own resampling)."""
    from nilearn import datasets

    imgs = [datasets.load_mni152_template(resolution=1),
            datasets.load_mni152_gm_template(resolution=1),
            datasets.load_mni152_wm_template(resolution=1),
            datasets.load_mni152_brain_mask(resolution=1)]
    arrays = [np.clip(img.get_fdata(dtype=np.float32), 0.0, 1.0) for img in imgs]
    affine = np.asarray(imgs[0].affine, dtype=float)
    if resolution == 2:
        shape = arrays[0].shape
        pad = [(0, n % 2) for n in shape]
        half = tuple((n + n % 2) // 2 for n in shape)
        arrays = [np.pad(a, pad).reshape(half[0], 2, half[1], 2, half[2], 2).mean((1, 3, 5))
                  for a in arrays]
        affine = affine @ np.array([[2.0, 0, 0, 0.5], [0, 2.0, 0, 0.5], [0, 0, 2.0, 0.5],
                                    [0, 0, 0, 1.0]])
    return arrays, affine


def _ellipsoid(points, centre, radii) -> np.ndarray:
    rel = (points - np.asarray(centre)) / np.asarray(radii)
    return (rel ** 2).sum(-1) <= 1.0


@lru_cache(maxsize=2)
def build_head_model(resolution: int = 2) -> HeadModel:
    """Build (once per process and resolution) the synthetic head in template space.

    Parameters
    ----------
    resolution : {1, 2}
        Template resolution in mm (nilearn ships both).
    """
    if resolution not in (1, 2):
        raise ValueError(f"resolution must be 1 or 2 (mm), got {resolution!r}")
    (t1_tpl, gm, wm, mask), tpl_aff = _load_template(resolution)
    mask = (mask > 0.5).astype(np.float32)
    pad = [(int(lo / resolution), int(hi / resolution)) for lo, hi in PAD_MM]
    t1_tpl, gm, wm, mask = (np.pad(a * mask, pad) for a in (t1_tpl, gm, wm, mask))
    affine = tpl_aff.copy()
    affine[:3, 3] -= np.array([p[0] for p in pad]) * resolution
    shape = mask.shape
    pts = grid_points(shape, affine, dtype=np.float32).reshape(shape + (3,))
    res = float(resolution)

    # Smooth brain envelope and the distance (mm) outside it.
    envelope = ndi.gaussian_filter(mask, 4.0 / res) > 0.3
    dist = ndi.distance_transform_edt(~envelope, sampling=res).astype(np.float32)
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    brain_bottom = -72.0
    # Spinal cord and its CSF sleeve continue the brainstem below the template's edge.
    cord_r = np.hypot(x / 6.0, (y + 42.0) / 7.0)
    below = z < brain_bottom + 1.0
    cord = below & (cord_r <= 1.0)
    canal = below & (cord_r <= 1.5) & ~cord
    # Shells around the brain: CSF, skull, fat, skin.
    csf_shell = (mask < 0.5) & (dist <= 2.5) | canal
    skull = (dist > 2.5) & (dist <= 8.0)
    fat = (dist > 8.0) & (dist <= 11.0)
    skin = (dist > 11.0) & (dist <= 13.5)
    # Neck (elliptic cylinder) and face/jaw (ellipsoid) of soft tissue, eyes in the orbits.
    neck = (z < -30.0) & (((x / 52.0) ** 2 + ((y + 22.0) / 58.0) ** 2) <= 1.0)
    face = _ellipsoid(pts, (0.0, 40.0, -52.0), (52.0, 52.0, 38.0))
    eyes = (_ellipsoid(pts, (-32.0, 56.0, -36.0), (12.0, 12.0, 12.0))
            | _ellipsoid(pts, (32.0, 56.0, -36.0), (12.0, 12.0, 12.0))) & (dist > 8.0)
    soft = (neck | face) & (dist > 13.5) & ~eyes
    head = (dist <= 13.5) | neck | face
    outer = ndi.distance_transform_edt(head, sampling=res) <= 3.0
    skin_all = (skin | (soft & outer)) & ~eyes
    muscle = soft & ~outer
    del pts, x, y, z, dist, envelope, cord_r

    brain_csf = np.clip(mask - gm - wm, 0.0, 1.0)
    labels = {"skull": skull & ~csf_shell, "fat": fat & ~csf_shell, "skin": skin_all,
              "muscle": muscle, "eye": eyes, "cord": cord}
    csf = brain_csf + csf_shell.astype(np.float32) * (1.0 - mask)
    t1 = t1_tpl * 1000.0 + csf_shell * (1.0 - mask) * T1_INTENSITY["csf"]
    s0 = (gm * BOLD_INTENSITY["gm"] + wm * BOLD_INTENSITY["wm"]
          + csf * BOLD_INTENSITY["csf"])
    for name, region in labels.items():
        region = region & (mask < 0.5)
        t1 += region * T1_INTENSITY[name]
        s0 += region * BOLD_INTENSITY[name]
    # A little partial-volume blur on the synthetic (non-template) tissues.
    outside = mask < 0.5
    t1 = np.where(outside, ndi.gaussian_filter(t1, 0.6 / res), t1)
    s0 = np.where(outside, ndi.gaussian_filter(s0, 0.6 / res), s0)
    f32 = np.float32
    return HeadModel(affine=affine, brain_mask=mask.astype(f32), gm=gm.astype(f32),
                     wm=wm.astype(f32), csf=csf.astype(f32), t1=t1.astype(f32),
                     s0=s0.astype(f32))


def smooth_field(rng: np.random.Generator, shape, zooms, smooth_mm: float,
                 amplitude: float) -> np.ndarray:
    """A smooth random field with mean 0 and maximum absolute value ``amplitude``."""
    step = smooth_mm / 2.0
    coarse = tuple(int(np.ceil(n * z / step)) + 1 for n, z in zip(shape, zooms))
    noise = ndi.gaussian_filter(rng.standard_normal(coarse), 2.0, mode="reflect")
    factors = [n / c for n, c in zip(shape, coarse)]
    field = ndi.zoom(noise, factors, order=1, mode="nearest")[tuple(slice(0, n) for n in shape)]
    field -= field.mean()
    peak = np.abs(field).max()
    return (field * (amplitude / peak if peak > 0 else 0.0)).astype(np.float32)


def render_t1w(model: HeadModel, shape, affine, pose: np.ndarray, warp: Warp,
               rng: np.random.Generator, noise_sd: float = 15.0,
               bias_amplitude: float = 0.12, slab: int = 16):
    """Render the native T1w image and its truth maps.

    Parameters
    ----------
    model : HeadModel
    shape, affine
        Native T1w grid (voxel -> T1w world mm).
    pose : ndarray (4, 4)
        Template mm -> T1w world mm (rigid part of the subject's anatomy).
    warp : Warp
        Subject's nonlinear displacement field (see :mod:`bids_dfc.demo.geometry`).
    rng : numpy Generator
    noise_sd : float
        SD of the complex Gaussian noise (magnitude image, Rician).

    Returns
    -------
    dict
        ``t1w`` (int16 array), ``brain_mask`` (uint8), ``gm``, ``wm``, ``csf`` (float32
        tissue fractions within the brain mask).
    """
    shape = tuple(int(s) for s in shape)
    out = {k: np.zeros(shape, np.float32) for k in ("t1w", "brain_mask", "gm", "wm", "csf")}
    inv_pose = np.linalg.inv(pose)
    for start in range(0, shape[2], slab):
        stop = min(shape[2], start + slab)
        sub_shape = (shape[0], shape[1], stop - start)
        sub_aff = affine.copy()
        sub_aff[:3, 3] = apply_affine(affine, [0.0, 0.0, float(start)])
        mni = warp.forward(apply_affine(inv_pose, grid_points(sub_shape, sub_aff)))
        for name, src in (("t1w", "t1"), ("brain_mask", "brain_mask"), ("gm", "gm"),
                          ("wm", "wm"), ("csf", "csf")):
            out[name][:, :, start:stop] = model.sample(src, mni).reshape(sub_shape)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(0))
    bias = 1.0 + smooth_field(rng, shape, zooms, 60.0, bias_amplitude)
    real = out["t1w"] * bias + rng.normal(0.0, noise_sd, shape).astype(np.float32)
    imag = rng.normal(0.0, noise_sd, shape).astype(np.float32)
    t1w = np.sqrt(real ** 2 + imag ** 2)
    brain = out["brain_mask"] >= 0.5
    tissue = {k: np.where(brain, out[k], 0.0).astype(np.float32) for k in ("gm", "wm", "csf")}
    return {"t1w": np.clip(np.rint(t1w), 0, 32767).astype(np.int16),
            "brain_mask": brain.astype(np.uint8), **tissue}
