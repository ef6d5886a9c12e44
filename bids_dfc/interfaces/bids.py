"""Writing BIDS-Derivatives files: names built from the source file, atomic writes, sidecars.

The naming follows BIDS-Derivatives (and fMRIPrep / XCP-D): the entities of the raw source
file (``sub``, ``ses``, ``task``, ``acq``, ``ce``, ``rec``, ``dir``, ``run``, ``echo``) are kept
in their BIDS order, then the derivative entities (``from``, ``to``, ``mode``, ``space``,
``res``, ``seg``, ``label``, ``stat``, ``meas``, ``desc``) are appended, then the suffix.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    DynamicTraitedSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

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


def _temp_prefix(dst: Path) -> str:
    """Prefix of ``dst``'s temporary files: ``.<name>.<host>.<pid>.`` (the writer's identity
    lets a later run recognise what a killed writer left behind)."""
    return f".{dst.name}.{socket.gethostname()}.{os.getpid()}."


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (signal 0 probe)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


#: a temporary file untouched for this long is abandoned, whoever wrote it (seconds; a write
#: takes seconds, even of a large run on a slow shared file system)
ABANDONED_AFTER_S = 3600.0


def remove_stale_temps(dst: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of ``dst`` left by writers that died mid-write.

    A job killed while writing (SIGKILL at a time or memory limit) leaves its
    ``.<name>.<host>.<pid>.*`` file behind. Removed: the files written on this host by a
    process that no longer exists, and any file untouched for ``ABANDONED_AFTER_S`` (a
    writer on another node, or in a container that is gone). A writer that is still
    running keeps its file.
    """
    dst = Path(dst)
    prefix = f".{dst.name}.{socket.gethostname()}."
    removed = []
    for tmp in dst.parent.glob(f".{glob.escape(dst.name)}.*"):
        pid = tmp.name[len(prefix):].split(".", 1)[0] if tmp.name.startswith(prefix) else ""
        try:
            abandoned = time.time() - tmp.stat().st_mtime > ABANDONED_AFTER_S
        except FileNotFoundError:  # renamed by its writer meanwhile
            continue
        if abandoned or (pid.isdigit() and not pid_alive(int(pid))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _atomic_target(dst: str | os.PathLike) -> tuple[Path, str]:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dst)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(dst), dir=dst.parent)
    os.close(fd)
    return dst, tmp


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` to ``dst`` through a temporary file in ``dst``'s folder and ``os.replace``.

    A reader never sees a half-written ``dst``; concurrent writers of the same file leave one
    complete copy; what a killed writer left is removed by the next write of ``dst``.
    """
    dst, tmp = _atomic_target(dst)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def atomic_write_text(dst: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``dst`` atomically (temporary file + ``os.replace``)."""
    dst, tmp = _atomic_target(dst)
    try:
        with open(tmp, "w") as fobj:
            fobj.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def write_sidecar(path: str | os.PathLike, meta: dict) -> Path:
    """Write the JSON sidecar of a derivative file (same name, ``.json`` extension)."""
    stem, _ = split_ext(path)
    sidecar = Path(path).with_name(stem + ".json")
    return atomic_write_text(sidecar, json.dumps(meta, indent=2, sort_keys=True, default=str))


class _DerivativesDataSinkInputSpec(DynamicTraitedSpec, BaseInterfaceInputSpec):
    base_directory = traits.Str(mandatory=True, desc="derivatives dataset root (output_dir)")
    source_file = File(exists=False, mandatory=True, desc="raw BIDS file this output derives from")
    in_file = File(exists=True, mandatory=True, desc="file to store")
    suffix = traits.Str(mandatory=True, desc="BIDS suffix of the output")
    extension = traits.Str(desc="output extension (default: that of in_file)")
    desc = traits.Str(desc="desc- entity")
    space = traits.Str(desc="space- entity")
    label = traits.Str(desc="label- entity")
    extra_entities = traits.Dict(desc="other entities: from, to, mode, res, seg, stat, meas")
    datatype = traits.Str(desc="datatype folder (default: that of source_file)")
    meta_dict = traits.Dict(desc="JSON sidecar content")
    sources = traits.List(traits.Str, desc="files this output was made from (Sources field)")
    write_sidecar = traits.Bool(True, usedefault=True, desc="write the JSON sidecar")


class _DerivativesDataSinkOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="the stored file")
    out_meta = File(desc="its JSON sidecar")


class DerivativesDataSink(SimpleInterface):
    """Store one file in the BIDS-Derivatives dataset, with its JSON sidecar, atomically."""

    input_spec = _DerivativesDataSinkInputSpec
    output_spec = _DerivativesDataSinkOutputSpec
    # copying is cheap: always rerun, so a resumed run rewrites every output it owns
    _always_run = True

    def _run_interface(self, runtime):
        ins = self.inputs
        entities = dict(ins.extra_entities) if isdefined(ins.extra_entities) else {}
        for key in ("desc", "space", "label"):
            value = getattr(ins, key)
            if isdefined(value) and value:
                entities[key] = value
        ext = ins.extension if isdefined(ins.extension) else split_ext(ins.in_file)[1]
        if ext.endswith(".nii") and split_ext(ins.in_file)[1] == ".nii.gz":
            ext = ".nii.gz"
        rel = build_path(
            ins.source_file,
            suffix=ins.suffix,
            extension=ext,
            entities=entities,
            datatype=ins.datatype if isdefined(ins.datatype) else None,
        )
        out = Path(ins.base_directory) / rel
        if ext in _NIFTI_EXT and split_ext(ins.in_file)[1] != ext:
            import nibabel as nb

            tmp = Path(runtime.cwd) / ("converted" + ext)
            nb.save(nb.load(ins.in_file), tmp)
            atomic_copy(tmp, out)
        else:
            atomic_copy(ins.in_file, out)
        self._results["out_file"] = str(out)
        if ins.write_sidecar:
            meta = dict(ins.meta_dict) if isdefined(ins.meta_dict) else {}
            sources = list(ins.sources) if isdefined(ins.sources) else []
            raw = Path(ins.source_file)
            sources.insert(0, f"bids:raw:{raw_relpath(raw)}")
            meta.setdefault("Sources", sources)
            self._results["out_meta"] = str(write_sidecar(out, meta))
        return runtime


def raw_relpath(path: Path) -> str:
    """Path of a raw file relative to its dataset root (the folder above ``sub-*``)."""
    parts = path.parts
    for i, part in enumerate(parts):
        if part.startswith("sub-"):
            return "/".join(parts[i:])
    return path.name
