"""BIDS-Derivatives names and metadata (nipype-free): entities, output paths, sidecars,
staging (the dataset-level files, dataset_description.json, README.md and LICENSE, are
:mod:`bids_dfc.derivatives.dataset`).

The naming follows BIDS-Derivatives (and fMRIPrep / XCP-D): the entities of the raw source
file (``sub``, ``ses``, ``task``, ``acq``, ``ce``, ``rec``, ``dir``, ``run``, ``echo``) are kept
in their BIDS order, then the derivative entities (``from``, ``to``, ``mode``, ``space``,
``res``, ``seg``, ``label``, ``stat``, ``meas``, ``desc``) are appended, then the suffix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bids_dfc import __version__
from bids_dfc.io import atomic_write, move_into_place

CODE_URL = "https://github.com/bids-dfc/bids_dfc"

#: the name that every sidecar's ``bids:<name>:`` URI uses for the raw input dataset; the
#: derivatives' DatasetLinks map it to the dataset's location
RAW_LINK = "raw"


def software_versions(*names: str) -> dict[str, str]:
    """Installed version of each distribution, in the order given (``bids_dfc`` is this
    package's own ``__version__``; a missing one is ``"not installed"``).

    Read from the installed metadata, so asking for nipype's or antspyx's version imports
    neither (this module stays nipype-free).
    """
    out = {}
    for name in names:
        if name == "bids_dfc":
            out[name] = __version__
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


#: raw entities kept from the source file, in BIDS order
SOURCE_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo")


#: derivative entities, in the order they appear in output names
DERIV_ENTITIES = ("from", "to", "mode", "space", "res", "seg", "label", "stat", "meas", "desc")


_ENTITY_RE = re.compile(r"(?:^|_)([a-zA-Z0-9]+)-([a-zA-Z0-9+]+)")


_NIFTI_EXT = (".nii.gz", ".nii")


def split_ext(path: str | os.PathLike) -> tuple[str, str]:
    """Split a file name into stem and (possibly double) extension.

    >>> split_ext("/a/sub-01_T1w.nii.gz")
    ('sub-01_T1w', '.nii.gz')
    """
    name = Path(path).name
    for ext in (".nii.gz", ".tsv.gz", ".tar.gz"):
        if name.endswith(ext):
            return name[: -len(ext)], ext
    stem, dot, ext = name.rpartition(".")
    return (stem, "." + ext) if dot else (name, "")


def parse_entities(path: str | os.PathLike) -> dict[str, str]:
    """Return the ``key-value`` entities and the ``suffix`` of a BIDS file name.

    >>> parse_entities("sub-01_ses-a_task-rest_run-2_bold.nii.gz")["run"]
    '2'
    """
    stem, _ = split_ext(path)
    entities = dict(_ENTITY_RE.findall(stem))
    last = stem.rsplit("_", 1)[-1]
    if "-" not in last:
        entities["suffix"] = last
    return entities


def datatype_of(path: str | os.PathLike) -> str:
    """BIDS datatype folder (``anat``, ``func``, ...) of a raw file, from its parent folder."""
    parent = Path(path).parent.name
    if parent in {"anat", "func", "fmap", "dwi", "perf"}:
        return parent
    suffix = parse_entities(path).get("suffix", "")
    return "func" if suffix in {"bold", "sbref"} else "anat"


def build_path(
    source_file: str | os.PathLike,
    *,
    suffix: str,
    extension: str,
    entities: dict[str, str] | None = None,
    datatype: str | None = None,
) -> Path:
    """Relative derivative path for ``source_file`` with extra ``entities``.

    >>> str(build_path("/d/sub-01/func/sub-01_task-rest_bold.nii.gz", suffix="dfc",
    ...                extension=".tsv", entities={"seg": "seeds"}))
    'sub-01/func/sub-01_task-rest_seg-seeds_dfc.tsv'
    """
    src = parse_entities(source_file)
    entities = {k: v for k, v in (entities or {}).items() if v not in (None, "")}
    unknown = set(entities) - set(DERIV_ENTITIES) - set(SOURCE_ENTITIES)
    if unknown:
        raise ValueError(f"unknown BIDS-Derivatives entities {sorted(unknown)}")
    value: str | None
    for key, value in entities.items():
        if not re.fullmatch(r"[a-zA-Z0-9+]+", str(value)):
            raise ValueError(f"entity {key}-{value}: values must be alphanumeric")
    parts = []
    for key in SOURCE_ENTITIES:
        value = entities.get(key, src.get(key))
        if value:
            parts.append(f"{key}-{value}")
    parts += [f"{key}-{entities[key]}" for key in DERIV_ENTITIES if key in entities]
    if not extension.startswith("."):
        extension = "." + extension
    name = "_".join(parts + [suffix]) + extension
    folder = Path(f"sub-{src['sub']}")
    if src.get("ses"):
        folder /= f"ses-{src['ses']}"
    return folder / (datatype or datatype_of(source_file)) / name


def write_sidecar(path: str | os.PathLike, meta: dict) -> Path:
    """Write the JSON sidecar of a derivative file (same name, ``.json`` extension)."""
    stem, _ = split_ext(path)
    sidecar = Path(path).with_name(stem + ".json")
    return atomic_write(sidecar, json.dumps(meta, indent=2, sort_keys=True, default=str))


def raw_relpath(path: Path) -> str:
    """Path of a raw file relative to its dataset root (the folder above ``sub-*``)."""
    parts = path.parts
    for i, part in enumerate(parts):
        if part.startswith("sub-"):
            return "/".join(parts[i:])
    return path.name


@dataclass(frozen=True)
class OutputName:
    """How one kind of output is named after its source file's entities.

    ``entities`` holds the fixed derivative entities; those set per run (``space-`` of a
    template, ``seg-`` of an atlas, ``from-``/``to-`` of a template transform) are given
    to :meth:`sink` and :meth:`pattern`.
    """

    suffix: str
    extension: str | None = None
    entities: tuple[tuple[str, str], ...] = ()

    def sink(self, **values: str) -> dict:
        """The ``DerivativesDataSink`` inputs of this output (``values``: per-run entities)."""
        entities = {**dict(self.entities), **values}
        out: dict = {"suffix": self.suffix}
        if self.extension:
            out["extension"] = self.extension
        for key in ("desc", "space", "label"):
            if key in entities:
                out[key] = entities.pop(key)
        if entities:
            out["extra_entities"] = entities
        return out

    def pattern(self, **values: str) -> str:
        """The file-name tail after the source entities, e.g. ``_seg-seeds_dfc.tsv``; a value
        ``"*"`` makes it a glob pattern."""
        entities = {**dict(self.entities), **values}
        parts = [f"{key}-{entities[key]}" for key in DERIV_ENTITIES if key in entities]
        return "_" + "_".join([*parts, self.suffix]) + (self.extension or ".*")


_NII = ".nii.gz"
_XFM = (("mode", "image"),)
#: every participant output (docs/outputs-*.md), by the workflow field that holds it: the
#: derivatives workflows name their files from it, the report and the group level find them
OUTPUT_NAMES: dict[str, OutputName] = {
    # anatomical (init_anat_derivatives_wf)
    "t1w_preproc": OutputName("T1w", _NII, (("desc", "preproc"),)),
    "t1w_mask": OutputName("mask", _NII, (("desc", "brain"),)),
    "t1w_dseg": OutputName("dseg", _NII),
    "t1w_tpms": OutputName("probseg", _NII),  # label- per map
    "t1w_std": OutputName("T1w", _NII, (("desc", "preproc"),)),  # space- of the template
    "anat2std_xfm": OutputName("xfm", None, (("from", "T1w"), *_XFM)),  # to-, desc-
    "std2anat_xfm": OutputName("xfm", None, (("to", "T1w"), *_XFM)),  # from-, desc-
    # functional (init_bold_derivatives_wf)
    "bold_preproc": OutputName("bold", _NII, (("desc", "preproc"),)),
    "bold_denoised": OutputName("bold", _NII, (("desc", "denoised"),)),
    "bold_ref": OutputName("boldref", _NII),
    "bold_mask": OutputName("mask", _NII, (("desc", "brain"),)),
    "confounds_tsv": OutputName("timeseries", ".tsv", (("desc", "confounds"),)),
    "boldref2anat_xfm": OutputName("xfm", ".mat", (("from", "boldref"), ("to", "T1w"), *_XFM)),
    "anat2boldref_xfm": OutputName("xfm", ".mat", (("from", "T1w"), ("to", "boldref"), *_XFM)),
    "bold_std": OutputName("bold", _NII, (("desc", "denoised"),)),  # space- of the template
    # connectivity (init_connectivity_derivatives_wf): seg-seeds, or seg- of the atlas
    "seed_timeseries": OutputName("timeseries", ".tsv", (("seg", "seeds"), ("stat", "mean"))),
    "seed_dcc": OutputName("timeseries", ".tsv", (("seg", "seeds"), ("desc", "dcc"))),
    "seed_dfc": OutputName("dfc", ".tsv", (("seg", "seeds"),)),
    "seed_weights": OutputName("probseg", _NII, (("seg", "seeds"),)),
    # the seeds' look-up table: row ``index`` describes volume ``index`` of seed_weights
    "seed_info": OutputName("dseg", ".tsv", (("seg", "seeds"),)),
    "atlas_timeseries": OutputName("timeseries", ".tsv", (("stat", "mean"),)),
    "atlas_dcc": OutputName("timeseries", ".tsv", (("desc", "dcc"),)),
    # not "dfc": the group level reads the seed result (seed_dfc) only
    "atlas_dfc": OutputName("edges", ".tsv"),
    "atlas_dseg": OutputName("dseg", _NII),
    "atlas_info": OutputName("dseg", ".tsv"),
    "atlas_relmats": OutputName("relmat", ".tsv"),  # stat- per matrix
}


#: the group level's files in OUTPUT_DIR/group/ (docs/group.md), by output key. No name
#: ends in a participant-level suffix (``_dfc``, ``_timeseries``...), so a BIDS query for
#: participant files (pybids ``suffix="dfc"``) never returns a group table
GROUP_FILES: dict[str, str] = {
    "group_dfc": "dfc_runs.tsv",
    "stats": "stats.tsv",
    "mediation": "mediation.tsv",
    "prediction": "prediction.tsv",
    "prediction_scores": "prediction_scores.tsv",
    "exclusions": "exclusions.tsv",
    "descriptives": "descriptives.tsv",
    "report": "report.html",
    "results": "group_results.json",
    # the crossover trial (docs/trial.md)
    "trial_auc": "trial/auc.tsv",
    "trial_contrasts": "trial/contrasts.tsv",
    "trial_omnibus": "trial/omnibus.tsv",
    "trial_icc": "trial/icc.tsv",
    "trial_binary": "trial/binary.tsv",
    "trial_response": "trial/response.tsv",
}


#: a participant's outputs are written under OUTPUT_DIR/.staging/ while its run is going and
#: moved into place when the participant finished: a failed or interrupted participant
#: leaves nothing that looks complete (the same command and work dir redo the staging)
STAGING = ".staging"


def staging_dir(output_dir: str | os.PathLike) -> Path:
    """Where the derivatives workflows write while a run is going."""
    return Path(output_dir) / STAGING


def commit_participant(output_dir: str | os.PathLike, subject: str) -> list[Path]:
    """Move a finished participant's staged outputs into place, file by file (a rename
    each, atomic), then remove its staging folder. Returns the paths now in place."""
    root = staging_dir(output_dir)
    mine = root / f"sub-{subject}"
    moved = []
    for path in sorted(p for p in mine.rglob("*") if p.is_file()):
        if path.name.startswith("."):  # a writer's temporary file left by a killed run
            continue
        dst = Path(output_dir) / path.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        moved.append(move_into_place(path, dst))
    shutil.rmtree(mine, ignore_errors=True)
    try:
        root.rmdir()  # the last participant of the output folder
    except OSError:
        pass
    return moved
