"""bids_dfc on a real single-node SLURM cluster (munge + slurmctld + slurmd).

The cluster is started with ``scripts/slurm/start_cluster.sh`` in a temporary folder (its own
ports, config, keys and logs) and stopped by the PIDs in its PID files. Two ways of running
on SLURM are exercised on the demo dataset:

* the documented array job (``scripts/slurm/submit.sh``): one participant per task, then a
  group-level job that depends on all tasks (``--dependency=afterok``);
* nipype's ``SLURM`` and ``SLURMGraph`` plugins (``--plugin SLURM --plugin-args ...``),
  where every workflow node is its own batch job; their dFC tables must equal the ones the
  array job wrote.

Skipped, with the reason, when the Debian packages slurmctld, slurmd, slurm-client and munge
are missing, or when not root (the daemons run as root, ``SlurmUser=root``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _daemons import own
from _demo_data import dmn_des_sd

from bids_dfc.io import pid_alive

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "slurm"
BIN = Path(sys.executable).parent
TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
MISSING = [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
#: a hung job trips it, a loaded machine never (a job of the demo takes ~1-4 min; the tests
#: poll the queue, they do not sleep a fixed time); BIDS_DFC_TEST_PATIENCE scales it
JOB_TIMEOUT = 3600 * float(os.environ.get("BIDS_DFC_TEST_PATIENCE", "1"))
#: SLURM's own limit per job: generous for the same reason
JOB_TIME_LIMIT = "02:00:00"

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"SLURM is not installed (missing {', '.join(MISSING)}): apt-get install -y "
        "slurmctld slurmd slurm-client munge",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the test cluster's daemons run as root (SlurmUser=root)"
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running cluster; yields the environment clients need (SLURM_CONF, LOGNAME, PATH)."""
    # munged wants every folder above its socket searchable by all (pytest's are private).
    folder = Path(tempfile.mkdtemp(prefix="bids_dfc_slurm_"))
    folder.chmod(0o755)
    own(str(folder))  # in every daemon's command line, and in slurmstepd's SLURM_CONF
    mem_total_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}:/usr/sbin",
        "SLURM_MEMORY_MB": str(max(2000, int(mem_total_mb * 0.75))),
        "SLURMCTLD_PORT": str(_free_port()),
        "SLURMD_PORT": str(_free_port()),
        "SLURM_CONF": str(folder / "slurm.conf"),
        "LOGNAME": os.environ.get("LOGNAME", "root"),
        "MPLBACKEND": "Agg",
        "NIPYPE_NO_ET": "1",
    }
    pids = []
    try:
        subprocess.run([str(SCRIPTS / "start_cluster.sh"), str(folder)], env=env, check=True,
                       capture_output=True, text=True, timeout=60)
        pids = [int((folder / f"{d}.pid").read_text()) for d in ("slurmd", "slurmctld", "munged")]
        yield {"env": env, "dir": folder}
    finally:
        subprocess.run([str(SCRIPTS / "stop_cluster.sh"), str(folder)], env=env, timeout=120)
    assert not [pid for pid in pids if pid_alive(pid)], "a SLURM daemon survived stop_cluster"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(shared_demo_bids) -> Path:
    """Demo dataset with 2 participants (both run at once on the 2-CPU node)."""
    return shared_demo_bids


def _wait_for_jobs(job_ids, env, timeout=JOB_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T %R"], env=env,
                               capture_output=True, text=True, check=True).stdout
        if not any(line.split()[0].split("_")[0] in job_ids for line in queue.splitlines()):
            return
        time.sleep(2)
    subprocess.run(["scancel", *job_ids], env=env)
    pytest.fail(f"SLURM jobs {job_ids} not finished after {timeout} s; queue:\n{queue}")


def _job_states(job_id: str, env) -> list[tuple[str, str]]:
    """(JobState, ExitCode) of a job and of every task of an array job."""
    shown = subprocess.run(["scontrol", "show", "job", job_id], env=env,
                           capture_output=True, text=True, check=True).stdout
    return re.findall(r"JobState=(\S+).*?ExitCode=(\S+)", shown, flags=re.S)


def _subjects(bids: Path) -> list[str]:
    return sorted(p.name for p in bids.glob("sub-*") if p.is_dir())


def _dfc_table(out: Path, subject: str) -> Path:
    tables = sorted((out / subject).rglob("*_dfc.tsv"))
    assert tables, f"no dFC table for {subject} in {out}"
    return tables[0]


@pytest.fixture(scope="module")
def array_run(cluster, demo, tmp_path_factory):
    """The documented submission: array job + dependent group job; returns (out, work)."""
    root = tmp_path_factory.mktemp("slurm_array")
    out, work = root / "derivatives", root / "work"
    env = {**cluster["env"], "BIDS_DFC": str(BIN / "bids-dfc")}
    mem_mb = int(env["SLURM_MEMORY_MB"]) // 2
    submitted = subprocess.run(
        [str(SCRIPTS / "submit.sh"), "--concurrency", "2", "--cpus", "1", "--mem",
         f"{mem_mb}M", "--time", JOB_TIME_LIMIT, str(demo), str(out), str(work), "--", "--sloppy",
         "--n-boot", "200"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    ids = dict(line.split("=") for line in submitted.stdout.split())
    _wait_for_jobs([ids["array_job"], ids["group_job"]], env)
    return out, work, ids, env


def test_array_job_runs_every_participant_then_group(array_run, demo):
    out, work, ids, env = array_run
    logs = "\n".join(p.read_text() for p in sorted((work / "logs").glob("*.log")))
    states = _job_states(ids["array_job"], env)
    assert len(states) == len(_subjects(demo)), states
    assert all(state == ("COMPLETED", "0:0") for state in states), f"{states}\n{logs[-4000:]}"
    # the group job ran after both tasks and read both participants; two demo participants
    # (one NR, one R) support no dFC test, but the demo's crossover trial is analysed
    assert _job_states(ids["group_job"], env) == [("COMPLETED", "0:0")], logs[-4000:]
    assert "no statistical test of dFC could be computed from 2 participants" in logs, \
        logs[-4000:]
    for subject in _subjects(demo):
        assert 0 < dmn_des_sd(_dfc_table(out, subject)) < 1
        assert (work / subject).is_dir(), "each task must use its own work folder"
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert (out / "group" / "trial" / "contrasts.tsv").is_file(), "the trial's results"
    assert (out / "group" / "report.html").is_file()


def test_failed_task_blocks_group_level(cluster, demo, tmp_path):
    """A participant that fails makes its task fail, and the group job is never started."""
    subjects = tmp_path / "subjects.txt"
    subjects.write_text("notinthedataset\n")
    env = {**cluster["env"], "BIDS_DFC": str(BIN / "bids-dfc")}
    submitted = subprocess.run(
        [str(SCRIPTS / "submit.sh"), "--subjects", str(subjects), "--mem", "1000M",
         str(demo), str(tmp_path / "out"), str(tmp_path / "work")],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    ids = dict(line.split("=") for line in submitted.stdout.split())
    _wait_for_jobs([ids["array_job"], ids["group_job"]], env)
    state, code = _job_states(ids["array_job"], env)[0]
    assert state == "FAILED" and code != "0:0", (state, code)
    group_state = _job_states(ids["group_job"], env)[0][0]
    assert group_state == "CANCELLED", f"group job should be cancelled, is {group_state}"
    assert not (tmp_path / "out" / "group").exists()


PLUGINS = ("SLURM", "SLURMGraph")


@pytest.fixture(scope="module")
def plugin_runs(cluster, array_run, demo, tmp_path_factory) -> dict:
    """One participant through each nipype SLURM plugin, both submitting at the same time
    (the 2-CPU node runs a job of each side by side): {plugin: (code, stderr, out, work,
    subject)}."""
    subjects = _subjects(demo)
    plugin_args = {"sbatch_args": f"--mem=2000M --cpus-per-task=1 --time={JOB_TIME_LIMIT}",
                   "max_jobs": 2, "poll_sleep_duration": 1}
    started = {}
    for index, plugin in enumerate(PLUGINS):
        root = tmp_path_factory.mktemp(f"slurm_{plugin}")
        subject = subjects[index % len(subjects)]
        proc = subprocess.Popen(
            [str(BIN / "bids-dfc"), str(demo), str(root / "out"), "participant",
             "--participant-label", subject[4:], "-w", str(root / "work"), "--sloppy",
             "--plugin", plugin, "--plugin-args", json.dumps(plugin_args)],
            env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[plugin] = (proc, root, subject)
    runs = {}
    for plugin, (proc, root, subject) in started.items():
        _, stderr = proc.communicate(timeout=JOB_TIMEOUT)
        runs[plugin] = (proc.returncode, stderr, root / "out", root / "work", subject)
    return runs


@pytest.mark.parametrize("plugin", PLUGINS)
def test_nipype_slurm_plugins_match_array_job(plugin_runs, array_run, plugin):
    """``--plugin SLURM`` (nodes submitted as they become ready) and ``--plugin SLURMGraph``
    (the whole graph submitted at once with dependencies; bids-dfc waits for it): every node
    a batch job, and the same dFC numbers as the array job. One participant each."""
    code, stderr, out, work, subject = plugin_runs[plugin]
    assert code == 0, stderr[-4000:]
    batch_scripts = list(work.rglob("batchscript_*.sh"))
    assert batch_scripts, "nipype did not submit the nodes through sbatch"
    if plugin == "SLURMGraph":
        assert list(work.rglob("submit_jobs.sh")), "SLURMGraph wrote no submission script"
        assert list(out.glob(f"{subject}*.html")), "no report: bids-dfc did not wait for the jobs"
    out_array = array_run[0]
    assert _dfc_table(out, subject).read_text() == _dfc_table(out_array, subject).read_text()


def test_cancelled_step_job_is_told_not_a_crash(cluster, demo, tmp_path):
    """A step's job that leaves the queue without a result (here ``scancel``; on a cluster a
    time or memory limit, or a lost node) ends the run with the failure paragraph naming the
    step and the scheduler's log, exit status 1: not nipype's TypeError, which bids-dfc
    reported as a bug of its own."""
    env = cluster["env"]
    plugin_args = {"sbatch_args": f"--mem=2000M --cpus-per-task=1 --time={JOB_TIME_LIMIT}",
                   "max_jobs": 1, "poll_sleep_duration": 1}
    proc = subprocess.Popen(
        [str(BIN / "bids-dfc"), str(demo), str(tmp_path / "out"), "participant",
         "--participant-label", _subjects(demo)[0][4:], "-w", str(tmp_path / "work"),
         "--sloppy", "--plugin", "SLURM", "--plugin-args", json.dumps(plugin_args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cancelled = None
    deadline = time.monotonic() + JOB_TIMEOUT
    while cancelled is None and proc.poll() is None and time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=env, capture_output=True,
                               text=True, check=True).stdout.split()
        running = [job for job, state in zip(queue[::2], queue[1::2]) if state == "RUNNING"]
        if running:
            time.sleep(2)  # the step is under way, not just starting
            subprocess.run(["scancel", running[0]], env=env, check=True)
            cancelled = running[0]
        time.sleep(0.5)
    _, stderr = proc.communicate(timeout=JOB_TIMEOUT)
    assert cancelled, f"no job of the run was seen running:\n{stderr[-3000:]}"
    assert proc.returncode == 1, stderr[-4000:]
    assert "Traceback" not in stderr and "bug in bids-dfc" not in stderr, stderr[-4000:]
    assert "the participant level failed" in stderr, stderr[-4000:]
    assert "ended without writing its result" in stderr, stderr[-4000:]
    assert str(tmp_path / "work") in stderr  # where the job's log is
