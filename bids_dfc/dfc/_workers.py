"""Chunks of pairs on worker processes (the pairwise DCC fit with ``n_jobs > 1``).

The fit is a long sequence of small numpy operations, so threads wait on each other for the
interpreter (2 threads: 1.3-1.5x one); processes do not (about 1.9x; benchmarks/bench_dcc.py).
The workers are forked: the standardised residuals and the per-region grid are inherited,
not copied, and only the chunk bounds go out and the per-pair results come back.

Each chunk is fitted by the same function in a worker as in the calling process and every
pair follows its own path, so the results are the same bits whatever the number of
workers (tests/test_dfc_dcc.py).

Stopping: a worker ignores SIGINT (Ctrl-C reaches the whole process group: the caller
decides) and dies on SIGTERM; an exception in the caller while it waits (its progress
callback raising on a signal, say) terminates every worker before it propagates; a worker
whose parent dies is killed by the kernel (``PR_SET_PDEATHSIG`` on Linux).
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: what the forked workers inherit: the chunk function and its fixed arguments
_TASK: dict[str, Any] = {}


def can_fork() -> bool:
    """Worker processes are possible here: a ``fork`` start method, and this process is not a
    daemon (multiprocessing's own workers, nipype's MultiProc, may not have children)."""
    return "fork" in mp.get_all_start_methods() and not mp.current_process().daemon


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent ends (no orphans after a kill -9)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next chunk instead of returning it to the kernel
    and faulting it in again (the chunk's MB-sized temporaries): 15 % of a worker's CPU time
    went to the kernel without this, under 1 % with it (same chunks, same machine)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MB of freed heap
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: heap, not mmap, up to 32 MB
    except (OSError, AttributeError):
        pass


def _init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    _keep_freed_memory()


def _run(bounds: tuple[int, int]) -> tuple[tuple[int, int], Any]:
    return bounds, _TASK["fn"](*bounds)


def map_chunks(fn: Callable[[int, int], Any], bounds: Iterable[tuple[int, int]],
               n_jobs: int) -> Iterator[tuple[tuple[int, int], Any]]:
    """``((lo, hi), fn(lo, hi))`` for every chunk, in the order they finish, computed on
    ``n_jobs`` forked processes. ``fn`` must only read what existed before the call (the
    workers see a copy of this process as it was)."""
    bounds = list(bounds)
    _TASK["fn"] = fn
    pool = mp.get_context("fork").Pool(min(n_jobs, len(bounds)), initializer=_init)
    try:
        yield from pool.imap_unordered(_run, bounds)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
        _TASK.clear()
