"""Start-up cost of ``bids-dfc-dcc``: the whole process on a small table.

A 4-column table (T = 273, simulated as in ``bench_dcc.py``) is written to a temporary
folder and ``bids-dfc-dcc TABLE PREFIX`` (default options: the estimate and progress lines
go to stderr, here not a terminal) is run ``--runs`` times as a fresh process (default 7).
The wall time of each run (process start to exit) is measured; the median, min and max
are printed and appended to ``benchmarks/results/dcc_startup.tsv`` with the machine: CPU
model (``/proc/cpuinfo``), CPUs and the 1-minute load. The import alone is timed the same
way (``python -c "import bids_dfc.cli.dcc"``), and the cumulative import times of numpy,
scipy, pandas, tqdm and the package (``python -X importtime``) are printed.

Target (issue 17): the whole run at most 0.6 s wall (median).

Usage: ``python benchmarks/bench_dcc_startup.py [--runs 7] [--label after] [--no-write]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "dcc_startup.tsv"
COLUMNS = ("date", "label", "case", "runs", "median_wall_s", "min_wall_s", "max_wall_s",
           "cpu", "n_cpu", "load_1min")
N_T, N_REGIONS = 273, 4


def simulate(n_regions: int, n_t: int, seed: int = 0) -> np.ndarray:
    """Regions driven by 3 latent networks plus GARCH-like noise (as in bench_dcc.py)."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n_t, 3))
    load = rng.uniform(-0.8, 0.8, (n_regions, 3))
    noise = np.empty((n_t, n_regions))
    h = np.ones(n_regions)
    alpha, beta = rng.uniform(0.0, 0.15, n_regions), rng.uniform(0.0, 0.8, n_regions)
    for k in range(n_t):
        noise[k] = np.sqrt(h) * rng.standard_normal(n_regions)
        h = 1.0 - alpha - beta + alpha * noise[k] ** 2 + beta * h
    return 1000.0 + 10.0 * (factors @ load.T + noise)


def write_table(path: Path) -> None:
    x = simulate(N_REGIONS, N_T)
    header = "\t".join(f"R{j + 1}" for j in range(N_REGIONS))
    np.savetxt(path, x, fmt="%.6f", delimiter="\t", header=header, comments="")


def command_path() -> str:
    """The console script next to this interpreter (the project's venv), else on PATH."""
    local = Path(sys.executable).parent / "bids-dfc-dcc"
    return str(local) if local.exists() else (shutil.which("bids-dfc-dcc") or "bids-dfc-dcc")


def wall_times(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def machine() -> tuple[str, int, float]:
    from bids_dfc.cli.resources import cpu_model

    return cpu_model(), os.cpu_count() or 1, os.getloadavg()[0]


#: the imports whose cumulative time is reported (``-X importtime``)
WATCHED = ("bids_dfc.cli.dcc", "bids_dfc.dfc", "numpy", "scipy", "scipy.signal",
           "scipy.optimize", "pandas", "tqdm")


def import_times() -> dict[str, float | None]:
    """Cumulative import seconds of :data:`WATCHED` (None: not imported) by
    ``import bids_dfc.cli.dcc`` in a fresh interpreter (``python -X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import bids_dfc.cli.dcc"],
                          capture_output=True, text=True, check=True)
    found: dict[str, float | None] = dict.fromkeys(WATCHED)
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        name = parts[-1].strip()
        if len(parts) == 3 and name in found and parts[1].strip().isdigit():
            found[name] = int(parts[1]) / 1e6
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--label", default="", help="a word for the row (e.g. before/after)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "table.tsv"
        write_table(table)
        run = [command_path(), str(table), str(Path(tmp) / "out" / "sub-01")]
        cases = {
            "whole_run": wall_times(run, args.runs),
            "import_only": wall_times([sys.executable, "-c", "import bids_dfc.cli.dcc"],
                                      args.runs),
        }
    cpu, n_cpu, load = machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for case, times in cases.items():
        rows.append((date, args.label or "-", case, str(args.runs),
                     f"{statistics.median(times):.3f}", f"{min(times):.3f}",
                     f"{max(times):.3f}", cpu, str(n_cpu), f"{load:.2f}"))
        print(f"{case}: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
              f"max {max(times):.3f} s over {args.runs} runs (target for whole_run: 0.6 s)")
    print(f"machine: {cpu}, {n_cpu} CPUs, 1-minute load {load:.2f}")
    print("imports of `import bids_dfc.cli.dcc` (cumulative s, python -X importtime):")
    for name, seconds in import_times().items():
        print(f"  {name:18s} {'not imported' if seconds is None else f'{seconds:.3f}'}")
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        new = not RESULTS.exists()
        with RESULTS.open("a", encoding="utf-8") as fh:
            if new:
                fh.write("\t".join(COLUMNS) + "\n")
            fh.writelines("\t".join(row) + "\n" for row in rows)
        print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
