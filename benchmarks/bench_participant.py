"""Whole participant level on one full-size demo subject: wall time and peak memory.

The study's acquisition (METHOD.md): T1w 1 mm 256x256x180, BOLD 64x64x36 x 277 volumes,
TR 2 s. The target (issue 4) is at most 8 minutes wall and 4 GB peak memory with
``--nprocs 2``. Peak memory is the largest *sum* of the resident memory of the ``bids-dfc``
process and all its children (MultiProc workers, their antspyx threads), sampled every 0.2 s
from /proc: what a cluster job's memory limit sees.

Usage::

    python benchmarks/bench_participant.py [--repeats 3] [--sloppy] [--keep DIR]

Each repeat starts from an empty work directory. Prints the figures and writes
``benchmarks/results/participant.tsv``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "participant.tsv"


def _children(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            kids = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        stack.extend(int(k) for k in kids)
    return found


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str], cwd: Path | None = None) -> dict:
    """Run ``cmd`` (in ``cwd``); return wall time, peak tree RSS and the tree's CPU seconds."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=cwd)
    peak, cpu = 0, {}
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            pids = _children(proc.pid)
            peak = max(peak, sum(_rss_bytes(p) for p in pids))
            for p in pids:
                cpu[p] = max(cpu.get(p, 0.0), _cpu_seconds(p))
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    output, _ = proc.communicate()
    stop.set()
    thread.join()
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}):\n{output[-3000:]}")
    return {"wall_s": wall, "peak_gb": peak / 1e9, "cpu_s": sum(cpu.values())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sloppy", action="store_true", help="time the --sloppy mode instead")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the data and outputs here")
    args = parser.parse_args(argv)

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_participant_"))
    bids = root / "bids"
    if not (bids / "dataset_description.json").exists():
        from bids_dfc.demo import make_demo_dataset

        make_demo_dataset(bids, n_subjects=1, seed=11, full_size=True, overwrite=True)
    exe = str(Path(sys.executable).with_name("bids-dfc"))
    rows = []
    for i in range(args.repeats):
        out, work = root / f"out{i}", root / f"work{i}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        cmd = [exe, str(bids), str(out), "participant", "--nprocs", str(args.nprocs),
               "-w", str(work), "--skip-bids-validation"]  # fmt: skip
        if args.sloppy:
            cmd.append("--sloppy")
        load = os.getloadavg()[0]
        figures = run_measured(cmd)
        figures["load_before"] = load
        rows.append(figures)
        print(f"run {i + 1}: wall {figures['wall_s']:.0f} s, peak {figures['peak_gb']:.2f} GB, "
              f"CPU {figures['cpu_s']:.0f} s (load average before: {load:.1f})", flush=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    wall = statistics.median(r["wall_s"] for r in rows)
    peak = max(r["peak_gb"] for r in rows)
    cpu = statistics.median(r["cpu_s"] for r in rows)
    mode = "sloppy" if args.sloppy else "default"
    print(f"\nfull-size subject (T1w 256x256x180 1 mm, BOLD 64x64x36x277), --nprocs "
          f"{args.nprocs}, {mode} mode: median wall {wall:.0f} s ({wall / 60:.1f} min), "
          f"max peak memory {peak:.2f} GB, median CPU {cpu:.0f} s over {len(rows)} runs")
    print("targets: <= 480 s wall, <= 4 GB peak")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    header = ("date\tmode\tnprocs\trepeats\tmedian_wall_s\tmax_peak_gb\tmedian_cpu_s\tloads\t"
              "machine\n")
    new = not RESULTS.exists()
    with RESULTS.open("a") as fobj:
        if new:
            fobj.write(header)
        loads = ",".join(f"{r['load_before']:.1f}" for r in rows)
        fobj.write(f"{time.strftime('%Y-%m-%d %H:%M')}\t{mode}\t{args.nprocs}\t{len(rows)}\t"
                   f"{wall:.1f}\t{peak:.2f}\t{cpu:.1f}\t{loads}\t{platform.processor() or ''} "
                   f"{os.cpu_count()} cpus\n")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
