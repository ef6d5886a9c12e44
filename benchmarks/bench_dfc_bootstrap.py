"""Cost of the parametric bootstrap of the dFC SD (``--dfc-bootstrap``) for the study's seeds.

The case is the 4-seed run: 4 series (``bench_dcc.simulate``: latent networks with drifting
loadings, GARCH noise), 6 pairs, T = 273. Each run, in a fresh subprocess, times the run's
own DCC (``fit_garch`` + pairwise ``dcc``: what the participant level does without the
option) and then ``bootstrap_dfc_sd`` of that fit with B replicates per pair (B x 6
simulated pairs, 2 x B x 6 GARCH refits and B x 6 DCC refits), and reports both and their
ratio. The script writes ``benchmarks/results/dfc_bootstrap.tsv`` (medians over ``--runs``
runs, min/max, CPU time, peak memory, machine load, CPU model, date).

Usage: ``python benchmarks/bench_dfc_bootstrap.py [--runs 3] [--n-boot 200,1000] [--n-jobs 1]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_dcc import machine, simulate  # noqa: E402

N_SEEDS, N_T = 4, 273


def worker(n_boot: int, n_jobs: int) -> None:
    from bids_dfc.dfc import bootstrap_dfc_sd, dcc, fit_garch

    x = simulate(N_SEEDS, N_T)
    load0 = os.getloadavg()[0]
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    fit = dcc(x, garch=fit_garch(x))
    t1 = time.perf_counter()
    boot = bootstrap_dfc_sd(fit, n_boot=n_boot, seed=0, n_jobs=n_jobs)
    t2 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "dcc_s": t1 - t0, "boot_s": t2 - t1,
        "cpu_s": usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024.0, "load_1min": load0,
        "n_pairs": len(fit.pairs), "used_frac": float(boot.n_used.sum() / boot.sd.size),
    }))


def _row(n_boot, n_jobs, runs, info, date) -> dict:
    dcc_s = [r["dcc_s"] for r in runs]
    boot_s = [r["boot_s"] for r in runs]
    ratio = [r["boot_s"] / r["dcc_s"] for r in runs]
    return {
        "case": "seeds", "n_series": N_SEEDS, "n_pairs": runs[0]["n_pairs"],
        "n_timepoints": N_T, "n_boot": n_boot, "n_jobs": n_jobs, "runs": len(runs),
        "dcc_median_s": round(statistics.median(dcc_s), 3),
        "boot_median_s": round(statistics.median(boot_s), 3),
        "boot_min_s": round(min(boot_s), 3), "boot_max_s": round(max(boot_s), 3),
        "ratio_median": round(statistics.median(ratio), 1),
        "ms_per_replicate_pair": round(1000 * statistics.median(boot_s)
                                       / (n_boot * runs[0]["n_pairs"]), 3),
        "cpu_median_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "peak_mb_max": round(max(r["peak_mb"] for r in runs), 1),
        "used_frac": round(min(r["used_frac"] for r in runs), 4),
        "load_1min_median": round(statistics.median(r["load_1min"] for r in runs), 2),
        "cpu": info["cpu"], "n_cpu": info["n_cpu"], "ram_gb": info["ram_gb"],
        "numpy": info["numpy"], "date": date,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n-boot", default="200,1000")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "dfc_bootstrap.tsv"))
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.n_jobs)
        return 0
    info = machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {info['cpu']}, {info['n_cpu']} CPUs, {info['ram_gb']} GB RAM; {date}")
    rows = []
    for n_boot in (int(b) for b in args.n_boot.split(",")):
        runs = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--worker", str(n_boot),
                                  "--n-jobs", str(args.n_jobs)],
                                 check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        row = _row(n_boot, args.n_jobs, runs, info, date)
        rows.append(row)
        print(f"B = {n_boot}: {row['n_pairs']} pairs, T = {N_T}, {args.n_jobs} thread(s): "
              f"DCC {row['dcc_median_s']} s, bootstrap median {row['boot_median_s']} s "
              f"(min {row['boot_min_s']}, max {row['boot_max_s']}), {row['ratio_median']} x "
              f"the DCC, {row['ms_per_replicate_pair']} ms per replicate pair, peak memory "
              f"{row['peak_mb_max']:.0f} MB, machine load {row['load_1min_median']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = list(rows[0])
    lines = ["\t".join(header)] + ["\t".join(str(r[h]) for h in header) for r in rows]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
