"""The built-in demo dataset: BIDS validity, truth consistent with the images, planted
effects, determinism and the CLI.

Independent references used: scipy.spatial.transform.Rotation (rigid parameter
convention), nilearn's own MNI152 maps (template -> native mapping), antspyx rigid
registration (head motion), the npm ``bids-validator`` (BIDS validity), scipy.stats /
numpy least squares (phenotype effects).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.transform import Rotation

from bids_dfc.cli.demo import main
from bids_dfc.demo import (
    bids_io,
    load_truth,
    make_demo_dataset,
    mni_to_bold,
    mni_to_t1w,
    motion_matrices,
)
from bids_dfc.demo.geometry import native_to_mni, rigid_matrix, rigid_params
from bids_dfc.demo.phenotype import PSYCH_PARAMS, simulate_cohort, simulate_psych
from bids_dfc.demo.signals import framewise_displacement, planted_dfc, planted_dynamics

REPO = Path(__file__).resolve().parents[1]
VALIDATOR = REPO / ".tools" / "bids-validator" / "node_modules" / ".bin" / "bids-validator"
N_VOL = 54


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Three subjects (one per group), one short run each, made by 2 worker processes."""
    root = tmp_path_factory.mktemp("demo_small")
    return make_demo_dataset(root / "ds", n_subjects=3, seed=11, n_volumes=N_VOL, n_jobs=2)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """One subject with two sessions of two runs each."""
    root = tmp_path_factory.mktemp("demo_multi")
    return make_demo_dataset(root / "ds", n_subjects=1, seed=5, n_volumes=54, n_sessions=2,
                             n_runs=2, truth_dir=root / "elsewhere")


def _img(path):
    return nib.load(str(path))


def test_layout_sidecars_and_headers(small):
    bids, truth = small["bids_dir"], small["truth_dir"]
    assert truth == bids.parent / "ds_truth" and not list(bids.rglob("*truth*"))
    assert small["subjects"] == ["01", "02", "03"]
    desc = json.loads((bids / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "raw" and desc["BIDSVersion"]
    bold = _img(bids / "sub-02" / "func" / "sub-02_task-rest_bold.nii.gz")
    side = json.loads((bids / "sub-02" / "func" / "sub-02_task-rest_bold.json").read_text())
    assert bold.shape == (50, 54, 36, N_VOL)
    assert np.allclose(bold.header.get_zooms(), (4, 4, 4, side["RepetitionTime"]))
    assert side["RepetitionTime"] == 2.0 and side["TaskName"] == "rest"
    t1 = _img(bids / "sub-02" / "anat" / "sub-02_T1w.nii.gz")
    assert t1.shape == (120, 128, 90) and np.allclose(t1.header.get_zooms(), 2.0)


@pytest.mark.slow
def test_bids_validator_reports_no_errors(small, multi):
    exe = VALIDATOR if VALIDATOR.exists() else shutil.which("bids-validator")
    if exe is None:
        pytest.skip("npm bids-validator not installed: run `npm install --prefix "
                    ".tools/bids-validator bids-validator@1.15.0`")
    for paths in (small, multi):
        proc = subprocess.run([str(exe), "--json", str(paths["bids_dir"])],
                              capture_output=True, text=True, timeout=300)
        report = json.loads(proc.stdout)
        errors = [(e["code"], e["key"]) for e in report["issues"]["errors"]]
        assert errors == [], errors


def test_phenotype_tables_agree_with_groups_and_truth(small):
    bids, truth = small["bids_dir"], small["truth_dir"]
    parts = pd.read_csv(bids / "participants.tsv", sep="\t")
    pain = pd.read_csv(bids / "phenotype" / "pain.tsv", sep="\t", na_values="n/a")
    tsp = pd.read_csv(bids / "phenotype" / "tsp.tsv", sep="\t")
    table = pd.read_csv(truth / "participants_truth.tsv", sep="\t", na_values="n/a")
    assert sorted(parts["group"]) == ["HC", "NR", "R"]
    assert list(tsp.columns) == ["participant_id"] + [f"tsp_{k:02d}" for k in range(1, 11)]
    merged = parts.merge(pain, on="participant_id").merge(tsp, on="participant_id")
    for row in merged.itertuples():
        ratings = np.array([getattr(row, f"tsp_{k:02d}") for k in range(1, 11)])
        assert ratings[0] > 0 and ratings.max() <= 100
        truth_row = table.set_index("participant_id").loc[row.participant_id]
        assert np.isclose(truth_row["tsp"], 100 * (ratings.max() - ratings[0]) / ratings[0],
                          rtol=1e-5)
        if row.group == "HC":
            assert np.isnan(row.pain_pre) and np.isnan(row.pain_post)
            continue
        relief = 100 * (row.pain_pre - row.pain_post) / row.pain_pre
        assert (relief >= 30) == (row.group == "R")
        assert np.isclose(relief, truth_row["relief"], atol=1e-3)
    for name in ("participants.json", "phenotype/pain.json", "phenotype/tsp.json"):
        assert json.loads((bids / name).read_text())


def test_cohort_model_plants_the_study_effects():
    cohort = simulate_cohort(600, np.random.default_rng(2))
    assert cohort["group"].value_counts().to_dict() == {"HC": 200, "R": 200, "NR": 200}
    means = cohort.groupby("group")["true_dfc"].mean()
    assert means["R"] > means["NR"] + 0.03 and means["R"] > means["HC"] + 0.02
    pat = cohort[cohort["group"] != "HC"]
    assert stats.spearmanr(pat["true_dfc"], pat["relief"])[0] > 0.6
    assert stats.spearmanr(pat["tsp"], pat["relief"])[0] > 0.35
    assert stats.spearmanr(pat["tsp"], pat["true_dfc"])[0] > 0.5
    # full mediation: with dFC in the model, TSP adds (almost) nothing to relief
    design = np.column_stack([np.ones(len(pat)), pat["tsp_latent"], pat["dfc_latent"]])
    coef = np.linalg.lstsq(design, pat["relief"].to_numpy(), rcond=None)[0]
    assert abs(coef[1]) < 0.15 * abs(coef[2])


def test_psych_scores_leave_every_other_demo_value_unchanged(small, tmp_path):
    """phenotype/psych.tsv comes from its own stream, ``default_rng([seed, 2])``: the cohort,
    the other BIDS tables and the truth equal those of the cohort simulated without the
    scores (the demo's ``default_rng([seed, 1])`` draw alone), byte for byte."""
    bids, truth = small["bids_dir"], small["truth_dir"]
    cohort = simulate_cohort(3, np.random.default_rng([11, 1]))  # no psych step at all
    psych = simulate_psych(cohort, np.random.default_rng([11, 2]))
    ref = tmp_path / "ref"
    bids_io.write_participants(ref, cohort)
    bids_io.write_psych(ref, psych)
    for name in ("participants.tsv", "participants.json", "phenotype/pain.tsv",
                 "phenotype/pain.json", "phenotype/tsp.tsv", "phenotype/tsp.json",
                 "phenotype/psych.tsv", "phenotype/psych.json"):
        assert (bids / name).read_bytes() == (ref / name).read_bytes(), name
    # the truth table: the same cohort columns (true_dfc realised per run), scores appended
    expected = cohort.copy()
    expected.insert(list(expected.columns).index("true_dfc"), "target_dfc", expected["true_dfc"])
    expected["true_dfc"] = [load_truth(truth, pid)["true_dfc"]
                            for pid in expected["participant_id"]]
    bids_io.write_tsv(ref / "truth.tsv", expected.merge(psych, on="participant_id"), "%.6g")
    assert (truth / "participants_truth.tsv").read_bytes() == (ref / "truth.tsv").read_bytes()
    header = (truth / "participants_truth.tsv").read_text().splitlines()[0].split("\t")
    assert header[-4:] == ["hads_anxiety", "hads_depression", "pcs", "resilience"]
    model = json.loads((truth / "generative_model.json").read_text())
    assert model["psych"]["pcs"]["range"] == [0, 52]


def test_psych_model_patients_worse_than_controls_r_like_nr():
    cohort = simulate_cohort(600, np.random.default_rng(4))
    psych = simulate_psych(cohort, np.random.default_rng(5))
    assert list(psych["participant_id"]) == list(cohort["participant_id"])
    data = cohort[["participant_id", "group"]].merge(psych, on="participant_id")
    for col, p in PSYCH_PARAMS.items():
        assert data[col].dtype.kind == "i" and data[col].between(*p["range"]).all(), col
        by = {g: data.loc[data["group"] == g, col] for g in ("HC", "R", "NR")}
        patients = pd.concat([by["R"], by["NR"]])
        worse = -1 if col == "resilience" else 1
        # controls differ from patients (Welch t, scipy), R and NR do not
        assert worse * (patients.mean() - by["HC"].mean()) > 0.5 * p["sd"], col
        assert stats.ttest_ind(patients, by["HC"], equal_var=False).pvalue < 1e-6, col
        assert stats.ttest_ind(by["R"], by["NR"], equal_var=False).pvalue > 0.05, col
    assert stats.spearmanr(data["hads_anxiety"], data["hads_depression"])[0] > 0.4
    assert stats.spearmanr(data["pcs"], data["resilience"])[0] < -0.2
    with pytest.raises(ValueError, match="unknown group label.*'patient'"):
        simulate_psych(pd.DataFrame({"participant_id": ["sub-01"], "group": ["patient"]}),
                       np.random.default_rng(0))


def test_rigid_convention_matches_scipy_rotation():
    rng = np.random.default_rng(0)
    for _ in range(5):
        params = np.r_[rng.uniform(-5, 5, 3), rng.uniform(-0.3, 0.3, 3)]
        centre = rng.uniform(-20, 20, 3)
        mat = rigid_matrix(params, centre)
        ref = Rotation.from_euler("xyz", params[3:]).as_matrix()  # extrinsic x, y, z
        assert np.allclose(mat[:3, :3], ref)
        assert np.allclose(mat[:3, :3] @ (np.zeros(3) - centre) + centre + params[:3],
                           mat[:3, 3])
        assert np.allclose(rigid_params(mat, centre), params)


def test_true_dfc_is_the_dcc_sd_of_the_planted_signals(small):
    table = pd.read_csv(small["truth_dir"] / "participants_truth.tsv", sep="\t")
    table = table.set_index("participant_id")
    for label in small["subjects"]:
        truth = load_truth(small["truth_dir"], label)
        sig = truth["signals"]
        steady = slice(truth["n_dummies"], None)
        # recomputed from the written (8-digit) signals with the pipeline's own estimator
        recomputed = planted_dfc(sig["dmn"].to_numpy(), sig["des"].to_numpy(), steady)
        row = table.loc[f"sub-{label}"]
        assert np.isclose(recomputed, truth["true_dfc"], atol=1e-3)
        assert np.isclose(truth["true_dfc"], row["true_dfc"], atol=1e-6)
        assert 0.2 < row["true_dfc"] < 0.8  # short runs may not reach the target exactly
        rho = sig["rho"].to_numpy()
        assert np.all(np.abs(rho) < 1)
        assert np.isclose(truth["run_info"]["rho_sd"], rho[steady].std(), atol=1e-6)
        # dmn is band-limited exactly (des is modulated by the slow rho_t, so it leaks a little)
        power = np.abs(np.fft.rfft(sig["dmn"].to_numpy())) ** 2
        freqs = np.fft.rfftfreq(len(sig), 2.0)
        outside = (freqs < 0.01) | (freqs > 0.1)
        assert power[outside].sum() < 1e-12 * power.sum()
    # a constant correlation is the lowest dFC; more dynamics give a higher one
    rng = np.random.default_rng(1)
    for target in (0.4, 0.55):
        res = planted_dynamics(rng, 154, 2.0, 0.3, target, slice(4, None))
        assert abs(res["dfc"] - target) <= 0.005
        assert np.isclose(planted_dfc(res["dmn"], res["des"], slice(4, None)), res["dfc"])
        assert res["scale"] > 0 and res["rho_sd"] > 0


def test_template_points_land_on_the_same_anatomy(small):
    """Template GM sampled by nilearn at MNI points == truth GM maps at the mapped points."""
    from nilearn.datasets import load_mni152_gm_template

    gm_img = load_mni152_gm_template(resolution=1)
    rng = np.random.default_rng(3)
    pts = rng.uniform([-60, -90, -30], [60, 60, 60], (3000, 3))
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(gm_img.affine), pts)).astype(int)
    ref = np.asarray(gm_img.dataobj, dtype=float)[tuple(ijk.T)]
    truth = load_truth(small["truth_dir"], "01")
    native = mni_to_t1w(pts, truth)
    assert np.abs(native_to_mni(native, truth["pose"], truth["warp"]) - pts).max() < 1e-3
    rigid_only = nib.affines.apply_affine(truth["pose"], pts)
    assert np.abs(native - rigid_only).max() > 1.0  # the nonlinear warp is really there
    for key, to_vox, corr_min in (
            ("t1w_gm", lambda p: nib.affines.apply_affine(
                np.linalg.inv(_img(truth["files"]["t1w_gm"]).affine), mni_to_t1w(p, truth)),
             0.85),
            ("gm", lambda p: mni_to_bold(p, truth), 0.6)):
        data = _img(truth["files"][key]).get_fdata()
        vox = np.rint(to_vox(pts)).astype(int)
        ok = np.all((vox >= 0) & (vox < data.shape), axis=1)
        assert ok.mean() > 0.9
        assert np.corrcoef(data[tuple(vox[ok].T)], ref[ok])[0, 1] > corr_min, key


def test_tissue_contrast_dummies_and_masks(small):
    bids = small["bids_dir"]
    truth = load_truth(small["truth_dir"], "03")
    bold = _img(bids / "sub-03" / "func" / "sub-03_task-rest_bold.nii.gz").get_fdata()
    t1w = _img(bids / "sub-03" / "anat" / "sub-03_T1w.nii.gz").get_fdata()
    f = truth["files"]
    masks = {k: _img(f[f"{k}_mask"]).get_fdata() > 0 for k in ("gm", "wm", "csf", "brain")}
    ref = bold[..., truth["reference_volume"]]
    wm, gm, csf = (ref[masks[k]].mean() for k in ("wm", "gm", "csf"))
    assert csf > gm > wm  # T2*-weighted
    assert ref[masks["brain"]].mean() > 4 * ref[~masks["brain"]].mean()
    assert bold[..., 0][masks["brain"]].mean() > 1.5 * ref[masks["brain"]].mean()
    assert np.isclose(bold[..., 5][masks["brain"]].mean(), ref[masks["brain"]].mean(),
                      rtol=0.05)
    tprob = {k: _img(f[f"t1w_{k}"]).get_fdata() > 0.9 for k in ("gm", "wm", "csf")}
    assert t1w[tprob["wm"]].mean() > t1w[tprob["gm"]].mean() > t1w[tprob["csf"]].mean()
    brain_t1 = _img(f["t1w_brain_mask"]).get_fdata() > 0
    assert 1.2e6 < brain_t1.sum() * 8 < 2.2e6  # brain volume in mm3 at 2 mm voxels
    for seed in ("PCC", "mPFC", "PAG", "RVM"):
        mask = _img(f[f"seed-{seed}_mask"]).get_fdata()
        assert 1 <= mask.sum() <= 30


def test_planted_signals_sit_at_the_true_seed_locations(small):
    """After removing the known noise series, the voxel most correlated with the planted
    DMN (DeS) signal is next to the true PCC/mPFC (PAG/RVM) position on the BOLD grid."""
    label = "02"
    truth = load_truth(small["truth_dir"], label)
    data = _img(small["bids_dir"] / f"sub-{label}" / "func" /
                f"sub-{label}_task-rest_bold.nii.gz").get_fdata()
    steady = slice(truth["n_dummies"], None)
    sig = truth["signals"].iloc[steady]
    ts = data[..., steady].reshape(-1, len(sig))
    keep = ts.mean(1) > 100
    tau = np.linspace(-1, 1, len(sig))
    noise = sig.filter(like="noise_").to_numpy()
    design = np.column_stack([np.ones(len(sig)), tau, tau ** 2, noise])
    resid = ts[keep].T - design @ np.linalg.lstsq(design, ts[keep].T, rcond=None)[0]
    resid /= resid.std(0) + 1e-9
    coords = np.argwhere(keep.reshape(data.shape[:3]))
    seeds = {"DMN": ([-2, -46, 28], [4, 54, 2]), "DeS": ([0, -32, -10], [0, -34, -50])}
    for net, column in (("DMN", "dmn"), ("DeS", "des")):
        target = sig[column].to_numpy()
        corr = resid.T @ (target - target.mean()) / (len(target) * target.std())
        best = coords[np.argmax(corr)]
        where = mni_to_bold(np.array(seeds[net], float), truth)
        assert np.min(np.linalg.norm(where - best, axis=1)) < 2.0, net
        assert corr.max() > 0.5


def test_motion_truth_agrees_with_ants_registration(small):
    ants = pytest.importorskip("ants")
    label = "01"
    truth = load_truth(small["truth_dir"], label)
    motion = truth["motion"]
    cols = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    ref_idx = truth["reference_volume"]
    assert np.allclose(motion.loc[ref_idx, cols], 0.0)
    assert np.allclose(motion["framewise_displacement"],
                       framewise_displacement(motion[cols].to_numpy()))
    img = _img(small["bids_dir"] / f"sub-{label}" / "func" / f"sub-{label}_task-rest_bold.nii.gz")
    steady = np.arange(ref_idx + 1, img.shape[3])
    moved = steady[np.argmax(np.abs(motion.loc[steady, cols[:3]].to_numpy()).sum(1))]
    data = img.get_fdata()
    aff = img.affine
    to_ants = {}
    for key, vol in (("fixed", ref_idx), ("moving", moved)):
        nii = nib.Nifti1Image(data[..., vol].astype(np.float32), aff)
        path = Path(small["truth_dir"]).parent / f"motion_{key}.nii.gz"
        nib.save(nii, str(path))
        to_ants[key] = ants.image_read(str(path))
    reg = ants.registration(to_ants["fixed"], to_ants["moving"], type_of_transform="Rigid",
                            random_seed=1, aff_metric="meansquares")
    # ANTs maps fixed-space (LPS) points to moving space: that is our head motion matrix.
    brain = _img(truth["files"]["brain_mask"]).get_fdata() > 0
    world = nib.affines.apply_affine(aff, np.argwhere(brain)[::7])
    lps = world * [-1, -1, 1]
    est = ants.apply_transforms_to_points(
        3, pd.DataFrame(lps, columns=["x", "y", "z"]),
        reg["fwdtransforms"])[["x", "y", "z"]].to_numpy() * [-1, -1, 1]
    true_mat = rigid_matrix(motion.loc[moved, cols].to_numpy(), truth["motion_centre"])
    assert np.allclose(motion_matrices(truth)[moved], true_mat)
    expected = nib.affines.apply_affine(true_mat, world)
    true_shift = np.linalg.norm(expected - world, axis=1).mean()
    err = np.sqrt((np.linalg.norm(est - expected, axis=1) ** 2).mean())
    print(f"ANTs vs truth: mean true shift {true_shift:.3f} mm, RMS error {err:.3f} mm")
    assert true_shift > 0.2 and err < 0.3, (true_shift, err)


@pytest.mark.slow
def test_same_seed_same_data(tmp_path, small):
    """Generate, keep a copy, regenerate over it with overwrite: identical content."""
    make_demo_dataset(tmp_path / "a", n_subjects=1, seed=3, n_volumes=54)
    for name in ("a", "a_truth"):
        shutil.copytree(tmp_path / name, tmp_path / name.replace("a", "b", 1))
    with pytest.raises(FileExistsError, match="not empty"):
        make_demo_dataset(tmp_path / "a", n_subjects=1, seed=3, n_volumes=54)
    make_demo_dataset(tmp_path / "a", n_subjects=1, seed=3, n_volumes=54, overwrite=True)
    runs = {"a": tmp_path / "a", "b": tmp_path / "b"}
    files = sorted(p.relative_to(runs["a"]) for p in runs["a"].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(runs["b"]) for p in runs["b"].rglob("*")
                           if p.is_file())
    for rel in files:
        if rel.name.endswith(".nii.gz"):
            a, b = (np.asarray(_img(runs[k] / rel).dataobj) for k in "ab")
            assert np.array_equal(a, b), rel
        else:
            assert (runs["a"] / rel).read_bytes() == (runs["b"] / rel).read_bytes(), rel
    for rel in ("participants_truth.tsv", "sub-01/sub-01_task-rest_motion.tsv"):
        assert (tmp_path / "a_truth" / rel).read_bytes() == (tmp_path / "b_truth" /
                                                             rel).read_bytes()
    # another seed (the `small` fixture, seed 11) gives another head pose and motion
    other = load_truth(small["truth_dir"], "01")
    this = load_truth(tmp_path / "a_truth", "01")
    assert not np.allclose(this["pose"], other["pose"])


@pytest.mark.slow
def test_sessions_and_runs(multi):
    bids, truth_dir = multi["bids_dir"], multi["truth_dir"]
    assert truth_dir.name == "elsewhere"
    for ses in ("1", "2"):
        assert (bids / "sub-01" / f"ses-{ses}" / "anat" / f"sub-01_ses-{ses}_T1w.nii.gz").exists()
        for run in ("1", "2"):
            name = f"sub-01_ses-{ses}_task-rest_run-{run}_bold.nii.gz"
            assert _img(bids / "sub-01" / f"ses-{ses}" / "func" / name).shape[3] == 54
    with pytest.raises(ValueError, match="several sessions"):
        load_truth(truth_dir, "01")
    with pytest.raises(ValueError, match="no truth for sub-02"):
        load_truth(truth_dir, "02")
    with pytest.raises(ValueError, match="no run"):
        load_truth(truth_dir, "01", session=1, run=3)
    a = load_truth(truth_dir, "sub-01", session=1, run=1)
    b = load_truth(truth_dir, "01", session=2, run=2)
    assert not np.allclose(a["pose"], b["pose"])
    assert not np.allclose(a["motion"].to_numpy(), b["motion"].to_numpy())
    # each run has its own planted dynamics; the table holds the mean of the runs' dFC
    runs = [load_truth(truth_dir, "01", session=s, run=r)["true_dfc"] for s in (1, 2)
            for r in (1, 2)]
    assert np.isclose(np.mean(runs), a["participant"]["true_dfc"], atol=1e-5)


def test_cli_writes_and_refuses_bad_input(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file.txt").write_text("x")
    assert main([str(busy), "--n-subjects", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main([str(busy / "file.txt" / "bids"), "--n-subjects", "1"]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "file.txt" in err and "Traceback" not in err
    for bad in (["--n-subjects", "0"], ["--runs", "-1"], ["--n-subjects", "two"]):
        with pytest.raises(SystemExit) as exc:
            main([str(tmp_path / "new"), *bad])
        assert exc.value.code == 2
    assert main([str(busy), "--overwrite"]) == 2
    assert "refusing" in capsys.readouterr().err and (busy / "file.txt").exists()
    assert main([str(tmp_path / "short"), "--n-volumes", "10"]) == 2
    assert "n_volumes" in capsys.readouterr().err
    for truth in (tmp_path / "x" / "truth", tmp_path):
        with pytest.raises(ValueError, match="contain each other"):
            make_demo_dataset(tmp_path / "x", truth_dir=truth)
