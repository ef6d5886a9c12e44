"""Input checks of the participant level: every bad input stops before anything is written.

Each case runs the real entry point ``bids_dfc.cli.run.main`` on a small hand-made BIDS
dataset with one defect, and checks: exit status 2, a one-line message naming the file or
subject and what to do, the raw dataset untouched, and no output written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from _bids_data import _write_img, make_bids

from bids_dfc.cli.run import main
from bids_dfc.errors import InputError
from bids_dfc.inputs.raw import check_output_dir, collect_data


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
    }


def run_bad(tmp_path, capsys, bids: Path, *extra, out: Path | None = None):
    out = out or tmp_path / "out"
    before = snapshot(bids) if bids.exists() else None
    code = main([str(bids), str(out), "participant", "--skip-bids-validation",
                 "-w", str(tmp_path / "work"), *extra])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2  # bad input (docs/usage.md, exit codes)
    lines = err.splitlines()  # one problem: one line; several: a heading, then one line each
    assert len(lines) == 1 or all(ln.startswith("  - ") for ln in lines[1:]), err
    if before is not None:
        assert snapshot(bids) == before, "the input dataset was modified"
    written = [p for p in out.rglob("*")] if out.exists() else []
    assert written == [], f"outputs written despite the error: {written}"
    return err


def test_bids_dir_missing(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, tmp_path / "nowhere")
    assert "does not exist" in err and "nowhere" in err


def test_not_a_bids_dataset(tmp_path, capsys):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "scan.nii.gz").write_bytes(b"")
    err = run_bad(tmp_path, capsys, folder)
    assert "not a BIDS dataset" in err and "dataset_description.json" in err


def test_output_inside_raw_data(tmp_path, capsys):
    bids = make_bids(tmp_path / "bids")
    err = run_bad(tmp_path, capsys, bids, out=bids / "sub-01" / "out")
    assert "inside the raw dataset" in err and "derivatives" in err
    with pytest.raises(InputError):
        check_output_dir(bids, bids)
    check_output_dir(bids, bids / "derivatives" / "bids_dfc")  # the BIDS place is fine


def test_unknown_participant(tmp_path, capsys):
    bids = make_bids(tmp_path / "bids")
    err = run_bad(tmp_path, capsys, bids, "--participant-label", "07")
    assert "07" in err and "available: 01, 02" in err


def test_no_bold_for_the_task(tmp_path, capsys):
    bids = make_bids(tmp_path / "bids")
    err = run_bad(tmp_path, capsys, bids, "--task", "nback")
    assert "nback" in err and "available tasks: rest" in err


def test_corrupt_nifti(tmp_path, capsys):
    bids = make_bids(tmp_path / "bids")
    bold = bids / "sub-02/func/sub-02_task-rest_bold.nii.gz"
    bold.write_bytes(bold.read_bytes()[: 400])  # truncated gzip stream
    err = run_bad(tmp_path, capsys, bids)
    assert "sub-02_task-rest_bold.nii.gz" in err and "corrupt" in err


def test_missing_repetition_time(tmp_path, capsys):
    bids = make_bids(tmp_path / "bids")
    (bids / "sub-01/func/sub-01_task-rest_bold.json").write_text(json.dumps({"TaskName": "rest"}))
    err = run_bad(tmp_path, capsys, bids)
    assert "RepetitionTime is missing" in err and "sub-01_task-rest_bold.nii.gz" in err


def test_3d_bold(tmp_path, capsys):
    bids = make_bids(tmp_path / "bids")
    bold = bids / "sub-01/func/sub-01_task-rest_bold.nii.gz"
    _write_img(bold, (7, 8, 6), np.random.default_rng(1))
    err = run_bad(tmp_path, capsys, bids)
    assert "must be 4-D" in err and "sub-01_task-rest_bold.nii.gz" in err


def test_too_few_volumes_after_dummies(tmp_path, capsys):
    bids = make_bids(tmp_path / "bids", n_vols=53)
    err = run_bad(tmp_path, capsys, bids)
    assert err.startswith("bids-dfc: error: 2 problems found before starting")
    for sub in ("sub-01", "sub-02"):  # every run reported, not just the first
        assert f"{sub}_task-rest_bold.nii.gz: 53 volumes, 49 after the 4 non-steady-state" in err


def test_read_only_output_dir(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions; the read-only mount case is covered by "
                    "tests/test_faults.py and the container test")
    bids = make_bids(tmp_path / "bids")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    err = run_bad(tmp_path, capsys, bids, out=locked / "out")
    assert "not writable" in err


class _Cfg:
    """Minimal stand-in for the parsed Config of collect_data: only the fields it reads."""

    def __init__(self, bids, **kw):
        from bids_dfc.cli.parser import parse_args

        argv = [str(bids), "/tmp/unused_out", "participant"]
        for key, value in kw.items():
            argv += [f"--{key.replace('_', '-')}", *value]
        cfg = parse_args(argv)
        self.execution, self.workflow = cfg.execution, cfg.workflow


def test_selection_of_subjects_tasks_and_missing_t1w(tmp_path, caplog):
    bids = make_bids(tmp_path / "bids", subjects=("01", "02", "03"), tasks=("rest", "nback"))
    found = collect_data(_Cfg(bids))
    assert [s.subject for s in found] == ["01", "02", "03"]
    # default task: the ones whose name contains "rest"
    assert all(len(s.bold) == 1 and "task-rest" in s.bold[0].name for s in found)
    found = collect_data(_Cfg(bids, participant_label=["sub-02"], task=["nback", "rest"]))
    assert [s.subject for s in found] == ["02"] and len(found[0].bold) == 2
    assert found[0].bold_metadata[str(found[0].bold[0])]["RepetitionTime"] == 2.0
    # a subject without T1w is skipped with a message while others remain...
    (bids / "sub-03/anat/sub-03_T1w.nii.gz").unlink()
    found = collect_data(_Cfg(bids))
    assert [s.subject for s in found] == ["01", "02"]
    assert "sub-03: no T1w image" in caplog.text
    # ...and is an error naming the subject when it is the only one
    with pytest.raises(InputError, match="sub-03: no T1w image"):
        collect_data(_Cfg(bids, participant_label=["03"]))
