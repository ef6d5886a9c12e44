"""Rendering of a demo resting BOLD run and of its truth maps on the raw BOLD grid.

The head of one run is first drawn on a fine grid (half the BOLD voxel size) in the frame
of the reference volume (the first volume after the non-steady-state ones): baseline
T2*-weighted intensity and the spatial maps of every signal, blurred by the voxel's point
spread. Each volume is then the weighted sum of those maps (weights = the signals' values
at that time), moved rigidly by that volume's head motion and resampled on the BOLD grid;
scanner-fixed effects (coil bias, drift, thermal noise) are applied last.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy import ndimage as ndi

from bids_dfc.demo.anatomy import HeadModel, smooth_field
from bids_dfc.demo.geometry import (
    Warp,
    apply_affine,
    grid_points,
    mni_to_native,
    native_to_mni,
    rigid_matrix,
)

#: Signal amplitudes as fractions of the baseline intensity (thermal noise in intensity
#: units; baseline GM is 750).
AMPLITUDES = {"network": 0.08, "wm_noise": 0.015, "csf_noise": 0.03, "gm_share": 0.5,
              "thermal_sd": 9.0, "drift": 0.02, "bias": 0.10}
#: Planted signal profile: full weight up to seed radius + ``SIGNAL_MARGIN_MM``, then a
#: Gaussian fall-off of SD ``SIGNAL_FALLOFF_MM``.
SIGNAL_MARGIN_MM = 2.0
SIGNAL_FALLOFF_MM = 2.5


def load_seeds(path=None) -> list[dict]:
    """Read the seeds table (name, x, y, z, radius_mm, network); default: the bundled one."""
    if path is None:
        path = resources.files("bids_dfc") / "data" / "seeds.tsv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    seeds = []
    for number, row in enumerate(rows, start=2):
        try:
            seeds.append({"name": row["name"], "network": row["network"],
                          "centre": np.array([float(row[k]) for k in "xyz"]),
                          "radius": float(row["radius_mm"])})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}, line {number}: a seed needs name, x, y, z, radius_mm "
                             f"and network with numeric coordinates ({exc})") from exc
    return seeds


def network_weight(mni_points, seeds, network: str) -> np.ndarray:
    """Spatial profile (0-1) of the planted signal of ``network`` at template points."""
    weight = np.zeros(len(mni_points))
    for seed in seeds:
        if seed["network"] != network:
            continue
        dist = np.sqrt(((mni_points - seed["centre"]) ** 2).sum(1))
        excess = np.maximum(0.0, dist - seed["radius"] - SIGNAL_MARGIN_MM)
        weight = np.maximum(weight, np.exp(-0.5 * (excess / SIGNAL_FALLOFF_MM) ** 2))
    return weight


@dataclass
class RunGeometry:
    """Where the head of one BOLD run sits.

    Attributes
    ----------
    shape, affine
        BOLD grid (3-D shape; voxel -> BOLD world mm).
    t1w_to_bold : ndarray (4, 4)
        Rigid map from T1w world mm to the BOLD world mm of the reference volume.
    pose : ndarray (4, 4)
        Template mm -> T1w world mm (rigid part of the anatomy).
    warp : Warp
        The subject's nonlinear displacement field.
    """

    shape: tuple
    affine: np.ndarray
    t1w_to_bold: np.ndarray
    pose: np.ndarray
    warp: Warp

    @property
    def zooms(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(0))

    @property
    def motion_centre(self) -> np.ndarray:
        """World mm of the grid centre: the rotation centre of the motion parameters."""
        return apply_affine(self.affine, (np.asarray(self.shape) - 1) / 2.0)

    def world_to_mni(self, points) -> np.ndarray:
        """Template mm shown at BOLD-world points of the reference volume."""
        return native_to_mni(apply_affine(np.linalg.inv(self.t1w_to_bold), points),
                             self.pose, self.warp)

    def mni_to_world(self, points) -> np.ndarray:
        """BOLD-world mm (reference volume) of template points."""
        return apply_affine(self.t1w_to_bold, mni_to_native(points, self.pose, self.warp))


def truth_maps(fine_tissue: dict, geom: RunGeometry, seeds,
               seed_oversample: int = 5) -> dict:
    """Partial-volume fractions of brain, GM, WM, CSF and each seed sphere on the BOLD grid
    (reference frame).

    Tissue fractions are the means of the 2x2x2 fine-grid samples inside each BOLD voxel
    (``fine_tissue`` from :func:`spatial_maps`); seed fractions come from
    ``seed_oversample``^3 points per voxel tested against the sphere in template space.
    """
    shape = tuple(int(n) for n in geom.shape)
    margin = (next(iter(fine_tissue.values())).shape[0] - 2 * shape[0]) // 2
    inner = tuple(slice(margin, margin + 2 * n) for n in shape)
    maps = {}
    for key, fine in fine_tissue.items():
        block = fine[inner].reshape(shape[0], 2, shape[1], 2, shape[2], 2)
        maps[key] = block.mean((1, 3, 5)).astype(np.float32)
    for key in ("gm", "wm"):
        maps[key] = np.minimum(maps[key], maps["brain"])
    sub = (np.arange(seed_oversample) + 0.5) / seed_oversample - 0.5
    sub = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3)
    for seed in seeds:
        frac = np.zeros(shape, np.float32)
        centre_vox = apply_affine(np.linalg.inv(geom.affine),
                                  geom.mni_to_world(seed["centre"][None]))[0]
        half = np.ceil((seed["radius"] + 6.0) / geom.zooms)
        lo = np.clip(np.floor(centre_vox - half), 0, np.asarray(shape) - 1).astype(int)
        hi = np.clip(np.ceil(centre_vox + half) + 1, 1, np.asarray(shape)).astype(int)
        box = np.indices(hi - lo).reshape(3, -1).T + lo
        pts = (box[:, None, :] + sub[None]).reshape(-1, 3)
        mni = geom.world_to_mni(apply_affine(geom.affine, pts))
        inside = np.sqrt(((mni - seed["centre"]) ** 2).sum(1)) <= seed["radius"]
        frac[tuple(box.T)] = inside.reshape(len(box), -1).mean(1)
        maps[f"seed-{seed['name']}"] = frac
    return maps


def seed_mask(fraction: np.ndarray) -> np.ndarray:
    """Binary seed mask: voxels at least half inside the sphere, else the fullest voxel."""
    mask = fraction >= 0.5
    if not mask.any():
        mask = np.zeros(fraction.shape, bool)
        mask[np.unravel_index(np.argmax(fraction), fraction.shape)] = True
    return mask.astype(np.uint8)


def _fine_grid(geom: RunGeometry, margin: int = 4):
    shape = tuple(2 * int(n) + 2 * margin for n in geom.shape)
    to_bold = np.diag([0.5, 0.5, 0.5, 1.0])
    to_bold[:3, 3] = -(margin + 0.5) / 2.0
    return shape, geom.affine @ to_bold


def spatial_maps(model: HeadModel, geom: RunGeometry, seeds, rng: np.random.Generator,
                 amplitudes=None, n_wm: int = 3, n_csf: int = 3):
    """The maps whose time-weighted sum makes each volume (fine grid, reference frame).

    Returns
    -------
    maps : ndarray (n_maps, X, Y, Z) float32
        Order: baseline, DMN, DeS, ``n_wm`` WM noise maps, ``n_csf`` CSF noise maps, and a
        last map for the extra brightness of the non-steady-state volumes.
    fine_affine : ndarray (4, 4)
    fine_tissue : dict
        Unblurred brain-mask, GM, WM and CSF fractions on the fine grid.
    """
    amp = dict(AMPLITUDES, **(amplitudes or {}))
    shape, fine_aff = _fine_grid(geom)
    mni = geom.world_to_mni(grid_points(shape, fine_aff, dtype=np.float32))
    s0 = model.sample("s0", mni).reshape(shape)
    tissue = {k: model.sample(k, mni).reshape(shape) for k in ("gm", "wm", "csf")}
    brain = model.sample("brain_mask", mni).reshape(shape)
    fine_tissue = {"brain": brain, **tissue}
    maps = [s0]
    for network in ("DMN", "DeS"):
        # neural signal lives in grey matter only (every seed is >= 70 % GM): white matter
        # next to a seed must not carry it, or aCompCor on WM would rightly remove it
        weight = network_weight(mni, seeds, network).reshape(shape)
        maps.append(s0 * amp["network"] * weight * tissue["gm"] * brain)
    del mni
    fine_zooms = geom.zooms / 2.0
    for key, count, scale in (("wm", n_wm, amp["wm_noise"]), ("csf", n_csf, amp["csf_noise"])):
        for _ in range(count):
            loading = 1.0 + smooth_field(rng, shape, fine_zooms, 25.0, 0.6)
            maps.append(s0 * scale * loading * (tissue[key] + amp["gm_share"] * tissue["gm"]))
    maps.append(s0 * (1.0 + tissue["csf"]))
    sigma = (1.0 / 2.3548) * 2.0
    stack = np.stack([ndi.gaussian_filter(m.astype(np.float32), sigma) for m in maps])
    return stack, fine_aff, fine_tissue


def render_bold(maps: np.ndarray, fine_affine: np.ndarray, geom: RunGeometry,
                coefficients: np.ndarray, motion: np.ndarray, rng: np.random.Generator,
                amplitudes=None) -> np.ndarray:
    """Render the 4-D run.

    Parameters
    ----------
    maps : ndarray (n_maps, X, Y, Z)
        From :func:`spatial_maps`.
    coefficients : ndarray (n_volumes, n_maps)
        Weight of each map in each volume (1 for the baseline).
    motion : ndarray (n_volumes, 6)
        Rigid parameters of each volume relative to the reference (see
        :mod:`bids_dfc.demo.signals`), rotations about ``geom.motion_centre``.

    Returns
    -------
    ndarray (X, Y, Z, n_volumes) int16
    """
    amp = dict(AMPLITUDES, **(amplitudes or {}))
    shape = tuple(int(n) for n in geom.shape)
    n_vol = coefficients.shape[0]
    bias = 1.0 + smooth_field(rng, shape, geom.zooms, 80.0, amp["bias"])
    tau = np.linspace(-1.0, 1.0, n_vol)
    slope, curve = rng.uniform(-1.0, 1.0, 2) * amp["drift"]
    tilt = 1.0 + smooth_field(rng, shape, geom.zooms, 60.0, 0.5)
    out = np.empty(shape + (n_vol,), np.int16)
    inv_fine = np.linalg.inv(fine_affine)
    centre = geom.motion_centre
    flat = maps.reshape(maps.shape[0], -1)
    for vol in range(n_vol):
        frame = (coefficients[vol].astype(np.float32) @ flat).reshape(maps.shape[1:])
        head = rigid_matrix(motion[vol], centre)
        to_fine = inv_fine @ np.linalg.inv(head) @ geom.affine
        img = ndi.affine_transform(frame, to_fine[:3, :3], to_fine[:3, 3], output_shape=shape,
                                   order=1, mode="constant", cval=0.0)
        drift = 1.0 + tilt * (slope * tau[vol] + curve * (tau[vol] ** 2 - 1.0 / 3.0))
        img = img * bias * drift
        real = img + rng.normal(0.0, amp["thermal_sd"], shape)
        imag = rng.normal(0.0, amp["thermal_sd"], shape)
        out[..., vol] = np.clip(np.rint(np.sqrt(real ** 2 + imag ** 2)), 0, 32767)
    return out
