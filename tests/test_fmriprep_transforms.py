"""fMRIPrep's ITK composite transforms (``*_from-<tpl>_to-T1w_mode-image_xfm.h5``) read by
the seed warp (``connectivity.weights``).

fMRIPrep writes these files with antsRegistration's ``--write-composite-transform``, ITK's
HDF5 transform writer. Here ITK writes them too: ``ants.registration(...,
write_composite_transform=True)`` (the same antsRegistration code) and
``preproc.ants_utils.write_composite_transform`` (ITK's writer on a composed list). Outside
reference: the known shift between two images, and the transform list the composite was made
from, applied by antsApplyTransforms.
"""

from __future__ import annotations

import ants
import nibabel as nb
import numpy as np

from bids_dfc.connectivity.weights import _warp_volume, weighted_centroid
from bids_dfc.preproc.ants_utils import write_composite_transform

SPACING = 2.0


def _blob(shape, centre_vox, sigma=2.5):
    grid = np.indices(shape).astype(float)
    d2 = sum((g - c) ** 2 for g, c in zip(grid, centre_vox))
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)


def _save(tmp_path, name, vol):
    path = tmp_path / name
    nb.save(nb.Nifti1Image(vol, np.diag([SPACING] * 3 + [1.0])), path)
    return path


def test_composite_h5_maps_exactly_as_the_list_it_was_made_from(tmp_path):
    shape = (17, 19, 15)
    # a nonlinear warp (smooth displacement field, up to 3 mm) and an affine, as antspyx's
    # registration writes them: 1Warp.nii.gz and 0GenericAffine.mat
    idx = np.indices(shape).astype(np.float32)
    field = np.stack([3.0 * np.sin(idx[1] / 4.0), 2.0 * np.cos(idx[0] / 5.0),
                      1.5 * np.sin(idx[2] / 3.0)], axis=-1)
    warp = ants.from_numpy(field, spacing=(SPACING,) * 3, has_components=True)
    ants.image_write(warp, str(tmp_path / "1Warp.nii.gz"))
    affine = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                        matrix=np.array([[0.98, 0.05, 0], [-0.05, 0.98, 0],
                                                         [0, 0, 1.02]]),
                                        translation=(2.0, -1.5, 1.0), center=(16, 18, 14))
    ants.write_transform(affine, str(tmp_path / "0GenericAffine.mat"))
    listed = [str(tmp_path / "1Warp.nii.gz"), str(tmp_path / "0GenericAffine.mat")]
    h5 = write_composite_transform(listed, tmp_path / "from-MNI_to-T1w_mode-image_xfm.h5")
    assert h5.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"  # an HDF5 file, as fMRIPrep's

    ref = _save(tmp_path, "ref.nii.gz", np.zeros(shape, np.float32))
    seed = _blob(shape, (8, 9, 7))
    affine_mm = np.diag([SPACING] * 3 + [1.0])
    by_h5 = _warp_volume(seed, affine_mm, ref, [str(h5)], "linear", tmp_path)
    by_list = _warp_volume(seed, affine_mm, ref, listed, "linear", tmp_path)
    identity = _warp_volume(seed, affine_mm, ref, [], "linear", tmp_path)
    np.testing.assert_allclose(by_h5, by_list, atol=1e-6)
    assert np.abs(by_list - identity).max() > 0.1  # the transform really moves the seed


def test_antsregistration_composite_brings_a_seed_to_where_the_anatomy_moved(tmp_path):
    """A composite written by antsRegistration itself, read in the direction fMRIPrep names
    ``from-<template>_to-T1w``: a blob at the template's landmark lands on the subject's."""
    shape = (24, 26, 22)
    shift_vox = np.array([3.0, -2.0, 1.0])  # the subject's anatomy sits 6, -4, 2 mm away
    template = _blob(shape, (11, 13, 10), 3.5) + 0.6 * _blob(shape, (16, 8, 12), 2.5)
    subject = _blob(shape, (11, 13, 10) + shift_vox, 3.5) \
        + 0.6 * _blob(shape, (16, 8, 12) + shift_vox, 2.5)
    ref = _save(tmp_path, "subject.nii.gz", subject * 100)
    fixed = ants.image_read(str(ref))  # through NIfTI files, as fMRIPrep's images are
    moving = ants.image_read(str(_save(tmp_path, "template.nii.gz", template * 100)))
    reg = ants.registration(fixed, moving, "SyN", write_composite_transform=True,
                            outprefix=str(tmp_path / "tpl2sub_"))
    h5 = reg["fwdtransforms"]  # one file, not a list, when the transforms are composed
    assert isinstance(h5, str) and h5.endswith("Composite.h5")

    affine_mm = np.diag([SPACING] * 3 + [1.0])
    seed = _blob(shape, (11, 13, 10), 1.5)
    warped = np.clip(_warp_volume(seed, affine_mm, ref, [h5], "linear", tmp_path), 0, None)
    centre = weighted_centroid(warped, affine_mm)
    expected = ((11, 13, 10) + shift_vox) * SPACING
    assert np.linalg.norm(centre - expected) < SPACING / 2, (centre, expected)
