"""Benchmark: the disk and memory ``make demo`` needs (issue 15: "disk and memory a
participant run and make demo need, measured").

Runs ``make demo`` in a clone folder (``--clone``, default the checkout itself) and, every
second, sums the resident memory (RSS) of the whole process tree (make, bids-dfc, its
MultiProc workers); prints and writes the peak, the wall time, and the size on disk of the
demo's input dataset, derivatives and work folder afterwards (``du``, 1 KiB blocks). The
per-participant figures are the participant level's, divided by the 12 demo subjects.

Writes ``benchmarks/results/demo_resources.tsv``.

Usage: ``python benchmarks/bench_demo_resources.py [--clone DIR]`` (one run: it takes
about 15 minutes on 2 cores; memory and disk do not depend on the machine's load).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bids_dfc.cli.signals import descendants  # noqa: E402


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _du_kib(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    clone = args.clone.resolve()
    start = time.monotonic()
    proc = subprocess.Popen(["make", "demo"], cwd=clone, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(_rss_kib(p) for p in [proc.pid, *descendants(proc.pid)]))
        time.sleep(1)
    wall = time.monotonic() - start
    if proc.returncode:
        print(proc.stderr.read()[-3000:], file=sys.stderr)
        return proc.returncode
    demo = clone / "demo_out"
    sizes = {name: _du_kib(demo / name) for name in ("bids", "derivatives", "work")}
    sizes["total"] = _du_kib(demo)
    rows = [("peak_rss_gib", f"{peak / 2**20:.2f}"), ("wall_s", f"{wall:.0f}")]
    rows += [(f"disk_{name}_gib", f"{kib / 2**20:.2f}") for name, kib in sizes.items()]
    rows.append(("disk_per_participant_mib",
                 f"{(sizes['derivatives'] + sizes['work']) / 12 / 2**10:.0f}"))
    rows.append(("machine", f"{_cpu()}, {os.cpu_count()} CPUs"))
    out = ROOT / "benchmarks" / "results" / "demo_resources.tsv"
    out.parent.mkdir(exist_ok=True)
    out.write_text("measure\tvalue\n" + "".join(f"{k}\t{v}\n" for k, v in rows))
    for key, value in rows:
        print(f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
