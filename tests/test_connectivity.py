"""Connectivity step: seed warping through a real ANTs registration, extraction, DCC, outputs."""

from __future__ import annotations

import json
import shutil

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from _study import connectivity_kwargs
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from bids_dfc.connectivity.tables import dfc_core
from bids_dfc.connectivity.weights import seed_weight_maps, warp_weights_core
from bids_dfc.errors import InputError
from bids_dfc.interfaces import connectivity as ci
from bids_dfc.workflows.connectivity import (
    init_connectivity_derivatives_wf,
    init_connectivity_wf,
)

ants = pytest.importorskip("ants")

SEEDS = pd.DataFrame({
    "name": ["A", "B", "C", "tiny"],
    "x": [-10.0, 12.0, 0.0, 0.8], "y": [-20.0, 20.0, 5.0, 1.3], "z": [10.0, -5.0, 0.0, 1.9],
    "radius_mm": [6.0, 6.0, 2.0, 0.3], "network": ["DMN", "DMN", "DeS", "DeS"],
})
ROT = Rotation.from_euler("xyz", [6, -4, 8], degrees=True).as_matrix()
SHIFT = np.array([3.0, -4.0, 2.0])  # BOLD world = ROT @ template world + SHIFT
T = 160


def _grid(shape, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A textured 'template' (2 mm) and a rotated, shifted 'BOLD' (3.125 x 3.125 x 4 mm)."""
    d = tmp_path_factory.mktemp("conn")
    rng = np.random.default_rng(3)
    # covers the study's seeds too (mPFC at y = 54, RVM at z = -50)
    shape, aff = (46, 62, 56), np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-45, -62, -56]
    xyz = _grid(shape, aff)
    inside = (((xyz - [0, -5, -5]) / np.array([40, 62, 56])) ** 2).sum(-1) < 1
    img = inside.astype(float)
    for c in rng.uniform(-30, 30, (25, 3)):
        img += rng.uniform(0.5, 1.5) * np.exp(-((xyz - c) ** 2).sum(-1) / 72.0)
    img *= inside
    nb.save(nb.Nifti1Image(img.astype(np.float32), aff), d / "tpl.nii.gz")
    nb.save(nb.Nifti1Image(inside.astype(np.uint8), aff), d / "tpl_mask.nii.gz")
    bshape, baff = (30, 36, 22), np.diag([3.125, 3.125, 4.0, 1.0])
    baff[:3, 3] = [-46, -55, -42]
    tpl_xyz = (_grid(bshape, baff) - SHIFT) @ ROT  # template point seen at each BOLD voxel
    vox = (tpl_xyz - aff[:3, 3]) / 2.0
    bref = map_coordinates(img, vox.reshape(-1, 3).T, order=1).reshape(bshape)
    nb.save(nb.Nifti1Image(bref.astype(np.float32), baff), d / "boldref.nii.gz")
    nb.save(nb.Nifti1Image((bref > 0.1).astype(np.uint8), baff), d / "boldmask.nii.gz")
    reg = ants.registration(fixed=ants.image_read(str(d / "boldref.nii.gz")),
                            moving=ants.image_read(str(d / "tpl.nii.gz")),
                            type_of_transform="Rigid", random_seed=2)
    fwd = [shutil.copy(f, d / f"fwd{k}.mat") for k, f in enumerate(reg["fwdtransforms"])]
    inv = [shutil.copy(f, d / f"inv{k}.mat") for k, f in enumerate(reg["invtransforms"])]
    SEEDS.to_csv(d / "seeds.tsv", sep="\t", index=False)
    return {"dir": d, "fwd": [str(f) for f in fwd], "inv": [str(f) for f in inv],
            "baff": baff, "bshape": bshape}


def _ants_points_to_bold(points, inv):
    """Template mm -> BOLD mm with ANTs' point mapper (an independent code path)."""
    lps = np.asarray(points, float) * [-1, -1, 1]
    out = ants.apply_transforms_to_points(3, pd.DataFrame(lps, columns=["x", "y", "z"]), inv,
                                          whichtoinvert=[True] * len(inv))
    return out[["x", "y", "z"]].to_numpy() * [-1, -1, 1]


def test_warped_seed_weights_follow_the_registration(data, tmp_path):
    d = data["dir"]
    nb.save(seed_weight_maps(SEEDS, nb.load(d / "tpl.nii.gz")), tmp_path / "maps.nii.gz")
    img, info = warp_weights_core(tmp_path / "maps.nii.gz", SEEDS, str(d / "boldref.nii.gz"),
                                     data["fwd"], d / "boldmask.nii.gz", tmp_path)
    centres = info[["centre_x", "centre_y", "centre_z"]].to_numpy()
    by_points = _ants_points_to_bold(SEEDS[["x", "y", "z"]], data["inv"])
    truth = SEEDS[["x", "y", "z"]].to_numpy() @ ROT.T + SHIFT
    # image warp (apply_transforms) and point mapping agree for seeds covering voxels
    assert np.abs(centres[:3] - by_points[:3]).max() < 0.8
    # and the registration recovered the planted motion
    assert np.abs(by_points - truth).max() < 2.0
    # partial-volume weights keep each sphere's volume; for the 2 mm seed, sampled at a few
    # BOLD voxel centres, only roughly
    vol = 4 / 3 * np.pi * SEEDS["radius_mm"].to_numpy()[:3] ** 3
    assert info["volume_mm3"].to_numpy()[:2] == pytest.approx(vol[:2], rel=0.12)
    assert info["volume_mm3"].iloc[2] == pytest.approx(vol[2], rel=0.5)
    assert info["n_voxels"].iloc[2] >= 2 and not info["fallback"].iloc[2]
    # the 0.3 mm seed: warped weights vanish -> the voxel nearest its warped centre
    assert bool(info["fallback"].iloc[3]) and info["n_voxels"].iloc[3] == 1
    w = np.asarray(img.dataobj)[..., 3]
    ijk = np.argwhere(w > 0)[0]
    inv_aff = np.linalg.inv(data["baff"])
    expected = np.rint((inv_aff @ np.append(by_points[3], 1))[:3]).astype(int)
    assert np.abs(ijk - expected).max() <= 1
    assert (info["fraction_in_mask"] == 1).all()


def _planted_bold(data, tmp_path):
    """4D BOLD with DMN and DeS signals whose correlation switches in blocks."""
    rng = np.random.default_rng(5)
    d = data["dir"]
    nb.save(seed_weight_maps(SEEDS, nb.load(d / "tpl.nii.gz")), tmp_path / "maps.nii.gz")
    img, _ = warp_weights_core(tmp_path / "maps.nii.gz", SEEDS, str(d / "boldref.nii.gz"),
                                  data["fwd"], d / "boldmask.nii.gz", tmp_path)
    w = np.asarray(img.dataobj)
    rho = np.where((np.arange(T) // 40) % 2 == 0, 0.85, -0.3)
    s_dmn = rng.normal(size=T)
    s_des = rho * s_dmn + np.sqrt(1 - rho**2) * rng.normal(size=T)
    bold = rng.normal(scale=0.3, size=data["bshape"] + (T,))
    for k, sig in enumerate([s_dmn, s_dmn, s_des, s_des]):
        bold[w[..., k] > 0] += 2.0 * sig
    mask = np.asarray(nb.load(d / "boldmask.nii.gz").dataobj) > 0
    bold[~mask] = 0.0  # as a masked, denoised series
    nb.save(nb.Nifti1Image(bold.astype(np.float32), data["baff"]), tmp_path / "bold.nii.gz")
    fd = np.abs(rng.normal(0.1, 0.05, T))
    conf = pd.DataFrame({"framewise_displacement": np.r_[np.nan, fd[1:]]})
    conf.to_csv(tmp_path / "confounds.tsv", sep="\t", index=False, na_rep="n/a")
    return s_dmn, s_des, float(fd[1:].mean())


def _run_with_derivatives(wf, ds, tmp_path):
    """Run ``wf`` and its derivatives workflow together (as the participant workflow does)."""
    from nipype.pipeline import engine as pe

    parent = pe.Workflow(name="p", base_dir=str(tmp_path / "work"))
    parent.config["execution"]["crashdump_dir"] = str(tmp_path)
    fields = [f for f in ds.get_node("inputnode").inputs.copyable_trait_names()
              if f != "source_file"]
    parent.connect([(wf, ds, [(f"outputnode.{f}", f"inputnode.{f}") for f in fields]),
                    (wf, ds, [("inputnode.bold_file", "inputnode.source_file")])])
    return {n.name: n for n in parent.run().nodes()}


def _raw_bold(tmp_path):
    raw = tmp_path / "raw" / "sub-01" / "func" / "sub-01_task-rest_run-2_bold.nii.gz"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(b"")
    return raw


def test_connectivity_workflow_end_to_end(data, tmp_path):
    d = data["dir"]
    s_dmn, s_des, fd = _planted_bold(data, tmp_path)
    raw = _raw_bold(tmp_path)
    wf = init_connectivity_wf(seeds_file=d / "seeds.tsv", **connectivity_kwargs())
    inputs = wf.get_node("inputnode").inputs
    inputs.bold_file = str(raw)
    inputs.bold_denoised = str(tmp_path / "bold.nii.gz")
    inputs.bold_mask = str(d / "boldmask.nii.gz")
    inputs.bold_ref = str(d / "boldref.nii.gz")
    inputs.template_ref = str(d / "tpl.nii.gz")
    inputs.anat2boldref_xfm = data["fwd"]  # here template == "T1w": identity second step
    inputs.std2anat_xfm = []
    inputs.confounds_tsv = str(tmp_path / "confounds.tsv")
    out = tmp_path / "out"
    _run_with_derivatives(wf, init_connectivity_derivatives_wf(
        output_dir=out, seed_space=connectivity_kwargs()["seed_space"]), tmp_path)

    func = out / "sub-01" / "func"
    stem = "sub-01_task-rest_run-2_seg-seeds"
    ts = pd.read_csv(func / f"{stem}_stat-mean_timeseries.tsv", sep="\t")
    assert list(ts.columns) == ["A", "B", "C", "tiny", "DMN", "DeS"]
    assert np.corrcoef(ts["DMN"], s_dmn)[0, 1] > 0.98
    assert np.corrcoef(ts["DeS"], s_des)[0, 1] > 0.98
    assert np.allclose(ts["DMN"], (ts["A"] + ts["B"]) / 2)  # equal weight per seed
    assert not ts.isna().any().any()

    dfc = pd.read_csv(func / f"{stem}_dfc.tsv", sep="\t")
    for col in ("seed_a", "seed_b", "dcc_sd", "dcc_mean", "pearson_r", "a", "b", "converged",
                "n_volumes", "mean_fd"):
        assert col in dfc
    assert (dfc.loc[0, "seed_a"], dfc.loc[0, "seed_b"]) == ("DMN", "DeS")
    assert len(dfc) == 1 + 6 and (dfc["n_volumes"] == T).all()
    assert dfc["mean_fd"].iloc[0] == pytest.approx(fd, rel=1e-4)
    assert dfc.loc[0, "pearson_r"] == pytest.approx(np.corrcoef(ts["DMN"], ts["DeS"])[0, 1],
                                                    abs=1e-5)
    dcc = pd.read_csv(func / f"{stem}_desc-dcc_timeseries.tsv", sep="\t")
    assert list(dcc.columns)[0] == "DMN__DeS" and dcc.shape == (T, 7)
    assert dfc.loc[0, "dcc_sd"] == pytest.approx(dcc["DMN__DeS"].std(), rel=0.01)
    # the planted switching correlation is tracked: block means differ, far more than A-B
    r = dcc["DMN__DeS"].to_numpy()
    hi, lo = r[(np.arange(T) // 40) % 2 == 0].mean(), r[(np.arange(T) // 40) % 2 == 1].mean()
    assert hi - lo > 0.5
    ab = dfc[(dfc.seed_a == "A") & (dfc.seed_b == "B")].iloc[0]
    assert dfc.loc[0, "dcc_sd"] > 2 * ab["dcc_sd"]

    info = pd.read_csv(func / f"{stem}_dseg.tsv", sep="\t")
    assert list(info["index"]) == [1, 2, 3, 4]  # volume k of the probseg image
    assert list(info["fallback"]) == [False, False, False, True]
    assert (func / f"{stem}_probseg.nii.gz").exists()
    side = json.loads((func / f"{stem}_dfc.json").read_text())
    assert side["PrimaryPair"] == ["DMN", "DeS"] and "dcc_sd" in side
    # --dfc-bootstrap off by default: its columns n/a, described all the same
    assert side["DCCSDBootstrap"] is None and "dcc_sd_ci_low" in side
    assert dfc[["dcc_sd_ci_low", "dcc_sd_ci_high", "dcc_sd_boot_n"]].isna().all().all()


def test_template_space_and_atlas(data, tmp_path):
    """seed_space='template' on template-space BOLD, with an atlas on a different grid."""
    d = data["dir"]
    rng = np.random.default_rng(9)
    tpl = nb.load(d / "tpl.nii.gz")
    bold = rng.normal(size=tpl.shape + (70,)).astype(np.float32)
    bold *= (np.asarray(tpl.dataobj) > 0)[..., None]
    nb.save(nb.Nifti1Image(bold, tpl.affine), tmp_path / "bold_std.nii.gz")
    atlas = np.zeros((23, 27, 20), np.int16)  # 4 mm grid
    atlas[5:9, 5:9, 5:9], atlas[12:16, 10:14, 8:12], atlas[8:11, 16:20, 10:13] = 1, 2, 3
    aaff = np.diag([4.0, 4.0, 4.0, 1.0])
    aaff[:3, 3] = [-45, -62, -56]
    nb.save(nb.Nifti1Image(atlas, aaff), tmp_path / "tpl-X_atlas-Toy_dseg.nii.gz")
    pd.DataFrame({"index": [1, 2, 3], "name": ["r1", "r2", "r3"]}).to_csv(
        tmp_path / "labels.tsv", sep="\t", index=False)
    wf = init_connectivity_wf(atlas=tmp_path / "tpl-X_atlas-Toy_dseg.nii.gz",
                              atlas_labels=tmp_path / "labels.tsv",
                              **connectivity_kwargs(seed_space="template"))
    inputs = wf.get_node("inputnode").inputs
    inputs.bold_file = str(_raw_bold(tmp_path))
    inputs.bold_std = str(tmp_path / "bold_std.nii.gz")
    inputs.template_ref = str(d / "tpl.nii.gz")
    inputs.template_mask = str(d / "tpl_mask.nii.gz")
    out = tmp_path / "out"
    res = _run_with_derivatives(wf, init_connectivity_derivatives_wf(
        output_dir=out, seed_space="template", atlas=tmp_path / "tpl-X_atlas-Toy_dseg.nii.gz",
        template_name="MNI152NLin6Asym"), tmp_path)
    names = sorted(p.name for p in (out / "sub-01" / "func").iterdir())
    stem = "sub-01_task-rest_run-2"
    for expected in (
        f"{stem}_space-MNI152NLin6Asym_seg-seeds_probseg.nii.gz",
        f"{stem}_space-MNI152NLin6Asym_seg-seeds_dseg.tsv",
        f"{stem}_space-MNI152NLin6Asym_seg-seeds_dseg.json",
        f"{stem}_seg-seeds_dfc.tsv",
        f"{stem}_seg-Toy_edges.tsv",
        f"{stem}_seg-Toy_stat-dccsd_relmat.tsv",
        f"{stem}_seg-Toy_stat-dccmean_relmat.tsv",
        f"{stem}_seg-Toy_stat-pearsoncorrelation_relmat.tsv",
        f"{stem}_seg-Toy_stat-mean_timeseries.tsv",
        f"{stem}_seg-Toy_desc-dcc_timeseries.tsv",
        f"{stem}_space-MNI152NLin6Asym_seg-Toy_dseg.nii.gz",
        f"{stem}_space-MNI152NLin6Asym_seg-Toy_dseg.tsv",
    ):
        assert expected in names, names
    assert not any(n.endswith("_dfc.tsv") and "seg-Toy" in n for n in names)
    info = pd.read_csv(res["warp_seed_maps"].result.outputs.seed_info, sep="\t")
    assert list(info["name"]) == ["PCC", "mPFC", "PAG", "RVM"]
    assert not info["fallback"].any() and (info["n_voxels"] > 0).all()
    outs = res["atlas_dcc"].result.outputs
    assert outs.relmat_stats == ["dccsd", "dccmean", "pearsoncorrelation"]
    mat = pd.read_csv(out / "sub-01" / "func" /
                      f"{stem}_seg-Toy_stat-pearsoncorrelation_relmat.tsv", sep="\t",
                      index_col="Node")
    assert list(mat.columns) == ["r1", "r2", "r3"] and np.allclose(mat, mat.T)
    ts = pd.read_csv(res["extract_atlas_series"].result.outputs.timeseries, sep="\t")
    assert mat.loc["r1", "r3"] == pytest.approx(np.corrcoef(ts["r1"], ts["r3"])[0, 1], abs=1e-5)
    assert np.allclose(np.diag(mat), 1.0)


def test_bad_seed_rows_stop_the_node(data, tmp_path):
    bad = SEEDS.copy()
    bad.loc[1, "z"] = 300.0
    bad.to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    node = ci.MakeSeedMaps(seeds_file=str(tmp_path / "bad.tsv"),
                           reference=str(data["dir"] / "tpl.nii.gz"))
    with pytest.raises(InputError, match=r"row 2 \(line 3\), seed 'B'.*field of view"):
        node.run(cwd=str(tmp_path))


def test_dfc_core_orders_pairs_and_broadcasts_joint_parameters():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 3))
    x[:, 1] += 0.5 * x[:, 0]
    series = pd.DataFrame(x, columns=["p", "q", "r"])
    summary, dcc, info = dfc_core(series, [("seed", ["p", "q", "r"])], mode="joint",
                                     fd=0.2)
    assert list(zip(summary.seed_a, summary.seed_b)) == [("p", "q"), ("p", "r"), ("q", "r")]
    assert summary["a"].nunique() == 1  # one (a, b) for all pairs in joint mode
    assert list(dcc.columns) == ["p__q", "p__r", "q__r"]
    assert summary["pearson_r"].iloc[0] == pytest.approx(np.corrcoef(x[:, 0], x[:, 1])[0, 1])
    assert info["seed"]["mode"] == "joint"


def _boot_series(seed=5, n_t=150):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_t, 5))
    x[:, 1] += 0.8 * x[:, 0] * np.sin(np.arange(n_t) / 15.0)  # a varying correlation
    x[:, 4] += 0.5 * x[:, 3]
    return pd.DataFrame(x, columns=["p", "q", "r", "DMN", "DeS"])


def test_dfc_core_bootstrap_interval_columns():
    series = _boot_series()
    groups = [("network", ["DMN", "DeS"]), ("seed", ["p", "q", "r"])]
    on, _, _ = dfc_core(series, groups, mode="pairwise", fd=0.1, n_boot=20, random_seed=3)
    off, _, _ = dfc_core(series, groups, mode="pairwise", fd=0.1)
    assert list(on.columns)[3:7] == ["dcc_sd", "dcc_sd_ci_low", "dcc_sd_ci_high",
                                     "dcc_sd_boot_n"]
    assert list(on.columns) == list(off.columns)
    boot = ["dcc_sd_ci_low", "dcc_sd_ci_high", "dcc_sd_boot_n"]
    pd.testing.assert_frame_equal(on.drop(columns=boot), off.drop(columns=boot))
    assert off[boot].isna().all().all()  # off: n/a, the rest of the table unchanged
    assert (on["dcc_sd_ci_low"] >= 0).all() and (on["dcc_sd_ci_low"] <= on["dcc_sd_ci_high"]).all()
    assert on["dcc_sd_boot_n"].between(18, 20).all()
    # the planted varying correlation: its interval lies above that of a constant pair
    pq = on[(on.seed_a == "p") & (on.seed_b == "q")].iloc[0]
    pr = on[(on.seed_a == "p") & (on.seed_b == "r")].iloc[0]
    assert pq["dcc_sd_ci_low"] > pr["dcc_sd_ci_low"]
    again, _, _ = dfc_core(series, groups, mode="pairwise", fd=0.1, n_boot=20, random_seed=3)
    pd.testing.assert_frame_equal(on, again)  # same seed, same intervals
    other, _, _ = dfc_core(series, groups, mode="pairwise", fd=0.1, n_boot=20, random_seed=4)
    assert not np.allclose(other["dcc_sd_ci_high"], on["dcc_sd_ci_high"])
    # joint fits get no interval (the bivariate models are not theirs); the network pair
    # (always pairwise) does; a pair seen in an earlier group is not bootstrapped again
    joint, _, _ = dfc_core(series, [*groups, ("network", ["DMN", "DeS", "p"])], mode="joint",
                           fd=0.1, n_boot=20, random_seed=3)
    assert joint.loc[0, "dcc_sd_ci_low"] == on.loc[0, "dcc_sd_ci_low"]
    assert joint.iloc[1:][boot].isna().all().all()


def test_compute_dcc_writes_the_interval_and_its_sidecar(tmp_path):
    series = _boot_series()
    series.to_csv(tmp_path / "ts.tsv", sep="\t", index=False)
    pd.DataFrame({"name": ["p", "q", "r"], "network": ["DMN", "DMN", "DeS"]}).to_csv(
        tmp_path / "info.tsv", sep="\t", index=False)
    for n_boot in (0, 20):
        node = ci.ComputeDCC(timeseries=str(tmp_path / "ts.tsv"),
                             region_info=str(tmp_path / "info.tsv"), mode="pairwise",
                             n_boot=n_boot, random_seed=1)
        cwd = tmp_path / f"n{n_boot}"
        cwd.mkdir()
        outs = node.run(cwd=str(cwd)).outputs
        table = pd.read_csv(outs.dfc, sep="\t", keep_default_na=False)
        meta = outs.meta["DCCSDBootstrap"]
        if n_boot:
            assert meta["Replicates"] == 20 and meta["RandomSeed"] == 1
            assert meta["Level"] == 0.95 and meta["Interval"] == "percentile"
            assert (table["dcc_sd_boot_n"].astype(float) > 0).all()
        else:
            assert meta is None
            assert (table[["dcc_sd_ci_low", "dcc_sd_ci_high", "dcc_sd_boot_n"]] == "n/a"
                    ).all().all()
    json.dumps(outs.meta)  # the sidecar serialises
