"""A whole-brain atlas through ``bids-dfc-dcc`` with default options: wall time and memory.

The target of issue 17: a 1,000-region atlas (499,500 pairs, T = 273) in at most 60 s wall
and 4 GB on 2 cores, with defaults (no option but the input and the output prefix).

Each run is the real command in a fresh process (start-up, table reading, both stages,
writing the summary and the matrices). Memory is the whole process tree, sampled every
0.1 s from /proc: the sum of the processes' PSS (proportional set size: pages shared by the
forked workers are counted once, split between them) and, for comparison, the sum of their
RSS (shared pages counted in every process: an upper bound).

The input is simulated (``bench_dcc.simulate``: 3 latent networks with drifting loadings,
GARCH noise) with a fixed seed, written once per run of this script.

Usage: ``python benchmarks/bench_dcc_atlas.py [--runs 3] [--regions 1000]``; prints every
run and the medians and writes ``benchmarks/results/dcc_atlas.tsv``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_dcc import machine, simulate  # noqa: E402

from bids_dfc.cli.signals import descendants  # noqa: E402


def _memory(pids: list[int]) -> tuple[float, float]:
    """(sum of PSS, sum of RSS) in MB of the processes ``pids``."""
    pss = rss = 0.0
    for p in pids:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key == "Pss":
                pss += int(rest.split()[0]) / 1024.0
            elif key == "Rss":
                rss += int(rest.split()[0]) / 1024.0
    return pss, rss


def run_once(table: Path, out_dir: Path) -> dict:
    cmd = [str(Path(sys.executable).with_name("bids-dfc-dcc")), str(table), str(out_dir / "s")]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_pss = peak_rss = 0.0
    n_proc = 0
    while proc.poll() is None:
        pids = [proc.pid, *descendants(proc.pid)]
        n_proc = max(n_proc, len(pids))
        pss, rss = _memory(pids)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"bids-dfc-dcc failed ({proc.returncode}):\n{err}")
    return {"wall_s": wall, "peak_pss_mb": peak_pss, "peak_rss_sum_mb": peak_rss,
            "processes": n_proc, "load_1min": load, "stderr": err, "wrote": out.strip()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--regions", type=int, default=1000)
    parser.add_argument("--timepoints", type=int, default=273)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dcc_atlas.tsv"))
    args = parser.parse_args(argv)
    info = machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {info['cpu']}, {info['n_cpu']} CPUs, {info['ram_gb']} GB RAM; {date}")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / f"r{args.regions}.tsv"
        x = simulate(args.regions, args.timepoints)
        names = [f"R{k:04d}" for k in range(args.regions)]
        lines = ["\t".join(names)] + ["\t".join(f"{v:.6f}" for v in row) for row in x]
        table.write_text("\n".join(lines) + "\n")
        for k in range(args.runs):
            res = run_once(table, Path(tmp) / f"out{k}")
            runs.append(res)
            print(f"run {k + 1}: wall {res['wall_s']:.1f} s, peak PSS {res['peak_pss_mb']:.0f} MB "
                  f"(RSS summed {res['peak_rss_sum_mb']:.0f} MB, {res['processes']} processes), "
                  f"load {res['load_1min']:.2f}")
    print("its stderr (last run):\n" + runs[-1]["stderr"])
    row = {
        "n_regions": args.regions,
        "n_pairs": args.regions * (args.regions - 1) // 2,
        "n_timepoints": args.timepoints,
        "options": "defaults",
        "runs": args.runs,
        "wall_median_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "wall_min_s": round(min(r["wall_s"] for r in runs), 2),
        "wall_max_s": round(max(r["wall_s"] for r in runs), 2),
        "peak_pss_mb_max": round(max(r["peak_pss_mb"] for r in runs)),
        "peak_rss_sum_mb_max": round(max(r["peak_rss_sum_mb"] for r in runs)),
        "processes": max(r["processes"] for r in runs),
        "load_1min_median": round(statistics.median(r["load_1min"] for r in runs), 2),
        "wrote": json.dumps(runs[-1]["wrote"]),
        **{k: info[k] for k in ("cpu", "n_cpu", "ram_gb", "numpy")},
        "date": date,
    }
    print(f"{args.regions} regions ({row['n_pairs']:,} pairs) x {args.timepoints}, defaults: "
          f"wall median {row['wall_median_s']} s (min {row['wall_min_s']}, max "
          f"{row['wall_max_s']}), peak memory {row['peak_pss_mb_max']} MB PSS "
          f"({row['peak_rss_sum_mb_max']} MB RSS summed), load {row['load_1min_median']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\t".join(row) + "\n" + "\t".join(str(v) for v in row.values()) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
