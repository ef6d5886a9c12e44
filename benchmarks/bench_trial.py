"""Benchmark: the whole crossover-trial analysis for 24 participants.

Target (issue 16): under 10 s on 2 cores for 24 participants with 3 diary outcomes x 5
horizons x 2 analyses (30 AUC models), 2 questionnaire scores and 1 binary outcome.

The trial is the demo's simulated one (:func:`bids_dfc.demo.trial.simulate_trial`, 24
participants, 3 periods of 35 days), written as a trial-only BIDS dataset. Two things are
timed, each over several runs after one untimed warm-up (imports, page cache):

* ``analysis``: :func:`bids_dfc.stats.trial.run_trial` on the checked inputs (the models);
* ``group_level``: the whole :func:`bids_dfc.group.run.run_group_level` of the trial-only
  dataset (input checks, models, tables, figures, report, ``group_results.json``), which is
  what a user waits for.

Prints the medians and writes ``benchmarks/results/trial.tsv``.

Usage: ``.venv/bin/python benchmarks/bench_trial.py [--repeats 5] [--participants 24]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _timed(function, repeats):
    function()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        function()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--participants", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from bench_dcc import machine

    from bids_dfc.config import GroupOptions
    from bids_dfc.demo.bids_io import write_trial
    from bids_dfc.demo.trial import simulate_trial
    from bids_dfc.group.run import run_group_level
    from bids_dfc.group.trial_inputs import read_trial
    from bids_dfc.stats.trial import run_trial

    options = GroupOptions()
    ids = [f"sub-{i:02d}" for i in range(1, args.participants + 1)]
    trial = simulate_trial(ids, np.random.default_rng([args.seed, 3]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bids = Path(tmp) / "bids"
        write_trial(bids, trial)
        data = read_trial(bids, reference=options.trial_reference,
                          horizons=options.trial_horizons, n_days=options.trial_days)
        results = run_trial(data, reference=options.trial_reference,
                            horizons=options.trial_horizons)
        n_models = len(results.models)
        n_binary = len(data.binary_outcomes)
        cases = {
            "analysis": lambda: run_trial(data, reference=options.trial_reference,
                                          horizons=options.trial_horizons),
            "group_level": lambda: run_group_level(bids, Path(tmp) / "out", options,
                                                   random_seed=0),
        }
        for case, function in cases.items():
            walls, cpus = _timed(function, args.repeats)
            rows.append((case, walls, cpus))
    info = machine()
    load = os.getloadavg()[0]
    print(f"crossover trial, {args.participants} participants, {n_models} linear mixed "
          f"models, {n_binary} logistic; {info['cpu']}, {info['n_cpu']} CPUs, 1-min load "
          f"{load:.1f}; target < 10 s")
    lines = ["case\tparticipants\tmodels\tbinary\trepeats\tmedian_wall_s\tmin_wall_s\t"
             "max_wall_s\tmedian_cpu_s\tcpu\tn_cpu\tload_avg"]
    for case, walls, cpus in rows:
        med = statistics.median(walls)
        print(f"  {case}: median wall {med:.2f} s (min {min(walls):.2f}, max "
              f"{max(walls):.2f}), median CPU {statistics.median(cpus):.2f} s over "
              f"{len(walls)} runs")
        lines.append(f"{case}\t{args.participants}\t{n_models}\t{n_binary}\t{len(walls)}\t"
                     f"{med:.3f}\t{min(walls):.3f}\t{max(walls):.3f}\t"
                     f"{statistics.median(cpus):.3f}\t{info['cpu']}\t{info['n_cpu']}\t"
                     f"{load:.1f}")
    res = ROOT / "benchmarks" / "results" / "trial.tsv"
    res.write_text("\n".join(lines) + "\n")
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
