"""The one writer: every output file of bids_dfc is put in place here, atomically.

A file is written to a temporary name in its own folder and renamed over the target, so a
reader never sees a half-written file and two jobs writing one file leave one complete copy.
Temporary names carry the writer's host and PID (``.<name>.<host>.<pid>.<random>``); a job
killed mid-write leaves its file behind, and the next write of the same target removes it
when its writer is gone (same host, PID dead) or when it has been untouched for
:data:`ABANDONED_AFTER_S` (a writer on another node, or in a container that no longer exists).

Every file gets the mode a plain ``open()`` would give it, ``0o666 & ~umask`` (0644 under the
usual umask 022), set explicitly: ``mkstemp`` alone would leave it 0600.

Nothing here imports nipype (architecture rule R1); this module imports no other module of the
package (it is the lowest floor).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: a temporary file untouched for this long is abandoned, whoever wrote it (seconds; a write
#: takes seconds, even of a large run on a slow shared file system)
ABANDONED_AFTER_S = 3600.0

PathLike = str | os.PathLike[str]


def current_umask() -> int:
    """The process's umask, read without changing it (Linux ``/proc``; else set and restore)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new output file: what ``open()`` gives, ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (signal 0 probe)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _temp_prefix(dst: Path) -> str:
    """Prefix of ``dst``'s temporary files: ``.<name>.<host>.<pid>.`` (the writer's identity
    lets a later run recognise what a killed writer left behind)."""
    return f".{dst.name}.{socket.gethostname()}.{os.getpid()}."


def remove_stale_temps(dst: PathLike) -> list[Path]:
    """Delete the temporary files of ``dst`` left by writers that died mid-write.

    Removed: the files written on this host by a process that no longer exists, and any file
    untouched for :data:`ABANDONED_AFTER_S`. A writer that is still running keeps its file.
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


def _new_temp(dst: Path, suffix: str = "") -> str:
    """An empty temporary file beside ``dst`` (its folder made if needed, stale temps gone)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dst)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(dst), suffix=suffix, dir=dst.parent)
    os.close(fd)
    return tmp


def _put_in_place(tmp: str, dst: Path) -> None:
    os.chmod(tmp, file_mode())
    os.replace(tmp, dst)


def atomic_save(dst: PathLike, save: Callable[[str], object], *, suffix: str = "") -> Path:
    """Write ``dst`` by calling ``save(tmp_path)`` on a temporary file, then rename it in place.

    ``suffix`` is the temporary file's extension, for savers that infer the format from it
    (``nibabel.save`` needs ``.nii.gz``). On any error the temporary file is removed and the
    old ``dst`` (if any) is left as it was.
    """
    dst = Path(dst)
    tmp = _new_temp(dst, suffix)
    try:
        save(tmp)
        _put_in_place(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def atomic_write(dst: PathLike, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to ``dst`` atomically."""

    def save(tmp: str) -> None:
        if isinstance(data, bytes):
            Path(tmp).write_bytes(data)
        else:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(data)

    return atomic_save(dst, save)


def atomic_copy(src: PathLike, dst: PathLike) -> Path:
    """Copy ``src`` to ``dst`` atomically (the copy gets :func:`file_mode`, not ``src``'s)."""
    return atomic_save(dst, lambda tmp: shutil.copyfile(src, tmp))


def jsonable(obj: Any) -> Any:
    """``obj`` in JSON types (numpy, DataFrames, tuples, paths); NaN, inf and NA become null."""
    import numpy as np
    import pandas as pd

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(dst: PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (:func:`jsonable`, indent 2, final newline) atomically."""
    return atomic_write(dst, json.dumps(jsonable(obj), indent=2) + "\n")


def save_figure(fig: Any, dst: PathLike, **savefig: Any) -> Path:
    """Save a matplotlib figure atomically (``savefig`` options go to ``fig.savefig``)."""
    fmt = savefig.get("format", Path(dst).suffix.lstrip(".") or "png")
    return atomic_save(dst, lambda tmp: fig.savefig(tmp, **savefig), suffix=f".{fmt}")


def commit_many(writers: Mapping[PathLike, Callable[[IO[str]], object]]) -> list[Path]:
    """Write several files so that either all are replaced or none is.

    Each writer gets an open text handle (``newline=""``) of its file's temporary copy; only
    when every writer has succeeded are the copies renamed into place.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for target, writer in writers.items():
            dst = Path(target)
            tmp = _new_temp(dst)
            temps.append((tmp, dst))
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer(handle)
        for tmp, dst in temps:
            _put_in_place(tmp, dst)
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
    return [dst for _, dst in temps]


def move_into_place(src: PathLike, dst: PathLike) -> Path:
    """Rename ``src`` (a file just made in the same file system) to ``dst``."""
    os.replace(src, dst)
    return Path(dst)


def check_writable(folder: PathLike) -> None:
    """Make ``folder`` if missing and prove a file can be created in it (raises ``OSError``);
    leaves nothing behind."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".bids_dfc_write_test"):
        pass


@contextmanager
def output_lock(output_dir: Path) -> Iterator[None]:
    """Exclusive lock on ``output_dir`` shared by every bids_dfc process writing into it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / ".bids_dfc.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- folders replaced as a whole (the group level's output_dir/group/) -----------------------
#
# A folder is built under a temporary name beside its target and swapped in at the end:
# ``.<name>.<host>.<pid>.new-<random>`` is the one being built; at the swap the target is
# renamed aside to ``.<name>.<host>.<pid>.old-<random>``, the new one renamed in, the old one
# removed. A reader sees the old folder or the new one, never a mix.


def dir_mode() -> int:
    """Mode of a new output folder: what ``mkdir()`` gives, ``0o777 & ~umask``."""
    return 0o777 & ~current_umask()


def _temp_dir_kind(tmp: Path) -> str:
    """``"new"`` or ``"old"`` for a folder named by :func:`make_temp_dir` or
    :func:`replace_dir`, else ``""`` (the random tail has no dot, a host name may)."""
    kind = tmp.name.rsplit(".", 1)[-1].partition("-")[0]
    return kind if kind in ("new", "old") and tmp.is_dir() and not tmp.is_symlink() else ""


def _writer_gone(tmp: Path, dst: Path) -> bool:
    """Whether the process that named ``tmp`` has exited (this host) or ``tmp`` has been
    untouched for :data:`ABANDONED_AFTER_S` (any host)."""
    prefix = f".{dst.name}.{socket.gethostname()}."
    pid = tmp.name[len(prefix):].split(".", 1)[0] if tmp.name.startswith(prefix) else ""
    try:
        abandoned = time.time() - tmp.stat().st_mtime > ABANDONED_AFTER_S
    except FileNotFoundError:  # renamed or removed by its writer meanwhile
        return False
    return abandoned or (pid.isdigit() and not pid_alive(int(pid)))


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_temp_dirs(dst_dir: PathLike) -> list[Path]:
    """Clear what builders of ``dst_dir`` (:func:`make_temp_dir`, :func:`replace_dir`) that
    died midway left beside it; returns the folders removed or restored.

    A folder of a writer that is gone (as in :func:`remove_stale_temps`) is removed, except
    when ``dst_dir`` itself is missing and an ``old-`` folder is left: its writer died between
    the two renames of the swap, and that folder (the previous ``dst_dir``, untouched) is
    renamed back. Folders of running writers, and any other name, are left alone.
    """
    dst = Path(dst_dir)
    if not dst.parent.is_dir():
        return []
    handled = []
    with output_lock(dst.parent):
        stale = sorted((p for p in dst.parent.glob(f".{glob.escape(dst.name)}.*")
                        if _temp_dir_kind(p) and _writer_gone(p, dst)),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        olds = [p for p in stale if _temp_dir_kind(p) == "old"]
        if olds and not (dst.exists() or dst.is_symlink()):
            os.replace(olds[0], dst)
            handled.append(olds[0])
            stale.remove(olds[0])
        for tmp in stale:
            _remove_tree(tmp)
            handled.append(tmp)
    return handled


def make_temp_dir(dst_dir: PathLike) -> Path:
    """An empty folder beside ``dst_dir`` in which to build its replacement
    (:func:`replace_dir` swaps it in).

    Its mode is :func:`dir_mode` (``mkdtemp`` alone gives 0700), keeping a setgid bit it
    inherited from the parent; the stale folders of dead builders go first
    (:func:`remove_stale_temp_dirs`).
    """
    dst = Path(dst_dir)
    dst.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(dst)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(dst) + "new-", dir=dst.parent))
    os.chmod(tmp, (tmp.stat().st_mode & 0o7000) | dir_mode())
    return tmp


def replace_dir(tmp_dir: PathLike, dst_dir: PathLike) -> Path:
    """Put the folder ``tmp_dir`` (from :func:`make_temp_dir`) in place of ``dst_dir``.

    Under :func:`output_lock` of the parent folder: the old ``dst_dir`` (if any) is renamed
    aside, ``tmp_dir`` renamed to ``dst_dir``, then the old one removed. When the second
    rename fails the old folder is renamed back; a process killed between the two renames
    leaves it aside, and the next :func:`remove_stale_temp_dirs` renames it back.
    """
    tmp, dst = Path(tmp_dir), Path(dst_dir)
    aside = None
    with output_lock(dst.parent):
        if dst.exists() or dst.is_symlink():
            aside = dst.parent / f"{_temp_prefix(dst)}old-{os.urandom(4).hex()}"
            os.replace(dst, aside)
        try:
            os.replace(tmp, dst)
        except BaseException:
            if aside is not None:
                os.replace(aside, dst)
            raise
    if aside is not None:
        _remove_tree(aside)
    return dst


@contextmanager
def dir_replacement(dst_dir: PathLike) -> Iterator[Path]:
    """Build a new ``dst_dir`` as a whole: yields an empty temporary folder to write into.

    On a normal exit the folder replaces ``dst_dir`` (:func:`replace_dir`); on any error or
    interrupt it is removed and ``dst_dir`` is left exactly as it was.
    """
    tmp = make_temp_dir(dst_dir)
    try:
        yield tmp
        replace_dir(tmp, dst_dir)
    except BaseException:
        _remove_tree(tmp)
        raise
