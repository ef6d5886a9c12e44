"""Benchmark: the anatomical workflow on one full-size T1w (1 mm, 256 x 256 x 180).

Target (issue 4, item 6): about 3 min wall or less and < 2.5 GB peak with 2 CPUs
(``omp_nthreads=2``), so that the whole participant level fits 8 min / 4 GB.  The T1w is the
full-size demo subject (``make_demo_dataset(full_size=True)``), so the brain-mask Dice against
the true mask is reported too.  Each repeat runs ``init_anat_wf`` (normal, non-sloppy
schedules; nipype Linear plugin -- the three anatomical nodes form a chain) in a fresh Python
process and working directory.  Peak memory is the child's maximal resident set size
(``wait4``); CPU time (user + system) is recorded as well: on a shared, loaded machine
``cpu_s / 2`` approximates the wall time with 2 free CPUs.  Per-node durations come from
nipype's runtime records.

Usage::

    .venv/bin/python benchmarks/bench_anat.py [--repeats 3] [--demo DIR] [--sloppy]

Writes ``benchmarks/results/anat.tsv`` (``anat_sloppy.tsv`` with ``--sloppy``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(t1w: str, truth_mask: str, work: str, sloppy: bool) -> dict:
    """Run the anatomical workflow once (in this process) and return node times + Dice."""
    import nibabel as nib
    import numpy as np

    from bids_dfc.templates import get_template
    from bids_dfc.workflows.anat import init_anat_wf

    template = get_template("auto", 2)
    wf = init_anat_wf(template=template, sloppy=sloppy, omp_nthreads=2, random_seed=1)
    wf.base_dir = work
    wf.inputs.inputnode.t1w = t1w
    graph = wf.run(plugin="Linear")
    steps, mask = {}, None
    for node in graph.nodes():
        result = node.result
        duration = getattr(result.runtime, "duration", None) if result else None
        if duration is not None:
            steps[node.name] = round(float(duration), 1)
        if node.name == "register":
            mask = result.outputs.out_mask
    est = np.asarray(nib.load(mask).dataobj) > 0
    true = np.asarray(nib.load(truth_mask).dataobj) > 0
    dice = 2.0 * (est & true).sum() / (est.sum() + true.sum())
    return {"steps": steps, "dice": round(float(dice), 4), "template": template.name}


def _child(t1w: str, truth_mask: str, sloppy: bool) -> dict:
    work = tempfile.mkdtemp(prefix="bench_anat_")
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            "from benchmarks.bench_anat import run_once; "
            f"print('RESULT ' + json.dumps(run_once({t1w!r}, {truth_mask!r}, {work!r}, "
            f"{sloppy!r})))")
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"benchmark run failed (exit {proc.returncode}); work dir {work}")
    out = json.loads(line[len("RESULT "):])
    out.update(wall_s=round(wall, 1), cpu_s=round(usage.ru_utime + usage.ru_stime, 1),
               peak_rss_mb=round(usage.ru_maxrss / 1024, 0), load_1m=round(load, 2))
    return out


def _demo(folder: Path | None) -> tuple[str, str]:
    from bids_dfc.demo import make_demo_dataset
    from bids_dfc.demo.truth import load_truth

    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="bench_anat_demo_")) / "ds"
    if not (folder / "sub-01").exists():
        make_demo_dataset(folder, n_subjects=1, seed=5, n_volumes=60, full_size=True)
    truth = load_truth(Path(str(folder) + "_truth"), "01")
    t1w = next((folder / "sub-01" / "anat").glob("*_T1w.nii.gz"))
    return str(t1w), str(truth["files"]["t1w_brain_mask"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo", type=Path, default=None,
                        help="full-size demo dataset (created there if missing)")
    parser.add_argument("--sloppy", action="store_true")
    args = parser.parse_args(argv)
    t1w, truth_mask = _demo(args.demo)
    out = ROOT / "benchmarks" / "results" / ("anat_sloppy.tsv" if args.sloppy else "anat.tsv")
    rows = []
    for k in range(args.repeats):
        res = _child(t1w, truth_mask, args.sloppy)
        rows.append(res)
        print(f"run {k + 1}: wall {res['wall_s']} s, cpu {res['cpu_s']} s, peak "
              f"{res['peak_rss_mb']:.0f} MB, load {res['load_1m']}, Dice {res['dice']}, "
              f"steps {res['steps']}", flush=True)
        med = _write(rows, out)  # after every repeat: a long run still leaves its figures
    print(f"median: wall {med['wall_s']} s, cpu {med['cpu_s']} s (cpu/2 = "
          f"{med['cpu_s'] / 2:.0f} s), peak {med['peak_rss_mb']:.0f} MB, Dice {med['dice']}"
          f" -> {out}")


def _write(rows: list[dict], out: Path) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = sorted({s for r in rows for s in r["steps"]})
    header = ["run", "wall_s", "cpu_s", "peak_rss_mb", "load_1m", "dice", "template"]
    header += [f"{s}_s" for s in steps]
    lines = ["\t".join(header)]
    for k, r in enumerate(rows, 1):
        vals = [k, r["wall_s"], r["cpu_s"], r["peak_rss_mb"], r["load_1m"], r["dice"],
                r["template"]] + [r["steps"].get(s, "") for s in steps]
        lines.append("\t".join(str(v) for v in vals))
    med = {key: statistics.median(r[key] for r in rows)
           for key in ("wall_s", "cpu_s", "peak_rss_mb", "dice")}
    vals = ["median", med["wall_s"], med["cpu_s"], med["peak_rss_mb"], "", med["dice"], ""]
    vals += [statistics.median(r["steps"].get(s, 0) for r in rows) for s in steps]
    lines.append("\t".join(str(v) for v in vals))
    out.write_text("\n".join(lines) + "\n")
    return med

if __name__ == "__main__":
    main()
