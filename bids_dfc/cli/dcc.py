"""``bids-dfc-dcc``: the DCC estimator on your own ROI time series (no BIDS, no images).

INPUT is a UTF-8 TSV (or CSV, by the ``.csv`` extension) with a header row naming the
regions, one column per region and one row per time point. Outputs (see docs/dcc.md):

* ``OUTPUT_PREFIX_timeseries.tsv``: one column per pair named ``A__B``, one row per time point;
* ``OUTPUT_PREFIX_summary.tsv``: one row per pair with ``region_a, region_b, a, b, loglik,
  converged, sd, mean, n_timepoints`` (+ ``frac_above_*``/``frac_below_*`` with
  ``--thresholds``);
* ``OUTPUT_PREFIX_stat-<measure>_relmat.tsv``: the summary as region x region matrices
  (XCP-D's relmat layout): ``dccsd``, ``dccmean`` (+ ``dccfracabove<C>``/``dccfracbelow<C>``);
  ``sw...`` for the sliding window, ``pearsoncorrelation`` for Pearson;
* ``OUTPUT_PREFIX_timeseries.json``: how the series were made (method, parameters, version).

With ``--summary-only`` the time series table is not written (the sidecar is then
``OUTPUT_PREFIX_summary.json``) and the T x P series is never held in memory; that happens
by itself, with a message, when the series would not fit in memory or their table would
exceed ``SERIES_AUTO_BYTES`` (1 GB; ``--with-series`` writes it anyway).

Before anything is estimated, the table is
checked (every problem is reported at once: file, line, column), the output folder is made
and tried, and the memory, disk and time the run needs are estimated; a run that does not
fit is refused. Files are written under temporary names and renamed only when everything
succeeded; SIGTERM/SIGINT stop the run without leaving any output.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from bids_dfc import __version__
from bids_dfc.cli.dcc_input import Problems, Table, perfectly_correlated, read_table
from bids_dfc.cli.dcc_plan import (
    SERIES_AUTO_BYTES,
    Plan,
    available_memory,
    busy_factor,
    check_fits,
    duration,
    prepare_folder,
    remove_folders,
    size,
)
from bids_dfc.cli.dcc_run import (
    PROG,
    Interrupted,
    StopState,
    estimate,
    relmat_names,
    relmat_writer,
    say,
    series_writer,
    stop_on_signals,
    summary_writer,
)
from bids_dfc.cli.resources import usable_cpus
from bids_dfc.cli.types import correlation_threshold, finite_number, window_length
from bids_dfc.errors import InputError
from bids_dfc.io import commit_many

#: exit codes: bad input or command line (nothing was run); a run that failed
EXIT_INPUT, EXIT_FAILED = 2, 1


_EPILOG = """\
example:
  bids-dfc-dcc sub-01_timeseries.tsv dcc/sub-01 --n-jobs 2
    reads a table with a header row of region names (PCC, mPFC, PAG, ...), one row per
    volume, and writes:
      dcc/sub-01_timeseries.tsv   DCC series, one column per pair A__B, one row per volume
      dcc/sub-01_summary.tsv      one row per pair: region_a, region_b, a, b, loglik,
                                  converged, sd, mean, n_timepoints (+ frac_above_C and
                                  frac_below_C with --thresholds C)
      dcc/sub-01_stat-dccsd_relmat.tsv    region x region SD of the DCC series
      dcc/sub-01_stat-dccmean_relmat.tsv  region x region mean (+ dccfracaboveC and
                                  dccfracbelowC with --thresholds)
      dcc/sub-01_timeseries.json  how the series were made (method, parameters, version)
  with --summary-only (automatic when the series would not fit in memory or their table
  would exceed 1 GB): no _timeseries.tsv, and the sidecar is dcc/sub-01_summary.json

exit status: 0 done, 1 an estimation failed, 2 a bad table or option (nothing written),
130/143 interrupted. Details: docs/dcc.md.
"""


def _build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Dynamic conditional correlation (DCC) of ROI time series from a table.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="TSV/CSV: header row of region names, rows = time")
    parser.add_argument("output_prefix", help="prefix of the output files (directories created)")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
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
    est.add_argument(
        "--n-jobs",
        type=int,
        default=usable_cpus(),
        metavar="N",
        help="worker processes of the DCC fit (results identical whatever N; default: the "
        "CPUs this "
        "process may use, the smallest of its affinity mask, its cgroup CPU quota and "
        "SLURM_CPUS_PER_TASK; here %(default)s)",
    )
    run = parser.add_argument_group("resources and output")
    series = run.add_mutually_exclusive_group()
    series.add_argument(
        "--summary-only",
        action="store_true",
        help="write only the per-pair summary and the region x region matrices (no T x P "
        "time series, far less memory); automatic when the series would not fit in memory "
        f"or its table would exceed {SERIES_AUTO_BYTES / 1e9:g} GB",
    )
    series.add_argument(
        "--with-series",
        action="store_true",
        help=f"write the time series table even when it would exceed "
        f"{SERIES_AUTO_BYTES / 1e9:g} GB (a run whose series do not fit in memory is "
        "still refused)",
    )
    run.add_argument(
        "--max-memory-gb",
        type=finite_number(0.0, strict=True),
        metavar="GB",
        help="memory the run may use (default: the available memory, MemAvailable or the "
        "cgroup limit); a run estimated to need more is summary-only when that fits, and "
        "refused before it starts otherwise",
    )
    run.add_argument(
        "--quiet", action="store_true", help="no estimate and no progress on stderr (errors only)"
    )
    return parser


def _check_args(parser, args):
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
    if not args.output_prefix or args.output_prefix.endswith(("/", os.sep)):
        parser.error(f"OUTPUT_PREFIX {args.output_prefix!r} names a folder; give a file-name "
                     f"prefix such as {os.path.join(args.output_prefix or 'out', 'sub-01')}")


def _outputs(args) -> dict[str, Path]:
    prefix = args.output_prefix
    paths = {"summary": Path(f"{prefix}_summary.tsv")}
    if not args.summary_only:
        paths["series"] = Path(f"{prefix}_timeseries.tsv")
    for stat in relmat_names(args.method, args.thresholds):
        paths[f"relmat:{stat}"] = Path(f"{prefix}_stat-{stat}_relmat.tsv")
    paths["sidecar"] = Path(f"{prefix}_{'summary' if args.summary_only else 'timeseries'}.json")
    return paths


def _check_method(args, table: Table) -> None:
    """What the chosen estimator needs beyond a clean table."""
    problems = Problems(table.path)
    n_t, n = table.values.shape
    if args.method == "sliding-window" and args.window > n_t:
        problems.add("", f"--window {args.window} is longer than the {n_t} time points")
    if args.method == "dcc" and args.mode == "joint" and n >= n_t:
        problems.add("", f"--mode joint needs fewer regions than time points (got {n} regions, "
                     f"{n_t} time points: Qbar would be singular); use --mode pairwise")
    if args.method == "dcc":
        perfectly_correlated(table, problems)
    problems.raise_if_any()


def _info(args) -> dict:
    info = {"method": args.method, "software": f"bids_dfc {__version__}"}
    if args.method == "dcc":
        info.update(
            mode=args.mode,
            model="Gaussian GARCH(1,1) per demeaned series, then DCC(1,1) (Engle 2002)",
            loglik="Engle's correlation log-likelihood L_C (z'z term dropped)",
            conventions="Qbar = mean_t z_t z_t'; Q_1 = Qbar; a + b <= 1 - 1e-4",
        )
        if args.mode == "joint":
            info["loglik_joint"] = None  # filled in by the estimation (keeps the key order)
    elif args.method == "pearson":
        info["note"] = "static Pearson correlation, repeated at every time point"
    else:
        info.update(
            window=args.window,
            taper=args.taper,
            sigma=args.sigma if args.sigma is not None else args.window / 4.0,
            alignment="value at the window centre; edges without a full window are n/a",
        )
    info["sd"] = "standard deviation over time with ddof=1"
    if args.summary_only:
        info["summary_only"] = getattr(args, "auto_summary", None) or (
            "--summary-only: only the per-pair summary and the matrices were written (no time "
            "series)")
    info["relmats"] = {f"stat-{stat}": f"{text} (summary column {col})" for stat, (col, text)
                       in relmat_names(args.method, args.thresholds).items()}
    return info


def _prepare(args, table: Table) -> tuple[Plan, dict[str, Path], list[Path]]:
    """Plan the run, make and try the output folder, refuse what does not fit."""
    n_t, n = table.values.shape
    plan = Plan(args.method, args.mode, n_t, n, args.n_jobs, args.summary_only,
                text_bytes=table.path.stat().st_size)
    if args.max_memory_gb is not None:
        budget, source = args.max_memory_gb * 1e9, "--max-memory-gb"
    else:
        budget, source = available_memory()
    plan = _auto_summary(args, plan, budget, source)
    paths = _outputs(args)
    folder = paths["summary"].parent
    created = prepare_folder(folder)
    try:
        for path in paths.values():
            if path.is_dir():
                raise InputError(f"the output {path} exists and is a folder; choose another "
                                 "OUTPUT_PREFIX")
        check_fits(plan, args.input, budget, source, folder)
        _announce(args, table, plan, budget, source)
    except BaseException:  # refused or interrupted: leave no folder behind
        remove_folders(created)
        raise
    return plan, paths, created


def _auto_summary(args, plan: Plan, budget: float, source: str) -> Plan:
    """Summary-only when the series would not fit in memory (but the summaries would), or
    when their table would exceed :data:`SERIES_AUTO_BYTES` (unless ``--with-series``);
    ``args.auto_summary`` then says why (printed and kept in the sidecar)."""
    if args.summary_only or args.with_series:
        return plan
    series = f"the time series ({plan.n_pairs:,} pairs x {plan.n_t} time points)"
    if plan.memory() > budget and plan.memory(summary_only=True) <= budget:
        why = (f"{series} would need about {size(plan.memory())} of memory, more than the "
               f"{size(budget)} available ({source})")
    elif plan.series_text_bytes() > SERIES_AUTO_BYTES:
        why = (f"{series} would make a {size(plan.series_text_bytes())} table (more than "
               f"{size(SERIES_AUTO_BYTES)}; --with-series writes it anyway)")
    else:
        return plan
    args.summary_only = True
    args.auto_summary = (f"{why}: only the per-pair summary and the region x region matrices "
                         "were written")
    say(args.auto_summary.replace("were written", "are written"), args.quiet)
    return Plan(plan.method, plan.mode, plan.n_t, plan.n_regions, plan.n_jobs, True,
                text_bytes=plan.text_bytes)


def _announce(args, table: Table, plan: Plan, budget: float, source: str) -> None:
    """The run's size and its expected memory and duration, on stderr."""
    n_t, n = table.values.shape
    times = plan.seconds()
    workers = "processes" if args.method == "dcc" and args.mode == "pairwise" else "threads"
    threads = f" on {plan.n_jobs} {workers}" if plan.n_jobs > 1 else ""
    method = f"dcc {args.mode}" if args.method == "dcc" else args.method
    say(f"{table.path}: {n} regions x {n_t} time points, {plan.n_pairs:,} pairs; "
        f"{method}{threads}", args.quiet)
    stages = ", ".join(f"{k} {duration(v)}" for k, v in times.items())
    slow = busy_factor(plan.n_jobs)
    busy = f"; the machine is busy: x{slow:.1f} included" if slow > 1.05 else ""
    say(f"expected peak memory about {size(plan.memory())} (available {size(budget)}, "
        f"{source}); expected duration about {duration(sum(times.values()))} ({stages}{busy})",
        args.quiet)


def _write(args, table: Table, result, paths: dict[str, Path], state: StopState) -> list[Path]:
    writers = {}
    if "series" in paths:
        writers[paths["series"]] = series_writer(table.names, result.pairs, result.series,
                                                 state, args.quiet)
    writers[paths["summary"]] = summary_writer(table.names, result)
    columns = relmat_names(args.method, args.thresholds)
    for key, path in paths.items():
        if key.startswith("relmat:"):
            writers[path] = relmat_writer(table.names, result, columns[key[7:]][0])

    def sidecar(fh) -> None:
        json.dump(result.info, fh, indent=2, default=float)
        state.defer = True  # every output is complete: a signal now waits for the renames

    writers[paths["sidecar"]] = sidecar
    return commit_many(writers)


def _run(args, state: StopState) -> int:
    created: list[Path] = []
    try:
        table = read_table(args.input)
        _check_method(args, table)
        plan, paths, created = _prepare(args, table)
        try:
            result = estimate(args, table, plan, state, _info(args))
        except InputError:
            raise
        except ValueError as err:  # the estimators' own checks
            raise InputError(f"{args.input}: {err}") from err
        written = _write(args, table, result, paths, state)
    except InputError as err:
        remove_folders(created)
        for line in str(err).splitlines():
            print(f"{PROG}: error: {line}", file=sys.stderr)
        return EXIT_INPUT
    except Interrupted as stop:
        remove_folders(created)
        print(f"{PROG}: stopped by {stop}; no output was written", file=sys.stderr)
        return stop.exit_code
    except MemoryError:
        remove_folders(created)
        print(f"{PROG}: error: out of memory; use --summary-only or fewer regions",
              file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:
        remove_folders(created)
        print(f"{PROG}: error: cannot write the outputs: {err}", file=sys.stderr)
        return EXIT_FAILED
    if state.signum is not None:
        print(f"{PROG}: {signal.Signals(state.signum).name} arrived while the finished outputs "
              "were put in place; they are complete", file=sys.stderr)
        return 128 + state.signum
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def main(argv=None):
    """Run ``bids-dfc-dcc``; returns the exit code (0 ok, 1 the run failed, 2 bad input or
    command line: nothing was run, 130/143 stopped by SIGINT/SIGTERM: nothing was written)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    state = StopState()
    with stop_on_signals(state):
        return _run(args, state)


if __name__ == "__main__":
    sys.exit(main())
