"""Up-front checks of the options that name inputs or limits (nipype-free): the BIDS filter
file, the seeds table, the atlas and its labels, the band-pass edges against each run's
Nyquist frequency. Each function returns its problems, one line each, and never raises."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bids_dfc.connectivity.seeds import read_atlas_labels, read_seeds
from bids_dfc.errors import InputError
from bids_dfc.templates import get_template

if TYPE_CHECKING:
    import pandas as pd

    from bids_dfc.inputs.raw import SubjectData, WorkflowLike

#: the queries a --bids-filter-file may hold, and the pybids entities each may filter on
FILTER_QUERIES = ("bold", "t1w")
FILTER_ENTITIES = ("session", "task", "acquisition", "ceagent", "reconstruction",
                   "direction", "run", "echo", "part", "chunk", "space", "datatype", "suffix",
                   "extension")  # fmt: skip


def filter_problems(filters: dict) -> list[str]:
    """Queries and entities of a --bids-filter-file."""
    problems = []
    for query, spec in filters.items():
        if query not in FILTER_QUERIES:
            problems.append(f"--bids-filter-file: unknown query {query!r}; use "
                            f"{' and '.join(map(repr, FILTER_QUERIES))}")
            continue
        if not isinstance(spec, dict):
            problems.append(f"--bids-filter-file: {query!r} must map entities to values, got "
                            f"{type(spec).__name__}")
            continue
        for entity, value in spec.items():
            if entity not in FILTER_ENTITIES:
                close = difflib.get_close_matches(entity, FILTER_ENTITIES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"--bids-filter-file: {query!r} filters on unknown entity "
                                f"{entity!r}{hint}; known: {', '.join(FILTER_ENTITIES)}")
            elif not _filter_value_ok(value):
                problems.append(f"--bids-filter-file: {query}.{entity} must be a text, a "
                                f"number, null, or a list of them; got {value!r}")
    return problems


def _filter_value_ok(value: object) -> bool:
    def scalar(v: object) -> bool:
        return v is None or isinstance(v, (str, int, float, bool))

    return all(map(scalar, value)) if isinstance(value, list) else scalar(value)


def workflow_problems(wf: WorkflowLike) -> list[str]:
    """The seeds table, the atlas and its labels."""
    problems = []
    try:
        seeds = read_seeds(wf.seeds)
    except InputError as exc:
        problems.append(f"--seeds: {exc}")
    else:
        problems += _seeds_in_brain(seeds, wf)
    if (wf.atlas is None) != (wf.atlas_labels is None):
        given, missing = ("--atlas", "--atlas-labels") if wf.atlas else ("--atlas-labels",
                                                                         "--atlas")
        problems.append(f"{given} needs {missing}: give the atlas image and its labels table "
                        "(index, name) together")
    elif wf.atlas is not None and wf.atlas_labels is not None:
        problems += _atlas_problems(Path(wf.atlas), Path(wf.atlas_labels))
    return problems


def _seeds_in_brain(seeds: pd.DataFrame, wf: WorkflowLike) -> list[str]:
    """Every seed centre inside the template's brain mask."""
    import nibabel as nb

    try:
        mask = cast(nb.Nifti1Image,
                    nb.load(get_template(wf.template, wf.template_resolution).brain_mask))
    except InputError as exc:
        return [f"--template: {exc}"]
    data = np.asanyarray(mask.dataobj) > 0
    inv = np.linalg.inv(mask.affine)
    where = wf.seeds or "the study's seeds"
    problems = []
    for row in cast(Any, seeds.itertuples()):
        ijk = np.rint(inv @ np.array([row.x, row.y, row.z, 1.0]))[:3].astype(int)
        inside = bool(np.all(ijk >= 0) and np.all(ijk < data.shape)
                      and data[tuple(ijk)])
        if not inside:
            problems.append(f"--seeds {where}: seed {row.name!r} at ({row.x:g}, {row.y:g}, "
                            f"{row.z:g}) mm is outside the template brain mask; the "
                            "coordinates must be MNI millimetres (check signs and units)")
    return problems


def _atlas_problems(atlas: Path, labels_path: Path) -> list[str]:
    """The atlas is a 3-D integer label image whose labels match the table."""
    import nibabel as nb

    try:
        labels = read_atlas_labels(labels_path)
    except InputError as exc:
        return [f"--atlas-labels: {exc}"]
    try:
        img = cast(nb.Nifti1Image, nb.load(str(atlas)))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        return [f"--atlas {atlas}: cannot read it ({type(exc).__name__}: {exc}); give a NIfTI "
                "label image"]
    if data.ndim != 3:
        return [f"--atlas {atlas}: a label image must be 3-D, this one has shape {data.shape}"]
    if not np.allclose(data, np.round(data)):
        return [f"--atlas {atlas}: values are not whole numbers; a label image holds one "
                "integer label per voxel (0 = background)"]
    found = set(np.unique(data.astype(int)).tolist()) - {0}
    listed = set(labels["index"].tolist())
    problems = []
    if found - listed:
        problems.append(f"--atlas {atlas}: labels {sorted(found - listed)[:10]} are not in "
                        f"{labels_path}; add them to the table or remove them from the image")
    if listed - found:
        problems.append(f"--atlas-labels {labels_path}: indices {sorted(listed - found)[:10]} "
                        f"do not occur in {atlas}; remove them from the table")
    return problems


def band_problems(band: tuple[float, float], subjects: list[SubjectData]) -> list[str]:
    """Band-pass edges in order and below every run's Nyquist frequency."""
    low, high = band
    if not low < high:
        return [f"--band-pass {low:g} {high:g}: the low edge must be below the high edge"]
    problems = []
    for data in subjects:
        for bold in data.bold:
            tr = data.bold_metadata[str(bold)].get("RepetitionTime")
            if not isinstance(tr, (int, float)) or not 0 < tr <= 100:
                continue  # reported by the run's own check
            nyquist = 0.5 / tr
            if high >= nyquist:
                problems.append(f"--band-pass {low:g} {high:g}: the high edge is at or above "
                                f"the Nyquist frequency {nyquist:.4g} Hz of {bold} (TR "
                                f"{tr:g} s); lower it below {nyquist:.4g} Hz")
    return problems
