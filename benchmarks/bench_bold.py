"""Benchmark: the functional workflow on one full-size run (BOLD 64x64x36 x 277, TR 2 s).

Target (issue 4, item 6): the BOLD part of a participant in about 3.5 min wall or less with
2 CPUs (``omp_nthreads=2``, nipype MultiProc with 2 processes), within the 4 GB budget of
the whole participant level.  The anatomical inputs (T1w brain, mask, tissue maps) are the
demo truth, so only the functional workflow is timed.  Every repeat runs in a fresh Python
process with a fresh working directory; peak memory is the largest sum of the resident
memory of that process and all its children (polled from /proc every 0.2 s; reported as
the RSS sum and as the PSS sum, which does not double-count pages shared by forked
workers); the CPU time
(user + system) of the whole process tree is recorded too: on a shared, loaded machine
``cpu_s / 2`` is what the wall time would be with 2 free CPUs.

Besides time and memory, each repeat reports the accuracy against the truth: RMS error of
the 6 head-motion parameters, and the DMN-DeS correlation of the seed means in the raw and
the denoised run versus the planted one.

Usage::

    .venv/bin/python benchmarks/bench_bold.py [--repeats 3] [--demo DIR] [--sloppy]
        [--template]

Writes ``benchmarks/results/bold.tsv`` (``bold_sloppy.tsv`` / ``bold_template.tsv``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from benchmarks.bench_bold import run_once
if __name__ == "__main__":
    print("RESULT " + json.dumps(run_once({demo!r}, {work!r}, {sloppy!r}, {template!r})))
"""


def _tree_memory(pid: int) -> tuple[int, int]:
    """Resident (RSS) and proportional (PSS) memory, bytes, of a process and all its
    descendants.  Forked workers share pages, so the RSS sum over-counts; PSS splits every
    shared page among the processes using it and sums to the real footprint."""
    rss = pss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return rss, pss


def run_once(demo: str, work: str, sloppy: bool, template: bool) -> dict:
    """Build and run the functional workflow on the demo's sub-01 (in this process)."""
    import nibabel as nb
    import numpy as np

    from bids_dfc.demo.truth import load_truth
    from bids_dfc.preproc.motion import grid_centre, matrix_to_params, write_ants_affine
    from bids_dfc.templates import get_template
    from bids_dfc.workflows.bold import init_bold_wf

    demo, work = Path(demo), Path(work)
    tru = load_truth(str(demo) + "_truth", "01")
    bold = demo / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz"
    meta = json.loads(bold.with_name("sub-01_task-rest_bold.json").read_text())
    t1 = nb.load(demo / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    mask = tru["files"]["t1w_brain_mask"]
    work.mkdir(parents=True, exist_ok=True)
    brain = (t1.get_fdata(dtype=np.float32) * (nb.load(mask).get_fdata() > 0))
    nb.save(nb.Nifti1Image(brain, t1.affine), work / "t1w_brain.nii.gz")
    tpl = get_template("auto", 2)
    wf = init_bold_wf(bold_file=str(bold), metadata=meta, sloppy=sloppy, omp_nthreads=2,
                      random_seed=1, template=tpl,
                      output_spaces=("native", "template") if template else ("native",))
    inputs = wf.get_node("inputnode").inputs
    inputs.t1w_brain = str(work / "t1w_brain.nii.gz")
    inputs.t1w_mask = str(mask)
    inputs.t1w_tpms = [str(tru["files"][f"t1w_{k}"]) for k in ("gm", "wm", "csf")]
    inputs.anat2std_xfm = [write_ants_affine(tru["pose"], work / "anat2std.mat")]
    inputs.template_ref, inputs.template_mask = tpl.t1w, tpl.brain_mask
    wf.base_dir = str(work)
    start = time.perf_counter()
    wf.run(plugin="MultiProc", plugin_args={"n_procs": 2, "memory_gb": 4})
    wall = time.perf_counter() - start
    node = work / wf.name
    mats = np.load(node / "hmc" / "hmc_matrices.npy")
    ref = nb.load(node / "hmc" / "boldref.nii")
    centre = grid_centre(ref.shape, ref.affine)
    rel = np.array([matrix_to_params(m @ np.linalg.inv(mats[0]), centre) for m in mats])
    truth = tru["motion"].to_numpy()[tru["n_dummies"]:, :6]
    err = np.sqrt(((rel - truth) ** 2).mean(0))
    sig = tru["signals"].iloc[tru["n_dummies"]:]

    def network(data, names):
        masks = [nb.load(tru["files"][f"seed-{n}_mask"]).get_fdata() > 0 for n in names]
        return np.mean([data[m].mean(0) for m in masks], axis=0)

    out = {"wall_s": wall, "motion_rms_mm": float(err[:3].max()),
           "motion_rms_deg": float(np.rad2deg(err[3:]).max()),
           "r_true": float(np.corrcoef(sig["dmn"], sig["des"])[0, 1])}
    for label, path in (("raw", node / "validate" / "bold_trimmed.nii"),
                        ("denoised", node / "denoise" / "bold_denoised.nii")):
        data = nb.load(path).get_fdata(dtype=np.float32)
        out[f"r_{label}"] = float(np.corrcoef(network(data, ["PCC", "mPFC"]),
                                              network(data, ["PAG", "RVM"]))[0, 1])
    out["nodes"] = {d.name: _node_time(d) for d in node.iterdir() if d.is_dir()}
    return out


def _node_time(folder: Path):
    import pickle

    res = folder / f"result_{folder.name}.pklz"
    if not res.exists():
        return None
    import gzip

    with gzip.open(res) as fh:
        try:
            runtime = pickle.load(fh).runtime
            return round(float(runtime.duration), 2)
        except Exception:  # noqa: BLE001 - timing is informative only
            return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo", help="existing full-size demo dataset (else generated)")
    parser.add_argument("--sloppy", action="store_true")
    parser.add_argument("--template", action="store_true",
                        help="also write the template-space output")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        demo = args.demo
        if demo is None:
            from bids_dfc.demo.dataset import make_demo_dataset

            demo = str(Path(tmp) / "demo")
            make_demo_dataset(demo, n_subjects=1, seed=5, full_size=True)
        rows = []
        for rep in range(args.repeats):
            work = Path(tmp) / f"work{rep}"
            code = CHILD.format(root=str(ROOT), demo=demo, work=str(work),
                                sloppy=args.sloppy, template=args.template)
            env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, env=env)
            peak = peak_pss = 0
            while proc.poll() is None:
                rss, pss = _tree_memory(proc.pid)
                peak, peak_pss = max(peak, rss), max(peak_pss, pss)
                time.sleep(0.2)
            stdout = proc.stdout.read()
            if proc.returncode != 0:
                raise SystemExit(f"repeat {rep} failed (exit {proc.returncode})")
            result = json.loads(stdout.split("RESULT ", 1)[1])
            result["peak_rss_gb"] = peak / 1e9
            result["peak_pss_gb"] = peak_pss / 1e9
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            result["cpu_s"] = (after.ru_utime + after.ru_stime
                               - before.ru_utime - before.ru_stime)
            print(f"repeat {rep}: wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s, "
                  f"peak RSS {peak / 1e9:.2f} GB / PSS {peak_pss / 1e9:.2f} GB, "
                  f"motion RMS {result['motion_rms_mm']:.3f} mm / "
                  f"{result['motion_rms_deg']:.3f} deg, r raw {result['r_raw']:.3f}, "
                  f"denoised {result['r_denoised']:.3f}, true {result['r_true']:.3f}; "
                  f"nodes {result['nodes']}", flush=True)
            rows.append(result)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    keys = ["wall_s", "cpu_s", "peak_rss_gb", "peak_pss_gb", "motion_rms_mm",
            "motion_rms_deg", "r_raw", "r_denoised", "r_true"]
    suffix = "_sloppy" if args.sloppy else "_template" if args.template else ""
    out = ROOT / "benchmarks" / "results" / f"bold{suffix}.tsv"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(["run"] + keys + ["load_avg_1min"])]
    for i, row in enumerate(rows):
        lines.append("\t".join([str(i)] + [f"{row[k]:.4g}" for k in keys] + [load]))
    medians = {k: statistics.median(r[k] for r in rows) for k in keys}
    lines.append("\t".join(["median"] + [f"{medians[k]:.4g}" for k in keys] + [load]))
    out.write_text("\n".join(lines) + "\n")
    print(f"median wall {medians['wall_s']:.1f} s, CPU {medians['cpu_s']:.1f} s, peak "
          f"PSS {medians['peak_pss_gb']:.2f} GB (RSS sum {medians['peak_rss_gb']:.2f} GB) "
          f"(load average {load} on {os.cpu_count()} CPUs) -> {out}")


if __name__ == "__main__":
    main()
