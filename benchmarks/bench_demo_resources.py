"""Benchmark: the disk and memory ``make demo`` needs (issue 15: "disk and memory a
participant run and make demo need, measured").

Runs ``make demo`` in a clone folder (``--clone``, default the checkout itself) and, every
0.2 s, sums the resident memory (RSS) of the whole process tree (make, bids-dfc, its
MultiProc workers; ``bench_participant.run_measured``); prints and writes the peak, the
wall time, and the size on disk of the demo's input dataset, derivatives and work folder
afterwards (``du``, 1 KiB blocks). The per-participant figure is derivatives plus work
folder divided by the 12 demo subjects.

Writes ``benchmarks/results/demo_resources.tsv``.

Usage: ``python benchmarks/bench_demo_resources.py [--clone DIR]`` (one run: it takes
about 15 minutes on 2 cores; memory and disk do not depend on the machine's load).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench_dcc import machine
from bench_participant import run_measured

ROOT = Path(__file__).resolve().parents[1]


def _du_kib(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    clone = args.clone.resolve()
    figures = run_measured(["make", "demo"], cwd=clone)  # exits with the log if it fails
    demo = clone / "demo_out"
    sizes = {name: _du_kib(demo / name) for name in ("bids", "derivatives", "work")}
    sizes["total"] = _du_kib(demo)
    rows = [("peak_rss_gib", f"{figures['peak_gb'] * 1e9 / 2**30:.2f}"),
            ("wall_s", f"{figures['wall_s']:.0f}")]
    rows += [(f"disk_{name}_gib", f"{kib / 2**20:.2f}") for name, kib in sizes.items()]
    rows.append(("disk_per_participant_mib",
                 f"{(sizes['derivatives'] + sizes['work']) / 12 / 2**10:.0f}"))
    info = machine()
    rows.append(("machine", f"{info['cpu']}, {info['n_cpu']} CPUs"))
    out = ROOT / "benchmarks" / "results" / "demo_resources.tsv"
    out.parent.mkdir(exist_ok=True)
    out.write_text("measure\tvalue\n" + "".join(f"{k}\t{v}\n" for k, v in rows))
    for key, value in rows:
        print(f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
