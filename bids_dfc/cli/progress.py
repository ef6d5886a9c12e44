"""Progress of a participant run: which subject, which step, how far, how long.

nipype calls :meth:`ParticipantProgress.__call__` (its plugins' ``status_callback``) when a
step starts, ends or fails. On a terminal a tqdm bar per run shows steps done/total and the
step that started last; otherwise (a log file, a SLURM output file) one plain line per
started step, without carriage returns::

    sub-03  14/57  bold_wf: motion_correct  1m12s

``--quiet`` turns both off.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import IO, Any

from tqdm import tqdm

_SUBJECT = re.compile(r"(?:^|\.)sub_([A-Za-z0-9]+)_wf(?:\.|$)")


def _subject(fullname: str) -> str:
    found = _SUBJECT.search(fullname)
    return f"sub-{found.group(1)}" if found else "all"


def _step(node: Any) -> str:
    """``<workflow>: <node>``: the node and the (sub)workflow that holds it."""
    parts = node.fullname.split(".")
    owner = next((p for p in reversed(parts[:-1]) if not p.startswith("sub_")), "")
    return f"{owner}: {parts[-1]}" if owner and not owner.startswith("bids_dfc") else parts[-1]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ParticipantProgress:
    """nipype ``status_callback``: counts steps per subject over the run's graph."""

    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.plain = not self.stream.isatty()
        self.start = time.monotonic()
        self.total: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.bars: dict[str, tqdm] = {}
        self.lock = threading.Lock()

    def __getstate__(self) -> dict:
        """nipype pickles its plugin arguments with some steps: a copy in a worker process
        keeps quiet (the stream, bars and lock stay with the run's process)."""
        return {"quiet": True}

    def __setstate__(self, state: dict) -> None:
        self.__init__(quiet=True)  # type: ignore[misc]

    def set_graph(self, nodes: list[Any]) -> None:
        """Count the steps of each subject (the flattened execution graph's nodes)."""
        for node in nodes:
            key = _subject(node.fullname)
            self.total[key] = self.total.get(key, 0) + 1
            self.done.setdefault(key, 0)

    def __call__(self, node: Any, status: str) -> None:
        if self.quiet:
            return
        key = _subject(node.fullname)
        with self.lock:
            if status in ("end", "exception"):
                self.done[key] = self.done.get(key, 0) + 1
            total = self.total.get(key) or "?"
            line = (f"{key}  {self.done.get(key, 0)}/{total}  {_step(node)}"
                    f"{'  FAILED' if status == 'exception' else ''}  "
                    f"{_clock(time.monotonic() - self.start)}")
            if self.plain:
                if status != "end":
                    print(line, file=self.stream, flush=True)
                return
            bar = self.bars.get(key)
            if bar is None:
                bar = self.bars[key] = tqdm(total=self.total.get(key), desc=key,
                                            file=self.stream, position=len(self.bars),
                                            leave=True, unit="step", dynamic_ncols=True)
            if status in ("end", "exception"):
                bar.update(1)
            bar.set_postfix_str(_step(node), refresh=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
