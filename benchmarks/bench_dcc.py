"""Speed and memory of the DCC engine (both stages: GARCH(1,1) per region + DCC per pair).

Cases
-----
* ``seeds``: the default 4-seed case (4 series, 6 pairs, T = 273).
* ``atlas400``: a 400-region atlas (79,800 pairs, T = 273), 2 worker processes.

Each run happens in a fresh subprocess so that its peak resident memory (``ru_maxrss``)
is its own; CPU time includes the worker processes, and the largest worker's peak is
reported beside the main process's (``bench_dcc_atlas.py`` sums the whole tree). The
script prints pairs/second, wall time and peak memory, and writes
``benchmarks/results/dcc.tsv`` (medians over ``--runs`` runs, plus min/max).

Usage: ``python benchmarks/bench_dcc.py [--runs 3] [--cases seeds,atlas400]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CASES = {
    "seeds": {"n_regions": 4, "n_t": 273, "n_jobs": 1},
    "atlas400": {"n_regions": 400, "n_t": 273, "n_jobs": 2},
}


def simulate(n_regions, n_t, seed=0):
    """Regions driven by 3 latent networks with slowly drifting loadings, GARCH noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_t)
    factors = rng.standard_normal((n_t, 3))
    base = rng.uniform(-0.8, 0.8, (n_regions, 3))
    drift = rng.uniform(0.0, 0.6, (n_regions, 3))
    phase = rng.uniform(0, 2 * np.pi, (n_regions, 3))
    period = rng.uniform(40, 200, (n_regions, 3))
    load = base[None] + drift[None] * np.sin(2 * np.pi * t[:, None, None] / period + phase)
    signal = np.einsum("tk,tnk->tn", factors, load)
    noise = np.empty((n_t, n_regions))
    h = np.ones(n_regions)
    alpha = rng.uniform(0.0, 0.15, n_regions)
    beta = rng.uniform(0.0, 0.8, n_regions)
    omega = 1.0 - alpha - beta
    for k in range(n_t):
        noise[k] = np.sqrt(h) * rng.standard_normal(n_regions)
        h = omega + alpha * noise[k] ** 2 + beta * h
    return 1000.0 + 10.0 * (signal + noise)


def worker(case):
    from bids_dfc.dfc import dcc, fit_garch

    spec = CASES[case]
    x = simulate(spec["n_regions"], spec["n_t"])
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage0.ru_utime + usage0.ru_stime
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    garch = fit_garch(x)
    t1 = time.perf_counter()
    res = dcc(x, garch=garch, n_jobs=spec["n_jobs"])
    t2 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker processes, joined
    peak_mb = usage.ru_maxrss / 1024.0
    peak_worker_mb = kids.ru_maxrss / 1024.0
    cpu_s = usage.ru_utime + usage.ru_stime - cpu0 + kids.ru_utime + kids.ru_stime
    print(
        json.dumps(
            {
                "wall_s": t2 - t0,
                "garch_s": t1 - t0,
                "dcc_s": t2 - t1,
                "peak_mb": peak_mb,
                "peak_worker_mb": peak_worker_mb,
                "cpu_s": cpu_s,
                "load_1min": load0,
                "n_pairs": len(res.pairs),
                "converged": float(np.mean(res.converged)),
                "a_zero": float(np.mean(res.a == 0)),
                "mean_newton_iter": float(np.mean(res.n_iter)),
            }
        )
    )


def machine():
    from bids_dfc.cli.resources import cpu_model

    cpu = cpu_model()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return {
        "cpu": cpu,
        "n_cpu": os.cpu_count(),
        "ram_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default="seeds,atlas400")
    parser.add_argument("--worker", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dcc.tsv"))
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    info = machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {info['cpu']}, {info['n_cpu']} CPUs, {info['ram_gb']} GB RAM; {date}")
    rows = []
    for case in args.cases.split(","):
        spec = CASES[case]
        runs = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", case],
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        walls = [r["wall_s"] for r in runs]
        med = statistics.median(walls)
        row = {
            "case": case,
            "n_regions": spec["n_regions"],
            "n_pairs": runs[0]["n_pairs"],
            "n_timepoints": spec["n_t"],
            "n_jobs": spec["n_jobs"],
            "runs": args.runs,
            "wall_median_s": round(med, 3),
            "wall_min_s": round(min(walls), 3),
            "wall_max_s": round(max(walls), 3),
            "garch_median_s": round(statistics.median(r["garch_s"] for r in runs), 3),
            "dcc_median_s": round(statistics.median(r["dcc_s"] for r in runs), 3),
            "pairs_per_s": round(runs[0]["n_pairs"] / med, 1),
            "cpu_median_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
            "load_1min_median": round(statistics.median(r["load_1min"] for r in runs), 2),
            "peak_mb_max": round(max(r["peak_mb"] for r in runs), 1),
            "peak_worker_mb_max": round(max(r["peak_worker_mb"] for r in runs), 1),
            "converged_frac": runs[0]["converged"],
            "a_zero_frac": round(runs[0]["a_zero"], 4),
            "mean_newton_iter": round(runs[0]["mean_newton_iter"], 2),
            "cpu": info["cpu"],
            "n_cpu": info["n_cpu"],
            "ram_gb": info["ram_gb"],
            "numpy": info["numpy"],
            "date": date,
        }
        rows.append(row)
        print(
            f"{case}: {row['n_pairs']} pairs, T={spec['n_t']}, {spec['n_jobs']} process(es): "
            f"wall median {med:.3f} s (min {min(walls):.3f}, max {max(walls):.3f}; "
            f"GARCH {row['garch_median_s']} s), {row['pairs_per_s']} pairs/s, "
            f"CPU {row['cpu_median_s']} s (workers included), peak memory "
            f"{row['peak_mb_max']:.0f} MB (largest worker {row['peak_worker_mb_max']:.0f} MB), "
            f"machine load {row['load_1min_median']}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = list(rows[0])
    lines = ["\t".join(header)] + ["\t".join(str(r[h]) for h in header) for r in rows]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
