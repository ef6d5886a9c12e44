"""Throughput and memory of bids_dfc on a real single-node SLURM cluster.

Runs N demo participants as the documented array job (``scripts/slurm/submit.sh``, one
participant per task, one CPU each) with 1 and with 2 tasks at a time, and reports

* throughput: participants per hour, from submission until the last task ended;
* the median wall time of one task;
* peak memory of one task: the largest sum, over the task's processes (found by the
  ``SLURM_JOB_ID`` in their environment), of the proportional set size (PSS, so pages shared
  by forked workers count once), sampled every 0.5 s.

With ``--volumes`` it also runs single participants with different numbers of BOLD volumes
(how the participant cost grows with the length of a run). Each configuration is repeated
``--repeats`` times and medians are printed and written, one row per run, to
``benchmarks/results/slurm.tsv``. Needs root and the Debian packages slurmctld, slurmd,
slurm-client and munge.

Usage::

    .venv/bin/python benchmarks/bench_slurm.py --n-subjects 4 --concurrency 1 2 \\
        --volumes 84 154 --repeats 2
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "slurm"
BIN = Path(sys.executable).parent
RESULTS = REPO / "benchmarks" / "results" / "slurm.tsv"
COLUMNS = ["kind", "n_subjects", "n_volumes", "concurrency", "cpus_per_task", "repeat",
           "wall_s", "participants_per_hour", "task_median_s", "peak_pss_mb_max",
           "peak_pss_mb_median", "machine"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JobMemorySampler(threading.Thread):
    """Peak summed PSS (MB) and first/last time seen, per SLURM job ID, from /proc."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval, self.peak, self.seen = interval, {}, {}
        self._halt = threading.Event()

    @staticmethod
    def _job_of(pid: str) -> str | None:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return None
        for item in env:
            if item.startswith(b"SLURM_JOB_ID="):
                return item.split(b"=", 1)[1].decode()
        return None

    @staticmethod
    def _pss_kb(pid: str) -> int:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self) -> None:
        while not self._halt.is_set():
            now, totals = time.monotonic(), {}
            for pid in filter(str.isdigit, os.listdir("/proc")):
                job = self._job_of(pid)
                if job is not None:
                    totals[job] = totals.get(job, 0) + self._pss_kb(pid)
            for job, kb in totals.items():
                self.peak[job] = max(self.peak.get(job, 0), kb / 1024)
                first, _ = self.seen.get(job, (now, now))
                self.seen[job] = (first, now)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _squeue_ids(env) -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True,
                         text=True, check=True).stdout
    return {line.split("_")[0] for line in out.split()}


def run_array(bids: Path, root: Path, env: dict, *, concurrency: int, cpus: int,
              mem_mb: int) -> dict:
    """Submit the participant array (no group level), wait, and measure it."""
    out, work = root / "out", root / "work"
    sampler = JobMemorySampler()
    sampler.start()
    start = time.monotonic()
    submitted = subprocess.run(
        [str(SCRIPTS / "submit.sh"), "--no-group", "--concurrency", str(concurrency),
         "--cpus", str(cpus), "--mem", f"{mem_mb}M", str(bids), str(out), str(work), "--",
         "--sloppy"],
        env=env, capture_output=True, text=True, check=True,
    )
    array_id = submitted.stdout.split("array_job=")[1].split()[0]
    while array_id in _squeue_ids(env):
        time.sleep(1)
    wall = time.monotonic() - start
    sampler.stop()
    states = subprocess.run(["scontrol", "show", "job", array_id], env=env,
                            capture_output=True, text=True).stdout
    failed = states.count("JobState=") - states.count("JobState=COMPLETED")
    if failed:
        logs = "\n".join(p.read_text()[-2000:] for p in (work / "logs").glob("*.log"))
        raise RuntimeError(f"{failed} task(s) of array job {array_id} failed:\n{logs}")
    n_subjects = len((work / "subjects.txt").read_text().split())
    durations = [last - first for first, last in sampler.seen.values()]
    peaks = list(sampler.peak.values())
    return {"n_subjects": n_subjects, "concurrency": concurrency, "cpus_per_task": cpus,
            "wall_s": round(wall, 1),
            "participants_per_hour": round(n_subjects / wall * 3600, 2),
            "task_median_s": round(statistics.median(durations), 1),
            "peak_pss_mb_max": round(max(peaks)), "peak_pss_mb_median":
            round(statistics.median(peaks))}


def make_demo(path: Path, n_subjects: int, n_volumes: int | None, seed: int = 11) -> Path:
    """Generate a demo dataset (once per size)."""
    if not (path / "participants.tsv").exists():
        cmd = [str(BIN / "bids-dfc-demo"), str(path), "--n-subjects", str(n_subjects),
               "--seed", str(seed), "--n-jobs", "2"]
        if n_volumes:
            cmd += ["--n-volumes", str(n_volumes)]
        subprocess.run(cmd, check=True, capture_output=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=4)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus-per-task", type=int, default=1)
    parser.add_argument("--volumes", type=int, nargs="*", default=[],
                        help="also time single participants with these volume counts")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(t)
               and not Path("/usr/sbin", t).exists()]
    if missing or os.geteuid() != 0:
        print(f"needs root and SLURM (missing: {missing or 'root'})", file=sys.stderr)
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="bench_slurm_"))
    scratch.chmod(0o755)  # munged wants the folders above its socket searchable by all
    mem_total_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    node_mem = int(mem_total_mb * 0.75)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}:/usr/sbin",
           "SLURM_MEMORY_MB": str(node_mem), "SLURMCTLD_PORT": str(_free_port()),
           "SLURMD_PORT": str(_free_port()), "SLURM_CONF": str(scratch / "cluster/slurm.conf"),
           "BIDS_DFC": str(BIN / "bids-dfc"), "LOGNAME": os.environ.get("LOGNAME", "root"),
           "MPLBACKEND": "Agg", "NIPYPE_NO_ET": "1"}
    machine = f"{platform.node()} {os.cpu_count()} CPUs {mem_total_mb // 1024} GB"
    rows = []
    subprocess.run([str(SCRIPTS / "start_cluster.sh"), str(scratch / "cluster")], env=env,
                   check=True)
    try:
        plans = [("array", args.n_subjects, None, k) for k in args.concurrency]
        plans += [("volumes", 1, v, 1) for v in args.volumes]
        for repeat in range(args.repeats):
            for kind, n, volumes, k in plans:
                bids = make_demo(scratch / f"bids_n{n}_v{volumes}", n, volumes)
                run_dir = scratch / f"run_{kind}_{n}_{volumes}_{k}_{repeat}"
                row = run_array(bids, run_dir, env, concurrency=k, cpus=args.cpus_per_task,
                                mem_mb=node_mem // max(args.concurrency))
                row.update(kind=kind, n_volumes=volumes or "default", repeat=repeat,
                           machine=machine)
                rows.append(row)
                print("\t".join(f"{c}={row[c]}" for c in COLUMNS if c != "machine"),
                      flush=True)
                shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        subprocess.run([str(SCRIPTS / "stop_cluster.sh"), str(scratch / "cluster")], env=env)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    print("\nmedians over repeats:")
    for kind, n, volumes, k in plans:
        sel = [r for r in rows if (r["kind"], r["n_subjects"], r["concurrency"]) == (kind, n, k)
               and r["n_volumes"] == (volumes or "default")]
        med = {c: statistics.median(r[c] for r in sel) for c in
               ("participants_per_hour", "task_median_s", "peak_pss_mb_max")}
        print(f"{kind:7s} n={n} volumes={volumes or 'default'} concurrency={k}: "
              f"{med['participants_per_hour']:.1f} participants/h, task "
              f"{med['task_median_s']:.0f} s, peak {med['peak_pss_mb_max']:.0f} MB per job")
    print(f"wrote {args.output}")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
