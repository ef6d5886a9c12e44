"""Seed tables, sphere weights, atlases, region and network series (bids_dfc.connectivity)."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from bids_dfc.connectivity import seeds as sd
from bids_dfc.connectivity import series as ss
from bids_dfc.connectivity import weights as sw
from bids_dfc.errors import InputError

HEADER = "name\tx\ty\tz\tradius_mm\tnetwork\n"


def _write(tmp_path, text, name="seeds.tsv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_seeds_are_the_study_table():
    seeds = sd.read_seeds()
    # METHOD.md, "Seeds and networks"
    expected = {
        "PCC": (-2, -46, 28, 6, "DMN"),
        "mPFC": (4, 54, 2, 6, "DMN"),
        "PAG": (0, -32, -10, 6, "DeS"),
        "RVM": (0, -34, -50, 2, "DeS"),
    }
    assert list(seeds["name"]) == list(expected)
    for row in seeds.itertuples():
        assert (row.x, row.y, row.z, row.radius_mm, row.network) == expected[row.name]
    assert seeds["x"].dtype == float


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("name\tx\ty\tz\tnetwork\nA\t1\t2\t3\tN\n", r"lacks the column\(s\) \['radius_mm'\]"),
        (HEADER + "A\t1\t2\t3\t4\tN\nB\tabc\t2\t3\t4\tN\n", r"row 2 \(line 3\), seed 'B'.*'x'"),
        (HEADER + "A\t1\t2\t3\t-4\tN\n", r"row 1 \(line 2\), seed 'A'.*radius_mm is -4"),
        (HEADER + "A\t1\t2\t3\t0\tN\n", r"seed 'A'.*must be > 0"),
        (HEADER + "A\t1\t2\tnan\t4\tN\n", r"'z' is 'nan'"),
        (HEADER + "A\t1\t2\t3\t4\tN\nA\t1\t2\t3\t4\tN\n", r"unique; repeated: \['A'\]"),
        (HEADER + "A\t1\t2\t3\t4\tA\n", r"both as a seed name and as a network"),
        (HEADER + "A__B\t1\t2\t3\t4\tN\n", r"may not contain '__'"),
        (HEADER + "A\t1\t2\t3\t4\t\n", r"network is empty"),
        (HEADER, r"has no rows"),
    ],
)
def test_bad_seed_tables_name_the_problem(tmp_path, text, pattern):
    with pytest.raises(InputError, match=pattern):
        sd.read_seeds(_write(tmp_path, text))


def test_seed_outside_template_fov_names_the_row(tmp_path):
    path = _write(tmp_path, HEADER + "ok\t0\t0\t0\t4\tN\nfar\t0\t0\t200\t4\tN\n")
    img = nb.Nifti1Image(np.zeros((11, 13, 9), np.float32),
                         np.diag([2.0, 2.0, 2.0, 1.0]) + np.c_[np.zeros((4, 3)),
                                                               [-10, -12, -8, 0]])
    with pytest.raises(InputError, match=r"row 2 \(line 3\), seed 'far'.*field of view"):
        sd.check_seeds_in_fov(sd.read_seeds(path), img, source=str(path))


def _monte_carlo_weights(center, radius, affine, shape, n=400_000, seed=0):
    """Independent estimate: uniform points in the sphere binned into voxels."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, (n, 3))
    pts = pts[np.sum(pts**2, axis=1) <= 1] * radius + np.asarray(center)
    ijk = np.rint((pts - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T).astype(int)
    counts = np.zeros(shape)
    np.add.at(counts, tuple(ijk.T), 1)
    vox_vol = abs(np.linalg.det(affine[:3, :3]))
    return counts / len(pts) * (4 / 3 * np.pi * radius**3) / vox_vol


@pytest.mark.parametrize("radius", [6.0, 2.0])
def test_sphere_weights_match_monte_carlo_on_oblique_anisotropic_grid(radius):
    # BOLD-like voxels (3.125 x 3.125 x 4 mm), rotated 10 degrees about z
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([3.125, 3.125, 4])
    affine[:3, 3] = [-20, -22, -18]
    shape = (13, 15, 11)
    center = (1.3, -0.7, 2.2)
    w = sw.sphere_weights(center, radius, affine, shape, supersample=9)
    ref = _monte_carlo_weights(center, radius, affine, shape)
    vox_vol = 3.125 * 3.125 * 4
    assert w.sum() * vox_vol == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.03)
    assert np.abs(w - ref).max() < 0.06
    assert w.max() <= 1.0 and w.min() >= 0.0
    # a sphere much larger than a voxel has its centroid at the centre; a small one lies
    # within half a voxel of it (its weight sits on voxel centres)
    tol = 0.1 if radius > 4 else 2.0
    assert np.allclose(sw.weighted_centroid(w, affine), center, atol=tol)


def test_tiny_sphere_between_sample_points_still_has_a_voxel():
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    w = sw.sphere_weights((4.4, 4.4, 4.4), 0.01, affine, (5, 6, 7))
    assert w.sum() == 1.0 and w[1, 1, 1] == 1.0  # 4.4 mm is nearest to voxel 1 (3 mm)


def test_seed_weight_maps_one_volume_per_seed():
    ref = nb.Nifti1Image(np.zeros((20, 23, 19), np.float32),
                         np.c_[np.diag([2.0, 2.0, 2.0, 1.0])[:, :3], [-20, -22, -18, 1]])
    seeds = sd.read_seeds()
    seeds.loc[:, ["y", "z"]] = [[-4, 2], [6, 2], [0, -8], [-2, 10]]
    maps = sw.seed_weight_maps(seeds, ref)
    assert maps.shape == (20, 23, 19, 4)
    vols = np.asarray(maps.dataobj).reshape(-1, 4).sum(axis=0) * 8
    assert vols == pytest.approx(4 / 3 * np.pi * seeds["radius_mm"].to_numpy() ** 3, rel=0.05)


def test_weighted_mean_series_against_explicit_sum():
    rng = np.random.default_rng(7)
    data = rng.normal(size=(6, 7, 5, 31))
    data[0, 0, 0] = 3.0  # a constant voxel: carries no signal, must be left out
    weights = np.zeros((6, 7, 5, 2))
    weights[0, 0, 0, 0] = 1.0
    weights[1, 2, 3, 0] = 0.25
    weights[2, 2, 3, 0] = 0.75
    weights[4, 5, 1, 1] = 0.1
    out = ss.weighted_mean_series(data, weights, names=["a", "b"])
    expected_a = (0.25 * data[1, 2, 3] + 0.75 * data[2, 2, 3]) / 1.0
    assert out.shape == (31, 2)
    assert np.allclose(out[:, 0], expected_a)
    assert np.allclose(out[:, 1], data[4, 5, 1])


def test_weighted_mean_series_refuses_a_seed_without_signal():
    data = np.zeros((4, 5, 3, 20))
    data[1, 1, 1] = np.arange(20)
    weights = np.zeros((4, 5, 3, 2))
    weights[1, 1, 1, 0] = 1
    weights[3, 4, 2, 1] = 1  # zero series: outside the brain
    with pytest.raises(InputError, match=r"\['RVM'\] cover no voxel"):
        ss.weighted_mean_series(data, weights, names=["PAG", "RVM"])


def test_network_series_equal_and_voxel_weighting():
    series = pd.DataFrame({"PCC": [1.0, 2.0, 3.0], "mPFC": [3.0, 2.0, 7.0],
                           "PAG": [0.0, 1.0, 0.0]})
    nets = {"PCC": "DMN", "mPFC": "DMN", "PAG": "DeS"}
    eq = ss.network_series(series, nets)
    assert list(eq.columns) == ["DMN", "DeS"]
    assert np.allclose(eq["DMN"], [2.0, 2.0, 5.0])
    vox = ss.network_series(series, nets, weighting="voxel",
                            seed_weights={"PCC": 3.0, "mPFC": 1.0, "PAG": 2.0})
    assert np.allclose(vox["DMN"], (3 * series["PCC"] + series["mPFC"]) / 4)
    assert np.allclose(vox["DeS"], series["PAG"])
    with pytest.raises(InputError, match="'equal' or 'voxel'"):
        ss.network_series(series, nets, weighting="max")


def test_primary_pair():
    assert sd.primary_pair(["DeS", "X", "DMN"]) == ("DMN", "DeS")
    assert sd.primary_pair(["A", "B", "C"]) == ("A", "B")
    assert sd.primary_pair(["A"]) is None


def _labels(tmp_path, rows):
    path = tmp_path / "labels.tsv"
    pd.DataFrame(rows, columns=["index", "name"]).to_csv(path, sep="\t", index=False)
    return path


def test_label_mean_series_matches_nilearn_labels_masker(tmp_path):
    from nilearn.maskers import NiftiLabelsMasker

    rng = np.random.default_rng(11)
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    labels = rng.integers(0, 4, size=(7, 8, 6))
    data = rng.normal(size=(7, 8, 6, 25))
    out = ss.label_mean_series(data, labels, [1, 2, 3])
    masker = NiftiLabelsMasker(nb.Nifti1Image(labels.astype(np.int32), affine), standardize=None)
    ref = masker.fit_transform(nb.Nifti1Image(data, affine))
    assert np.allclose(out, ref)


def test_atlas_labels_and_grid_checks(tmp_path):
    ref = nb.Nifti1Image(np.zeros((20, 22, 18), np.float32),
                         np.c_[np.diag([2.0, 2.0, 2.0, 1.0])[:, :3], [-20, -22, -18, 1]])
    # atlas on a 1 mm grid covering the same box: must be resampled, labels kept
    fine = np.zeros((40, 44, 36), np.int16)
    fine[5:15, 5:15, 5:15] = 1
    fine[20:35, 20:40, 10:30] = 2
    atlas = nb.Nifti1Image(fine, np.c_[np.eye(4)[:, :3], [-20.5, -22.5, -18.5, 1]])
    labels = sd.read_atlas_labels(_labels(tmp_path, [[2, "B"], [1, "A"]]))
    assert list(labels["name"]) == ["A", "B"]
    out, resampled = sw.atlas_to_grid(atlas, labels, ref)
    assert resampled and out.shape == ref.shape
    assert set(np.unique(np.asarray(out.dataobj))) == {0, 1, 2}
    assert (np.asarray(out.dataobj) == 2).sum() == pytest.approx(15 * 20 * 20 / 8, rel=0.15)
    with pytest.raises(InputError, match=r"indices \[3\] do not occur"):
        sw.atlas_to_grid(atlas, sd.read_atlas_labels(
            _labels(tmp_path, [[1, "A"], [2, "B"], [3, "C"]])), ref)
    with pytest.raises(InputError, match=r"values \[2\] have no row"):
        sw.atlas_to_grid(atlas, sd.read_atlas_labels(_labels(tmp_path, [[1, "A"]])), ref)
    far = nb.Nifti1Image(fine, np.c_[np.eye(4)[:, :3], [500, 500, 500, 1]])
    with pytest.raises(InputError, match="vanish on the template grid"):
        sw.atlas_to_grid(far, labels, ref)
    with pytest.raises(InputError, match=r"row 1 \(line 2\): index 'x'"):
        sd.read_atlas_labels(_labels(tmp_path, [["x", "A"]]))
