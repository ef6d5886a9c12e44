"""A tiny hand-made BIDS dataset for the input-check tests (imported, not a test module)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np


def _write_img(path: Path, shape, rng) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([3.0, 3.0, 4.0, 1.0]) if len(shape) == 4 else np.eye(4)
    nb.Nifti1Image(rng.normal(100, 5, shape).astype("float32"), affine).to_filename(path)


def make_bids(root: Path, subjects=("01", "02"), n_vols=60, tasks=("rest",)) -> Path:
    """A tiny valid BIDS dataset: uneven shapes, one T1w and one BOLD run per task."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "tiny", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    )
    for sub in subjects:
        _write_img(root / f"sub-{sub}/anat/sub-{sub}_T1w.nii.gz", (9, 10, 11), rng)
        for task in tasks:
            bold = root / f"sub-{sub}/func/sub-{sub}_task-{task}_bold.nii.gz"
            _write_img(bold, (7, 8, 6, n_vols), rng)
            bold.with_name(bold.name.replace(".nii.gz", ".json")).write_text(
                json.dumps({"RepetitionTime": 2.0, "TaskName": task})
            )
    return root
