"""``bids-dfc`` entry point: parse, check every input, then run one analysis level."""

from __future__ import annotations

import gc
import logging
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from bids_dfc import __version__
from bids_dfc.cli.signals import Interrupted, stop_on_signals, stop_process_tree
from bids_dfc.errors import BidsDfcError, InputError

LOGGER = logging.getLogger("bids_dfc")


def _setup_logging(verbose: int) -> None:
    """bids_dfc's own messages at INFO (DEBUG with -vv); other libraries' at WARNING (all
    with -vv)."""
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(level=logging.WARNING if verbose < 2 else level,
                        format="%(asctime)s [bids_dfc %(levelname)s] %(message)s",
                        datefmt="%H:%M:%S")
    LOGGER.setLevel(level)


def _environment(config) -> None:
    """Threads and caches for every process the run starts (any UID, offline)."""
    ex = config.execution
    threads = str(ex.omp_nthreads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    # ITK fixes its thread count at a process's first antspyx call, and multi-threaded ANTs
    # registration is not reproducible: every process registers single-threaded, parallelism
    # comes from running nodes (and motion-correction chunks) side by side
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("MPLCONFIGDIR", str(ex.work_dir / ".matplotlib"))


def _nipype_settings(config) -> dict:
    ex = config.execution
    plugin_args = dict(ex.plugin_args)
    if ex.plugin in ("MultiProc", "LegacyMultiProc"):
        plugin_args.setdefault("n_procs", ex.nprocs)
        if ex.mem_gb:
            plugin_args.setdefault("memory_gb", ex.mem_gb)
        plugin_args.setdefault("raise_insufficient", False)
    return {"plugin": ex.plugin, "plugin_args": plugin_args}


#: Seconds between two passes of nipype's scheduling loop, which starts the steps whose
#: inputs are ready. Local plugins poll often: at nipype's default of 2 s a chain of ~50
#: short steps idles for most of a minute. A pass costs ~1 ms for one subject's graph and
#: ~6 ms for 100 subjects', so 0.1 s keeps the loop under a few % of a core. Batch plugins
#: ask the scheduler (``squeue``, ``qstat``) on every pass and keep a gentler pace.
LOCAL_POLL_S, BATCH_POLL_S = 0.1, 1.0


def _poll_interval(plugin: str) -> float:
    return LOCAL_POLL_S if plugin in ("MultiProc", "LegacyMultiProc", "Linear") else BATCH_POLL_S


def _configure_nipype(ex, log_dir: Path) -> None:
    """Crash files in ``log_dir`` (text), no reports, quiet loggers; the crash tracebacks
    nipype logs go to the crash files only (``--debug`` shows them)."""
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    from bids_dfc.cli.cluster import RESULT_WAIT_S

    nipype_config.update_config(
        {
            "execution": {
                "crashdump_dir": str(log_dir),
                "crashfile_format": "txt",
                "create_report": False,
                "poll_sleep_duration": _poll_interval(ex.plugin),
                "job_finished_timeout": RESULT_WAIT_S,
            },
            "monitoring": {"enabled": False},
            # nipype resets its loggers when imported: set them through its own config
            "logging": {
                "workflow_level": "INFO" if ex.verbose else "WARNING",
                "interface_level": "INFO" if ex.verbose > 1 else "WARNING",
                "utils_level": "WARNING",
            },
        }
    )
    nipype_logging.update_logging(nipype_config)
    for name in ("nipype.workflow", "nipype.interface", "nipype.utils"):
        logging.getLogger(name).propagate = False  # nipype has its own handler
    if not (ex.debug or ex.verbose):
        logging.getLogger("nipype.workflow").addFilter(_no_failure_noise)


#: nipype's log lines about a failed step, which the failure paragraph tells once
_FAILURE_NOISE = ("Traceback (most recent call last)", "Saving crash info", "[Node] Error on",
                  "failed to run on host", "could not run node",
                  "Storing result file without outputs")


def _no_failure_noise(record: logging.LogRecord) -> bool:
    """Drop nipype's records about a failed step (its crash file keeps the traceback)."""
    text = record.getMessage()
    return not any(noise in text for noise in _FAILURE_NOISE)


def run_participant(config, command: str | None = None) -> dict:
    """Check inputs, build and run the participant workflow, then write the reports;
    ``command`` (the command line) goes into the derivatives' README.md."""
    from bids_dfc.inputs.preflight import preflight
    from bids_dfc.inputs.raw import make_writable_dirs

    ex = config.execution
    start = time.monotonic()
    subjects = preflight(config)  # every problem at once, before anything is written
    LOGGER.info("inputs checked in %.1f s", time.monotonic() - start)
    make_writable_dirs(output_dir=ex.output_dir, work_dir=ex.work_dir)
    LOGGER.info(
        "processing %d participant(s): %s",
        len(subjects),
        ", ".join(f"sub-{s.subject} ({len(s.bold)} BOLD run(s))" for s in subjects),
    )
    _environment(config)

    from bids_dfc.derivatives import commit_participant
    from bids_dfc.derivatives.dataset import write_dataset_description
    from bids_dfc.reports.participant import write_participant_reports
    from bids_dfc.workflows.base import init_bids_dfc_wf

    log_dir = ex.work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    _configure_nipype(ex, log_dir)
    config.to_json(ex.work_dir / f"config-{time.strftime('%Y%m%d-%H%M%S')}.json")
    write_dataset_description(ex.output_dir, ex.bids_dir, command)
    workflow = init_bids_dfc_wf(config, subjects)
    workflow.base_dir = str(ex.work_dir)
    _run_graph(workflow, config, log_dir, [s.subject for s in subjects])
    for data in subjects:  # each participant's outputs appear once it finished
        commit_participant(ex.output_dir, data.subject)
    return write_participant_reports(config, subjects, workflow)


#: plugins that run the steps on this machine: progress per step, a process tree to stop
LOCAL_PLUGINS = ("MultiProc", "LegacyMultiProc", "Linear")


def _local_runner(plugin: str, plugin_args: dict, progress):
    """The nipype plugin object, counting the steps of the graph it is given."""
    from nipype.pipeline import plugins

    runner = getattr(plugins, f"{plugin}Plugin")(
        plugin_args={**plugin_args, "status_callback": progress})
    run = runner.run

    def counted_run(graph, config, updatehash=False):
        progress.set_graph(list(graph.nodes()))
        return run(graph, config, updatehash=updatehash)

    runner.run = counted_run
    return runner


def _run_graph(workflow, config, log_dir: Path, subjects: list[str]) -> None:
    """Run the participant graph, with progress lines; a failed step becomes one paragraph
    per failure (subject, step, cause, crash file), after the outputs of the subjects that
    finished were put in place."""
    from bids_dfc.cli.cluster import batch_runner, finish_graph_run, is_graph_plugin
    from bids_dfc.cli.failures import failure_report
    from bids_dfc.cli.progress import ParticipantProgress
    from bids_dfc.derivatives import commit_participant

    ex = config.execution
    settings = _nipype_settings(config)
    progress = ParticipantProgress(quiet=ex.quiet)
    run_with, runner = settings, None
    batch_dir = ex.work_dir / workflow.name / "batch"
    if ex.plugin in LOCAL_PLUGINS:
        runner = _local_runner(ex.plugin, settings["plugin_args"], progress)
        run_with = {"plugin": runner}
    elif (batch := batch_runner(ex.plugin, settings["plugin_args"], batch_dir)) is not None:
        run_with = {"plugin": batch}
    # MultiProc runs gc.collect() on every scheduling pass that could start a step; over the
    # heap of a fully imported bids-dfc (antspyx, nilearn, matplotlib, the graph) one
    # collection takes ~0.1 s, i.e. a busy core at 0.1 s per pass. Everything alive now
    # lives until the run ends anyway: freezing it (after one last collection of what is
    # already garbage) leaves only new objects to collect.
    gc.collect()
    gc.freeze()
    started = time.time()
    try:
        execgraph = workflow.run(**run_with)
        if is_graph_plugin(ex.plugin):  # SLURMGraph & co. return once the jobs are submitted
            finish_graph_run(ex.plugin, settings["plugin_args"], execgraph, batch_dir, log_dir)
    except RuntimeError as exc:
        text, finished = failure_report(log_dir, started, subjects, str(exc), ex.work_dir)
        for subject in finished:
            commit_participant(ex.output_dir, subject)
        raise BidsDfcError(text) from None
    except BaseException:  # SIGTERM/SIGINT: main() stops the workers, do not wait for them
        runner = None
        raise
    finally:
        progress.close()
        if getattr(runner, "pool", None) is not None:  # MultiProc's idle workers: end them
            runner.pool.shutdown(wait=True, cancel_futures=True)


def run_group(config, command: str | None = None) -> dict:
    """Run the group statistics over the participant outputs in output_dir; ``command``
    (the command line) goes into the derivatives' README.md once group/ was written."""
    from bids_dfc.derivatives.dataset import write_dataset_description
    from bids_dfc.group.run import run_group_level
    from bids_dfc.inputs.raw import check_bids_dir, check_output_dir

    ex = config.execution
    check_bids_dir(ex.bids_dir)
    check_output_dir(ex.bids_dir, ex.output_dir)
    _environment(config)
    def say(line: str) -> None:  # plain progress lines on stderr (--quiet: none)
        print(line, file=sys.stderr, flush=True)

    outputs = run_group_level(ex.bids_dir, ex.output_dir, config.group,
                              random_seed=ex.random_seed, progress=None if ex.quiet else say)
    write_dataset_description(ex.output_dir, ex.bids_dir, command)
    return outputs


def _crash_file(config, exc: Exception) -> str:
    """Write the traceback of an unexpected error to WORK_DIR/logs/; the message to show."""
    text = "".join(traceback.format_exception(exc))
    try:
        log_dir = Path(config.execution.work_dir) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        crash = log_dir / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-bids_dfc-{os.getpid()}.txt"
        crash.write_text(text)
        where = f"the traceback is in {crash}"
    except OSError:
        where = "the traceback could not be saved; rerun with --debug to see it"
    return (f"unexpected {type(exc).__name__}: {exc}. This is a bug in bids-dfc, not in your "
            f"data: {where}; please report it with that file")


def _debug_traceback(exc: BaseException, debug: bool) -> None:
    """With --debug, the original exception's traceback (the message that follows is a new
    exception, which has none)."""
    if debug:
        traceback.print_exception(exc)


def _report(exc: BaseException, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc)
    print(f"bids-dfc: error: {exc}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run ``bids-dfc``; returns the exit status (0 ok, 1 a step failed, 2 bad input or
    command line, 130/143 interrupted by SIGINT/SIGTERM)."""
    os.environ.setdefault("NIPYPE_NO_ET", "1")  # no update check over the network
    from bids_dfc.cli.parser import parse_args

    config = parse_args(argv)  # exits 2 with a one-line message on a bad option
    _setup_logging(config.execution.verbose)
    LOGGER.info("bids-dfc %s, %s level", __version__, config.execution.analysis_level)
    start = time.monotonic()
    try:
        with stop_on_signals():
            command = shlex.join(["bids-dfc", *(sys.argv[1:] if argv is None else argv)])
            if config.execution.analysis_level == "participant":
                outputs = run_participant(config, command)
            else:
                outputs = run_group(config, command)
    except (Interrupted, KeyboardInterrupt) as exc:
        code = exc.exit_code if isinstance(exc, Interrupted) else 130
        # the pool's futures fail as their workers end: that is the point, not news
        logging.getLogger("concurrent.futures").disabled = True
        killed = stop_process_tree()
        print(f"bids-dfc: interrupted ({exc or 'SIGINT'}): every worker stopped"
              f"{f' ({len(killed)} killed)' if killed else ''}; run the same command with the "
              f"same --work-dir {config.execution.work_dir} to resume", file=sys.stderr)
        return code
    except InputError as exc:  # the user's input or options: nothing was run
        return _report(exc, 2, config.execution.debug)
    except BidsDfcError as exc:
        return _report(exc, 1, config.execution.debug)
    except OSError as exc:  # the machine: a full disk, a lost mount, a permission
        _debug_traceback(exc, config.execution.debug)
        return _report(BidsDfcError(f"{exc.strerror or exc} ({exc.filename or 'no file'}); "
                                    "free space or fix the folder, then run the same command "
                                    "again to resume"), 1, False)
    except Exception as exc:  # a bug: the traceback goes to a crash file, not the screen
        _debug_traceback(exc, config.execution.debug)
        return _report(BidsDfcError(_crash_file(config, exc)), 1, False)
    took = time.monotonic() - start
    print(f"bids-dfc: {config.execution.analysis_level} level finished in {took:.0f} s; "
          f"outputs in {Path(config.execution.output_dir)}")
    for name, path in (outputs or {}).items():
        if name.endswith("report"):
            print(f"  {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
