"""Worker processes for steps that must run antspyx single-threaded in a fresh process."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any


@contextmanager
def unguarded_main_hidden() -> Iterator[None]:
    """Keep spawned workers from re-running the parent's ``__main__`` script.

    A spawned worker re-imports the parent's main module (by ``__spec__`` or ``__file__``).
    nipype's SLURM plugin runs every node from a generated script with no
    ``if __name__ == "__main__"`` guard, so the workers would run the node again and the pool
    breaks. The workers only need importable bids_dfc functions, so the main module is hidden
    while they start.
    """
    # Any: None only when there is no __main__, and then nothing is saved or touched
    main: Any = sys.modules.get("__main__")
    saved = {key: getattr(main, key) for key in ("__file__", "__spec__") if hasattr(main, key)}
    if "__file__" in saved:
        del main.__file__
    if "__spec__" in saved:
        main.__spec__ = None  # multiprocessing reads it, so it must exist
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)


@contextmanager
def spawn_pool(max_workers: int, initializer: Callable[..., object] | None = None,
               initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """A ``spawn`` process pool that also works under nipype's SLURM job scripts.

    Fresh (spawned, not forked) processes are used because ITK fixes its thread count at a
    process's first antspyx call: the workers start single-threaded whatever the parent did.
    """
    with unguarded_main_hidden(), ProcessPoolExecutor(
        max_workers=max_workers, mp_context=get_context("spawn"), initializer=initializer,
        initargs=initargs,
    ) as pool:
        yield pool
