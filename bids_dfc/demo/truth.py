"""Reading the ground truth written beside a demo dataset, and mapping template points
into a subject's native T1w and BOLD spaces."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bids_dfc.demo.geometry import Warp, apply_affine, mni_to_native, rigid_matrix


def entity_prefix(subject: str, session=None, task=None, run=None) -> str:
    """BIDS-style file prefix, e.g. ``sub-01_ses-02_task-rest_run-1``."""
    parts = [f"sub-{subject}"]
    if session is not None:
        parts.append(f"ses-{session}")
    if task is not None:
        parts.append(f"task-{task}")
    if run is not None:
        parts.append(f"run-{run}")
    return "_".join(parts)


def _pick(options: list, value, what: str, subject: str):
    if value is None:
        if len(options) > 1:
            raise ValueError(f"sub-{subject} has several {what}s {options}: pass {what}=...")
        return options[0]
    if value not in options:
        raise ValueError(f"sub-{subject} has no {what} {value!r}; available: {options}")
    return value


def load_truth(truth_dir, subject, session=None, run=None) -> dict:
    """Load the ground truth of one subject's T1w (of ``session``) and BOLD run.

    Parameters
    ----------
    truth_dir : path
        The truth folder written by :func:`bids_dfc.demo.make_demo_dataset`.
    subject : str
        Label with or without ``sub-``.
    session, run : str or int, optional
        Needed only when the subject has several.

    Returns
    -------
    dict
        ``participant`` (row of participants_truth.tsv as a dict), ``pose`` (4x4, template
        mm -> T1w world mm), ``warp`` (:class:`~bids_dfc.demo.geometry.Warp`),
        ``t1w_to_bold`` (4x4), ``bold_affine`` (4x4), ``bold_shape``, ``n_dummies``,
        ``reference_volume``, ``motion_centre``, ``motion`` (DataFrame), ``signals``
        (DataFrame: time, dmn, des, rho, noise series), ``true_dfc`` (the run's planted dFC:
        SD of the DCC series of the planted DMN and DeS signals over the steady-state
        volumes, see :func:`bids_dfc.demo.signals.planted_dfc`), ``files`` (name -> Path
        of every truth image) and ``run_info`` (the run's JSON).
    """
    truth_dir = Path(truth_dir)
    subject = str(subject).removeprefix("sub-")
    index_path = truth_dir / f"sub-{subject}" / "index.json"
    if not index_path.is_file():
        raise ValueError(f"no truth for sub-{subject} in {truth_dir} ({index_path.name} is "
                         "missing): check the subject label and the truth folder")
    index = json.loads(index_path.read_text())
    sessions = sorted(index["sessions"])
    ses = _pick(sessions, None if session is None else str(session), "session", subject)
    runs = sorted(index["sessions"][ses])
    chosen = _pick(runs, None if run is None else str(run), "run", subject)
    entry = index["sessions"][ses][chosen]
    sub_dir = truth_dir / f"sub-{subject}"
    anat = json.loads((sub_dir / entry["anat_json"]).read_text())
    info = json.loads((sub_dir / entry["run_json"]).read_text())
    warp_img = nib.load(sub_dir / index["warp"])
    warp = Warp(field=np.asarray(warp_img.dataobj, dtype=np.float32),
                affine=np.asarray(warp_img.affine))
    table = pd.read_csv(truth_dir / "participants_truth.tsv", sep="\t", na_values="n/a")
    row = table.loc[table["participant_id"] == f"sub-{subject}"]
    files = {name: sub_dir / fname for name, fname in {**anat["files"],
                                                        **info["files"]}.items()}
    return {
        "participant": row.iloc[0].to_dict() if len(row) else {},
        "pose": np.array(anat["pose"]),
        "warp": warp,
        "t1w_to_bold": np.array(info["t1w_to_bold"]),
        "bold_affine": np.array(info["bold_affine"]),
        "bold_shape": tuple(info["bold_shape"]),
        "n_dummies": int(info["n_dummies"]),
        "reference_volume": int(info["reference_volume"]),
        "motion_centre": np.array(info["motion_centre"]),
        "motion": pd.read_csv(sub_dir / info["files_tsv"]["motion"], sep="\t"),
        "signals": pd.read_csv(sub_dir / info["files_tsv"]["signals"], sep="\t"),
        "true_dfc": float(info["true_dfc"]),
        "files": files,
        "run_info": info,
    }


def mni_to_t1w(points, truth: dict) -> np.ndarray:
    """T1w world mm (the T1w image's affine space) of template points ``(N, 3)``."""
    return mni_to_native(np.atleast_2d(points), truth["pose"], truth["warp"])


def mni_to_bold(points, truth: dict, voxels: bool = True) -> np.ndarray:
    """Position of template points on the raw BOLD grid of the reference volume.

    Returns voxel coordinates (``voxels=True``) or BOLD world mm.
    """
    world = apply_affine(truth["t1w_to_bold"], mni_to_t1w(points, truth))
    if not voxels:
        return world
    return apply_affine(np.linalg.inv(truth["bold_affine"]), world)


def motion_matrices(truth: dict) -> np.ndarray:
    """``(n_volumes, 4, 4)`` rigid matrices: BOLD world mm of the reference volume -> where
    that piece of head is in each volume."""
    cols = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    params = truth["motion"][cols].to_numpy()
    return np.stack([rigid_matrix(p, truth["motion_centre"]) for p in params])
