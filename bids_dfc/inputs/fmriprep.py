"""fMRIPrep derivatives as input: recognise the dataset, find each run's files, check them.

Only headers, sidecars and confounds tables are read; every problem of every subject is
collected before any work starts (one line each, naming the file and what to do).

The names are fMRIPrep's, 20.2 LTS to 25.x (docs/fmriprep.md):

* ``<source>_space-<tpl>[_res-<n>]_desc-preproc_bold.nii.gz`` + ``.json``,
  ``<source>_space-<tpl>[_res-<n>]_desc-brain_mask.nii.gz`` and, when written,
  ``<source>_space-<tpl>[_res-<n>]_boldref.nii.gz``;
* ``<source>_desc-confounds_timeseries.tsv`` + ``.json`` (``_desc-confounds_regressors``
  before 20.2);
* for native-space seeds: ``<source>_space-T1w_desc-preproc_bold.nii.gz`` (with its mask
  and boldref), or from 23.2 the BOLD series in its own reference space (no ``space-``)
  with ``<source>_from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt``; and the anatomical
  ``sub-<s>[_ses-<x>]_from-<tpl>_to-T1w_mode-image_xfm.h5`` (ANTs composite).

``<source>`` is the raw BOLD file's entities (``sub``, ``ses``, ``task``, ``acq``, ``ce``,
``rec``, ``dir``, ``run``, ``echo``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import nibabel as nb
import numpy as np

from bids_dfc.derivatives import SOURCE_ENTITIES, parse_entities
from bids_dfc.inputs.images import _repetition_time
from bids_dfc.preproc.fmriprep_confounds import STRATEGIES, check_columns

#: the standard spaces fMRIPrep writes that the study's MNI seed coordinates apply to, in
#: the order one is chosen when several are present (fMRIPrep's default first)
TEMPLATES = ("MNI152NLin2009cAsym", "MNI152NLin6Asym", "MNI152NLin2009aSym")
#: relative difference of repetition times taken as the same (header float32 rounding)
TR_RTOL = 1e-3
#: grids differing by less than this (mm, affine entries) are the same grid
AFFINE_ATOL = 1e-3
_VERSION = re.compile(r"^(\d+)\.(\d+)")


@dataclass
class NativeFiles:
    """The files of one run for seeds in the subject's BOLD space."""

    #: ``T1w`` (BOLD resampled to the T1w) or ``boldref`` (its own reference, 23.2+)
    space: str
    bold: Path
    mask: Path
    boldref: Path | None
    #: ``from-boldref_to-T1w`` coregistration (boldref space only; None in T1w space)
    boldref2anat: Path | None = None


@dataclass
class FmriprepRun:
    """The fMRIPrep files of one BOLD run."""

    #: the raw BOLD file when the raw dataset is at hand, else the template-space BOLD
    #: (it names the outputs through its source entities either way)
    source: Path
    #: ``sub``... ``echo`` entities of the run, in BIDS order
    entities: dict[str, str]
    template: str
    resolution: str | None
    bold: Path
    mask: Path
    boldref: Path | None
    confounds: Path
    tr: float
    metadata: dict
    native: NativeFiles | None = None
    #: ``desc-smoothAROMAnonaggr`` BOLD (fMRIPrep 1.x-23.0 with --use-aroma)
    aroma_bold: Path | None = None


@dataclass
class FmriprepSubject:
    """One participant's fMRIPrep outputs."""

    subject: str
    runs: list[FmriprepRun] = field(default_factory=list)
    #: ``from-<tpl>_to-T1w`` composite transform per template present
    std2anat: dict[str, Path] = field(default_factory=dict)


@dataclass
class FmriprepDataset:
    """An fMRIPrep derivatives folder and what its dataset_description.json says."""

    root: Path
    version: str | None
    name: str = "fMRIPrep"
    subjects: list[FmriprepSubject] = field(default_factory=list)


def _generated_by(description: dict) -> list[dict]:
    entries = description.get("GeneratedBy")
    if isinstance(entries, list):
        return [e for e in entries if isinstance(e, dict)]
    legacy = description.get("PipelineDescription")  # fMRIPrep <= 20.1
    return [legacy] if isinstance(legacy, dict) else []


def read_description(root: Path) -> tuple[str | None, list[str]]:
    """fMRIPrep's version from ``root/dataset_description.json`` (None: unknown), and the
    problems that make ``root`` unusable as fMRIPrep derivatives."""
    path = Path(root) / "dataset_description.json"
    if not path.is_file():
        return None, [f"{path}: not found; the folder given as fMRIPrep derivatives must be "
                      "fMRIPrep's output folder (the one holding dataset_description.json "
                      "and the sub-* folders)"]
    try:
        description = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"{path}: not readable as JSON ({exc}); fix or restore the file"]
    tools = [e for e in _generated_by(description)
             if str(e.get("Name", "")).lower() == "fmriprep"]
    if not tools:
        names = [str(e.get("Name")) for e in _generated_by(description)] or ["no GeneratedBy"]
        return None, [f"{path}: these are not fMRIPrep derivatives (GeneratedBy: "
                      f"{', '.join(names)}); give fMRIPrep's output folder"]
    version = tools[0].get("Version")
    return (str(version) if version else None), []


def is_fmriprep(root: Path) -> bool:
    """Whether ``root`` is an fMRIPrep derivatives folder (its dataset_description says so)."""
    return Path(root, "dataset_description.json").is_file() and not read_description(root)[1]


def version_tuple(version: str | None) -> tuple[int, int] | None:
    """``(major, minor)`` of an fMRIPrep version string (None when unknown).

    >>> version_tuple("23.2.1"), version_tuple("20.2.7"), version_tuple(None)
    ((23, 2), (20, 2), None)
    """
    found = _VERSION.match(version or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def source_key(entities: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The raw-file entities of a BIDS name, the key that pairs derivatives with raw runs."""
    return tuple((k, entities[k]) for k in SOURCE_ENTITIES if k in entities)


def _name(key: tuple[tuple[str, str], ...]) -> str:
    return "_".join(f"{k}-{v}" for k, v in key)


def _index(subject_dir: Path) -> dict[tuple, dict[tuple, Path]]:
    """Every file under a subject folder: source key -> (space, res, desc, suffix, ext) ->
    path."""
    out: dict[tuple, dict[tuple, Path]] = {}
    for path in sorted(subject_dir.rglob("sub-*")):
        if not path.is_file():
            continue
        ext = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
        ents = parse_entities(path)
        kind = (ents.get("from"), ents.get("to"), ents.get("space"), ents.get("res"),
                ents.get("desc"), ents.get("suffix"), ext)
        out.setdefault(source_key(ents), {})[kind] = path
    return out


def _choose_space(files: dict[tuple, Path], template: str | None) -> tuple[str, str | None] | None:
    """(template, res) of the template-space preproc BOLD to use: the requested template,
    else the first of :data:`TEMPLATES` present; without ``res-`` (fMRIPrep's default, the
    BOLD's own voxel size) first, then ``res-2`` (2 mm, the study's), then any other."""
    found = [(k[2], k[3]) for k in files
             if k[4] == "preproc" and k[5] == "bold" and k[6] == ".nii.gz" and k[2]
             and k[2] != "T1w"]
    for tpl in ([template] if template and template != "auto" else list(TEMPLATES)):
        options = sorted((res or "" for space, res in found if space == tpl),
                         key=lambda r: (r != "", r != "2", r))
        if options:
            return tpl, (options[0] or None)
    return None


def _img(path: Path) -> nb.Nifti1Image:
    return cast(nb.Nifti1Image, nb.load(str(path)))


def _grid_problems(bold: Path, other: Path, what: str) -> list[str]:
    a, b = _img(bold), _img(other)
    if a.shape[:3] != b.shape[:3] or not np.allclose(a.affine, b.affine, atol=AFFINE_ATOL):
        return [f"{other}: the {what} is not on the grid of {bold.name} (shape "
                f"{b.shape[:3]} vs {a.shape[:3]}, or a different affine); the {what} must "
                "come from the same fMRIPrep space and resolution"]
    return []


def _confounds_file(files: dict[tuple, Path]) -> Path | None:
    return (files.get((None, None, None, None, "confounds", "timeseries", ".tsv"))
            or files.get((None, None, None, None, "confounds", "regressors", ".tsv")))


def _tr_problems(bold: Path, meta: dict, raw_meta: dict | None) -> tuple[float, list[str]]:
    img = _img(bold)
    header_tr = float(img.header.get_zooms()[3]) if len(img.shape) == 4 else None
    tr, problems = _repetition_time(bold.with_name(bold.name.replace(".nii.gz", ".json")),
                                    meta) if "RepetitionTime" in meta else (None, [])
    if problems:
        return 0.0, problems
    values = {"the BOLD header": header_tr, "its JSON": tr,
              "the raw BOLD's sidecar": (raw_meta or {}).get("RepetitionTime")}
    known = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and v}
    if not known:
        return 0.0, [f"{bold}: no repetition time in its header or JSON; add "
                     "\"RepetitionTime\" (seconds) to the JSON"]
    first = next(iter(known.values()))
    if any(abs(v - first) > TR_RTOL * first for v in known.values()):
        listed = ", ".join(f"{v:g} s in {k}" for k, v in known.items())
        return 0.0, [f"{bold}: the repetition times disagree ({listed}); fix the one that is "
                     "wrong (BIDS: seconds, in the JSON sidecar)"]
    return float(known.get("its JSON", known.get("the raw BOLD's sidecar", first))), []


def _native_files(files: dict[tuple, Path]) -> NativeFiles | None:
    def get(space, desc, suffix, ext=".nii.gz", frm=None, to=None):
        return files.get((frm, to, space, None, desc, suffix, ext))

    if get("T1w", "preproc", "bold"):
        return NativeFiles("T1w", get("T1w", "preproc", "bold"), get("T1w", "brain", "mask"),
                           get("T1w", None, "boldref"))
    if get(None, "preproc", "bold"):
        return NativeFiles("boldref", get(None, "preproc", "bold"), get(None, "brain", "mask"),
                           get(None, "coreg", "boldref") or get(None, None, "boldref"),
                           get(None, "coreg", "xfm", ".txt", "boldref", "T1w"))
    return None


def _anat_std2anat(anat_files: dict[tuple, dict[tuple, Path]], template: str) -> Path | None:
    for files in anat_files.values():
        path = files.get((template, "T1w", None, None, None, "xfm", ".h5"))
        if path:
            return path
    return None


def check_run(files: dict[tuple, Path], key: tuple, *, template: str | None, strategy: str,
              seed_space: str | None, std2anat: dict[str, Path], raw: Path | None = None,
              raw_meta: dict | None = None) -> tuple[FmriprepRun | None, list[str]]:
    """The checked files of one run (None when a problem stops it) and every problem found.

    ``seed_space`` None: native when the native files are complete, else template.
    """
    name = _name(key)
    chosen = _choose_space(files, template)
    if chosen is None:
        wanted = template if template and template != "auto" else " or ".join(TEMPLATES)
        return None, [f"{name}: no {name}_space-<template>_desc-preproc_bold.nii.gz for "
                      f"{wanted}; run fMRIPrep with --output-spaces {TEMPLATES[0]} (or choose "
                      "another --template present in the derivatives)"]
    tpl, res = chosen

    def std(desc, suffix):
        return files.get((None, None, tpl, res, desc, suffix, ".nii.gz"))

    bold, mask, problems = files[(None, None, tpl, res, "preproc", "bold", ".nii.gz")], \
        std("brain", "mask"), []
    space = f"space-{tpl}" + (f"_res-{res}" if res else "")
    if mask is None:
        problems.append(f"{bold}: its brain mask {name}_{space}_desc-brain_mask.nii.gz is "
                        "missing; copy it from fMRIPrep's output with the BOLD series")
    confounds = _confounds_file(files)
    if confounds is None:
        problems.append(f"{bold}: its confounds table {name}_desc-confounds_timeseries.tsv "
                        "is missing; copy it (and its .json) from fMRIPrep's output")
    sidecar = bold.with_name(bold.name.replace(".nii.gz", ".json"))
    meta: dict = {}
    try:
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{sidecar}: not readable as JSON ({exc}); fix or restore it")
    img = _img(bold)
    if len(img.shape) != 4:
        problems.append(f"{bold}: a BOLD series must be 4D, this image is {img.shape}")
        return None, problems
    tr, tr_problems = _tr_problems(bold, meta, raw_meta)
    problems += tr_problems
    if mask is not None:
        problems += _grid_problems(bold, mask, "brain mask")
    if confounds is not None:
        # check_columns names the file; the full path says which subject's copy it is
        problems += [str(confounds.parent / p) for p in check_columns(confounds, strategy)]
        n_rows = sum(1 for _ in confounds.open()) - 1
        if n_rows != img.shape[3]:
            problems.append(f"{confounds}: {n_rows} rows, but {bold.name} has {img.shape[3]} "
                            "volumes; the table and the series must come from the same "
                            "fMRIPrep run")
    aroma = files.get((None, None, "MNI152NLin6Asym", None, "smoothAROMAnonaggr", "bold",
                       ".nii.gz"))
    if STRATEGIES[strategy].bold_desc == "smoothAROMAnonaggr" and aroma is None:
        problems.append(f"{name}: --denoise-strategy aroma needs "
                        f"{name}_space-MNI152NLin6Asym_desc-smoothAROMAnonaggr_bold.nii.gz "
                        "(fMRIPrep 1.x-23.0 with --use-aroma); choose another strategy")
    native = _native_files(files)
    native_problems = _native_problems(native, name, tpl, std2anat)
    if seed_space == "native":
        problems += native_problems
    elif seed_space is None and native_problems:
        native = None
    if native is not None and not native_problems and native.mask is not None:
        problems += _grid_problems(native.bold, native.mask, "brain mask")
    if problems or mask is None or confounds is None:
        return None, problems
    return FmriprepRun(source=raw or bold, entities=dict(key), template=tpl, resolution=res,
                       bold=bold, mask=mask, boldref=std(None, "boldref"),
                       confounds=confounds, tr=tr, metadata=meta,
                       native=native if seed_space != "template" else None,
                       aroma_bold=aroma), []


def _native_problems(native: NativeFiles | None, name: str, template: str,
                     std2anat: dict[str, Path]) -> list[str]:
    if native is None:
        return [f"{name}: native-space seeds need {name}_space-T1w_desc-preproc_bold.nii.gz "
                "(fMRIPrep --output-spaces T1w) or the BOLD series in its reference space "
                "(fMRIPrep 23.2+, --output-spaces func); or use --seed-space template"]
    problems = []
    if native.mask is None:
        problems.append(f"{native.bold}: its brain mask (desc-brain_mask) is missing")
    if native.boldref is None:
        problems.append(f"{native.bold}: its reference volume ("
                        + ("space-T1w_boldref" if native.space == "T1w" else "desc-coreg_boldref")
                        + ".nii.gz) is missing; copy it from fMRIPrep's output")
    if native.space == "boldref" and native.boldref2anat is None:
        problems.append(f"{native.bold}: the coregistration "
                        f"{name}_from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt is missing")
    if template not in std2anat:
        problems.append(f"{name}: native-space seeds need the anatomical "
                        f"from-{template}_to-T1w_mode-image_xfm.h5 transform; copy it from "
                        "fMRIPrep's anat folder, or use --seed-space template")
    return problems


def collect_fmriprep(root: Path, subjects: list[str], *, template: str | None, strategy: str,
                     seed_space: str | None, tasks: list[str] | None = None,
                     raw_runs: dict[tuple, tuple[Path, dict]] | None = None
                     ) -> tuple[FmriprepDataset, list[str]]:
    """Every run of ``subjects`` in the fMRIPrep folder ``root``, checked.

    ``raw_runs`` (raw BOLD path and metadata per :func:`source_key`) ties each run to its
    raw file when the raw dataset is at hand; a raw run without derivatives is a problem.
    Returns the dataset and every problem found (empty: ready to run).
    """
    root = Path(root)
    version, problems = read_description(root)
    dataset = FmriprepDataset(root=root, version=version)
    if problems:
        return dataset, problems
    for subject in subjects:
        subject_dir = root / f"sub-{subject}"
        if not subject_dir.is_dir():
            problems.append(f"sub-{subject}: no folder {subject_dir} in the fMRIPrep "
                            "derivatives; run fMRIPrep for it or leave it out of "
                            "--participant-label")
            continue
        index = _index(subject_dir)
        anat = {k: v for k, v in index.items() if "task" not in dict(k)}
        entry = FmriprepSubject(subject=subject)
        for tpl in TEMPLATES:
            path = _anat_std2anat(anat, tpl)
            if path is not None:
                entry.std2anat[tpl] = path
        keys = [k for k, files in index.items() if "task" in dict(k)
                and (not tasks or dict(k)["task"] in tasks)
                and any(f[4] == "preproc" and f[5] == "bold" for f in files)]
        if raw_runs is not None:
            wanted = {k: v for k, v in raw_runs.items() if dict(k).get("sub") == subject}
            problems += [f"{v[0]}: no fMRIPrep outputs for this run in {root} (expected "
                         f"{subject_dir}/.../{_name(k)}_space-<template>_desc-preproc_"
                         "bold.nii.gz)" for k, v in wanted.items() if k not in index]
            keys = [k for k in wanted if k in index]
        if not keys:
            problems.append(f"sub-{subject}: no *_desc-preproc_bold.nii.gz under {subject_dir}"
                            "; fMRIPrep's --level minimal writes none: rerun it with the "
                            "default level")
        for key in sorted(keys):
            raw, raw_meta = (raw_runs or {}).get(key, (None, None))
            try:
                run, run_problems = check_run(index[key], key, template=template,
                                              strategy=strategy, seed_space=seed_space,
                                              std2anat=entry.std2anat, raw=raw,
                                              raw_meta=raw_meta)
            except (OSError, EOFError, ValueError, nb.filebasedimages.ImageFileError) as exc:
                run, run_problems = None, [f"{subject_dir}: a file of {_name(key)} cannot be "
                                           f"read ({exc}); restore it from fMRIPrep's output"]
            problems += run_problems
            if run is not None:
                entry.runs.append(run)
        dataset.subjects.append(entry)
    return dataset, problems
