"""``bids-dfc-dcc``: the DCC estimator on your own ROI time series (no BIDS, no images).

INPUT is a TSV (or CSV, by the ``.csv`` extension) with a header row naming the regions,
one column per region and one row per time point. Outputs (see docs/dcc.md):

* ``OUTPUT_PREFIX_timeseries.tsv``: one column per pair named ``A__B``, one row per time point;
* ``OUTPUT_PREFIX_summary.tsv``: one row per pair with ``region_a, region_b, a, b, loglik,
  sd, mean, converged`` (+ ``frac_above_*``/``frac_below_*`` with ``--thresholds``);
* ``OUTPUT_PREFIX_timeseries.json``: how the series were made (method, parameters, version).

Files are written under temporary names and renamed only when everything succeeded.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bids_dfc import __version__
from bids_dfc.cli.types import correlation_threshold, finite_number, window_length
from bids_dfc.dfc import (
    MIN_TIMEPOINTS,
    all_pairs,
    dcc,
    dfc_summary,
    pearson_correlation,
    sliding_window_correlation,
)
from bids_dfc.errors import InputError
from bids_dfc.io import commit_many


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="bids-dfc-dcc",
        description="Dynamic conditional correlation (DCC) of ROI time series from a table.",
    )
    parser.add_argument("input", type=Path, help="TSV/CSV: header row of region names, rows = time")
    parser.add_argument("output_prefix", help="prefix of the output files (directories created)")
    est = parser.add_argument_group("estimator")
    est.add_argument("--method", choices=["dcc", "sliding-window", "pearson"], default="dcc")
    est.add_argument(
        "--mode",
        choices=["pairwise", "joint"],
        default="pairwise",
        help="DCC only: one (a, b) per pair (default) or one for all regions",
    )
    est.add_argument("--window", type=window_length, help="sliding-window length in samples")
    est.add_argument(
        "--taper", choices=["gaussian", "boxcar"], default="gaussian", help="sliding-window taper"
    )
    est.add_argument(
        "--sigma",
        type=finite_number(0.0, strict=True),
        help="Gaussian taper SD in samples (default window/4)",
    )
    est.add_argument(
        "--thresholds",
        type=correlation_threshold,
        nargs="+",
        metavar="C",
        help="also report the fraction of time with R above/below each C",
    )
    est.add_argument("--n-jobs", type=int, default=1, help="threads (DCC; results identical)")
    return parser


def _read_table(path):
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    with open(path, newline="") as fh:
        header = next(csv.reader(fh, delimiter=sep), None)
    if not header or all(not h.strip() for h in header):
        raise InputError(f"{path}: empty file; expected a header row of region names")
    if len(header) == 1 and ("," in header[0] or "\t" in header[0]):
        other = "comma" if sep == "\t" else "tab"
        raise InputError(
            f"{path}: only one column found; the file looks {other}-separated: "
            "use the .csv extension for comma-separated files and .tsv for tab-separated"
        )
    names = [h.strip() for h in header]
    for name in names:
        if not name:
            raise InputError(f"{path}: a column has an empty name in the header row")
        try:
            float(name)
        except ValueError:
            continue
        raise InputError(
            f"{path}: header cell {name!r} is a number; the first row must name the regions"
        )
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{path}: duplicated column name(s) {dup}; region names must be unique")
    bad = [n for n in names if "__" in n]
    if bad:
        raise InputError(
            f"{path}: column name(s) {bad} contain '__', which separates the two regions in "
            "pair names (A__B); rename them"
        )
    table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    table.columns = names
    values = np.empty(table.shape)
    for j, name in enumerate(names):
        col = table[name].str.strip()
        num = pd.to_numeric(col, errors="coerce")
        missing = np.flatnonzero(num.isna().to_numpy())
        if missing.size:
            row = int(missing[0])
            raise InputError(
                f"{path}: column {name!r}, data row {row + 1} (file line {row + 2}) holds "
                f"{col.iloc[row]!r}, not a number; fill or drop missing time points first"
            )
        values[:, j] = num.to_numpy()
    if values.shape[0] < MIN_TIMEPOINTS:
        raise InputError(
            f"{path}: {values.shape[0]} time points (rows); at least {MIN_TIMEPOINTS} are "
            "needed (rows must be time points and columns regions)"
        )
    if values.shape[1] < 2:
        raise InputError(f"{path}: {values.shape[1]} region column(s); need at least 2")
    return names, values


def _estimate(args, names, x):
    pairs = all_pairs(len(names))
    info = {"method": args.method, "software": f"bids_dfc {__version__}"}
    if args.method == "dcc":
        res = dcc(x, mode=args.mode, names=names, n_jobs=max(1, args.n_jobs))
        r = res.R
        extra = {
            "a": res.a,
            "b": res.b,
            "loglik": res.loglik,
            "converged": np.where(res.converged, "true", "false"),
        }
        info.update(
            mode=args.mode,
            model="Gaussian GARCH(1,1) per demeaned series, then DCC(1,1) (Engle 2002)",
            loglik="Engle's correlation log-likelihood L_C (z'z term dropped)",
            conventions="Qbar = mean_t z_t z_t'; Q_1 = Qbar; a + b <= 1 - 1e-4",
        )
        if args.mode == "joint":
            info["loglik_joint"] = res.loglik_joint
    else:
        if args.method == "pearson":
            static = pearson_correlation(x, names=names)
            r = np.broadcast_to(static, (x.shape[0], static.size))
            info["note"] = "static Pearson correlation, repeated at every time point"
        else:
            r = sliding_window_correlation(
                x, args.window, taper=args.taper, sigma=args.sigma, names=names
            )
            info.update(
                window=args.window,
                taper=args.taper,
                sigma=args.sigma if args.sigma is not None else args.window / 4.0,
                alignment="value at the window centre; edges without a full window are n/a",
            )
        na = np.full(len(pairs), "n/a", dtype=object)
        extra = {"a": na, "b": na, "loglik": na, "converged": na}
    summ = dfc_summary(r, thresholds=args.thresholds)
    info["sd"] = "standard deviation over time with ddof=1"
    return pairs, r, extra, summ, info


def _tsv(frame, fh):
    frame.to_csv(fh, sep="\t", index=False, na_rep="n/a", float_format="%.10g")


def _write_outputs(prefix, names, pairs, r, extra, summ, info):
    out_ts = Path(f"{prefix}_timeseries.tsv")
    out_sum = Path(f"{prefix}_summary.tsv")
    out_json = Path(f"{prefix}_timeseries.json")
    out_ts.parent.mkdir(parents=True, exist_ok=True)
    cols = [f"{names[i]}__{names[j]}" for i, j in pairs]
    ts = pd.DataFrame(np.asarray(r), columns=cols)
    summary = pd.DataFrame(
        {
            "region_a": [names[i] for i, _ in pairs],
            "region_b": [names[j] for _, j in pairs],
            **extra,
            "sd": summ["sd"],
            "mean": summ["mean"],
            "n_timepoints": summ["n"],
        }
    )
    for key, val in summ.items():
        if key.startswith("frac_"):
            summary[key] = val
    commit_many({
        out_ts: lambda fh: _tsv(ts, fh),
        out_sum: lambda fh: _tsv(summary, fh),
        out_json: lambda fh: json.dump(info, fh, indent=2, default=float),
    })
    return out_ts, out_sum, out_json


def main(argv=None):
    """Run ``bids-dfc-dcc``; returns the exit code (0 ok, 1 bad data, 2 bad arguments)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.method == "sliding-window" and args.window is None:
        parser.error("--window is required with --method sliding-window")
    if args.method != "sliding-window":
        for opt, val in (("--window", args.window), ("--sigma", args.sigma)):
            if val is not None:
                parser.error(f"{opt} only applies to --method sliding-window")
    if args.method != "dcc" and args.mode != "pairwise":
        parser.error("--mode joint only applies to --method dcc")
    if args.n_jobs < 1:
        parser.error(f"--n-jobs must be at least 1, got {args.n_jobs}")
    try:
        names, x = _read_table(args.input)
        if args.method == "sliding-window" and args.window > x.shape[0]:
            raise InputError(
                f"{args.input}: --window {args.window} is longer than the {x.shape[0]} time points"
            )
        try:
            pairs, r, extra, summ, info = _estimate(args, names, x)
        except InputError:
            raise
        except ValueError as err:
            raise InputError(f"{args.input}: {err}") from err
        paths = _write_outputs(args.output_prefix, names, pairs, r, extra, summ, info)
    except InputError as err:
        print(f"bids-dfc-dcc: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
