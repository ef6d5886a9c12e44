"""Checking and indexing the input BIDS dataset before anything is written.

Every problem found here is an :class:`~bids_dfc.errors.InputError` naming the file or
subject and what to do. All checks run before the first output is written, so a bad input
leaves no half-written outputs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bids_dfc.errors import InputError
from bids_dfc.io import check_writable

if TYPE_CHECKING:
    from bids import BIDSLayout

LOGGER = logging.getLogger("bids_dfc")


class ExecutionLike(Protocol):
    """What inputs/ reads of ``bids_dfc.config.ExecutionOptions``."""

    @property
    def bids_dir(self) -> Path: ...
    @property
    def output_dir(self) -> Path: ...
    @property
    def work_dir(self) -> Path: ...
    @property
    def participant_label(self) -> list[str] | None: ...
    @property
    def session_label(self) -> list[str] | None: ...
    @property
    def task(self) -> list[str] | None: ...
    @property
    def bids_filters(self) -> dict: ...
    @property
    def skip_bids_validation(self) -> bool: ...
    @property
    def nprocs(self) -> int: ...
    @property
    def mem_gb(self) -> float | None: ...


class WorkflowLike(Protocol):
    """What inputs/ reads of ``bids_dfc.config.WorkflowOptions``."""

    @property
    def dummy_scans(self) -> int | str: ...
    @property
    def band_pass(self) -> tuple[float, float]: ...
    @property
    def seeds(self) -> Path | None: ...
    @property
    def atlas(self) -> Path | None: ...
    @property
    def atlas_labels(self) -> Path | None: ...
    @property
    def template(self) -> str: ...
    @property
    def template_resolution(self) -> int: ...


class ConfigLike(Protocol):
    """A ``bids_dfc.config.Config`` (inputs/ may not import config, rule R9)."""

    @property
    def execution(self) -> ExecutionLike: ...
    @property
    def workflow(self) -> WorkflowLike: ...


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


def inside_raw_tree(bids_dir: Path, folder: Path) -> bool:
    """Whether ``folder`` is ``bids_dir`` or inside it but not under its ``derivatives/``."""
    bids_dir, folder = Path(bids_dir).resolve(), Path(folder).resolve()
    if folder == bids_dir:
        return True
    return bids_dir in folder.parents and (bids_dir / "derivatives") not in folder.parents


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing parent (resolved)."""
    existing = Path(path).resolve()
    while not existing.exists():
        existing = existing.parent
    return existing


def folder_problems(bids_dir: Path, **folders: Path | None) -> list[str]:
    """Problems of the folders bids_dfc writes (``output_dir=...``, ``work_dir=...``): inside
    the raw data (``bids_dir/derivatives/...`` is allowed: BIDS keeps derivatives there), or
    not writable. Nothing is created: the nearest existing folder must be writable (call
    :func:`make_writable_dirs` to create)."""
    problems = []
    for name, folder in folders.items():
        if folder is None:
            continue
        what = "output_dir" if name == "output_dir" else f"--{name.replace('_', '-')}"
        if inside_raw_tree(bids_dir, folder):
            problems.append(f"{what} {folder} is inside the raw dataset {bids_dir}: nothing "
                            "may be written there except under its derivatives/ folder; "
                            f"choose a folder outside it, or under {bids_dir / 'derivatives'}")
            continue
        existing = nearest_existing(folder)
        if not existing.is_dir():
            problems.append(f"{what} {folder}: {existing} is a file, not a folder; choose "
                            "another path")
        elif not os.access(existing, os.W_OK | os.X_OK):
            problems.append(f"{what} {folder} is not writable (no write permission on "
                            f"{existing}, or a read-only file system): choose a writable "
                            "folder, or bind a writable one into the container")
    return problems


def check_output_dir(bids_dir: Path, output_dir: Path, work_dir: Path | None = None) -> None:
    """Raise :class:`InputError` with the first of :func:`folder_problems`."""
    problems = folder_problems(bids_dir, output_dir=output_dir, work_dir=work_dir)
    if problems:
        raise InputError(problems[0])


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


def _choose_tasks(layout: BIDSLayout, requested: list[str] | None,
                  problems: list[str]) -> list[str]:
    available = sorted(layout.get_tasks())
    if requested:
        missing = sorted(set(requested) - set(available))
        if missing:
            problems.append(f"--task: task(s) {', '.join(missing)} not found in {layout.root}; "
                            f"available tasks: {', '.join(available) or 'none'}")
        return [t for t in requested if t in available]
    rest = [task for task in available if "rest" in task.lower()]
    return rest or available


def _subject_files(layout: BIDSLayout, subject: str, tasks: list[str], sessions: dict,
                   filters: dict) -> SubjectData | str:
    """The subject's T1w and BOLD runs, or why it has none to process."""
    bold = layout.get(
        subject=subject, task=tasks, datatype="func", suffix="bold",
        extension=[".nii", ".nii.gz"], **sessions, **filters.get("bold", {}),
    )  # fmt: skip
    t1w = layout.get(
        subject=subject, datatype="anat", suffix="T1w", extension=[".nii", ".nii.gz"],
        **filters.get("t1w", {}),
    )  # fmt: skip
    if not bold:
        return f"sub-{subject}: no BOLD run for task(s) {', '.join(tasks) or 'none'}"
    if not t1w:
        return f"sub-{subject}: no T1w image (needed for registration)"
    data = SubjectData(subject=subject, t1w=Path(sorted(f.path for f in t1w)[0]))
    for bfile in sorted(bold, key=lambda f: f.path):
        data.bold.append(Path(bfile.path))
        data.bold_metadata[bfile.path] = bfile.get_metadata()
    return data


def select_subjects(config: ConfigLike, *, use_filters: bool = True,
                    ) -> tuple[list[SubjectData], list[str]]:
    """Index ``bids_dir`` with pybids; return the selected subjects' files and the problems
    of the selection (unknown labels or tasks, nothing left to process). ``use_filters``
    False ignores the --bids-filter-file (when it is itself faulty, to check the images).

    Subjects without a T1w or without BOLD for the chosen tasks are skipped with a warning when
    others remain, and are a problem when none would remain. The images themselves are
    checked by :mod:`bids_dfc.inputs.preflight`.
    """
    from bids import BIDSLayout

    ex = config.execution
    try:
        layout = BIDSLayout(str(ex.bids_dir), validate=False, derivatives=False)
    except Exception as exc:
        raise InputError(f"pybids could not index {ex.bids_dir}: {exc}") from None
    problems: list[str] = []
    subjects = sorted(layout.get_subjects())
    if ex.participant_label:
        unknown = sorted(set(ex.participant_label) - set(subjects))
        if unknown:
            problems.append(f"--participant-label: {', '.join(unknown)} not found in "
                            f"{ex.bids_dir}; available: {', '.join(subjects) or 'none'}")
        subjects = [s for s in subjects if s in set(ex.participant_label)]
    tasks = _choose_tasks(layout, ex.task, problems)
    filters = {k: v for k, v in (ex.bids_filters or {}).items()
               if use_filters and k in ("bold", "t1w") and isinstance(v, dict)}
    sessions = {"session": ex.session_label} if ex.session_label else {}
    selected: list[SubjectData] = []
    skipped: list[str] = []
    for subject in subjects:
        try:
            found = _subject_files(layout, subject, tasks, sessions, filters)
        except Exception as exc:  # pybids (or its database) refusing a filter value
            return [], problems + [f"--bids-filter-file: pybids refused the query ({exc})"]
        if isinstance(found, SubjectData):
            selected.append(found)
        else:
            skipped.append(found)
    for reason in skipped:
        LOGGER.warning("skipping %s", reason)
    if not selected and not problems:
        problems.append(
            f"nothing to process in {ex.bids_dir}: " + "; ".join(skipped or ["no subjects"])
            + ". Check --participant-label, --session-label, --task and --bids-filter-file")
    return selected, problems


def glob_subjects(bids_dir: Path) -> list[SubjectData]:
    """Every subject's first T1w and its BOLD runs with their own sidecars, found without
    pybids (which cannot index a dataset whose dataset_description.json is broken)."""
    found = []
    for folder in sorted(p for p in Path(bids_dir).glob("sub-*") if p.is_dir()):
        t1w = sorted(folder.glob("**/anat/*_T1w.nii*"))
        bold = sorted(folder.glob("**/func/*_bold.nii*"))
        if not (t1w and bold):
            continue
        data = SubjectData(subject=folder.name[4:], t1w=t1w[0], bold=bold)
        for run in bold:
            sidecar = run.with_name(run.name.split(".nii")[0] + ".json")
            try:
                meta = json.loads(sidecar.read_text(encoding="utf-8-sig"))
            except (OSError, ValueError):
                meta = {}
            data.bold_metadata[str(run)] = meta if isinstance(meta, dict) else {}
        found.append(data)
    return found


def collect_data(config: ConfigLike) -> list[SubjectData]:
    """:func:`select_subjects`, raising :class:`InputError` on the first problem."""
    selected, problems = select_subjects(config)
    if problems:
        raise InputError(problems[0])
    return selected
