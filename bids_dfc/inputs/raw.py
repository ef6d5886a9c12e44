"""Checking and indexing the input BIDS dataset before anything is written.

Every problem found here is an :class:`~bids_dfc.errors.InputError` naming the file or
subject and what to do. All checks run before the first output is written, so a bad input
leaves no half-written outputs.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from bids_dfc.errors import InputError
from bids_dfc.io import check_writable
from bids_dfc.preproc.signal import MIN_VOLUMES

if TYPE_CHECKING:
    import nibabel as nb
    from bids import BIDSLayout

LOGGER = logging.getLogger("bids_dfc")


class _ExecutionLike(Protocol):
    """What :func:`collect_data` reads of ``bids_dfc.config.ExecutionOptions``."""

    @property
    def bids_dir(self) -> Path: ...
    @property
    def participant_label(self) -> list[str] | None: ...
    @property
    def session_label(self) -> list[str] | None: ...
    @property
    def task(self) -> list[str] | None: ...
    @property
    def bids_filters(self) -> dict: ...


class _WorkflowLike(Protocol):
    @property
    def dummy_scans(self) -> int | str: ...


class _ConfigLike(Protocol):
    """A ``bids_dfc.config.Config`` (this package may not import config, rule R9)."""

    @property
    def execution(self) -> _ExecutionLike: ...
    @property
    def workflow(self) -> _WorkflowLike: ...


@dataclass
class SubjectData:
    """The raw files of one participant that the participant level processes."""

    subject: str
    t1w: Path
    bold: list[Path] = field(default_factory=list)
    bold_metadata: dict[str, dict] = field(default_factory=dict)


def check_bids_dir(bids_dir: Path) -> None:
    """Fail unless ``bids_dir`` looks like the root of a BIDS dataset."""
    if not bids_dir.exists():
        raise InputError(f"bids_dir {bids_dir} does not exist: give the path of the dataset root")
    if not bids_dir.is_dir():
        raise InputError(f"bids_dir {bids_dir} is not a folder: give the dataset root folder")
    if not (bids_dir / "dataset_description.json").is_file():
        raise InputError(
            f"{bids_dir} is not a BIDS dataset: it has no dataset_description.json. Point "
            "bids_dir at the folder that holds dataset_description.json and the sub-* folders"
        )
    if not any(p.is_dir() for p in bids_dir.glob("sub-*")):
        raise InputError(f"{bids_dir} is not a BIDS dataset: it has no sub-* folders")


def check_output_dir(bids_dir: Path, output_dir: Path, work_dir: Path | None = None) -> None:
    """Fail if output_dir is inside the raw data, or if output/work dirs cannot be written.

    Writing into ``bids_dir/derivatives/...`` is allowed (BIDS keeps derivatives there);
    anything else inside ``bids_dir`` would mix outputs into the raw data. Nothing is created:
    the nearest existing folder must be writable (call :func:`make_writable_dirs` to create).
    """
    bids_dir, output_dir = bids_dir.resolve(), output_dir.resolve()
    if output_dir == bids_dir or (
        bids_dir in output_dir.parents and (bids_dir / "derivatives") not in output_dir.parents
    ):
        raise InputError(
            f"output_dir {output_dir} is inside the raw dataset {bids_dir}: choose a folder "
            f"outside it, or {bids_dir / 'derivatives' / 'bids_dfc'}"
        )
    for what, folder in (("output_dir", output_dir), ("work dir", work_dir)):
        if folder is None:
            continue
        existing = Path(folder)
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise InputError(f"{what} {folder}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise InputError(
                f"{what} {folder} is not writable (no write permission on {existing}, or a "
                "read-only file system): choose a writable folder, or bind a writable one into "
                "the container"
            )


def make_writable_dirs(**folders: Path) -> None:
    """Create each folder and prove it writable with a temporary file (named in errors)."""
    for what, folder in folders.items():
        try:
            check_writable(folder)
        except OSError as exc:
            raise InputError(
                f"{what.replace('_', ' ')} {folder} is not writable ({exc.strerror}): choose a "
                "writable folder"
            ) from None


def find_bids_validator() -> str | None:
    """Path of the npm ``bids-validator`` executable (PATH, or the project's .tools/)."""
    found = shutil.which("bids-validator")
    if found:
        return found
    local = Path(__file__).resolve().parents[1] / ".tools" / "bids-validator"
    candidate = local / "node_modules" / ".bin" / "bids-validator"
    return str(candidate) if candidate.exists() else None


def validate_bids(bids_dir: Path) -> None:
    """Run the BIDS validator; errors stop the run, a missing validator only warns."""
    exe = find_bids_validator()
    if exe is None:
        LOGGER.warning(
            "BIDS validator not found (npm bids-validator); skipping validation of %s", bids_dir
        )
        return
    proc = subprocess.run(
        [exe, "--ignoreWarnings", str(bids_dir)], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        summary = " | ".join(lines[:8])
        raise InputError(
            f"the BIDS validator found errors in {bids_dir}: {summary} ... Fix them, or rerun "
            "with --skip-bids-validation if you know they do not matter"
        )


def load_nifti_checked(path: Path, *, what: str, read_data: bool = True) -> nb.Nifti1Image:
    """Load a NIfTI image, turning any read failure into a clear error naming the file."""
    import nibabel as nb
    import numpy as np

    try:
        img = cast("nb.Nifti1Image", nb.load(str(path)))
        if read_data:
            np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(
            f"cannot read {what} {path}: {type(exc).__name__}: {exc}. The file is corrupt or "
            "not NIfTI; re-export it from the scanner data (e.g. dcm2niix)"
        ) from None
    return img


def check_bold(path: Path, metadata: dict, dummy_scans: int | str) -> None:
    """Fail unless ``path`` is a readable 4D BOLD run with a RepetitionTime and enough volumes."""
    img = load_nifti_checked(path, what="BOLD run")
    shape = img.shape
    if len(shape) != 4 or shape[3] < 2:
        raise InputError(
            f"BOLD run {path} is 3D (shape {shape}): a BOLD run must be 4D (x, y, z, time). "
            "Check the conversion, or exclude it with --bids-filter-file"
        )
    tr = metadata.get("RepetitionTime")
    if tr is None:
        raise InputError(
            f"RepetitionTime is missing for {path}: add \"RepetitionTime\" (seconds) to its "
            "JSON sidecar"
        )
    if not isinstance(tr, (int, float)) or tr <= 0:
        raise InputError(f"RepetitionTime of {path} must be a positive number, got {tr!r}")
    dropped = dummy_scans if isinstance(dummy_scans, int) else 0
    if shape[3] - dropped < MIN_VOLUMES:
        raise InputError(
            f"BOLD run {path} has {shape[3]} volumes, {shape[3] - dropped} after dropping "
            f"{dropped} dummy scans; dynamic connectivity needs at least {MIN_VOLUMES}"
        )


def check_t1w(path: Path) -> None:
    """Fail unless ``path`` is a readable 3D image."""
    img = load_nifti_checked(path, what="T1w image")
    if len(img.shape) == 4 and img.shape[3] == 1:
        return
    if len(img.shape) != 3:
        raise InputError(f"T1w image {path} has shape {img.shape}: expected a 3D image")


def _choose_tasks(layout: BIDSLayout, requested: list[str] | None) -> list[str]:
    available = sorted(layout.get_tasks())
    if requested:
        missing = sorted(set(requested) - set(available))
        if missing:
            raise InputError(
                f"task(s) {', '.join(missing)} not found in {layout.root}; available tasks: "
                f"{', '.join(available) or 'none'}"
            )
        return list(requested)
    rest = [task for task in available if "rest" in task.lower()]
    return rest or available


def collect_data(config: _ConfigLike) -> list[SubjectData]:
    """Index ``bids_dir`` with pybids and return the selected subjects' checked files.

    Subjects without a T1w or without BOLD for the chosen tasks are skipped with a warning when
    others remain, and are an error when none would remain.
    """
    from bids import BIDSLayout

    ex = config.execution
    try:
        layout = BIDSLayout(str(ex.bids_dir), validate=False, derivatives=False)
    except Exception as exc:
        raise InputError(f"pybids could not index {ex.bids_dir}: {exc}") from None
    subjects = sorted(layout.get_subjects())
    if ex.participant_label:
        unknown = sorted(set(ex.participant_label) - set(subjects))
        if unknown:
            raise InputError(
                f"participant label(s) {', '.join(unknown)} not found in {ex.bids_dir}; "
                f"available: {', '.join(subjects) or 'none'}"
            )
        subjects = [s for s in subjects if s in set(ex.participant_label)]
    tasks = _choose_tasks(layout, ex.task)
    filters = ex.bids_filters or {}
    unknown_keys = set(filters) - {"bold", "t1w"}
    if unknown_keys:
        raise InputError(
            f"--bids-filter-file: unknown queries {sorted(unknown_keys)}; use 'bold' and 't1w'"
        )
    sessions = {"session": ex.session_label} if ex.session_label else {}
    selected, problems = [], []
    for subject in subjects:
        bold = layout.get(
            subject=subject, task=tasks, datatype="func", suffix="bold",
            extension=[".nii", ".nii.gz"], **sessions, **filters.get("bold", {}),
        )  # fmt: skip
        t1w = layout.get(
            subject=subject, datatype="anat", suffix="T1w", extension=[".nii", ".nii.gz"],
            **filters.get("t1w", {}),
        )  # fmt: skip
        if not bold:
            problems.append(f"sub-{subject}: no BOLD run for task(s) {', '.join(tasks)}")
            continue
        if not t1w:
            problems.append(f"sub-{subject}: no T1w image (needed for registration)")
            continue
        data = SubjectData(subject=subject, t1w=Path(sorted(f.path for f in t1w)[0]))
        for bfile in sorted(bold, key=lambda f: f.path):
            data.bold.append(Path(bfile.path))
            data.bold_metadata[bfile.path] = bfile.get_metadata()
        selected.append(data)
    for problem in problems:
        LOGGER.warning("skipping %s", problem)
    if not selected:
        raise InputError(
            "nothing to process in "
            f"{ex.bids_dir}: " + "; ".join(problems or ["no subjects"])
            + ". Check --participant-label, --session-label, --task and --bids-filter-file"
        )
    for data in selected:
        check_t1w(data.t1w)
        for bold in data.bold:
            check_bold(bold, data.bold_metadata[str(bold)], config.workflow.dummy_scans)
    return selected
