"""The crossover trial's inputs: a clean trial is read as written, every damaged one is
refused up front with one line per problem naming the file, the line(s) and what to do; a
trial-only dataset runs the trial analysis alone (docs/trial.md).

The trials are the demo's simulated ones (bids_dfc.demo.trial), written as a dataset's
phenotype files by the demo's own writer, then damaged the way hand-kept spreadsheets get
damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_group_workflow import group_options

from bids_dfc.config import GroupOptions
from bids_dfc.demo.bids_io import write_trial
from bids_dfc.demo.trial import simulate_trial
from bids_dfc.derivatives import GROUP_FILES
from bids_dfc.errors import InputError
from bids_dfc.group.run import run_group_level
from bids_dfc.group.trial_inputs import TRIAL_INPUTS, read_trial
from bids_dfc.stats.trial import TRIAL_COLUMNS, run_trial

DEFAULTS = GroupOptions()
ALLOC, DIARY = TRIAL_INPUTS["allocation"], TRIAL_INPUTS["diary"]
EVENTS = TRIAL_INPUTS["binary"]


@pytest.fixture(scope="module")
def trial_source(tmp_path_factory):
    """A simulated 12-participant trial written as a BIDS dataset's phenotype files (no
    participant-level outputs: a trial-only group run)."""
    bids = tmp_path_factory.mktemp("trial") / "bids"
    ids = [f"sub-{i:02d}" for i in range(1, 13)]
    write_trial(bids, simulate_trial(ids, np.random.default_rng(4)))
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": "trial only", "BIDSVersion": "1.10.0"}))
    for pid in ids:  # a raw dataset whose participant level never ran
        (bids / pid).mkdir()
    return bids


@pytest.fixture
def bids(trial_source, tmp_path):
    """A fresh copy of the trial dataset to damage."""
    dst = tmp_path / "bids"
    shutil.copytree(trial_source, dst)
    return dst


def _read(bids: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(bids / name, sep="\t", dtype=str, keep_default_na=False)


def _write(bids: Path, name: str, frame: pd.DataFrame) -> None:
    frame.to_csv(bids / name, sep="\t", index=False, lineterminator="\n")


def _read_trial(bids, **kw):
    options = {"reference": DEFAULTS.trial_reference, "horizons": DEFAULTS.trial_horizons,
               "n_days": DEFAULTS.trial_days, **kw}
    return read_trial(bids, **options)


def _refusal(bids, **kw) -> list[str]:
    with pytest.raises(InputError) as info:
        _read_trial(bids, **kw)
    lines = str(info.value).splitlines()
    assert "nothing was written" in lines[0]
    return [ln.strip() for ln in lines[1:]]


def _row(frame, **where) -> int:
    """0-based row of ``frame`` matching ``where`` (the file line is row + 2)."""
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == str(value)).to_numpy()
    (rows,) = np.nonzero(mask)
    return int(rows[0])


def test_a_clean_trial_is_read_as_written(bids):
    data = _read_trial(bids)
    alloc = _read(bids, ALLOC)
    assert len(data.allocation) == len(alloc) == 36
    assert data.allocation["period"].tolist() == alloc["period"].astype(int).tolist()
    assert data.diary_outcomes == ["pain_avg", "pain_max", "pain_night"]
    diary = _read(bids, DIARY)
    written = pd.to_numeric(diary["pain_avg"].replace("n/a", np.nan)).to_numpy(float)
    np.testing.assert_array_equal(data.diary["pain_avg"].to_numpy(), written)
    assert data.binary_outcomes == ["any_adverse_event"]
    assert data.questionnaire_outcomes == ["bpi_interference", "sleep_quality"]
    assert data.notes == []  # every file has its sidecar


def test_no_allocation_no_trial(tmp_path):
    assert _read_trial(tmp_path) is None


def test_a_treatment_label_missing_from_the_allocation(bids):
    alloc = _read(bids, ALLOC)
    row = _row(alloc, participant_id="sub-04", period=2)
    alloc.loc[row, "treatment"] = "n/a"
    _write(bids, ALLOC, alloc)
    (line,) = _refusal(bids)
    assert line.startswith(f"{ALLOC}: line {row + 2}: no treatment label")
    assert "sub-04 period 2" in line and "fill in" in line


def test_the_reference_must_be_a_treatment_of_the_allocation(bids):
    (line,) = _refusal(bids, reference="saline")
    assert line.startswith("--trial-reference: 'saline' is not a treatment of "
                           f"{ALLOC} (treatments: ketamine, ketamine_mg, placebo)")


def test_duplicate_diary_rows(bids):
    diary = _read(bids, DIARY)
    row = _row(diary, participant_id="sub-07", period=1, day=10)
    diary = pd.concat([diary.iloc[: row + 1], diary.iloc[[row]], diary.iloc[row + 1:]],
                      ignore_index=True)
    _write(bids, DIARY, diary)
    (line,) = _refusal(bids)
    assert line.startswith(f"{DIARY}: lines {row + 2}, {row + 3}: duplicate rows")
    assert "participant_id sub-07, period 1, day 10" in line


def test_pain_outside_the_rating_scale(bids):
    diary = _read(bids, DIARY)
    rows = [_row(diary, participant_id="sub-02", period=3, day=d) for d in (4, 5, 6)]
    diary.loc[rows, "pain_max"] = ["11", "-1", "12.5"]
    _write(bids, DIARY, diary)
    (line,) = _refusal(bids)
    assert line == (f"{DIARY}: lines {rows[0] + 2}, {rows[1] + 2} and 1 more: pain_max 11 "
                    "is not in 0-10; correct those entries or mark them n/a")


def test_days_outside_the_diary_period(bids):
    diary = _read(bids, DIARY)
    row = _row(diary, participant_id="sub-05", period=1, day=20)
    diary.loc[row, "day"] = "36"
    _write(bids, DIARY, diary)
    (line,) = _refusal(bids)
    assert line.startswith(f"{DIARY}: line {row + 2}: day '36' is not a whole number in "
                           "1..35")
    # a longer diary period is an option, not an error
    assert _read_trial(bids, n_days=36) is not None


def test_a_period_with_no_diary_entry_at_all(bids):
    diary = _read(bids, DIARY)
    alloc = _read(bids, ALLOC)
    gone = (diary["participant_id"] == "sub-09") & (diary["period"] == "2")
    _write(bids, DIARY, diary[~gone])
    (line,) = _refusal(bids)
    row = _row(alloc, participant_id="sub-09", period=2)
    assert line.startswith(f"{DIARY}: 1 allocated period(s) have no diary entry at all "
                           f"(e.g. sub-09 period 2, {ALLOC} line {row + 2})")


def test_a_participant_missing_a_whole_period_is_analysed_and_said_so(bids):
    for name in TRIAL_INPUTS.values():  # sub-03 left the trial after period 2
        frame = _read(bids, name)
        _write(bids, name, frame[~((frame["participant_id"] == "sub-03")
                                   & (frame["period"] == "3"))])
    data = _read_trial(bids)
    results = run_trial(data, reference="placebo", horizons=[35])
    (note,) = [n for n in results.notes if n.startswith("sub-03")]
    assert note.startswith("sub-03 has no period 3 (periods 1, 2 are analysed")
    primary = results.models.iloc[0]
    assert primary["n_participants"] == 12  # sub-03 stays in the model
    auc = results.auc
    assert set(auc.loc[auc["participant_id"] == "sub-03", "period"]) == {1, 2}


def test_diary_rows_of_a_period_that_was_not_allocated(bids):
    diary = _read(bids, DIARY)
    extra = diary[(diary["participant_id"] == "sub-01") & (diary["period"] == "1")].copy()
    extra["period"] = "4"
    diary = pd.concat([diary, extra], ignore_index=True)
    _write(bids, DIARY, diary)
    (line,) = _refusal(bids)
    first = len(diary) - len(extra) + 2
    assert line.startswith(f"{DIARY}: lines {first}, {first + 1} and {len(extra) - 2} more: "
                           f"sub-01 period 4 is not in {ALLOC}")


def test_every_problem_of_every_file_at_once(bids):
    alloc, diary, events = _read(bids, ALLOC), _read(bids, DIARY), _read(bids, EVENTS)
    alloc.loc[0, "period"] = "first"
    diary.loc[5, "pain_avg"] = "high"
    diary.loc[6, "day"] = "0"
    events.loc[2, "any_adverse_event"] = "2"
    for name, frame in ((ALLOC, alloc), (DIARY, diary), (EVENTS, events)):
        _write(bids, name, frame)
    lines = _refusal(bids, horizons=(7, 40))
    assert len(lines) == 5, lines
    assert any(ln.startswith(f"{ALLOC}: line 2: period 'first' is not a whole number")
               for ln in lines), lines
    assert any(ln.startswith("--trial-horizons: 40 is outside 2..35") for ln in lines), lines
    assert any(ln.startswith(f"{DIARY}: line 8: day '0'") for ln in lines), lines
    assert any(ln.startswith(f"{DIARY}: line 7: pain_avg 'high' is not a number")
               for ln in lines), lines
    assert any(ln.startswith(f"{EVENTS}: line 4: any_adverse_event 2 is not 0 or 1")
               for ln in lines), lines


def test_the_diary_is_required_and_sidecars_recommended(bids):
    (bids / DIARY).unlink()
    (line,) = _refusal(bids)
    assert line.startswith(f"{DIARY}: not found: the trial analysis")
    (bids / EVENTS).with_suffix(".json").unlink()
    (bids / DIARY).write_text("participant_id\tperiod\tday\tpain_avg\n")  # no rows at all
    with pytest.raises(InputError):
        _read_trial(bids)


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_trial_only_dataset_runs_the_trial_alone(bids, tmp_path):
    before = _hashes(bids)
    out = tmp_path / "out"
    lines: list[str] = []
    paths = run_group_level(bids, out, group_options(n_boot=200), random_seed=0,
                            progress=lines.append)
    assert any("only the crossover trial" in ln for ln in lines), lines
    assert _hashes(bids) == before  # nothing written into the input dataset
    gdir = out / "group"
    for key, columns in TRIAL_COLUMNS.items():
        frame = pd.read_csv(gdir / GROUP_FILES[f"trial_{key}"], sep="\t")
        assert list(frame.columns) == columns
        side = json.loads((gdir / GROUP_FILES[f"trial_{key}"]).with_suffix(".json").read_text())
        assert set(columns) <= set(side) and all(side[c]["Description"] for c in columns)
    response = pd.read_csv(gdir / GROUP_FILES["trial_response"], sep="\t")
    assert list(response.columns) == [
        "participant_id", "relief_pct_ketamine_observed", "relief_pct_ketamine_locf",
        "relief_pct_ketamine_mg_observed", "relief_pct_ketamine_mg_locf"]
    assert not (gdir / GROUP_FILES["stats"]).exists()  # no imaging tables
    summary = json.loads((gdir / GROUP_FILES["results"]).read_text())
    assert summary["imaging"] is None
    assert summary["trial"]["notes"][0].startswith("no participant dFC outputs")
    assert set(paths) >= {f"trial_{k}" for k in TRIAL_COLUMNS} | {"report", "results"}
    for path in gdir.rglob("*"):
        if path.is_file():
            assert (path.stat().st_mode & 0o777) == 0o644, path


def test_the_command_line_refuses_a_bad_trial_without_a_traceback(bids, tmp_path):
    alloc = _read(bids, ALLOC)
    alloc.loc[3, "treatment"] = ""
    _write(bids, ALLOC, alloc)
    out = tmp_path / "out"
    cli = Path(sys.executable).with_name("bids-dfc")
    proc = subprocess.run([str(cli), str(bids), str(out), "group", "--trial-reference",
                           "saline"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    text = proc.stderr + proc.stdout
    assert f"{ALLOC}: line 5: no treatment label" in text
    assert "--trial-reference: 'saline' is not a treatment" in text
    assert not (out / "group").exists()


def test_the_same_day_written_two_ways_is_a_duplicate(bids):
    diary = _read(bids, DIARY)
    row = _row(diary, participant_id="sub-06", period=2, day=8)
    other = _row(diary, participant_id="sub-06", period=2, day=9)
    diary.loc[other, "day"] = "08"  # day 8 twice, once with a leading zero
    _write(bids, DIARY, diary)
    (line,) = _refusal(bids)
    assert line.startswith(f"{DIARY}: lines {row + 2}, {other + 2}: duplicate rows")


def test_a_trial_only_run_says_what_it_checks(bids, tmp_path):
    lines: list[str] = []
    run_group_level(bids, tmp_path / "out", group_options(n_boot=200), random_seed=0,
                    progress=lines.append)
    assert lines[0] == "group: checking the crossover trial's files"
