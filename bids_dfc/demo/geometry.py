"""Coordinate geometry of the demo heads: rigid poses, smooth warps and grids.

Conventions (also in ``docs/demo.md``):

* every coordinate is in millimetres, RAS+, as ``(N, 3)`` arrays of points;
* a rigid transform is given by six parameters ``(tx, ty, tz, rx, ry, rz)``, translations in
  mm and rotations in **radians**, and a rotation centre ``c``; its matrix maps a point ``p``
  to ``R (p - c) + c + t`` with ``R = Rz(rz) @ Ry(ry) @ Rx(rx)`` (x rotation applied first);
* the nonlinear part of a subject's anatomy is a displacement field ``u`` sampled on a
  regular grid in template (MNI) mm and interpolated trilinearly: the template point that
  sits at native point ``p`` is ``q + u(q)`` with ``q = pose^-1 p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """Return ``Rz(rz) @ Ry(ry) @ Rx(rx)`` for angles in radians.

    Examples
    --------
    >>> np.allclose(rotation_matrix(0.0, 0.0, np.pi / 2) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    True
    """
    cx, sx = np.cos(rx), np.sin(rx)
    cy, sy = np.cos(ry), np.sin(ry)
    cz, sz = np.cos(rz), np.sin(rz)
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    rot_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rot_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rot_z @ rot_y @ rot_x


def rigid_matrix(params, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 matrix of the rigid transform ``p -> R (p - c) + c + t``.

    Parameters
    ----------
    params : sequence of 6 floats
        ``(tx, ty, tz)`` in mm then ``(rx, ry, rz)`` in radians.
    centre : sequence of 3 floats
        Rotation centre ``c`` in mm.
    """
    params = np.asarray(params, dtype=float)
    if params.shape != (6,):
        raise ValueError(f"rigid parameters must be 6 numbers (tx, ty, tz, rx, ry, rz), "
                         f"got shape {params.shape}")
    centre = np.asarray(centre, dtype=float)
    rot = rotation_matrix(*params[3:])
    mat = np.eye(4)
    mat[:3, :3] = rot
    mat[:3, 3] = centre + params[:3] - rot @ centre
    return mat


def rigid_params(matrix: np.ndarray, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Invert :func:`rigid_matrix`: the 6 parameters of a rigid 4x4 matrix about ``centre``.

    Angles are recovered for ``|ry| < pi/2`` (always the case for head poses).
    """
    matrix = np.asarray(matrix, dtype=float)
    rot = matrix[:3, :3]
    ry = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    rx = np.arctan2(rot[2, 1], rot[2, 2])
    rz = np.arctan2(rot[1, 0], rot[0, 0])
    centre = np.asarray(centre, dtype=float)
    trans = matrix[:3, 3] - centre + rot @ centre
    return np.concatenate([trans, [rx, ry, rz]])


def apply_affine(matrix: np.ndarray, points) -> np.ndarray:
    """Apply a 4x4 affine to ``(N, 3)`` points (a single point ``(3,)`` works too)."""
    pts = np.asarray(points, dtype=float)
    matrix = np.asarray(matrix, dtype=float)
    return np.einsum("ij,...j->...i", matrix[:3, :3], pts) + matrix[:3, 3]


def grid_points(shape, affine, dtype=np.float64) -> np.ndarray:
    """World coordinates of every voxel centre of a grid, as ``(prod(shape), 3)``."""
    axes = [np.arange(n, dtype=dtype) for n in shape]
    out = np.empty(tuple(shape) + (3,), dtype=dtype)
    for row in range(3):
        out[..., row] = (axes[0][:, None, None] * affine[row, 0]
                         + axes[1][None, :, None] * affine[row, 1]
                         + axes[2][None, None, :] * affine[row, 2] + affine[row, 3])
    return out.reshape(-1, 3)


def centred_affine(shape, zooms, centre) -> np.ndarray:
    """Axis-aligned RAS affine of a grid of ``shape`` and voxel size ``zooms`` centred on
    ``centre`` (mm)."""
    aff = np.diag(list(np.asarray(zooms, dtype=float)) + [1.0])
    half = (np.asarray(shape, dtype=float) - 1.0) / 2.0 * np.asarray(zooms, dtype=float)
    aff[:3, 3] = np.asarray(centre, dtype=float) - half
    return aff


def sample(volume: np.ndarray, affine: np.ndarray, points, order: int = 1,
           cval: float = 0.0) -> np.ndarray:
    """Interpolate ``volume`` (on a grid with ``affine``) at world ``points`` (N, 3)."""
    vox = apply_affine(np.linalg.inv(affine), points)
    return ndi.map_coordinates(volume, vox.T, order=order, mode="constant", cval=cval)


@dataclass
class Warp:
    """Smooth displacement field ``u`` (mm) on a template-space grid.

    Attributes
    ----------
    field : ndarray, shape (X, Y, Z, 3)
        Displacement in mm at each grid node.
    affine : ndarray, shape (4, 4)
        Voxel-to-template-mm affine of the grid.
    """

    field: np.ndarray
    affine: np.ndarray

    def displacement(self, points) -> np.ndarray:
        """``u(q)`` at template points ``q`` (trilinear; constant beyond the grid edge)."""
        vox = apply_affine(np.linalg.inv(self.affine), points).T
        return np.stack([ndi.map_coordinates(self.field[..., k], vox, order=1, mode="nearest")
                         for k in range(3)], axis=1)

    def forward(self, points) -> np.ndarray:
        """``q + u(q)``: the template point that anatomy point ``q`` shows."""
        pts = np.asarray(points, dtype=float)
        return pts + self.displacement(pts)

    def inverse(self, points, n_iter: int = 30) -> np.ndarray:
        """Solve ``q + u(q) = p`` for ``q`` by fixed-point iteration (|grad u| < 1)."""
        target = np.asarray(points, dtype=float)
        guess = target.copy()
        for _ in range(n_iter):
            new = target - self.displacement(guess)
            if np.max(np.abs(new - guess)) < 1e-6:
                return new
            guess = new
        return guess


def random_warp(rng: np.random.Generator, lower, upper, max_mm: float,
                spacing: float = 4.0, smooth_mm: float = 14.0) -> Warp:
    """A smooth random displacement field covering the box ``[lower, upper]`` (mm).

    The field is white noise smoothed with a Gaussian of ``smooth_mm`` and scaled so that
    the largest displacement is ``max_mm``; it tapers to zero at the box edges.
    """
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    shape = tuple(int(np.ceil((upper[k] - lower[k]) / spacing)) + 1 for k in range(3))
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = lower
    noise = rng.standard_normal((3,) + shape)
    field = np.stack([ndi.gaussian_filter(noise[k], smooth_mm / spacing, mode="constant")
                      for k in range(3)], axis=-1)
    taper = np.ones(shape)
    for axis, n in enumerate(shape):
        ramp = np.minimum(np.arange(n), np.arange(n)[::-1]) / 3.0
        taper = taper * np.clip(ramp, 0.0, 1.0).reshape([-1 if a == axis else 1
                                                         for a in range(3)])
    field *= taper[..., None]
    norm = np.sqrt((field ** 2).sum(-1)).max()
    field *= max_mm / norm if norm > 0 else 0.0
    return Warp(field=field.astype(np.float32), affine=affine)


def native_to_mni(points, pose: np.ndarray, warp: Warp) -> np.ndarray:
    """Template mm shown at native (T1w-world) points: ``q + u(q)``, ``q = pose^-1 p``."""
    return warp.forward(apply_affine(np.linalg.inv(pose), points))


def mni_to_native(points, pose: np.ndarray, warp: Warp) -> np.ndarray:
    """Native (T1w-world) mm of template points: the inverse of :func:`native_to_mni`."""
    return apply_affine(pose, warp.inverse(points))
