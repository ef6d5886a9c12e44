"""The up-front check of a participant run (nipype-free): everything that can be known before
the work starts, for every selected subject, all problems reported at once.

:func:`preflight` returns the selected subjects or raises one :class:`InputError` whose
message lists every problem on its own line (file, subject or option, then what to do).
Nothing is written before it passes.
"""

from __future__ import annotations

import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np

from bids_dfc.errors import InputError
from bids_dfc.inputs import options as opt
from bids_dfc.inputs.images import BoldFacts, check_bold_run, check_t1w_image
from bids_dfc.inputs.raw import (
    ConfigLike,
    ExecutionLike,
    SubjectData,
    check_bids_dir,
    folder_problems,
    glob_subjects,
    nearest_existing,
    select_subjects,
    validate_bids,
)

LOGGER = logging.getLogger("bids_dfc")

#: the resource estimate (docs/usage.md, "Input checks"), from `make demo` (12 subjects,
#: 277 volumes of 50x54x36, T1w 120x128x90; 2026-12-07): its work folder held 4.22 GB, i.e.
#: 13 bytes per BOLD value (voxel x volume) T1w included, its outputs 1.94 GB (6.0 per value);
#: the margins below cover a non---sloppy run. Peak memory of one step: a fixed part plus
#: bytes per BOLD value (benchmarks/bench_slurm.py: 1.06 GB for one demo task)
WORK_BYTES_PER_BOLD_VALUE = 16.0
WORK_BYTES_PER_T1W_VOXEL = 60.0
OUTPUT_BYTES_PER_BOLD_VALUE = 7.0
STEP_MEMORY_FIXED_GB = 0.7
STEP_MEMORY_BYTES_PER_BOLD_VALUE = 12.0
GB = 1024.0**3


def _description_problems(bids_dir: Path) -> list[str]:
    """dataset_description.json (pybids cannot index the dataset without a valid one)."""
    problems = []
    desc = bids_dir / "dataset_description.json"
    try:
        content = json.loads(desc.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{desc}: not valid JSON ({exc}); fix it (BIDS needs at least \"Name\" "
                        "and \"BIDSVersion\")")
        content = {}
    if isinstance(content, dict) and content:
        for key in ("Name", "BIDSVersion"):
            if not isinstance(content.get(key), str) or not content[key].strip():
                problems.append(f"{desc}: \"{key}\" is missing or not a text; add it "
                                "(e.g. \"BIDSVersion\": \"1.9.0\")")
    elif not problems:
        problems.append(f"{desc}: must be a JSON object with \"Name\" and \"BIDSVersion\"")
    return problems


def _participants_problems(path: Path) -> list[str]:
    if not path.is_file():
        return []
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                            encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        return [f"{path}: not a readable UTF-8 tab-separated table ({exc}); fix it"]
    if "participant_id" not in table.columns:
        return [f"{path}: no participant_id column (columns: {', '.join(table.columns)}); BIDS "
                "needs it first"]
    ids = table["participant_id"].str.strip()
    dup = sorted(set(ids[ids.duplicated()]))
    problems = [f"{path}: participant_id {d} appears {int((ids == d).sum())} times; keep one "
                "row per participant" for d in dup]
    bad = [i for i in ids if not i.startswith("sub-") or not i[4:].isalnum()]
    if bad:
        problems.append(f"{path}: participant_id values must be sub-<label> (letters and "
                        f"digits), got {', '.join(map(repr, bad[:5]))}")
    return problems


def _image_problems(subjects: list[SubjectData], dummy_scans: int | str, threads: int
                    ) -> tuple[list[BoldFacts], list[str]]:
    """Every image of every subject, read in parallel (zlib and numpy release the GIL)."""
    facts: list[BoldFacts] = []
    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        jobs = [(pool.submit(check_t1w_image, data.t1w),
                 [pool.submit(check_bold_run, bold, data.bold_metadata[str(bold)], dummy_scans)
                  for bold in data.bold]) for data in subjects]
        for t1w, runs in jobs:  # reported in subject order: T1w, then each run
            problems += t1w.result()
            for run in runs:
                fact, found = run.result()
                problems += found
                facts += [fact] if fact is not None else []
    return facts, problems


def _resource_problems(ex: ExecutionLike, subjects: list[SubjectData], runs: list[BoldFacts]
                       ) -> list[str]:
    """Free disk space of the work and output folders, memory of the largest step."""
    import nibabel as nb

    values = sum(r.n_voxels * r.n_volumes for r in runs)
    t1w = sum(int(np.prod(cast(nb.Nifti1Image, nb.load(str(s.t1w))).shape[:3]))
              for s in subjects)
    need = {ex.work_dir: values * WORK_BYTES_PER_BOLD_VALUE + t1w * WORK_BYTES_PER_T1W_VOXEL,
            ex.output_dir: values * OUTPUT_BYTES_PER_BOLD_VALUE}
    problems = []
    for folder, nbytes in need.items():
        existing = nearest_existing(folder)
        free = shutil.disk_usage(existing).free
        same = [f for f in need if f != folder and _same_device(f, existing)]
        total = nbytes + sum(need[f] for f in same)
        if total > free:
            problems.append(f"{folder}: about {total / GB:.1f} GB of disk space is needed for "
                            f"{len(subjects)} participant(s), {free / GB:.1f} GB is free on "
                            f"{existing}: free space, choose another folder, or run fewer "
                            "participants at a time (--participant-label)")
            break
    step = max((r.n_voxels * r.n_volumes for r in runs), default=0)
    step_gb = STEP_MEMORY_FIXED_GB + step * STEP_MEMORY_BYTES_PER_BOLD_VALUE / GB
    avail = ex.mem_gb or _available_memory_gb()
    if avail is not None and step_gb > avail:
        problems.append(f"memory: the largest run needs about {step_gb:.1f} GB in one step, "
                        f"{'--mem-gb gives' if ex.mem_gb else 'this machine has'} {avail:.1f} GB "
                        "available: run on a machine (or SLURM job) with more memory")
    return problems


def _same_device(folder: Path, existing: Path) -> bool:
    return nearest_existing(folder).stat().st_dev == existing.stat().st_dev


def _available_memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GB
    except OSError:
        pass
    return None


def preflight(config: ConfigLike) -> list[SubjectData]:
    """Check everything before the work starts; return the subjects or raise with every
    problem found (one per line)."""
    ex, wf = config.execution, config.workflow
    check_bids_dir(ex.bids_dir)  # nothing else can be checked without a dataset
    described = _description_problems(ex.bids_dir)
    problems = folder_problems(ex.bids_dir, output_dir=ex.output_dir, work_dir=ex.work_dir)
    problems += described
    problems += _participants_problems(ex.bids_dir / "participants.tsv")
    filters = opt.filter_problems(ex.bids_filters)
    problems += filters + opt.workflow_problems(wf)
    if described:  # pybids cannot index it: check the images found by name
        subjects = glob_subjects(ex.bids_dir)
    else:  # a faulty filter file is reported above; the images are checked without it
        subjects, selection = select_subjects(config, use_filters=not filters)
        problems += selection
    runs, found = _image_problems(subjects, wf.dummy_scans, ex.nprocs)
    problems += found
    problems += opt.band_problems(wf.band_pass, subjects)
    if not ex.skip_bids_validation:
        try:
            validate_bids(ex.bids_dir)
        except InputError as exc:
            problems.append(str(exc))
    if not problems:
        problems += _resource_problems(ex, subjects, runs)
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        head = (f"{len(problems)} problems found before starting; nothing was written. Fix "
                "them and run the same command again:")
        raise InputError("\n".join([head, *(f"  - {p}" for p in problems)]))
    return subjects
