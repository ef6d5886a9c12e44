"""Shared fixtures and the test tiers.

Tiers are pytest markers (registered in setup.cfg, ``--strict-markers``):

``slow``
    runs a real pipeline step (registration, a participant run, a group run) or builds a
    demo dataset: more than about 10 s on 2 cores;
``container``
    builds or runs the podman image (docs/docker.md);
``slurm``
    submits jobs to a real slurmctld (docs/hpc.md);
``browser``
    renders a report in headless Chromium and checks every figure loaded.

``make test-fast`` (the edit loop, under 3 minutes) deselects all four; ``make test`` (the
README's command, what ``.ci/run`` calls) runs everything. A module's tier is its
``pytestmark``; a single slow test in a fast module carries its own mark.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests/_*.py helpers

from _daemons import daemon_pids, started_here  # noqa: E402
from _demo_data import demo_dataset  # noqa: E402


def tree_digest(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under ``root`` (the root included) -> (permission bits, sha256 of the
    content or of the link target; "" for folders)."""
    out = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = hashlib.sha256(os.readlink(path).encode()).hexdigest()
        elif stat.S_ISREG(info.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = ""
        out[str(path.relative_to(root))] = (f"{stat.S_IMODE(info.st_mode):04o}", content)
    return out


def assert_tree_unchanged(root: Path, before: dict) -> None:
    after = tree_digest(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the input dataset {root} was modified: {changed[:10]}"


@pytest.fixture
def input_guard():
    """``guard(bids_dir)``: fail the test if anything in ``bids_dir`` (paths, contents,
    permission bits) differs at its end from when it was guarded."""
    guarded: list[tuple[Path, dict]] = []

    def guard(root: Path) -> Path:
        guarded.append((Path(root), tree_digest(Path(root))))
        return Path(root)

    yield guard
    for root, before in guarded:
        assert_tree_unchanged(root, before)


#: the shared demo dataset's digest, taken right after it was built
_BUILT: dict[Path, dict] = {}


@pytest.fixture(scope="session")
def shared_demo_bids(tmp_path_factory) -> Path:
    """The small demo dataset (2 subjects, 64 volumes, seed 3) of the container, SLURM and
    fault tests: built once per test session, only read (every test that uses it fails if
    it changed since it was built)."""
    root = demo_dataset(tmp_path_factory)
    _BUILT[root] = tree_digest(root)
    return root


@pytest.fixture(autouse=True)
def _shared_demo_unchanged(request):
    """After each test that used the shared demo dataset, check that nothing in it changed
    (the CLI must never write into its input)."""
    yield
    if "shared_demo_bids" in request.fixturenames:
        root = request.getfixturevalue("shared_demo_bids")
        assert_tree_unchanged(root, _BUILT[root])


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind():
    """At the end of the session, no process the tests started is still running: neither
    a child of pytest (a bids-dfc run, a worker) nor a SLURM daemon, job step or conmon this
    session started (another xdist worker's are its own business). Leftovers are killed (so
    CI does not hang) and fail the session."""
    from bids_dfc.cli.signals import descendants, running, stop_process_tree

    before = daemon_pids()
    yield
    deadline = time.monotonic() + 10  # a process that is just ending gets time to end
    while True:
        alive = [p for p in descendants() if running(p) and p not in _own_helpers()]
        daemons = [p for p in daemon_pids() - before if running(p) and started_here(p)]
        if not (alive or daemons) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    left = [f"{pid} {_cmdline(pid)}" for pid in alive + daemons]  # named before they end
    if alive:
        stop_process_tree()
    for pid in daemons:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"processes left behind by the tests: {left}"


def _own_helpers() -> set[int]:
    """The pytest process's own multiprocessing helpers (resource tracker, fork server):
    started by any in-process use of multiprocessing, they read a pipe from this process
    and end when it exits, so they are not left behind by a test."""
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    pids = {
        getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None),
        getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None),
    }
    return {pid for pid in pids if pid}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def pytest_collection_modifyitems(config, items):
    """Longest modules first (SLURM, container, then the other slow ones), each module's
    tests kept together and in their order: with ``make test``'s two workers the long
    modules start at once instead of forming the tail of the run."""
    def rank(item) -> int:
        marks = {m.name for m in item.iter_markers()}
        return 0 if "slurm" in marks else 1 if "container" in marks else 2 if "slow" in marks \
            else 3

    first = {}
    for item in items:
        first.setdefault(item.module.__name__, rank(item))
    items.sort(key=lambda item: first[item.module.__name__])
