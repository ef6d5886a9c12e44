"""Running ``bids-dfc-dcc``: progress on stderr, stopping on SIGTERM/SIGINT, the estimation
in batches of pairs (so that ``--summary-only`` never holds the T x P series) and the writers.

Stopping: the first SIGTERM or SIGINT raises :class:`Interrupted` in the main thread; the
DCC fit's worker processes are terminated at once (threads, where processes cannot be
started, finish the chunk they are on, about :data:`~bids_dfc.cli.dcc_plan.CHUNK_TARGET_S` of
work, and take no other); outputs being written are temporary files, removed on the way
out. Once every output is complete and only the renames are left, a signal is held until
they are done. A second signal ends the process at once.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from bids_dfc.cli import signals
from bids_dfc.cli.dcc_plan import SUMMARY_BLOCK, WRITE_BLOCK, duration
from bids_dfc.cli.signals import Interrupted
from bids_dfc.dfc import dcc, dfc_summary, fit_garch, pearson_correlation
from bids_dfc.dfc import sliding_window_correlation as sliding

PROG = "bids-dfc-dcc"
#: plain progress (stderr not a terminal): a line every 10 % or at least every this often
PLAIN_EVERY_S = 60.0


@dataclass
class StopState:
    """Shared by the signal handler, the progress callbacks and the writers."""

    signum: int | None = None
    defer: bool = False  # the outputs are complete: let the renames finish

    def check(self) -> None:
        if self.signum is not None and not self.defer:
            raise Interrupted(self.signum)


@contextmanager
def stop_on_signals(state: StopState) -> Iterator[None]:
    """:func:`bids_dfc.cli.signals.stop_on_signals` recording the signal in ``state``, which
    raises :class:`Interrupted` at once unless the outputs are complete (``state.defer``)."""

    def on_signal(signum: int) -> None:
        state.signum = signum
        state.check()

    with signals.stop_on_signals(on_signal):
        yield


class Progress:
    """``done/total`` with rate and ETA on stderr: a tqdm bar on a terminal, plain lines
    (no carriage returns) every 10 % or :data:`PLAIN_EVERY_S` otherwise. The clock starts
    at :meth:`begin` (called at once unless ``begin=False``)."""

    FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"

    def __init__(self, total: int, desc: str, unit: str, *, quiet: bool, state: StopState,
                 begin: bool = True) -> None:
        self.total, self.desc, self.unit, self.state = total, desc, unit, state
        self.stream = sys.stderr
        self.enabled = not quiet and total > 0
        self.start = self.last = time.monotonic()
        self.done = 0
        self.next_pct = 10
        self.bar = None
        if begin:
            self.begin()

    def begin(self) -> None:
        self.start = self.last = time.monotonic()
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm  # here: a quiet or small run never imports tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, file=self.stream,
                            bar_format=self.FORMAT.replace("{desc}:", "{desc}: {bar:20}"))

    def __call__(self, done: int) -> None:
        self.state.check()  # the fit stops here once a signal arrived
        if not self.enabled or done <= self.done:
            return
        self.done = done
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            return
        now, pct = time.monotonic(), 100.0 * done / self.total
        if pct >= self.next_pct or now - self.last >= PLAIN_EVERY_S or done == self.total:
            while self.next_pct <= pct:
                self.next_pct += 10
            self.last = now
            line = plain_line(self.desc, done, self.total, now - self.start, self.unit)
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    """``MM:SS`` or ``H:MM:SS`` (tqdm's ``format_interval``)."""
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


def plain_line(desc: str, done: int, total: int, elapsed: float, unit: str) -> str:
    """The plain progress line: what ``tqdm.format_meter(done, total, elapsed, unit=unit,
    prefix=desc, bar_format=Progress.FORMAT)`` prints, without importing tqdm (tests)."""
    rate = done / elapsed if elapsed else None
    inv = 1 / rate if rate else None
    if inv and inv > 1:
        speed = f"{inv:5.2f}s/{unit}"
    else:
        speed = (f"{rate:5.2f}" if rate else "?") + f"{unit}/s"
    left = _clock((total - done) / rate) if rate else "?"
    return (f"{desc}: {done / total * 100:3.0f}% {done}/{total} [{_clock(elapsed)}<{left}, "
            f"{speed}]")


def say(text: str, quiet: bool) -> None:
    if not quiet:
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)


@dataclass
class Result:
    """What the writers need: pairs (P, 2), per-pair columns, summary, series, sidecar."""

    pairs: np.ndarray
    extra: dict[str, np.ndarray]
    summary: dict[str, np.ndarray]
    info: dict
    series: np.ndarray | None = None
    parts: list[dict] = field(default_factory=list)


def _join(parts: list[dict]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _summaries(thresholds) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The summary of series (T, m) over blocks of :data:`SUMMARY_BLOCK` pairs: a whole
    run's, a batch's or a worker's chunk (batches and chunks start at multiples of it: the
    same blocks, the same bits, whichever way a run goes)."""

    def reduce(series: np.ndarray) -> dict[str, np.ndarray]:
        parts = [dfc_summary(np.ascontiguousarray(series[:, k:k + SUMMARY_BLOCK]),
                             thresholds=thresholds)
                 for k in range(0, series.shape[1], SUMMARY_BLOCK)]
        return _join(parts)

    return reduce


def _fit_dcc(args, x, names, pairs, plan, bar):
    """The DCC of every pair, the first stage fitted once; with ``--summary-only`` the
    series are summarised where each chunk was fitted and never held."""
    garch = fit_garch(x, names=names)
    bar.garch_done()
    common = dict(names=names, garch=garch, chunk_size=plan.chunk, n_jobs=plan.n_jobs,
                  max_memory_gb=math.inf, pairs=pairs)
    if args.mode == "joint":
        return dcc(x, mode="joint", **common)
    reduce = _summaries(args.thresholds) if plan.summary_only else None
    return dcc(x, progress=bar, reduce=reduce, **common)


def estimate(args, table, plan, state: StopState, info: dict) -> Result:
    """Run the estimator; the summary is computed in blocks of :data:`SUMMARY_BLOCK` pairs,
    the same blocks with and without ``--summary-only`` (identical numbers)."""
    x, names = table.values, table.names
    pairs = np.column_stack(np.triu_indices(len(names), 1))
    result = Result(pairs, {}, {}, info)
    bar = _StageProgress(len(pairs), args.quiet, state, begin=args.method != "dcc")
    try:
        if args.method == "dcc":
            _run_dcc(args, x, names, pairs, plan, bar, result)
        else:
            _run_static(args, x, names, pairs, plan, bar, result)
    finally:
        bar.close()
    result.summary = _join(result.parts)
    result.parts.clear()
    return result


def _run_dcc(args, x, names, pairs, plan, bar, result: Result) -> None:
    res = _fit_dcc(args, x, names, pairs, plan, bar)
    if plan.summary_only and args.mode == "pairwise":
        result.parts.append(res.reduced)
    else:
        result.series = None if plan.summary_only else res.R
        result.parts.append(_summaries(args.thresholds)(res.R))
    if args.mode == "joint":
        result.info["loglik_joint"] = res.loglik_joint
    bar(len(pairs))
    result.extra = {"a": res.a, "b": res.b, "loglik": res.loglik,
                    "converged": np.where(res.converged, "true", "false")}


def _run_static(args, x, names, pairs, plan, bar, result: Result) -> None:
    """Sliding window and Pearson, in batches of pairs."""
    n_t, n_p = x.shape[0], len(pairs)
    static = pearson_correlation(x, names=names) if args.method == "pearson" else None
    if static is not None and not plan.summary_only:
        result.series = np.broadcast_to(static, (n_t, n_p))
    elif not plan.summary_only:
        result.series = np.empty((n_t, n_p))
    summarise = _summaries(args.thresholds)
    for lo in range(0, n_p, plan.batch):
        hi = min(lo + plan.batch, n_p)
        if static is not None:
            block = np.broadcast_to(static[lo:hi], (n_t, hi - lo))
        else:
            block = sliding(x, args.window, taper=args.taper, sigma=args.sigma,
                            pairs=pairs[lo:hi], names=names)
            if result.series is not None:
                result.series[:, lo:hi] = block
        result.parts.append(summarise(block))
        bar(hi)
    na = np.full(n_p, "n/a", dtype=object)
    result.extra = {"a": na, "b": na, "loglik": na, "converged": na}


class _StageProgress(Progress):
    """The estimation's progress, with a line when the GARCH stage is done."""

    def __init__(self, total: int, quiet: bool, state: StopState, begin: bool) -> None:
        super().__init__(total, f"{PROG}: estimation", " pairs", quiet=quiet, state=state,
                         begin=begin)
        self.quiet = quiet

    def garch_done(self) -> None:
        self.state.check()
        say(f"GARCH(1,1) stage done in {duration(time.monotonic() - self.start)}", self.quiet)
        self.begin()


def _row_text(row: np.ndarray, fmt: str) -> str:
    """One row of the series table: ``%.10g``, ``n/a`` for NaN (as pandas' ``to_csv`` with
    ``float_format="%.10g", na_rep="n/a"`` writes it, 12 times faster)."""
    if np.isnan(row).any():
        return "\t".join("n/a" if v != v else f"{v:.10g}" for v in row.tolist()) + "\n"
    return fmt % tuple(row.tolist())


def series_writer(names, pairs: np.ndarray, series: np.ndarray, state: StopState,
                  quiet: bool) -> Callable:
    """Writer of OUTPUT_PREFIX_timeseries.tsv, row by row (no copy of the series)."""

    def write(fh) -> None:
        n_t, n_p = series.shape
        csv.writer(fh, delimiter="\t", lineterminator="\n").writerow(
            f"{names[i]}__{names[j]}" for i, j in pairs)
        fmt = "\t".join(["%.10g"] * n_p) + "\n"
        step = max(1, WRITE_BLOCK // max(1, n_p))
        bar = Progress(n_t, f"{PROG}: writing the time series", " rows",
                       quiet=quiet or n_t * n_p < 20 * WRITE_BLOCK, state=state)
        try:
            for lo in range(0, n_t, step):
                fh.write("".join(_row_text(row, fmt) for row in series[lo:lo + step]))
                bar(min(lo + step, n_t))
        finally:
            bar.close()

    return write


def _cells(values: np.ndarray) -> list:
    """A column's cells as text: floats ``%.10g`` and ``n/a`` for NaN, others as they are."""
    if np.issubdtype(values.dtype, np.floating):
        return ["n/a" if v != v else f"{v:.10g}" for v in values.tolist()]
    return values.tolist()


def summary_writer(names, result: Result) -> Callable:
    """Writer of OUTPUT_PREFIX_summary.tsv, one row per pair: the bytes pandas' ``to_csv(
    sep="\\t", index=False, na_rep="n/a", float_format="%.10g", lineterminator="\\n")``
    writes (the same csv module quoting), without importing pandas."""
    label = np.asarray(names, dtype=object)
    summ = result.summary
    columns = {
        "region_a": label[result.pairs[:, 0]],
        "region_b": label[result.pairs[:, 1]],
        **result.extra,
        "sd": summ["sd"],
        "mean": summ["mean"],
        "n_timepoints": summ["n"],
    }
    columns.update((key, val) for key, val in summ.items() if key.startswith("frac_"))
    step = max(1, WRITE_BLOCK // len(columns))

    def write(fh) -> None:
        out = csv.writer(fh, delimiter="\t", lineterminator="\n")
        out.writerow(columns)
        for lo in range(0, len(result.pairs), step):
            out.writerows(zip(*(_cells(col[lo:lo + step]) for col in columns.values())))

    return write


def _label(c: float) -> str:
    """A threshold as a BIDS label: 0.3 -> 0p3, -0.25 -> m0p25."""
    return f"{c:g}".replace("-", "m").replace(".", "p")


def relmat_names(method: str, thresholds) -> dict[str, tuple[str, str]]:
    """stat- label of every region x region matrix -> (summary column, what it measures)."""
    if method == "pearson":
        return {"pearsoncorrelation": ("mean", "Pearson correlation")}
    stem, what = ("dcc", "the DCC series") if method == "dcc" else (
        "sw", "the sliding-window correlation series")
    out = {f"{stem}sd": ("sd", f"standard deviation over time of {what}"),
           f"{stem}mean": ("mean", f"mean over time of {what}")}
    for c in thresholds or []:
        for side in ("above", "below"):
            out[f"{stem}frac{side}{_label(c)}"] = (
                f"frac_{side}_{c:g}", f"fraction of time points with {what} {side} {c:g}")
    return out


def relmat_writer(names, result: Result, column: str) -> Callable:
    """Writer of OUTPUT_PREFIX_stat-<stat>_relmat.tsv: the region x region matrix of one
    summary ``column`` (XCP-D's relmat layout: a header ``Node`` + the region names, one row
    per region; the diagonal holds the value of a series with itself, R = 1)."""
    values = np.asarray(result.summary[column], dtype=float)
    n = len(names)
    mat = np.empty((n, n))
    i, j = result.pairs[:, 0], result.pairs[:, 1]
    mat[i, j] = values
    mat[j, i] = values
    if column == "sd":
        diag = 0.0
    elif column.startswith("frac_"):
        c = float(column.rsplit("_", 1)[1])
        diag = float(1.0 > c) if column.startswith("frac_above") else float(1.0 < c)
    else:
        diag = 1.0
    np.fill_diagonal(mat, diag)

    def write(fh) -> None:
        out = csv.writer(fh, delimiter="\t", lineterminator="\n")
        out.writerow(["Node", *names])
        for name, row in zip(names, mat, strict=True):
            out.writerow([name, *_cells(row)])

    return write
