"""Daemons the SLURM and container tests start outside pytest's process tree, told apart
by test session.

With ``make test``'s two xdist workers each worker is its own session: a SLURM cluster or a
container one worker started may still be running, legitimately, when the other worker's
session ends. A session therefore only answers for the daemons it started: the test that
starts one calls :func:`own` with a text its processes carry (the cluster's folder, which is
in every daemon's command line or ``SLURM_CONF``; the container's name, in conmon's command
line), and :func:`started_here` recognises them.
"""

from __future__ import annotations

from pathlib import Path

#: daemons and job steps the SLURM and container tests start outside pytest's process tree
NAMES = ("slurmstepd", "slurmd", "slurmctld", "munged", "conmon")

_MARKERS: set[str] = set()


def own(marker: str) -> str:
    """Declare that processes whose command line or environment contains ``marker`` were
    started by this test session; returns ``marker``."""
    _MARKERS.add(str(marker))
    return str(marker)


def daemon_pids() -> set[int]:
    """Every running process named like one of :data:`NAMES`, whoever started it."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            name = (entry / "comm").read_text().strip() if entry.name.isdigit() else ""
        except OSError:
            continue
        if name in NAMES:
            found.add(int(entry.name))
    return found


def started_here(pid: int) -> bool:
    """True when the process carries a marker this session declared with :func:`own`."""
    text = b""
    for part in ("cmdline", "environ"):
        try:
            text += Path(f"/proc/{pid}/{part}").read_bytes()
        except OSError:
            pass
    decoded = text.replace(b"\0", b" ").decode(errors="replace")
    return any(marker in decoded for marker in _MARKERS)
