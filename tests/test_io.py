"""Atomic writes of derivatives, and the clean-up of what a killed writer left behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from bids_dfc.io import (
    ABANDONED_AFTER_S,
    atomic_copy,
    atomic_write,
    commit_many,
    file_mode,
    remove_stale_temps,
    save_figure,
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
    atomic_write(dst, '{"a": 1}')
    assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]
    assert dst.read_text() == '{"a": 1}'
    assert oct(dst.stat().st_mode & 0o777) == "0o644"
    assert remove_stale_temps(dst) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_every_writer_gives_the_mode_open_would_give(tmp_path, umask):
    """mkstemp makes 0600 files; io sets 0o666 & ~umask explicitly, for every kind of write."""
    from matplotlib.figure import Figure

    old = os.umask(umask)
    try:
        assert file_mode() == 0o666 & ~umask
        src = tmp_path / "src.txt"
        src.write_text("x")
        os.chmod(src, 0o600)
        fig = Figure(figsize=(1, 1))
        fig.subplots().plot([0, 1])
        written = [
            atomic_write(tmp_path / "a.tsv", "a\tb\n"),
            atomic_write(tmp_path / "b.bin", b"\x00\x01"),
            atomic_copy(src, tmp_path / "c.txt"),
            save_figure(fig, tmp_path / "d.png", dpi=20),
            *commit_many({tmp_path / "e.tsv": lambda fh: fh.write("e\n"),
                          tmp_path / "f.json": lambda fh: fh.write("{}")}),
        ]
        for path in written:
            assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask), path.name
        reference = tmp_path / "plain.txt"
        reference.write_text("plain open()")
        assert reference.stat().st_mode & 0o777 == 0o666 & ~umask
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_commit_many_replaces_all_or_none(tmp_path):
    first, second = tmp_path / "series.tsv", tmp_path / "summary.tsv"
    first.write_text("old series\n")
    second.write_text("old summary\n")

    def broken(handle):
        handle.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        commit_many({first: lambda fh: fh.write("new series\n"), second: broken})
    assert first.read_text() == "old series\n", "a failed batch must not replace any file"
    assert second.read_text() == "old summary\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series.tsv", "summary.tsv"]
    commit_many({first: lambda fh: fh.write("new series\n"),
                 second: lambda fh: fh.write("new summary\n")})
    assert (first.read_text(), second.read_text()) == ("new series\n", "new summary\n")
