"""Before a ``bids-dfc-dcc`` run: where it writes, how much memory and disk it needs, how long
it will take, and whether that fits (refused before any estimation starts when it does not).

The constants were measured on the development machine (2 vCPUs, Intel Xeon, numpy 2.3.5;
benchmarks/results/dcc.tsv and docs/dcc.md, "bids-dfc-dcc", estimate against measurement);
durations scale with the CPU and the load, and the progress line gives the live rate and ETA.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from bids_dfc.cli.resources import usable_cpus
from bids_dfc.errors import InputError
from bids_dfc.io import check_writable

#: DCC pairwise fit (grid + Newton + R_t): CPU seconds per pair and time point, one process
#: (benchmarks/bench_dcc_atlas.py)
DCC_S = 7.5e-7
#: GARCH(1,1) stage: fixed + T x (per time point + per region and time point) seconds (its
#: loops run over time, vectorised over regions; benchmarks: 0.27 s for 4 x 273, 0.79 s
#: for 400 x 273)
GARCH_FIXED_S, GARCH_T_S, GARCH_S = 0.1, 7e-4, 4.8e-6
#: speed-up of n worker processes over one: n ** THREAD_EXPONENT (2 processes: 1.9x)
THREAD_EXPONENT = 0.93
#: joint mode: seconds per time point x region^2 (grid + SLSQP over the N-variate likelihood;
#: measured 1.3e-5 at load 4 for 10 and 40 regions x 300)
JOINT_S = 8e-6
#: sliding window: seconds per pair and time point, whatever the window (measured 9e-8 at
#: load 4: 400 x 273, window 30; 200 x 600, window 60); Pearson: per pair
SLIDING_S, PEARSON_S = 6e-8, 1e-7
#: writing OUTPUT_PREFIX_timeseries.tsv: seconds and bytes per value (``%.10g`` + tab)
WRITE_S, BYTES_PER_VALUE = 3e-7, 14
#: the summary table: bytes on disk and seconds per pair
SUMMARY_BYTES, SUMMARY_S = 160, 4e-6
#: the region x region matrices (sd, mean; 2 per threshold): bytes per pair, both halves
RELMAT_BYTES = 60
#: a time series table larger than this is not written unless asked for (--with-series):
#: 1,000 regions x 273 time points would make 1.9 GB of text, 499,500 columns wide, which
#: takes longer to write than to estimate and which few programs can open; the summary and
#: the matrices hold what is reported from it
SERIES_AUTO_BYTES = 1e9
#: interpreter, numpy and the package, on the high side (peak RSS of a 4-region DCC run:
#: 34 MB without scipy and pandas, 136 MB when the command imported them; joint mode and the
#: sliding window import parts of scipy)
BASE_BYTES = 0.25e9
#: per pair bookkeeping: parameters, summaries, pair lists and names, summary frame
PAIR_BYTES, PAIR_BYTES_SUMMARY_ONLY = 400, 200
#: a pairwise chunk aims at this much work, so that progress and stopping are prompt
CHUNK_TARGET_S = 2.0
#: chunks wanted at least (plain progress prints a line every 10 %); smaller chunks cost
#: more CPU (500 pairs: +20 % against 2,000)
PROGRESS_STEPS = 10
#: values formatted at once when the time series table is written
WRITE_BLOCK = 1_000_000
#: pairs summarised together; batches are multiples of it, so that the summary is computed
#: over the same blocks (same bits) with and without --summary-only, whatever the threads
SUMMARY_BLOCK = 512


@dataclass
class Plan:
    """The size of one run and what it will cost."""

    method: str
    mode: str
    n_t: int
    n_regions: int
    n_jobs: int
    summary_only: bool
    text_bytes: int = 0
    chunk: int = field(init=False)
    batch: int = field(init=False)

    def __post_init__(self) -> None:
        n_p = self.n_pairs
        chunk = int(CHUNK_TARGET_S / (DCC_S * self.n_t))
        chunk = min(chunk, math.ceil(n_p / PROGRESS_STEPS))
        self.chunk = max(64, min(8192, chunk))
        if self.summary_only:  # chunks summarised where they are fitted: whole blocks
            self.chunk = math.ceil(self.chunk / SUMMARY_BLOCK) * SUMMARY_BLOCK
        batch = max(self.chunk, min(self.chunk * self.n_jobs * 8, 32_000_000 // self.n_t))
        self.batch = math.ceil(batch / SUMMARY_BLOCK) * SUMMARY_BLOCK

    @property
    def n_pairs(self) -> int:
        return self.n_regions * (self.n_regions - 1) // 2

    def memory(self, summary_only: bool | None = None) -> float:
        """Peak bytes of the run (``summary_only`` given: of that variant)."""
        only = self.summary_only if summary_only is None else summary_only
        t, n, p = self.n_t, self.n_regions, self.n_pairs
        b = min(self.batch, p)
        need = BASE_BYTES + 2 * self.text_bytes + 16.0 * t * n
        if self.method == "dcc" and self.mode == "joint":
            need += 16 * 8.0 * t * n + 4 * 8.0 * t * n * n
        elif self.method == "dcc":
            need += 16 * 8.0 * t * n + 125 * 4.0 * t * n  # GARCH + the per-region grid
            need += max(1, self.n_jobs) * 12 * 8.0 * t * min(self.chunk, p)
        elif self.method == "sliding-window":
            need += 4 * 8.0 * t * n + 8 * 8.0 * t * min(4096, b)
        else:
            need += 2 * 8.0 * n * n
        held = 0.0 if self.method == "pearson" else 8.0 * t * p
        if not only:
            need += held + WRITE_BLOCK * 60.0
        elif self.method != "dcc" or self.mode == "joint":
            need += 8.0 * t * b  # one batch of series (pairwise DCC: one chunk per worker)
        need += 5 * 8.0 * t * min(SUMMARY_BLOCK, p)  # summary of a block: a copy + temporaries
        return need + p * (PAIR_BYTES_SUMMARY_ONLY if only else PAIR_BYTES)

    def series_bytes(self) -> float:
        """Memory of the T x P time series alone."""
        return 8.0 * self.n_t * self.n_pairs

    def series_text_bytes(self) -> float:
        """Size of OUTPUT_PREFIX_timeseries.tsv."""
        return BYTES_PER_VALUE * self.n_t * self.n_pairs

    def disk(self) -> float:
        series = 0.0 if self.summary_only else self.series_text_bytes()
        return series + (SUMMARY_BYTES + RELMAT_BYTES) * self.n_pairs

    def seconds(self) -> dict[str, float]:
        """Expected duration of each stage."""
        t, n, p = self.n_t, self.n_regions, self.n_pairs
        out = {}
        if self.method == "dcc":
            out["GARCH"] = GARCH_FIXED_S + t * (GARCH_T_S + GARCH_S * n)
            if self.mode == "joint":
                out["DCC"] = JOINT_S * t * n * n
            else:
                threads = min(self.n_jobs, usable_cpus(), math.ceil(p / self.chunk))
                out["DCC"] = DCC_S * t * p / max(1, threads) ** THREAD_EXPONENT
        elif self.method == "sliding-window":
            out["sliding window"] = SLIDING_S * t * p
        else:
            out["Pearson"] = PEARSON_S * p
        out["writing"] = SUMMARY_S * p + (0.0 if self.summary_only else WRITE_S * t * p)
        slow = busy_factor(self.n_jobs)
        return {key: val * slow for key, val in out.items()}


def busy_factor(n_jobs: int) -> float:
    """How much slower than on an idle machine: sqrt((1-minute load + our threads) / CPUs),
    at least 1 (the square root matched the slow-down measured at load 5-6 on 2 CPUs,
    1.7-1.8x: part of that load waits on I/O)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return max(1.0, (load + n_jobs) / usable_cpus()) ** 0.5


def _cgroup_files() -> list[tuple[Path, Path]]:
    """(limit, usage) files of the memory cgroups of this process: v2 from its own cgroup up
    to the root, v1 its memory cgroup and the mount's root (a container's own cgroup)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    files = []
    root = Path("/sys/fs/cgroup")
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":
            folder = root / rel.strip().lstrip("/")
            files += [(d / "memory.max", d / "memory.current")
                      for d in [folder, *folder.parents] if d.is_relative_to(root)]
        elif "memory" in controllers.split(","):
            v1 = root / "memory"
            files += [(d / "memory.limit_in_bytes", d / "memory.usage_in_bytes")
                      for d in (v1 / rel.strip().lstrip("/"), v1)]
    return files


def _cgroup_room() -> float | None:
    """Bytes left under the tightest cgroup memory limit of this process, if any."""
    room = None
    for limit_file, usage_file in _cgroup_files():
        try:
            limit = limit_file.read_text().strip()
            used = int(usage_file.read_text())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # v1 writes a huge number for no limit
            room = min(room if room is not None else math.inf, int(limit) - used)
    return room


def available_memory() -> tuple[float, str]:
    """(bytes, where that figure comes from) this run may use."""
    avail, source = None, ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail, source = int(line.split()[1]) * 1024.0, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
            source = "free physical memory"
        except (ValueError, OSError, AttributeError):
            avail, source = math.inf, "unknown"
    room = _cgroup_room()
    if room is not None and room < avail:
        avail, source = float(room), "this job's cgroup memory limit"
    return avail, source


def size(nbytes: float) -> str:
    if nbytes >= 0.95e9:
        return f"{nbytes / 1e9:.1f} GB"
    return f"{nbytes / 1e6:.0f} MB" if nbytes >= 0.95e6 else f"{nbytes / 1e3:.0f} kB"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def check_fits(plan: Plan, path: Path, budget: float, source: str, folder: Path) -> None:
    """Raise InputError when the run needs more memory than ``budget`` or more disk than is
    free in ``folder``; the message says how much and what to do."""
    need = plan.memory()
    shape = f"{path}: {plan.n_pairs:,} pairs x {plan.n_t} time points"
    if need > budget:
        if plan.summary_only or plan.memory(summary_only=True) > budget:
            todo = "use fewer regions or a machine with more memory"
        else:
            todo = (f"use --summary-only (about {size(plan.memory(summary_only=True))}: only the "
                    "per-pair summary, no time series), fewer regions, or more memory")
        raise InputError(
            f"{shape} need about {size(need)} of memory (the time series alone "
            f"{size(plan.series_bytes())}), more than the {size(budget)} available ({source}); "
            f"{todo}")
    try:
        stat = os.statvfs(folder)
    except OSError:
        return
    free = stat.f_bavail * stat.f_frsize
    if plan.disk() > free:
        todo = "" if plan.summary_only else ", or use --summary-only (no time series file)"
        raise InputError(
            f"{shape}: the outputs need about {size(plan.disk())} of disk space and only "
            f"{size(free)} are free in {folder}; free some space, choose another "
            f"OUTPUT_PREFIX{todo}")


def prepare_folder(folder: Path) -> list[Path]:
    """Make ``folder`` (and missing parents) and prove a file can be written in it.

    Returns the folders created, deepest first (:func:`remove_folders` undoes them when the
    run fails); raises InputError saying which folder cannot be created or written.
    """
    missing = []
    probe = folder
    while not (probe.exists() or probe.is_symlink()) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        check_writable(folder)
    except OSError as err:
        remove_folders(missing)
        if probe.exists() and not probe.is_dir():
            why = f"{probe} is a file, not a folder"
        else:
            why = err.strerror or str(err)
        verb = "created" if missing else "written"
        raise InputError(f"the output folder {folder} cannot be {verb} ({why}); choose another "
                         "OUTPUT_PREFIX or fix the folder's permissions") from None
    return missing


def remove_folders(created: list[Path]) -> None:
    """Remove the folders a failed run created, if they are still empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            break
