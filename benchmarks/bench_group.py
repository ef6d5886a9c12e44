"""Benchmark: the whole group level for 60 subjects with 5,000 bootstrap resamples.

Target (issue 6): under 10 s on 2 cores, figures and report included. Builds a synthetic
dataset in the participant-level output format (30 controls, 30 patients, one run each,
five seed pairs; ``tests/test_group_workflow.make_group_dataset``), then times

* ``cold``: a fresh Python process importing bids_dfc and running ``run_group_level``
  (what a user waits for), and
* ``warm``: ``run_group_level`` again inside one process (the computation alone).

Prints the median of several runs and writes ``benchmarks/results/group.tsv``.

Usage: ``.venv/bin/python benchmarks/bench_group.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

OPTIONS = dict(group_column="group", control_label="HC", responder_label="R",
               nonresponder_label="NR", outcome=None, predictor=None, covariates=[],
               relief_from=("pain_pre", "pain_post"), responder_threshold=30.0,
               tsp_columns="tsp_*", max_mean_fd=0.5, n_boot=5000, all_pairs=True,
               pair=("DMN", "DeS"))

SNIPPET = """
import types
from bids_dfc.group.run import run_group_level
run_group_level({bids!r}, {out!r}, types.SimpleNamespace(**{options!r}), random_seed=1)
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
           "MKL_NUM_THREADS": "2", "MPLBACKEND": "Agg"}
    os.environ.update({k: env[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    from test_group_workflow import make_group_dataset

    from bids_dfc.group.run import run_group_level

    with tempfile.TemporaryDirectory() as tmp:
        bids, out, _ = make_group_dataset(tmp, n_hc=30, n_patients=30, seed=1, runs_for=(),
                                          high_fd=())
        cold, cold_cpu = [], []
        for _ in range(args.repeats):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            code = SNIPPET.format(bids=str(bids), out=str(out), options=OPTIONS)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT,
                           capture_output=True)
            cold.append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cold_cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        warm, warm_cpu = [], []
        for _ in range(args.repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            run_group_level(bids, out, SimpleNamespace(**OPTIONS), random_seed=1)
            warm.append(time.perf_counter() - t0)
            warm_cpu.append(time.process_time() - c0)
    rows = [("cold_process", cold, cold_cpu), ("warm_in_process", warm, warm_cpu)]
    load = os.getloadavg()[0]
    print(f"1-min load average at the end: {load:.1f} on {os.cpu_count()} CPUs")
    lines = ["case\tn_subjects\tn_boot\trepeats\tmedian_wall_s\tmin_wall_s\tmax_wall_s\t"
             "median_cpu_s\tcpus\tload_avg"]
    for name, times, cpu in rows:
        med = statistics.median(times)
        print(f"{name}: median wall {med:.2f} s (min {min(times):.2f}, max {max(times):.2f}), "
              f"median CPU {statistics.median(cpu):.2f} s over {len(times)} runs; "
              "60 subjects, 5000 resamples; target < 10 s")
        lines.append(f"{name}\t60\t5000\t{len(times)}\t{med:.3f}\t{min(times):.3f}\t"
                     f"{max(times):.3f}\t{statistics.median(cpu):.3f}\t{os.cpu_count()}\t"
                     f"{load:.1f}")
    res = ROOT / "benchmarks" / "results" / "group.tsv"
    res.parent.mkdir(parents=True, exist_ok=True)
    res.write_text("\n".join(lines) + "\n")
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
