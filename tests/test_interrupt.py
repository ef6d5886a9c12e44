"""A participant run seen by the person watching it and stopped the way SLURM stops it.

Real runs of ``bids-dfc`` on the shared demo dataset: progress lines (subject, step done /
total, step, elapsed) on a non-terminal stderr, none with ``--quiet``; a real SIGTERM (what
``scancel`` and time limits send) or SIGINT mid-run ends the run with 143 or 130 and leaves
no process behind; a step that fails is told as one paragraph naming the subject, the step,
the cause and the crash file, with no traceback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from _bids_data import make_bids
from _demo_data import copy_tree
from _signals import as_from_a_terminal

from bids_dfc.cli.signals import descendants, running

pytestmark = pytest.mark.slow  # tier: tests/conftest.py

BIN = Path(sys.executable).parent
#: generous: only a hung run trips it, never a slow machine
PATIENCE_S = 900
PROGRESS = re.compile(r"^sub-(\w+)  (\d+)/(\d+)  (\S.*\S)  (\d+m\d\ds)$", re.M)


def _start(bids: Path, tmp: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "MPLBACKEND": "Agg", "NIPYPE_NO_ET": "1"}
    return subprocess.Popen(
        [str(BIN / "bids-dfc"), str(bids), str(tmp / "out"), "participant", "-w",
         str(tmp / "work"), "--sloppy", "--nprocs", "2", "--omp-nthreads", "1",
         "--skip-bids-validation", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=as_from_a_terminal)


def _wait_for_workers(proc: subprocess.Popen, n: int = 2) -> list[int]:
    """Wait until the run has ``n`` worker processes (MultiProc's pool); return them all."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        workers = descendants(proc.pid)
        if len(workers) >= n:
            time.sleep(3)  # let the workers start real steps
            return descendants(proc.pid)
        time.sleep(0.2)
    raise AssertionError("the run never started its workers")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_stops_every_worker(shared_demo_bids, tmp_path, sig, code):
    proc = _start(shared_demo_bids, tmp_path)
    workers = _wait_for_workers(proc)
    sent = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(timeout=PATIENCE_S) == code
    took = time.monotonic() - sent
    _, stderr = proc.communicate()
    print(f"{signal.Signals(sig).name}: exit {code} {took:.1f} s after the signal")
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "interrupted (" in stderr and "same --work-dir" in stderr
    time.sleep(0.5)
    left = [pid for pid in workers if running(pid)]
    assert not left, f"processes left behind: {left}"
    assert took < 60, f"the run took {took:.0f} s to stop"  # 3 s grace, then SIGKILL
    # nothing that looks like a participant's outputs: they wait in .staging/
    assert not list((tmp_path / "out").glob("sub-*")), list((tmp_path / "out").iterdir())


def test_progress_lines_then_quiet(shared_demo_bids, tmp_path):
    proc = _start(shared_demo_bids, tmp_path / "a")
    _wait_for_workers(proc)
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=PATIENCE_S)
    stderr = proc.communicate()[1]
    lines = PROGRESS.findall(stderr)
    assert lines, stderr[-3000:]
    assert "\r" not in stderr, "plain lines when stderr is not a terminal"
    assert {sub for sub, *_ in lines} <= {"01", "02"}
    assert all(int(done) <= int(total) for _, done, total, *_ in lines)

    quiet = _start(shared_demo_bids, tmp_path / "b", "--quiet")
    _wait_for_workers(quiet)
    time.sleep(5)
    quiet.send_signal(signal.SIGTERM)
    quiet.wait(timeout=PATIENCE_S)
    assert not PROGRESS.findall(quiet.communicate()[1])


def test_failed_step_is_one_paragraph(tmp_path):
    """Noise as T1w passes the input check but fails registration's quality check."""
    bids = make_bids(tmp_path / "bids")
    proc = _start(bids, tmp_path)
    assert proc.wait(timeout=PATIENCE_S) == 1
    stderr = proc.communicate()[1]
    assert "Traceback (most recent call last)" not in stderr, stderr[-3000:]
    message = stderr[stderr.index("bids-dfc: error: "):]
    for sub in ("sub-01", "sub-02"):
        assert re.search(rf"{sub}, step anat_wf\.\S+: RegistrationError: Registration of "
                         rf".*{sub}_T1w\.nii\.gz", message), message
    crash = re.findall(r"full traceback: (\S+crash-\S+\.txt)\)", message)
    assert len(crash) == 2 and all(Path(c).is_file() for c in crash)
    assert "Traceback" in Path(crash[0]).read_text()
    assert "failed: sub-01, sub-02" in message or "failed: sub-02, sub-01" in message
    assert not list((tmp_path / "out").glob("sub-*"))


def test_finished_subject_kept_failed_one_left_out(shared_demo_bids, tmp_path):
    """sub-02's T1w replaced by noise: sub-01's outputs are put in place, sub-02's not."""
    bids = copy_tree(shared_demo_bids, tmp_path / "bids")
    t1w = next((bids / "sub-02" / "anat").glob("*_T1w.nii.gz"))
    img = nb.load(t1w)
    noise = np.random.default_rng(0).normal(100, 5, img.shape).astype("float32")
    nb.Nifti1Image(noise, img.affine, img.header).to_filename(t1w)
    proc = _start(bids, tmp_path)
    assert proc.wait(timeout=PATIENCE_S) == 1
    message = proc.communicate()[1]
    assert "sub-02, step anat_wf." in message and "failed: sub-02; finished: sub-01" in message
    out = tmp_path / "out"
    assert list((out / "sub-01").rglob("*_seg-seeds_dfc.tsv")), "sub-01 finished"
    assert not (out / "sub-02").exists(), "sub-02 failed: nothing of it in place"
    assert not list((out / ".staging").glob("sub-01")), "sub-01's staging was moved"
