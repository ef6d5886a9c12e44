"""Assemble the demo dataset: cohort, per-subject heads and runs, BIDS files and truth."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from bids_dfc.demo import bids_io
from bids_dfc.demo.anatomy import PAD_MM, build_head_model, render_t1w
from bids_dfc.demo.bold import (
    AMPLITUDES,
    RunGeometry,
    load_seeds,
    render_bold,
    seed_mask,
    spatial_maps,
    truth_maps,
)
from bids_dfc.demo.geometry import apply_affine, centred_affine, random_warp, rigid_matrix
from bids_dfc.demo.phenotype import COHORT_PARAMS, PSYCH_PARAMS, simulate_cohort, simulate_psych
from bids_dfc.demo.signals import (
    framewise_displacement,
    motion_parameters,
    physio_series,
    planted_dynamics,
)
from bids_dfc.demo.trial import TRIAL_PARAMS, simulate_trial
from bids_dfc.demo.truth import entity_prefix

#: Acquisition geometry of the two sizes.
SIZES = {
    "small": {"t1w_shape": (120, 128, 90), "t1w_zooms": (2.0, 2.0, 2.0),
              "bold_shape": (50, 54, 36), "bold_zooms": (4.0, 4.0, 4.0), "n_volumes": 277,
              "template_resolution": 2},
    "full": {"t1w_shape": (256, 256, 180), "t1w_zooms": (1.0, 1.0, 1.0),
             "bold_shape": (64, 64, 36), "bold_zooms": (3.125, 3.125, 4.0), "n_volumes": 277,
             "template_resolution": 1},
}
TR = 2.0
N_DUMMIES = 4
TASK = "rest"
#: Template point placed near the T1w field-of-view centre, and at the BOLD slab centre.
HEAD_CENTRE_MNI = np.array([0.0, -18.0, 14.0])
BOLD_CENTRE_MNI = np.array([0.0, -16.0, 6.0])
#: Ranges of the random poses (mm, degrees) and the largest warp displacement (mm).
POSE_RANGE = {"trans": 6.0, "rot": (6.0, 4.0, 4.0)}
BOLD_POSE_RANGE = {"trans": 3.0, "rot": 3.0}
WARP_MAX_MM = 3.0
N_WM, N_CSF = 3, 3


def _random_rigid(rng, trans, rots):
    params = np.concatenate([rng.uniform(-trans, trans, 3),
                             np.deg2rad(rng.uniform(-1, 1, 3) * np.asarray(rots))])
    return params


def _labels(count: int):
    if count == 1:
        return [None]
    return [str(k) for k in range(1, count + 1)]


def _make_run(model, seeds, pose, warp, size, n_volumes, true_dfc, rho_mean, rng):
    bold_params = _random_rigid(rng, BOLD_POSE_RANGE["trans"], [BOLD_POSE_RANGE["rot"]] * 3)
    t1w_to_bold = rigid_matrix(bold_params)
    centre = apply_affine(t1w_to_bold @ pose, BOLD_CENTRE_MNI) + rng.uniform(-2, 2, 3)
    geom = RunGeometry(shape=size["bold_shape"],
                       affine=centred_affine(size["bold_shape"], size["bold_zooms"], centre),
                       t1w_to_bold=t1w_to_bold, pose=pose, warp=warp)
    steady = slice(N_DUMMIES, None)
    planted = planted_dynamics(rng, n_volumes, TR, rho_mean, true_dfc, steady)
    rho, dmn, des = planted["rho"], planted["dmn"], planted["des"]
    noise = np.stack([physio_series(rng, n_volumes, TR) for _ in range(N_WM + N_CSF)])
    motion = motion_parameters(rng, n_volumes, TR, reference=N_DUMMIES)
    maps, fine_affine, fine_tissue = spatial_maps(model, geom, seeds, rng, n_wm=N_WM,
                                                  n_csf=N_CSF)
    boost = np.zeros(n_volumes)
    boost[:N_DUMMIES] = 1.6 * 0.45 ** np.arange(min(N_DUMMIES, n_volumes))
    coefs = np.column_stack([np.ones(n_volumes), dmn, des, noise.T, boost])
    data = render_bold(maps, fine_affine, geom, coefs, motion, rng)
    truth = truth_maps(fine_tissue, geom, seeds)
    signals = pd.DataFrame({"time": np.arange(n_volumes) * TR, "dmn": dmn, "des": des,
                            "rho": rho})
    for k in range(N_WM):
        signals[f"noise_wm_{k + 1}"] = noise[k]
    for k in range(N_CSF):
        signals[f"noise_csf_{k + 1}"] = noise[N_WM + k]
    cols = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    motion_table = pd.DataFrame(motion, columns=cols)
    motion_table["framewise_displacement"] = framewise_displacement(motion)
    info = {"t1w_to_bold": t1w_to_bold.tolist(), "t1w_to_bold_params": bold_params.tolist(),
            "bold_affine": geom.affine.tolist(), "bold_shape": list(geom.shape),
            "motion_centre": geom.motion_centre.tolist(), "n_dummies": N_DUMMIES,
            "reference_volume": N_DUMMIES, "repetition_time": TR,
            "true_dfc": planted["dfc"], "target_dfc": float(true_dfc),
            "rho_sd": planted["rho_sd"], "rho_mean": float(rho_mean),
            "rho_scale": planted["scale"], "amplitudes": AMPLITUDES}
    return data, geom, truth, signals, motion_table, info


def _make_subject(task: dict) -> dict:
    """Generate and write everything of one subject (runs in a worker process)."""
    out, truth_root = Path(task["out_dir"]), Path(task["truth_dir"])
    size, row, label = task["size"], task["row"], task["label"]
    rng = np.random.default_rng([task["seed"], 7, task["index"]])
    model = build_head_model(size["template_resolution"])
    seeds = load_seeds()
    lower = apply_affine(model.affine, [0, 0, 0])
    upper = apply_affine(model.affine, np.asarray(model.t1.shape) - 1)
    warp = random_warp(rng, lower, upper, WARP_MAX_MM)
    sub_truth = truth_root / f"sub-{label}"
    bids_io.write_nifti(sub_truth / f"sub-{label}_desc-warp_xfm.nii.gz", warp.field,
                        warp.affine)
    index = {"warp": f"sub-{label}_desc-warp_xfm.nii.gz", "sessions": {}}
    for ses in _labels(task["n_sessions"]):
        pose_params = _random_rigid(rng, POSE_RANGE["trans"], POSE_RANGE["rot"])
        pose = rigid_matrix(pose_params) @ rigid_matrix(np.r_[-HEAD_CENTRE_MNI, 0, 0, 0])
        t1_affine = centred_affine(size["t1w_shape"], size["t1w_zooms"], (0.0, 0.0, 0.0))
        anat = render_t1w(model, size["t1w_shape"], t1_affine, pose, warp, rng)
        sub_dir = out / f"sub-{label}" / (f"ses-{ses}" if ses else "")
        prefix = entity_prefix(label, ses)
        bids_io.write_nifti(sub_dir / "anat" / f"{prefix}_T1w.nii.gz", anat["t1w"], t1_affine)
        bids_io.write_json(sub_dir / "anat" / f"{prefix}_T1w.json", bids_io.t1w_sidecar())
        anat_files = {"t1w_brain_mask": f"{prefix}_space-T1w_desc-brain_mask.nii.gz"}
        bids_io.write_nifti(sub_truth / anat_files["t1w_brain_mask"], anat["brain_mask"],
                            t1_affine)
        for tissue in ("gm", "wm", "csf"):
            fname = f"{prefix}_space-T1w_label-{tissue.upper()}_probseg.nii.gz"
            anat_files[f"t1w_{tissue}"] = fname
            bids_io.write_nifti(sub_truth / fname, anat[tissue], t1_affine)
        anat_json = f"{prefix}_from-MNI152NLin2009aSym_to-T1w_xfm.json"
        bids_io.write_json(sub_truth / anat_json, {
            "pose": pose.tolist(), "pose_params": pose_params.tolist(),
            "head_centre_mni": HEAD_CENTRE_MNI.tolist(), "t1w_affine": t1_affine.tolist(),
            "warp": index["warp"], "files": anat_files})
        runs = {}
        for run in _labels(task["n_runs"]):
            data, geom, truth, signals, motion, info = _make_run(
                model, seeds, pose, warp, size, task["n_volumes"], row["true_dfc"],
                row["rho_mean"], rng)
            rprefix = entity_prefix(label, ses, TASK, run)
            bids_io.write_nifti(sub_dir / "func" / f"{rprefix}_bold.nii.gz", data, geom.affine,
                                tr=TR)
            bids_io.write_json(sub_dir / "func" / f"{rprefix}_bold.json",
                               bids_io.bold_sidecar(TR, N_DUMMIES))
            files = {}
            for key, value in truth.items():
                name = key.replace("seed-", "") if key.startswith("seed-") else key
                ent = (f"seed-{name}" if key.startswith("seed-") else
                       "desc-brain" if key == "brain" else f"label-{key.upper()}")
                files[key] = f"{rprefix}_space-boldref_{ent}_probseg.nii.gz"
                bids_io.write_nifti(sub_truth / files[key], value, geom.affine)
                mask = (seed_mask(value) if key.startswith("seed-")
                        else (value >= 0.5).astype(np.uint8))
                files[f"{key}_mask"] = f"{rprefix}_space-boldref_{ent}_mask.nii.gz"
                bids_io.write_nifti(sub_truth / files[f"{key}_mask"], mask, geom.affine)
            info["files"] = files
            info["files_tsv"] = {"motion": f"{rprefix}_motion.tsv",
                                 "signals": f"{rprefix}_signals.tsv"}
            bids_io.write_tsv(sub_truth / info["files_tsv"]["motion"], motion, "%.8g")
            bids_io.write_tsv(sub_truth / info["files_tsv"]["signals"], signals, "%.8g")
            run_json = f"{rprefix}_boldref.json"
            bids_io.write_json(sub_truth / run_json, info)
            runs[run or "1"] = {"anat_json": anat_json, "run_json": run_json,
                                "true_dfc": info["true_dfc"]}
        index["sessions"][ses or "1"] = runs
    bids_io.write_json(sub_truth / "index.json", index)
    return {"label": label, "index": index}


def _is_demo_output(folder: Path, marker: str) -> bool:
    """True when ``folder`` holds a previous demo dataset or truth (safe to replace)."""
    path = folder / marker
    if not path.is_file():
        return False
    if marker == "generative_model.json":
        return True
    try:
        desc = json.loads(path.read_text())
        return desc.get("GeneratedBy", [{}])[0].get("Name") == "bids_dfc demo"
    except (ValueError, AttributeError, IndexError):
        return False


def _prepare_folders(out_dir, truth_dir, overwrite: bool) -> tuple[Path, Path]:
    """The dataset and truth folders, absolute, empty and apart (an earlier demo output is
    replaced only with ``overwrite``; any other content is refused)."""
    out_dir = Path(out_dir).absolute()
    truth_dir = (Path(str(out_dir) + "_truth") if truth_dir is None
                 else Path(truth_dir).absolute())
    if truth_dir == out_dir or out_dir in truth_dir.parents or truth_dir in out_dir.parents:
        raise ValueError(f"the truth folder {truth_dir} and the BIDS dataset {out_dir} must "
                         "not contain each other: choose separate folders")
    for folder, marker in ((out_dir, "dataset_description.json"),
                           (truth_dir, "generative_model.json")):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} exists and is not a folder")
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{folder} exists and is not empty: choose another "
                                      "folder or pass overwrite=True (--overwrite)")
            if not _is_demo_output(folder, marker):
                raise FileExistsError(f"{folder} is not empty and was not written by "
                                      "bids-dfc-demo: refusing to delete it with --overwrite")
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
    return out_dir, truth_dir


def _generative_model(seed, n_subjects, full_size, n_volumes, n_sessions, n_runs,
                      size) -> dict:
    """Content of the truth's generative_model.json: every knob of the simulation."""
    return {
        "seed": seed, "n_subjects": n_subjects, "full_size": full_size,
        "n_volumes": int(n_volumes), "n_sessions": n_sessions, "n_runs": n_runs,
        "repetition_time": TR, "n_dummies": N_DUMMIES, "sizes": size,
        "cohort": COHORT_PARAMS, "amplitudes": AMPLITUDES, "warp_max_mm": WARP_MAX_MM,
        "psych": PSYCH_PARAMS, "trial": TRIAL_PARAMS,
        "pad_mm": PAD_MM, "head_centre_mni": HEAD_CENTRE_MNI.tolist(),
        "bold_centre_mni": BOLD_CENTRE_MNI.tolist(),
        "seeds": [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in s.items()}
                  for s in load_seeds()],
        "documentation": "docs/demo.md of bids_dfc"}


#: participants of the demo's crossover trial: the cohort's patients, then participants
#: without imaging (``sub-<n>`` after the cohort's labels) up to this many
TRIAL_PARTICIPANTS = 24


def write_cohort_trial(out_dir: Path, truth_dir: Path, cohort: pd.DataFrame, seed: int):
    """The crossover trial in phenotype/ and its truth (trial_truth.json); None without
    patients. Its own stream, ``[seed, 3]``: every other draw is unchanged.

    The trial's participants are the cohort's patients (R, NR; responders as R), then
    trial-only participants (no imaging, so not in participants.tsv; alternately R and NR)
    up to :data:`TRIAL_PARTICIPANTS`: a trial as large as the benchmark's, beside an imaging
    cohort kept small for speed."""
    patients = cohort[cohort["group"] != "HC"]
    if patients.empty:
        return None
    ids = patients["participant_id"].tolist()
    responder = (patients["group"] == "R").tolist()
    width = max(2, len(str(len(cohort) + TRIAL_PARTICIPANTS)))
    for k in range(max(0, TRIAL_PARTICIPANTS - len(ids))):
        ids.append(f"sub-{len(cohort) + k + 1:0{width}d}")
        responder.append(k % 2 == 0)
    trial = simulate_trial(ids, np.random.default_rng([seed, 3]),
                           responder=np.asarray(responder, dtype=bool))
    bids_io.write_trial(out_dir, trial)
    bids_io.write_json(truth_dir / "trial_truth.json", trial["truth"])
    return truth_dir / "trial_truth.json"


def make_demo_dataset(out_dir, *, n_subjects: int = 12, seed: int = 0, n_volumes=None,
                      full_size: bool = False, n_sessions: int = 1, n_runs: int = 1,
                      truth_dir=None, overwrite: bool = False, n_jobs: int = 1) -> dict:
    """Write the demo BIDS dataset and its ground truth.

    Parameters
    ----------
    out_dir : path
        BIDS root to create; must not exist or be empty (unless ``overwrite``).
    n_subjects : int
        Number of participants (balanced HC / R / NR).
    seed : int
        Seed of every random draw: same seed, same data.
    n_volumes : int, optional
        BOLD volumes per run including the 4 non-steady-state ones (default 277, the
        study's run length, at both sizes).
    full_size : bool
        T1w 1 mm 256x256x180 and BOLD 3.125x3.125x4 mm 64x64x36 instead of the small
        default (T1w 2 mm 120x128x90, BOLD 4 mm 50x54x36).
    n_sessions, n_runs : int
        Sessions per subject (each with its own T1w) and resting runs per session.
    truth_dir : path, optional
        Where the truth goes; default ``<out_dir>_truth`` beside the dataset.
    overwrite : bool
        Replace ``out_dir`` and ``truth_dir`` when they hold an earlier demo output (any
        other non-empty folder is refused).
    n_jobs : int
        Subjects generated in parallel (the output does not depend on it).

    Returns
    -------
    dict
        ``bids_dir``, ``truth_dir``, ``participants`` (truth table path), ``subjects``,
        ``trial_truth`` (the trial's truth; only when the cohort has patients).

    Examples
    --------
    >>> paths = make_demo_dataset("/tmp/demo", n_subjects=1)  # doctest: +SKIP
    """
    for name, value, low in (("n_subjects", n_subjects, 1), ("n_sessions", n_sessions, 1),
                             ("n_runs", n_runs, 1), ("n_jobs", n_jobs, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    size = dict(SIZES["full" if full_size else "small"])
    n_volumes = size["n_volumes"] if n_volumes is None else n_volumes
    if int(n_volumes) != n_volumes or n_volumes < N_DUMMIES + 50:
        raise ValueError(f"n_volumes must be an integer >= {N_DUMMIES + 50} (4 dummies + "
                         f"the 50 the DCC estimator needs), got {n_volumes!r}")
    out_dir, truth_dir = _prepare_folders(out_dir, truth_dir, overwrite)
    rng = np.random.default_rng([seed, 1])
    cohort = simulate_cohort(n_subjects, rng)
    # own stream: with or without the scores, every other draw of the demo is the same
    psych = simulate_psych(cohort, np.random.default_rng([seed, 2]))
    tasks = [{"out_dir": str(out_dir), "truth_dir": str(truth_dir), "size": size,
              "row": row, "label": row["participant_id"][4:], "seed": seed, "index": i,
              "n_sessions": n_sessions, "n_runs": n_runs, "n_volumes": int(n_volumes)}
             for i, row in enumerate(cohort.to_dict("records"))]
    if n_jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            results = list(pool.map(_make_subject, tasks))
    else:
        results = [_make_subject(task) for task in tasks]
    # the truth is the planted dFC each run realised (within 0.005 of the cohort's target)
    realised = {r["label"]: np.mean([run["true_dfc"] for ses in r["index"]["sessions"].values()
                                     for run in ses.values()]) for r in results}
    cohort.insert(list(cohort.columns).index("true_dfc"), "target_dfc", cohort["true_dfc"])
    cohort["true_dfc"] = [realised[pid[4:]] for pid in cohort["participant_id"]]
    bids_io.write_dataset_files(out_dir, n_subjects, seed)
    bids_io.write_participants(out_dir, cohort)
    bids_io.write_psych(out_dir, psych)
    trial_truth = write_cohort_trial(out_dir, truth_dir, cohort, seed)
    cohort = cohort.merge(psych, on="participant_id", how="left", validate="one_to_one")
    bids_io.write_tsv(truth_dir / "participants_truth.tsv", cohort, "%.6g")
    bids_io.write_json(truth_dir / "generative_model.json", _generative_model(
        seed, n_subjects, full_size, n_volumes, n_sessions, n_runs, size))
    return {"bids_dir": out_dir, "truth_dir": truth_dir,
            "participants": truth_dir / "participants_truth.tsv",
            "subjects": [r["label"] for r in results],
            **({"trial_truth": trial_truth} if trial_truth else {})}
