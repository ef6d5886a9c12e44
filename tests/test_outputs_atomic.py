"""Atomic writes of derivatives, and the clean-up of what a killed writer left behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from bids_dfc.interfaces.bids import (
    ABANDONED_AFTER_S,
    atomic_copy,
    atomic_write_text,
    remove_stale_temps,
)


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_dead_writers_are_removed_on_the_next_write(tmp_path):
    host = socket.gethostname()
    dst = tmp_path / "sub-01_desc-preproc_bold.nii.gz"
    dead = tmp_path / f".{dst.name}.{host}.{_dead_pid()}.abc123"
    alive = tmp_path / f".{dst.name}.{host}.{os.getpid()}.def456"
    elsewhere = tmp_path / f".{dst.name}.another-node.{_dead_pid()}.ghi789"
    abandoned = tmp_path / f".{dst.name}.another-node.{_dead_pid()}.mno345"
    other_file = tmp_path / f".sub-01_boldref.nii.gz.{host}.{_dead_pid()}.jkl012"
    for path in (dead, alive, elsewhere, abandoned, other_file):
        path.write_bytes(b"half-written")
    old = time.time() - ABANDONED_AFTER_S - 60
    os.utime(abandoned, (old, old))
    src = tmp_path / "src.bin"
    src.write_bytes(b"complete")

    atomic_copy(src, dst)

    assert dst.read_bytes() == b"complete"
    assert not dead.exists(), "a killed writer's temporary file must go"
    assert alive.exists(), "a running writer's file must stay (it is about to be renamed)"
    assert elsewhere.exists(), "another host's recent writer cannot be checked: it stays"
    assert not abandoned.exists(), "untouched for over an hour: abandoned, whoever wrote it"
    assert other_file.exists(), "only the temporary files of the file being written"


def test_text_writes_leave_only_the_file(tmp_path):
    dst = tmp_path / "sub-01" / "func" / "sub-01_task-rest_dfc.json"
    stale = dst.parent / f".{dst.name}.{socket.gethostname()}.{_dead_pid()}.x"
    stale.parent.mkdir(parents=True)
    stale.write_text("{")
    atomic_write_text(dst, '{"a": 1}')
    assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]
    assert dst.read_text() == '{"a": 1}'
    assert oct(dst.stat().st_mode & 0o777) == "0o644"
    assert remove_stale_temps(dst) == []
