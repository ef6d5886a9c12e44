"""Faults that batch systems produce, on the real pipeline and the demo dataset.

* A participant run killed with SIGKILL (an out-of-time or out-of-memory job) and started
  again with the same work folder resumes from nipype's cache (finished steps are not
  recomputed) and writes the same outputs as a run that was never interrupted.
* Two participants writing into one output folder at the same time (two array tasks) leave
  a valid dataset and no half-written or temporary files.
* A read-only output folder is refused with a clear message before anything is processed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # tier: tests/conftest.py

BIN = Path(sys.executable).parent
#: a hung run trips it, a loaded machine never; BIDS_DFC_TEST_PATIENCE scales it
RUN_TIMEOUT = 3600 * float(os.environ.get("BIDS_DFC_TEST_PATIENCE", "1"))
#: Kill once this many workflow steps have finished (of ~45 for one demo participant).
KILL_AFTER = 10
#: The (empty) file whose lock serialises writes of shared files; it stays by design.
LOCK_FILE = ".bids_dfc.lock"
BASE_ARGS = ["--sloppy", "--nprocs", "1", "--omp-nthreads", "1"]


def _env() -> dict:
    return {**os.environ, "MPLBACKEND": "Agg", "NIPYPE_NO_ET": "1"}


def bids_dfc(*args, **kwargs) -> subprocess.Popen:
    """Start ``bids-dfc`` in its own process group (so a kill reaches its workers)."""
    return subprocess.Popen([str(BIN / "bids-dfc"), *map(str, args)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


@pytest.fixture(scope="module")
def demo(shared_demo_bids) -> Path:
    """Demo dataset with 2 participants."""
    return shared_demo_bids


def _subjects(bids: Path) -> list[str]:
    return sorted(p.name[4:] for p in bids.glob("sub-*") if p.is_dir())


@pytest.fixture(scope="module")
def concurrent_run(demo, tmp_path_factory):
    """Both participants at once into one output folder (separate work folders)."""
    root = tmp_path_factory.mktemp("faults_concurrent")
    out = root / "out"
    procs = [bids_dfc(demo, out, "participant", "--participant-label", label,
                      "-w", root / f"work_{label}", *BASE_ARGS) for label in _subjects(demo)]
    results = [(p.wait(timeout=RUN_TIMEOUT), *p.communicate()) for p in procs]
    return out, results


def _outputs(out: Path, subject: str) -> dict[str, Path]:
    folder = out / f"sub-{subject}"
    return {str(p.relative_to(out)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _same_content(a: Path, b: Path) -> bool:
    if a.name.endswith(".nii.gz") or a.name.endswith(".nii"):
        import nibabel as nib
        import numpy as np

        ia, ib = nib.load(a), nib.load(b)
        return np.array_equal(ia.affine, ib.affine) and np.array_equal(
            np.asanyarray(ia.dataobj), np.asanyarray(ib.dataobj), equal_nan=True)
    return a.read_bytes() == b.read_bytes()


def test_two_participants_at_once_into_one_output_dir(concurrent_run, demo):
    out, results = concurrent_run
    for code, _, stderr in results:
        assert code == 0, stderr[-4000:]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"], description
    for subject in _subjects(demo):
        tables = [p for p in _outputs(out, subject).values() if p.name.endswith("_dfc.tsv")]
        assert tables, f"no dFC table for sub-{subject}"
        rows = [line.split("\t") for line in tables[0].read_text().splitlines()]
        assert len({len(row) for row in rows}) == 1, "ragged (interleaved) TSV rows"
    for sidecar in out.rglob("*.json"):
        json.loads(sidecar.read_text())  # every JSON file complete and parseable
    leftovers = [p for p in out.rglob("*") if (p.name.startswith(".") or ".tmp" in p.name)
                 and p.name != LOCK_FILE]
    assert not leftovers, f"temporary files left in the output folder: {leftovers}"


def _results(work: Path) -> dict[Path, int]:
    """nipype's per-node result files (written when a node finishes) and their mtimes.

    Derivatives sinks (``ds_*`` nodes) are left out: they copy finished files into the
    output folder and run again on every run by design (cheap, and it restores outputs
    deleted by hand); every computing step must come from the cache.
    """
    return {p: p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")
            if not p.parent.name.startswith("ds_") and "_ds_" not in p.parent.name}


def test_sigkill_then_resume_gives_same_outputs(concurrent_run, demo, tmp_path):
    reference_out = concurrent_run[0]
    subject = _subjects(demo)[0]
    out, work = tmp_path / "out", tmp_path / "work"
    # two workers here (one each in the reference run): the outputs must not depend on it
    args = (demo, out, "participant", "--participant-label", subject, "-w", work, "--sloppy",
            "--nprocs", "2", "--omp-nthreads", "1")

    proc = bids_dfc(*args)
    deadline = time.monotonic() + RUN_TIMEOUT
    while len(_results(work)) < KILL_AFTER and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed mid-way"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, as SLURM does at its time limit
    proc.communicate(timeout=RUN_TIMEOUT)
    finished = _results(work)
    assert len(finished) >= KILL_AFTER

    rerun = bids_dfc(*args)
    code = rerun.wait(timeout=RUN_TIMEOUT)
    _, stderr = rerun.communicate()
    assert code == 0, stderr[-4000:]
    touched = [p for p, mtime in finished.items() if not p.exists() or
               p.stat().st_mtime_ns != mtime]
    assert not touched, f"steps finished before the kill were recomputed: {touched}"

    expected, got = _outputs(reference_out, subject), _outputs(out, subject)
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if not _same_content(expected[name], got[name])]
    assert not differing, f"resumed outputs differ from the uninterrupted run: {differing}"


def _read_only_dir(path: Path):
    """Make *path* a read-only folder even for root (a read-only tmpfs); return an undo."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here (mount failed: "
                    f"{mounted.stderr.strip()})")
    return lambda: subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("inside", [False, True], ids=["output-dir", "parent-of-output-dir"])
def test_read_only_output_dir_refused_before_processing(demo, tmp_path, inside):
    read_only = tmp_path / "ro"
    undo = _read_only_dir(read_only)
    out, work = (read_only / "derivatives" if inside else read_only), tmp_path / "work"
    try:
        proc = bids_dfc(demo, out, "participant", "-w", work, *BASE_ARGS)
        code = proc.wait(timeout=RUN_TIMEOUT)
        _, stderr = proc.communicate()
    finally:
        undo()
    assert code == 2, stderr  # bad input
    assert str(out) in stderr and "not writable" in stderr, stderr
    assert "Traceback" not in stderr, "a clear message, not a traceback"
    assert not (work.exists() and list(work.rglob("*.pklz"))), "processing started"
