"""Signal maths of the functional workflow, checked against independent implementations
(nilearn.signal.clean / butterworth, nipype's compute_dvars, nilearn.image.smooth_img, the
demo generator's rigid geometry, scipy's Rotation)."""

import warnings

import nibabel as nb
import numpy as np
import pytest
from nilearn import signal as nsignal
from nilearn.image import smooth_img
from scipy import signal as sps
from scipy.spatial.transform import Rotation

from bids_dfc.demo.geometry import rigid_matrix
from bids_dfc.errors import InputError
from bids_dfc.preproc.motion import matrix_to_params, params_to_matrix
from bids_dfc.preproc.signal import (
    acompcor,
    butterworth,
    censor_mask,
    check_enough_volumes,
    denoise,
    detect_nonsteady,
    dvars,
    framewise_displacement,
    sanitise_bold,
    smooth_within_mask,
)


@pytest.fixture
def rng():
    return np.random.default_rng(20261121)


def _clean_kwargs():
    return dict(detrend=True, filter="butterworth", low_pass=0.1, high_pass=0.01, t_r=2.0,
                standardize=None, standardize_confounds=True)


def test_denoise_matches_nilearn_clean(rng):
    """Regression with data and confounds band-passed alike == nilearn.signal.clean."""
    y = rng.normal(size=(97, 13)).cumsum(0) + rng.normal(size=(97, 13))
    x = rng.normal(size=(97, 4)).cumsum(0)
    ours = denoise(y, x, 2.0, (0.01, 0.1))
    ref = nsignal.clean(y, confounds=x, **_clean_kwargs())
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(ref).max()


def test_denoise_with_censoring_matches_nilearn_sample_mask(rng):
    """Censored volumes: interpolated before filtering, excluded from the fit (nilearn's
    sample_mask semantics); our output keeps every volume."""
    y = rng.normal(size=(83, 7)).cumsum(0)
    x = rng.normal(size=(83, 3)).cumsum(0)
    keep = np.ones(83, bool)
    keep[[10, 11, 40, 66]] = False
    ours = denoise(y, x, 2.0, (0.01, 0.1), keep=keep)
    ref = nsignal.clean(y, confounds=x, sample_mask=np.flatnonzero(keep), **_clean_kwargs())
    assert ours.shape == y.shape
    assert np.abs(ours[keep] - ref).max() < 1e-5 * np.abs(ref).max()
    # censored first/last volumes hold the nearest kept value: no spline blow-up
    y[0] += 1e3
    keep[[0, 82]] = False
    edges = denoise(y, x, 2.0, (0.01, 0.1), keep=keep)
    assert np.abs(edges).max() < 3 * np.abs(ref).max()


def test_denoise_removes_confound_without_reintroducing_it(rng):
    """After denoising, the band-passed confound has no projection left in the data."""
    n = 150
    confound = rng.normal(size=n).cumsum()
    neural = butterworth(rng.normal(size=n), 2.0, (0.01, 0.1))
    y = (neural + 5 * confound)[:, None]
    out = denoise(y, confound[:, None], 2.0, (0.01, 0.1))[:, 0]
    filtered_conf = butterworth(sps.detrend(confound), 2.0, (0.01, 0.1))
    filtered_y = butterworth(sps.detrend(y[:, 0]), 2.0, (0.01, 0.1))
    assert abs(np.corrcoef(filtered_y, filtered_conf)[0, 1]) > 0.5
    assert abs(np.corrcoef(out, filtered_conf)[0, 1]) < 1e-3
    assert np.corrcoef(out, neural)[0, 1] > 0.9


def test_butterworth_matches_nilearn(rng):
    x = rng.normal(size=(120, 5))
    ours = butterworth(x, 1.5, (0.01, 0.1))
    ref = nsignal.butterworth(x, sampling_rate=1 / 1.5, low_pass=0.1, high_pass=0.01)
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    with pytest.warns(UserWarning, match="Nyquist"):
        butterworth(x, 6.0, (0.01, 0.1))
    with pytest.raises(InputError, match="below the high edge"):
        butterworth(x, 2.0, (0.1, 0.05))


def test_dvars_matches_nipype(rng, tmp_path):
    """DVARS == nipype.algorithms.confounds.compute_dvars (same normalisation); standardised
    DVARS within 3 % (robust SD / AR(1) estimators differ in detail)."""
    pytest.importorskip("nitime", reason="nipype's compute_dvars needs nitime (test extra)")
    from nipype.algorithms.confounds import compute_dvars

    shape = (6, 7, 5, 90)
    data = 800 + 30 * rng.normal(size=shape)
    data[..., 50] += 60
    mask = np.zeros(shape[:3], np.uint8)
    mask[1:5, 1:6, 1:4] = 1
    nb.save(nb.Nifti1Image(data.astype(np.float32), np.eye(4)), tmp_path / "f.nii.gz")
    nb.save(nb.Nifti1Image(mask, np.eye(4)), tmp_path / "m.nii.gz")
    std_ref, raw_ref, _ = compute_dvars(str(tmp_path / "f.nii.gz"), str(tmp_path / "m.nii.gz"))
    ours, std = dvars(data.astype(np.float32)[mask > 0].T)
    assert np.isnan(ours[0]) and np.isnan(std[0])
    np.testing.assert_allclose(ours[1:], raw_ref, rtol=1e-4)
    np.testing.assert_allclose(std[1:], std_ref, rtol=0.03)
    assert np.argmax(ours[1:]) in (49, 50)


def test_framewise_displacement_by_hand():
    params = np.zeros((3, 6))
    params[1, 0] = 0.5
    params[2, 5] = 0.01
    fd = framewise_displacement(params)
    assert np.isnan(fd[0])
    np.testing.assert_allclose(fd[1:], [0.5, 0.5 + 50 * 0.01])
    assert censor_mask(fd, 0.7).tolist() == [True, True, False]
    assert censor_mask(fd, None).all()


def test_acompcor_recovers_planted_noise(rng):
    n, v = 140, 300
    t = np.arange(n) * 2.0
    latent = np.column_stack([np.sin(2 * np.pi * 0.05 * t), np.cos(2 * np.pi * 0.031 * t)])
    loadings = rng.normal(size=(2, v))
    data = 1000 + latent @ loadings * 5 + rng.normal(size=(n, v)) + 0.05 * t[:, None]
    comps, explained = acompcor(data, 2.0, high_pass=0.01, n_components=5)
    assert comps.shape == (n, 5)
    assert np.all(np.diff(explained) <= 0) and explained.sum() <= 1
    # the first two components span the latent series (canonical correlation ~ 1)
    q1, _ = np.linalg.qr(comps[:, :2] - comps[:, :2].mean(0))
    q2, _ = np.linalg.qr(latent - latent.mean(0))
    assert np.linalg.svd(q1.T @ q2, compute_uv=False).min() > 0.95
    few, frac = acompcor(data, 2.0, high_pass=0.01, n_components=0.5)
    assert few.shape[1] == int(np.searchsorted(np.cumsum(explained), 0.5) + 1)
    assert frac.sum() >= 0.5
    with pytest.raises(InputError, match="at least 2 voxels"):
        acompcor(np.ones((50, 3)), 2.0, high_pass=0.01, n_components=5)


def test_smoothing_width_and_mask(rng):
    """FWHM of an impulse response matches the request (anisotropic voxels); inside a mask
    far from its edge the result equals nilearn.image.smooth_img; nothing leaks out and a
    constant stays constant up to the edge (normalised convolution)."""
    shape, zooms = (41, 37, 29), (2.0, 2.5, 3.0)
    mask = np.zeros(shape, bool)
    mask[3:-3, 3:-3, 3:-3] = True
    impulse = np.zeros(shape)
    impulse[20, 18, 14] = 1.0
    out = smooth_within_mask(impulse, mask, zooms, 8.0)
    for axis, zoom in enumerate(zooms):
        prof = out.sum(axis=tuple(a for a in range(3) if a != axis))
        x = (np.arange(shape[axis]) - np.argmax(prof)) * zoom
        sd = np.sqrt((prof * x ** 2).sum() / prof.sum())
        assert sd * np.sqrt(8 * np.log(2)) == pytest.approx(8.0, rel=0.03)
    ref = smooth_img(nb.Nifti1Image(impulse, np.diag([*zooms, 1.0])), 8.0).get_fdata()
    assert np.abs(out - ref)[10:-10, 10:-10, 8:-8].max() < 1e-6
    const = smooth_within_mask(np.full(shape + (2,), 7.0), mask, zooms, 6.0)
    np.testing.assert_allclose(const[mask], 7.0, rtol=1e-6)
    assert not const[~mask].any()


def test_rigid_parameters_match_demo_and_scipy(rng):
    centre = np.array([3.0, -20.0, 11.0])
    for _ in range(5):
        p = np.concatenate([rng.normal(0, 2, 3), rng.normal(0, 0.1, 3)])
        ours = params_to_matrix(p, centre)
        np.testing.assert_allclose(ours, rigid_matrix(p, centre), atol=1e-12)
        rot = Rotation.from_euler("xyz", p[3:]).as_matrix()  # extrinsic x, y, z = Rz Ry Rx
        np.testing.assert_allclose(ours[:3, :3], rot, atol=1e-12)
        np.testing.assert_allclose(matrix_to_params(ours, centre), p, atol=1e-12)


def test_nonsteady_detection(rng):
    run = 500 + rng.normal(0, 5, (5, 6, 4, 70))
    assert detect_nonsteady(run) == 0
    run[..., :2] *= 1.4
    assert detect_nonsteady(run) == 2


def test_bad_values_and_short_runs():
    data = np.ones((4, 4, 4, 60), np.float32)
    data[0, 0, 0, 3] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clean, n_bad = sanitise_bold(data, "sub-01_bold.nii.gz")
    assert n_bad == 1 and clean[0, 0, 0, 3] == 0 and caught
    data[..., 5] = np.inf
    with pytest.raises(InputError, match="sub-01_bold.nii.gz.*volumes \\[5\\]"):
        sanitise_bold(data, "sub-01_bold.nii.gz")
    with pytest.raises(InputError, match="sub-02_bold.nii.gz: only 46 volumes"):
        check_enough_volumes(46, 4, "sub-02_bold.nii.gz")
