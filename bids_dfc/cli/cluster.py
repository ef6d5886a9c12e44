"""Wait for the jobs that a nipype *graph* plugin submitted, then check they all succeeded.

nipype's graph plugins (``SLURMGraph``, ``SGEGraph``, ...) submit every node of the workflow
at once, chained by job dependencies, and return as soon as the submission is done: the
results do not exist yet when ``workflow.run`` returns. ``bids-dfc`` then waits here before
it writes the reports, so that ``--plugin SLURMGraph`` behaves like every other plugin (the
command ends when the participant level is done, with exit status 0 only if every step
succeeded). Only SLURM is supported for waiting (``squeue``/``scancel``); other graph
plugins stop with a message saying how to finish.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from bids_dfc.errors import BidsDfcError

#: Reasons squeue gives for a job that can never start because a job it depends on failed.
_DEAD_REASONS = ("DependencyNeverSatisfied",)


def is_graph_plugin(plugin: str) -> bool:
    """True for nipype plugins that submit the whole graph and return at once."""
    return plugin.endswith("Graph")


def submitted_job_names(batch_dir: Path) -> list[str]:
    """Job names (``sbatch -J``) in the ``submit_jobs.sh`` nipype's SLURMGraph wrote."""
    script = Path(batch_dir) / "submit_jobs.sh"
    if not script.exists():
        return []
    return re.findall(r"\s-J\s+(\S+)\s", script.read_text())


def _squeue(names: set[str]) -> list[tuple[str, str, str]]:
    """``(job id, name, reason)`` of our jobs still queued or running."""
    done = subprocess.run(["squeue", "--noheader", "--format=%i|%j|%r"], capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise BidsDfcError(f"squeue failed while waiting for the submitted jobs: "
                           f"{done.stderr.strip()}")
    jobs = []
    for line in done.stdout.splitlines():
        job_id, name, reason = (line.split("|", 2) + ["", ""])[:3]
        if name in names:
            jobs.append((job_id.strip(), name, reason.strip()))
    return jobs


def wait_for_slurm_graph(batch_dir: Path, *, poll_s: float = 5.0,
                         timeout_s: float | None = None) -> None:
    """Block until no job submitted from ``batch_dir`` is left in the SLURM queue.

    Jobs that can never run because a job they depend on failed are cancelled (SLURM keeps
    them pending otherwise), so a failed step ends the wait instead of hanging it.

    Raises
    ------
    BidsDfcError
        If ``squeue`` is missing or fails, or the wait exceeds ``timeout_s``.
    """
    if shutil.which("squeue") is None:
        raise BidsDfcError("--plugin SLURMGraph submitted the jobs, but squeue is not on the "
                           "PATH here, so bids-dfc cannot wait for them; run it where the "
                           "SLURM commands are available")
    names = set(submitted_job_names(batch_dir))
    start = time.monotonic()
    while names:
        jobs = _squeue(names)
        if not jobs:
            return
        dead = [job_id for job_id, _, reason in jobs if reason in _DEAD_REASONS]
        if dead:
            subprocess.run(["scancel", *dead], capture_output=True, timeout=120)
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise BidsDfcError(f"{len(jobs)} submitted job(s) still queued or running after "
                               f"{timeout_s:.0f} s (e.g. {jobs[0][1]}); check squeue")
        time.sleep(poll_s)


def unfinished_nodes(execgraph) -> list[str]:
    """Nodes of an executed graph that have no result file (failed or never ran)."""
    missing = []
    for node in execgraph.nodes():
        result = Path(node.output_dir()) / f"result_{node.name}.pklz"
        if not result.exists():
            missing.append(node.fullname)
    return missing


def finish_graph_run(plugin: str, plugin_args: dict, execgraph, batch_dir: Path,
                     log_dir: Path) -> None:
    """After ``workflow.run`` with a graph plugin: wait for the jobs and check every node.

    Raises
    ------
    BidsDfcError
        For a graph plugin other than SLURMGraph (cannot wait), or when a step failed
        (names the steps and where their logs are).
    """
    if plugin != "SLURMGraph":
        raise BidsDfcError(
            f"--plugin {plugin} submitted every step as a job and returned; bids-dfc can only "
            "wait for SLURM jobs. When the jobs have finished, run the same command again "
            "with --plugin Linear and the same --work-dir: finished steps are reused and the "
            "reports are written")
    wait_for_slurm_graph(batch_dir, poll_s=float(plugin_args.get("poll_sleep_duration", 5)))
    missing = unfinished_nodes(execgraph)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        raise BidsDfcError(
            f"{len(missing)} step(s) did not finish under SLURMGraph: {shown}. Job logs: "
            f"{batch_dir}/batchscript_*.sh.e; crash reports: {log_dir}. Fix the cause and "
            "rerun with the same --work-dir (add \"dont_resubmit_completed_jobs\": true to "
            "--plugin-args to reuse the finished steps)")


#: Seconds a batch plugin waits, after a job left the queue, for the step's result file to
#: appear (nipype's ``job_finished_timeout``, 5 s by default): on a cluster's shared file
#: system a file written on the compute node can take longer to be seen on the submit host.
RESULT_WAIT_S = 30.0


def batch_runner(plugin: str, plugin_args: dict, batch_dir: Path):
    """The nipype plugin object for a batch plugin that submits a job per step (``SLURM``,
    ``SGE``, ``PBS``, ``LSF``, ``OAR``, ``Condor``), or ``None`` for any other plugin.

    It is nipype's own plugin with one repair. When a job leaves the queue without writing
    its step's result (cancelled, killed at a time or memory limit, its node lost), nipype
    1.x builds the crash report from a string where it expects a list of lines and dies of
    a ``TypeError``, so the user saw "a bug in bids-dfc" instead of the step that was lost.
    Here that traceback is made a list and says what happened and where the job's log is.
    """
    from nipype.pipeline import plugins
    from nipype.pipeline.plugins.base import SGELikeBatchManagerBase

    base = getattr(plugins, f"{plugin}Plugin", None)
    if base is None or not issubclass(base, SGELikeBatchManagerBase):
        return None

    class LostJobsTold(base):  # type: ignore[misc, valid-type]
        def _report_crash(self, node, result=None):
            if result is not None and isinstance(result.get("traceback"), str):
                lines = result["traceback"].splitlines(keepends=True)
                if "results file does not exist" in result["traceback"]:
                    lines.append(
                        f"JobLostError: the batch job of step {node.fullname} ended without "
                        "writing its result: it was cancelled or killed (scancel, a time or "
                        "memory limit, a failed node). Its scheduler log is in "
                        f"{batch_dir} (slurm-<job id>.out for SLURM)\n")
                result = {**result, "traceback": lines}
            return super()._report_crash(node, result=result)

    return LostJobsTold(plugin_args=plugin_args)
