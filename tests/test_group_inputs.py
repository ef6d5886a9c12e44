"""The group level on bad input: refused with every bad file named, group/ never half-made.

Real datasets (``make_group_dataset``: participants.tsv, phenotype/, one participant-format
``*_seg-seeds_dfc.tsv`` per run), damaged the way files get damaged (cut short, edited,
copied), then the real group level. Each refusal must name the culprit file relative to
output_dir and say what to do; a run that fails late, or is killed, must leave the previous
``group/`` byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_group_workflow import _set_cell, group_options, make_group_dataset

from bids_dfc.errors import BidsDfcError, InputError
from bids_dfc.group.collect import collect_dfc
from bids_dfc.group.run import run_group_level
from bids_dfc.io import ABANDONED_AFTER_S

HOST = socket.gethostname()


def _rel(sub: str, run: str = "") -> str:
    return f"{sub}/func/{sub}_task-rest{run}_seg-seeds_dfc.tsv"


def _refused(bids, out, **options) -> str:
    """The message of the InputError the group level raises; group/ must not appear."""
    had_group = (out / "group").exists()
    with pytest.raises(InputError) as info:
        run_group_level(bids, out, group_options(n_boot=200, **options), random_seed=0)
    assert (out / "group").exists() == had_group
    return str(info.value)


def _line_of(message: str, rel: str) -> str:
    """The message line naming ``rel`` (exactly one)."""
    lines = [ln for ln in message.splitlines() if ln.strip().startswith(rel + ":")]
    assert len(lines) == 1, message
    return lines[0]


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp_dirs(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob(".group.*"))


@pytest.fixture
def small(tmp_path):
    """15 participants (sub-03 with two runs, sub-05 over the FD limit)."""
    bids, out, _ = make_group_dataset(tmp_path, n_hc=5, n_patients=10, seed=4)
    return bids, out


def test_header_only_file_is_refused(small):
    bids, out = small
    path = out / _rel("sub-04")
    path.write_text(path.read_text().splitlines()[0] + "\n")
    line = _line_of(_refused(bids, out), _rel("sub-04"))
    assert "header only, no data rows (cut short)" in line
    assert line.endswith("-> rerun the participant level for sub-04")


def test_row_cut_mid_line_is_refused(small):
    bids, out = small
    path = out / _rel("sub-06")
    data = path.read_bytes()
    path.write_bytes(data[:-9])  # the writer was killed inside the last row
    msg = _refused(bids, out)
    line = _line_of(msg, _rel("sub-06"))
    assert "line 6 is cut off (no line end, 10 of 11 fields)" in line
    assert "rerun the participant level for sub-06" in line
    assert msg.splitlines()[0].startswith("1 of 16 participant dFC files in")
    assert msg.splitlines()[-1].endswith("participant --participant-label 06")


def test_rows_lost_at_a_line_end_are_refused(small):
    """Cut exactly after a line: every line complete, but the last seed pairs are gone."""
    bids, out = small
    path = out / _rel("sub-08")
    path.write_text("\n".join(path.read_text().splitlines()[:4]) + "\n")
    line = _line_of(_refused(bids, out), _rel("sub-08"))
    assert "seed pairs differ from those of 15 other file(s) (missing mPFC-PAG, mPFC-RVM; " \
           "extra none)" in line


def test_missing_mean_fd_refused_with_fd_qc_accepted_without(small):
    bids, out = small
    path = out / _rel("sub-07")
    pd.read_csv(path, sep="\t").drop(columns="mean_fd").to_csv(path, sep="\t", index=False)
    line = _line_of(_refused(bids, out, max_mean_fd=0.5), _rel("sub-07"))
    assert "no mean_fd column (FD QC (--max-mean-fd 0.5) needs it)" in line
    assert "rerun the participant level for sub-07" in line
    line = _line_of(_refused(bids, out, max_mean_fd=None, covariates=["mean_fd"]),
                    _rel("sub-07"))
    assert "no mean_fd column (--covariates mean_fd needs it)" in line

    paths = run_group_level(bids, out, group_options(max_mean_fd=None, n_boot=200),
                            random_seed=0)
    gd = pd.read_csv(paths["group_dfc"], sep="\t")
    assert _rel("sub-07") in set(gd["file"])
    assert "sub-05" in set(gd["participant_id"])  # FD QC off: the high-FD run is kept


def test_mean_fd_na_refused_with_fd_qc(small):
    bids, out = small
    path = out / _rel("sub-09")
    for line in range(1, 6):
        _set_cell(path, line, 9, "n/a")
    line = _line_of(_refused(bids, out), _rel("sub-09"))
    assert "column mean_fd, lines 2, 3 and 3 more: n/a where a value is required " \
           "(FD QC (--max-mean-fd 0.5) needs it)" in line


def test_non_numeric_dcc_sd_is_refused(small):
    bids, out = small
    _set_cell(out / _rel("sub-11"), 2, 2, "0.5O3")
    line = _line_of(_refused(bids, out), _rel("sub-11"))
    assert "column dcc_sd, line 3: '0.5O3' is not a number" in line


def test_infinite_values_are_refused(small):
    bids, out = small
    _set_cell(out / _rel("sub-12"), 1, 4, "inf")
    _set_cell(out / _rel("sub-12"), 3, 2, "-inf")
    line = _line_of(_refused(bids, out), _rel("sub-12"))
    assert "column dcc_sd, line 4: -inf is not a finite number" in line
    assert "column pearson_r, line 2: inf is not a finite number" in line


def test_out_of_range_and_bad_flags_are_refused(small):
    bids, out = small
    path = out / _rel("sub-13")
    _set_cell(path, 1, 4, "1.7")
    _set_cell(path, 2, 7, "maybe")
    _set_cell(path, 3, 8, "n/a")
    line = _line_of(_refused(bids, out), _rel("sub-13"))
    assert "column pearson_r, line 2: 1.7 is outside [-1, 1]" in line
    assert "column converged, line 3: 'maybe' is not True or False" in line
    assert "column n_volumes, line 4: n/a where a value is required" in line


def test_bootstrap_interval_columns_are_read_and_checked(small):
    """The participant table's --dfc-bootstrap columns (older tables have none): read as
    numbers, n/a allowed, range-checked like dcc_sd."""
    bids, out = small
    files = sorted(out.glob("sub-*/func/*_seg-seeds_dfc.tsv"))
    for k, path in enumerate(files):
        table = pd.read_csv(path, sep="\t", keep_default_na=False)
        table["dcc_sd_ci_low"] = "n/a" if k == 0 else "0.03"
        table["dcc_sd_ci_high"] = "n/a" if k == 0 else "0.2"
        table["dcc_sd_boot_n"] = "n/a" if k == 0 else "1000"
        table.to_csv(path, sep="\t", index=False)
    frame = collect_dfc(out, pair=("DMN", "DeS"))
    assert frame["dcc_sd_ci_low"].dtype == float and frame["dcc_sd_boot_n"].max() == 1000
    assert frame["dcc_sd_ci_low"].isna().sum() == len(pd.read_csv(files[0], sep="\t"))
    run_group_level(bids, out, group_options(n_boot=200), random_seed=0)  # runs through
    assert (out / "group").is_dir()
    _set_cell(files[1], 1, list(table.columns).index("dcc_sd_ci_low"), "-0.2")
    line = _line_of(_refused(bids, out), files[1].relative_to(out).as_posix())
    assert "column dcc_sd_ci_low, line 2: -0.2 is outside >= 0" in line


def test_duplicate_pair_rows_are_refused(small):
    bids, out = small
    path = out / _rel("sub-14")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[2]]) + "\n")
    line = _line_of(_refused(bids, out), _rel("sub-14"))
    assert "seed pair PCC-PAG has more than one row (lines 3, 7; one row per pair)" in line


def test_missing_primary_pair_is_refused(small):
    bids, out = small
    path = out / _rel("sub-10")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    line = _line_of(_refused(bids, out), _rel("sub-10"))
    assert "no DMN-DeS row (the primary pair)" in line
    assert "seed pairs differ" not in line  # the primary pair is said once
    # a --pair that no file has: one line for the option, not one per file
    msg = _refused(bids, out, pair=("DMN", "PAG"))
    assert "--pair DMN PAG: no file has a row with seed_a DMN and seed_b PAG (the files " \
           "have DMN-DeS, PCC-PAG" in msg
    assert len(msg.splitlines()) == 2


def test_duplicate_run_is_refused(small):
    bids, out = small
    stray = out / "sub-04" / "func" / "old" / Path(_rel("sub-04")).name
    stray.parent.mkdir()
    shutil.copy(out / _rel("sub-04"), stray)
    misplaced = out / "sub-06" / "func" / Path(_rel("sub-02")).name
    shutil.copy(out / _rel("sub-02"), misplaced)
    msg = _refused(bids, out)
    old = stray.relative_to(out).as_posix()
    assert f"a second file for the same run (also {old})" in _line_of(msg, _rel("sub-04"))
    assert f"a second file for the same run (also {_rel('sub-04')})" in _line_of(msg, old)
    assert "keep one file per run" in _line_of(msg, old)
    wrong = _line_of(msg, misplaced.relative_to(out).as_posix())
    assert ": named for sub-02 but lies in sub-06/func/; a second file for the same run " \
           f"(also {_rel('sub-02')}) -> move it out of output_dir" in wrong


def test_two_bad_files_are_reported_together(small):
    bids, out = small
    head = out / _rel("sub-04")
    head.write_text(head.read_text().splitlines()[0] + "\n")
    _set_cell(out / _rel("sub-03", "_run-2"), 1, 3, "high")
    msg = _refused(bids, out)
    lines = msg.splitlines()
    assert lines[0].startswith("2 of 16 participant dFC files in ")
    assert lines[0].endswith("cannot be used; nothing was computed and group/ was left as "
                             "it was:")
    assert "header only" in _line_of(msg, _rel("sub-04"))
    assert "column dcc_mean, line 2: 'high' is not a number" in \
        _line_of(msg, _rel("sub-03", "_run-2"))
    assert lines[-1].endswith("participant --participant-label 03 04")
    assert len(lines) == 4


def test_failure_while_writing_leaves_previous_group_identical(small):
    """A real write failure partway (files over RLIMIT_FSIZE fail with EFBIG, as on a full
    disk): the tables fit, the figures do not; the previous group/ is untouched."""
    bids, out = small
    run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
    before = _hashes(out / "group")
    assert "stats.tsv" in before and "figures/dfc_by_group.png" in before
    _set_cell(out / _rel("sub-06"), 1, 2, "0.61")  # new outputs would differ
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, hard))
    try:
        with pytest.raises(BidsDfcError, match=r"writing the group outputs failed \(.*File "
                                               r"too large.*\); .*group was left as it was"):
            run_group_level(bids, out, group_options(n_boot=200), random_seed=1)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert _hashes(out / "group") == before
    assert _temp_dirs(out) == []


def test_group_is_replaced_as_a_whole_with_usual_modes(small):
    bids, out = small
    old = os.umask(0o022)
    try:
        run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
        (out / "group" / "notes.txt").write_text("from an earlier run\n")
        paths = run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
    finally:
        os.umask(old)
    gdir = out / "group"
    assert not (gdir / "notes.txt").exists()
    assert Path(paths["report"]) == gdir / "report.html" and Path(paths["stats"]).is_file()
    assert all(Path(p).parent in (gdir, gdir / "figures") for p in paths.values())
    for folder in (gdir, gdir / "figures"):
        assert folder.stat().st_mode & 0o777 == 0o755, folder
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in gdir.rglob("*") if p.is_file()}
    assert set(modes.values()) == {"0o644"}, modes
    assert _temp_dirs(out) == []


def test_stale_temporary_group_folders_are_cleaned(small):
    bids, out = small
    dead = out / f".group.{HOST}.{_dead_pid()}.new-abc123"
    alive = out / f".group.{HOST}.{os.getpid()}.new-live99"
    remote = out / f".group.other-node.{_dead_pid()}.new-rem001"
    abandoned = out / f".group.other-node.{_dead_pid()}.new-old002"
    unrelated = out / ".group.backup"
    for folder in (dead, alive, remote, abandoned, unrelated):
        (folder / "figures").mkdir(parents=True)
        (folder / "stats.tsv").write_text("half-written")
    then = time.time() - ABANDONED_AFTER_S - 60
    os.utime(abandoned, (then, then))
    run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
    assert not dead.exists(), "a killed group run's folder must go"
    assert not abandoned.exists(), "untouched for over an hour: abandoned"
    assert alive.exists(), "a running group run's folder stays"
    assert remote.exists(), "another node's recent run cannot be checked: it stays"
    assert unrelated.exists(), "only the group level's own temporary names"
    assert (out / "group" / "stats.tsv").read_text() != "half-written"


def test_run_killed_between_the_renames_gets_its_group_back(small):
    """Killed after moving group/ aside and before moving the new one in: the next run, even
    one that is refused, renames the previous group/ back, byte-identical."""
    bids, out = small
    run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
    before = _hashes(out / "group")
    pid = _dead_pid()
    (out / "group").rename(out / f".group.{HOST}.{pid}.old-1a2b3c4d")
    new = out / f".group.{HOST}.{pid}.new-x1y2z3"
    new.mkdir()
    (new / "stats.tsv").write_text("complete but never swapped in")
    path = out / _rel("sub-04")
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError) as info:
        run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
    assert "header only" in _line_of(str(info.value), _rel("sub-04"))
    assert _hashes(out / "group") == before
    assert _temp_dirs(out) == []


def test_all_tests_skipped_exits_non_zero_with_the_reasons(tmp_path):
    bids, out, _ = make_group_dataset(tmp_path, n_hc=6, n_patients=12, seed=5, runs_for=(),
                                      high_fd=())
    run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
    before = _hashes(out / "group")
    keep = {"sub-01", "sub-02", "sub-07", "sub-08", "sub-09"}  # 2 controls, 3 patients
    for path in out.glob("sub-*/func/*_seg-seeds_dfc.tsv"):
        if path.name.split("_")[0] not in keep:
            path.unlink()
    (bids / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    (bids / "sub-01").mkdir()
    env = {**os.environ, "NIPYPE_NO_ET": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", "bids_dfc.cli.run", str(bids), str(out), "group",
         "--relief-from", "pain_pre", "pain_post", "--tsp-columns", "tsp_*", "--n-boot", "200",
         "--random-seed", "0"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    err = proc.stderr
    assert "bids-dfc: error: no statistical test could be computed from 5 participants" in err
    assert "was not written (a previous one is kept)" in err
    assert re.search(r"one-way ANOVA of dcc_sd \(.*\): group \w+ has \d subjects with data "
                     r"\(fewer than 3\)", err), err
    assert "Spearman rank correlation of dcc_sd (dcc_sd ~ relief_pct): 3 patients with both " \
           "values (fewer than 4)" in err
    assert "mediation (PROCESS model 4)" in err and "(fewer than 8)" in err
    assert "13 exclusion(s), e.g. sub-03 (participant): missing dFC: no *_dfc.tsv output" \
        in err
    assert "finished" not in proc.stdout
    assert _hashes(out / "group") == before
    assert _temp_dirs(out) == []


def test_read_only_group_folder_is_one_line(small):
    """group/ on a read-only mount (root ignores folder modes, so a real read-only file
    system): the swap cannot replace it; one message, no traceback, group/ as it was."""
    bids, out = small
    group = out / "group"
    group.mkdir()
    (group / "old.tsv").write_text("kept\n")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(group)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        (group / "old.tsv").write_text("kept\n")
        subprocess.run(["mount", "-o", "remount,ro", str(group)], check=True)
        with pytest.raises(BidsDfcError, match=r"writing the group outputs failed .*group "
                                               r"was left as it was"):
            run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
        assert _hashes(group) == {"old.tsv": hashlib.sha256(b"kept\n").hexdigest()}
        assert _temp_dirs(out) == []
    finally:
        subprocess.run(["umount", str(group)], check=True)


def test_unexpected_error_is_one_line_and_a_crash_file(tmp_path, monkeypatch, capsys):
    """A bug (here: the statistics raise ZeroDivisionError, injected, since the real code
    has no known one) is one paragraph naming the crash file, which holds the traceback;
    the screen shows no traceback unless --debug."""
    import bids_dfc.group.run as group_run
    from bids_dfc.cli.run import main

    bids, out, _ = make_group_dataset(tmp_path, n_hc=6, n_patients=8, seed=3)
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    for sub in out.glob("sub-*"):  # the raw folders the command line's check looks for
        (bids / sub.name).mkdir()

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(group_run, "run_group_statistics", broken)
    work = tmp_path / "work"
    assert main([str(bids), str(out), "group", "-w", str(work)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err[err.index("bids-dfc: error: "):]
    assert "unexpected ZeroDivisionError: float division by zero" in message
    crash = Path(re.search(r"the traceback is in (\S+crash-\S+\.txt)", message).group(1))
    assert crash.parent == work / "logs"
    assert "Traceback (most recent call last)" in crash.read_text()
    assert "in broken" in crash.read_text()
    assert not (out / "group").exists(), "nothing written"

    assert main([str(bids), str(out), "group", "-w", str(work), "--debug"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
