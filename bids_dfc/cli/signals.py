"""Stopping cleanly on SIGTERM (SLURM's scancel and time limits, ``docker stop``) and SIGINT.

:func:`stop_on_signals` turns the first SIGTERM or SIGINT into :class:`Interrupted` in the
main thread; the caller then ends every process it started with :func:`stop_process_tree`
(nipype's MultiProc workers and anything they run) before exiting with 128 + the signal
number (143 for SIGTERM, 130 for SIGINT). A second signal ends the process at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: how long the workers get to end after SIGTERM before they are killed
GRACE_S = 3.0
#: delay of a signal delivered again because its exception was lost (see stop_on_signals)
REDELIVER_S = 0.01


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; ``exit_code`` is 128 + the signal number.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way up
    swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def _raise(signum: int) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_on_signals(on_signal: Callable[[int], None] = _raise) -> Iterator[None]:
    """The first SIGTERM/SIGINT calls ``on_signal(signum)`` in the main thread (default:
    raise :class:`Interrupted`; a caller may defer that while it finishes a rename); a
    second one ends the process at once. Ignored signals stay ignored (as under ``nohup``);
    the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    lost: list[int] = []
    in_hook: list[bool] = []
    timers: list[threading.Timer] = []
    previous_hook = sys.unraisablehook

    def redeliver(signum: int) -> None:
        timer = threading.Timer(REDELIVER_S, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timers.append(timer)
        timer.start()

    def handler(signum: int, frame: object) -> None:
        if in_hook:  # not inside the hook either: a little later
            redeliver(signum)
            return
        if lost:  # the first signal again: its exception was lost (below)
            lost.clear()
        elif seen:  # a second signal: stop now
            os._exit(128 + signum)
        else:
            seen.append(signum)
        on_signal(signum)

    def unraisable(info) -> None:  # type: ignore[no-untyped-def]
        # Python runs a signal handler between any two bytecodes, also inside a weakref
        # callback or a __del__ (the import system's module-lock callback, a closing file),
        # where an exception cannot propagate: it is printed ("Exception ignored in") and
        # dropped, and the run would go on. Deliver the signal once more instead, from a
        # timer: its handler runs again once the callback has returned.
        if not isinstance(info.exc_value, Interrupted):
            previous_hook(info)
            return
        in_hook.append(True)
        try:
            lost.append(info.exc_value.signum)
            redeliver(info.exc_value.signum)
        finally:
            in_hook.clear()

    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            old[sig] = signal.signal(sig, handler)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for sig, prev in old.items():
            signal.signal(sig, prev)
    if lost:  # the block ended before the timer delivered the lost signal (a loaded
        for timer in timers:  # machine): it still stops the run, now, and only once
            timer.cancel()
        on_signal(lost[0])


def _children() -> dict[int, list[int]]:
    """Parent PID -> child PIDs of every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int | None = None) -> list[int]:
    """Every process started (directly or not) by ``pid`` (default: this process)."""
    tree, todo, found = _children(), [pid or os.getpid()], []
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has: its parent reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; its parent reaps it


def stop_process_tree(grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM every descendant, SIGKILL those still running after ``grace_s``; reap them.
    Returns the PIDs that had to be killed."""
    pids = descendants()
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(map(running, pids)):
        time.sleep(0.05)
    # anything they started meanwhile, and whoever ignored SIGTERM
    stubborn = [p for p in {*pids, *descendants()} if running(p)]
    _signal_all(stubborn, signal.SIGKILL)
    for pid in pids + stubborn:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our direct child, or already reaped
            pass
    return stubborn
