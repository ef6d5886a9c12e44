"""Benchmark: the up-front input check of a participant run on the 12-subject demo dataset.

Target (issue 14): "finishing in seconds". Builds the demo dataset ``make demo`` uses
(12 subjects, 277-volume runs, seed 1) unless ``--bids`` names one, then times
:func:`bids_dfc.inputs.preflight.preflight` (every image read and checked, the seeds, the
resources; the npm BIDS validator left out: ``--with-validator`` adds it) in this process,
after one untimed warm-up run that fills the page cache and imports.

Prints the median of several runs and writes ``benchmarks/results/preflight.tsv``.

Usage: ``.venv/bin/python benchmarks/bench_preflight.py [--repeats 5] [--bids DIR]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bids", type=Path, help="an existing dataset (default: build one)")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--with-validator", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("NIPYPE_NO_ET", "1")
    from bids_dfc.cli.parser import parse_args
    from bids_dfc.demo import make_demo_dataset
    from bids_dfc.inputs.preflight import preflight

    with tempfile.TemporaryDirectory() as tmp:
        bids = args.bids
        if bids is None:
            bids = Path(tmp) / "bids"
            make_demo_dataset(bids, n_subjects=12, seed=1)
        argv = [str(bids), str(Path(tmp) / "out"), "participant", "-w",
                str(Path(tmp) / "work"), "--nprocs", str(args.nprocs)]
        config = parse_args(argv + ([] if args.with_validator else ["--skip-bids-validation"]))
        subjects = preflight(config)  # warm-up
        n_runs = sum(len(s.bold) for s in subjects)
        walls, cpus = [], []
        for _ in range(args.repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            preflight(config)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    load = os.getloadavg()[0]
    med = statistics.median(walls)
    print(f"preflight, {len(subjects)} subjects, {n_runs} BOLD runs, --nprocs {args.nprocs}: "
          f"median wall {med:.2f} s (min {min(walls):.2f}, max {max(walls):.2f}), median CPU "
          f"{statistics.median(cpus):.2f} s over {len(walls)} runs; 1-min load {load:.1f} on "
          f"{os.cpu_count()} CPUs; target: seconds")
    res = ROOT / "benchmarks" / "results" / "preflight.tsv"
    res.write_text(
        "case\tn_subjects\tn_runs\tnprocs\trepeats\tmedian_wall_s\tmin_wall_s\tmax_wall_s\t"
        "median_cpu_s\tcpus\tload_avg\n"
        f"{'with_validator' if args.with_validator else 'no_validator'}\t{len(subjects)}\t"
        f"{n_runs}\t{args.nprocs}\t{len(walls)}\t{med:.3f}\t{min(walls):.3f}\t"
        f"{max(walls):.3f}\t{statistics.median(cpus):.3f}\t{os.cpu_count()}\t{load:.1f}\n")
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
