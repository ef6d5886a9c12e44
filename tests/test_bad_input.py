"""Bad input is refused up front: one check before anything is written (issue 14).

Every case runs the real entry point ``bids_dfc.cli.run.main`` on a tiny BIDS dataset with
one (or several) defects and checks: exit status 2; every problem on its own line naming the
culprit (file, subject or option); no traceback; the input tree unchanged (paths, contents,
permission bits: conftest's ``input_guard``); nothing written to the output or work folder.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from _bids_data import make_bids

from bids_dfc.cli.parser import parse_args
from bids_dfc.cli.run import main
from bids_dfc.inputs.preflight import preflight

BOLD1 = "sub-01/func/sub-01_task-rest_bold.nii.gz"
BOLD2 = "sub-02/func/sub-02_task-rest_bold.nii.gz"
T1W1 = "sub-01/anat/sub-01_T1w.nii.gz"


def _sidecar(bids: Path, rel: str, **meta) -> None:
    path = bids / rel.replace(".nii.gz", ".json")
    path.write_text(json.dumps({"TaskName": "rest", **meta}))


def _image(bids: Path, rel: str, data: np.ndarray, zooms=(3.0, 3.0, 4.0), codes=(2, 2),
           affine=None) -> None:
    if codes == (0, 0):  # no affine: nibabel writes both codes as 0 (only the zooms)
        img = nb.Nifti1Image(data.astype("float32"), None)
        img.header.set_zooms((*zooms, 2.0)[: data.ndim])
    elif affine is not None and abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        img = nb.Nifti1Image(data.astype("float32"), None)  # nibabel refuses such a qform
        img.header.set_sform(affine, code=2)
    else:
        img = nb.Nifti1Image(data.astype("float32"),
                             np.diag([*zooms, 1.0]) if affine is None else affine)
    img.to_filename(bids / rel)


def _bold(n_vols=60, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 5, (7, 8, 6, n_vols))


def _table(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


SEEDS_OK = [{"name": "PCC", "x": -2, "y": -46, "z": 28, "radius_mm": 6, "network": "DMN"},
            {"name": "PAG", "x": 0, "y": -32, "z": -10, "radius_mm": 3, "network": "DeS"}]


def _atlas(tmp: Path, labels: list[int], listed: list[int], shape=(10, 12, 10)) -> list[str]:
    data = np.zeros(shape, dtype="int16")
    for k, lab in enumerate(labels):
        data.flat[k * 7: k * 7 + 5] = lab
    nb.Nifti1Image(data, np.diag([4.0, 4.0, 4.0, 1.0])).to_filename(tmp / "atlas.nii.gz")
    _table(tmp / "atlas.tsv", [{"index": i, "name": f"r{i}"} for i in listed])
    return ["--atlas", str(tmp / "atlas.nii.gz"), "--atlas-labels", str(tmp / "atlas.tsv")]


# each case: (bids, tmp) -> (extra command-line arguments, substrings every problem line
# must together contain); the dataset is made_bids() unless the case changes it
def _tr_ms(b, t):
    _sidecar(b, BOLD1, RepetitionTime=2000)
    return [], ["sub-01_task-rest_bold.nii.gz", "RepetitionTime 2000", "milliseconds"]


def _tr_missing(b, t):
    _sidecar(b, BOLD1)
    return [], ["sub-01_task-rest_bold.nii.gz", "RepetitionTime is missing"]


def _tr_text(b, t):
    _sidecar(b, BOLD1, RepetitionTime="2s")
    return [], ["sub-01_task-rest_bold.nii.gz", "positive number of seconds", "'2s'"]


def _tr_negative(b, t):
    _sidecar(b, BOLD2, RepetitionTime=-2)
    return [], ["sub-02_task-rest_bold.nii.gz", "positive number"]


def _all_zero(b, t):
    _image(b, BOLD1, np.zeros((7, 8, 6, 60)))
    return [], ["sub-01_task-rest_bold.nii.gz", "every value is 0", "no signal"]


def _constant(b, t):
    _image(b, BOLD2, np.full((7, 8, 6, 60), 123.0))
    return [], ["sub-02_task-rest_bold.nii.gz", "every value is 123"]


def _huge_voxels(b, t):
    _image(b, BOLD1, _bold(), zooms=(40.0, 40.0, 40.0))
    return [], ["sub-01_task-rest_bold.nii.gz", "voxel size 40 x 40 x 40 mm", "implausible"]


def _tiny_voxels(b, t):
    _image(b, BOLD1, _bold(), zooms=(0.01, 0.01, 0.01))
    return [], ["sub-01_task-rest_bold.nii.gz", "voxel size 0.01", "implausible"]


def _nan_fraction(b, t):
    data = _bold()
    data[:2] = np.nan  # 2 of 7 slabs: 29% of the values
    _image(b, BOLD1, data)
    return [], ["sub-01_task-rest_bold.nii.gz", "28.6% of the values are NaN", "at most 1%"]


def _auto_dummies(b, t):
    data = _bold(54)
    data[..., :6] *= 1.6  # six bright non-steady-state volumes
    _image(b, BOLD1, data)
    return (["--dummy-scans", "auto"],
            ["sub-01_task-rest_bold.nii.gz", "54 volumes, 48 after the 6", "auto"])


def _few_volumes(b, t):
    _image(b, BOLD2, _bold(53))
    return [], ["sub-02_task-rest_bold.nii.gz", "53 volumes, 49 after the 4"]


def _bold_3d(b, t):
    _image(b, BOLD1, _bold()[..., 0])
    return [], ["sub-01_task-rest_bold.nii.gz", "must be 4-D"]


def _bold_corrupt(b, t):
    (b / BOLD1).write_bytes((b / BOLD1).read_bytes()[:400])
    return [], ["sub-01_task-rest_bold.nii.gz", "corrupt"]


def _no_orientation(b, t):
    _image(b, BOLD1, _bold(), codes=(0, 0))
    return [], ["sub-01_task-rest_bold.nii.gz", "no orientation", "sform_code and qform_code"]


def _singular_affine(b, t):
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    affine[2, :3] = affine[1, :3]
    _image(b, BOLD2, _bold(), affine=affine)
    return [], ["sub-02_task-rest_bold.nii.gz", "singular"]


def _t1w_4d(b, t):
    _image(b, T1W1, np.random.default_rng(2).normal(100, 5, (9, 10, 11, 3)), zooms=(1, 1, 1))
    return [], ["sub-01_T1w.nii.gz", "must be 3-D"]


def _t1w_constant(b, t):
    _image(b, T1W1, np.ones((9, 10, 11)), zooms=(1, 1, 1))
    return [], ["sub-01_T1w.nii.gz", "constant"]


def _t1w_voxels(b, t):
    _image(b, T1W1, np.random.default_rng(2).normal(100, 5, (9, 10, 11)), zooms=(40, 40, 40))
    return [], ["sub-01_T1w.nii.gz", "voxel size 40", "T1w image"]


def _description_json(b, t):
    (b / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": ')
    return [], ["dataset_description.json", "not valid JSON"]


def _description_version(b, t):
    (b / "dataset_description.json").write_text(json.dumps({"Name": "tiny"}))
    return [], ["dataset_description.json", "\"BIDSVersion\" is missing"]


def _description_list(b, t):
    (b / "dataset_description.json").write_text("[1, 2]")
    return [], ["dataset_description.json", "JSON object"]


def _participants_dup(b, t):
    _table(b / "participants.tsv", [{"participant_id": "sub-01"}, {"participant_id": "sub-02"},
                                    {"participant_id": "sub-01"}])
    return [], ["participants.tsv", "sub-01 appears 2 times"]


def _participants_column(b, t):
    _table(b / "participants.tsv", [{"subject": "sub-01"}, {"subject": "sub-02"}])
    return [], ["participants.tsv", "no participant_id column"]


def _participants_ids(b, t):
    _table(b / "participants.tsv", [{"participant_id": "01"}, {"participant_id": "sub-02"}])
    return [], ["participants.tsv", "sub-<label>", "'01'"]


def _filter_query(b, t):
    return ["--bids-filter-file", '{"fmap": {"run": 1}}'], ["--bids-filter-file", "'fmap'"]


def _filter_entity(b, t):
    return (["--bids-filter-file", '{"bold": {"sesion": "1"}}'],
            ["--bids-filter-file", "'sesion'", "did you mean 'session'"])


def _filter_spec(b, t):
    return ["--bids-filter-file", '{"t1w": ["run-1"]}'], ["--bids-filter-file", "'t1w'", "list"]


def _filter_value(b, t):
    return (["--bids-filter-file", '{"bold": {"run": {"a": 1}}}'],
            ["--bids-filter-file", "bold.run"])


def _atlas_alone(b, t):
    _atlas(t, [1, 2], [1, 2])
    return ["--atlas", str(t / "atlas.nii.gz")], ["--atlas needs --atlas-labels"]


def _labels_alone(b, t):
    _atlas(t, [1, 2], [1, 2])
    return ["--atlas-labels", str(t / "atlas.tsv")], ["--atlas-labels needs --atlas"]


def _atlas_mismatch(b, t):
    return _atlas(t, [1, 2, 5], [1, 2, 3]), ["--atlas", "labels [5] are not in",
                                             "indices [3] do not occur"]


def _atlas_4d(b, t):
    args = _atlas(t, [1, 2], [1, 2])
    nb.Nifti1Image(np.ones((4, 4, 4, 2), "int16"), np.eye(4)).to_filename(t / "atlas.nii.gz")
    return args, ["--atlas", "must be 3-D"]


def _atlas_float(b, t):
    args = _atlas(t, [1, 2], [1, 2])
    nb.Nifti1Image(np.full((4, 4, 4), 1.5, "float32"), np.eye(4)).to_filename(t / "atlas.nii.gz")
    return args, ["--atlas", "not whole numbers"]


def _seeds_column(b, t):
    path = _table(t / "seeds.tsv", [{k: v for k, v in r.items() if k != "z"} for r in SEEDS_OK])
    return ["--seeds", str(path)], ["--seeds", "seeds.tsv", "'z'"]


def _seeds_number(b, t):
    path = _table(t / "seeds.tsv", [{**SEEDS_OK[0], "y": "-46mm"}, SEEDS_OK[1]])
    return ["--seeds", str(path)], ["--seeds", "seeds.tsv", "-46mm"]


def _seeds_dup(b, t):
    path = _table(t / "seeds.tsv", [SEEDS_OK[0], {**SEEDS_OK[1], "name": "PCC"}])
    return ["--seeds", str(path)], ["--seeds", "seeds.tsv", "PCC"]


def _seed_outside_brain(b, t):
    path = _table(t / "seeds.tsv", [SEEDS_OK[0], {**SEEDS_OK[1], "z": 85}])
    return ["--seeds", str(path)], ["--seeds", "'PAG'", "outside the template brain mask"]


def _nyquist(b, t):
    _sidecar(b, BOLD1, RepetitionTime=6.0)
    return [], ["--band-pass 0.01 0.1", "Nyquist frequency 0.08333 Hz", "sub-01_task-rest_bold"]


def _unknown_participant(b, t):
    return ["--participant-label", "01", "07"], ["--participant-label", "07", "available: 01"]


def _unknown_task(b, t):
    return ["--task", "nback"], ["--task", "nback", "available tasks: rest"]


def _memory(b, t):
    return ["--mem-gb", "0.1"], ["memory", "0.1 GB", "more memory"]


CASES = {f.__name__[1:]: f for f in (
    _tr_ms, _tr_missing, _tr_text, _tr_negative, _all_zero, _constant, _huge_voxels,
    _tiny_voxels, _nan_fraction, _auto_dummies, _few_volumes, _bold_3d, _bold_corrupt,
    _no_orientation, _singular_affine, _t1w_4d, _t1w_constant, _t1w_voxels,
    _description_json, _description_version, _description_list, _participants_dup,
    _participants_column, _participants_ids, _filter_query, _filter_entity, _filter_spec,
    _filter_value, _atlas_alone, _labels_alone, _atlas_mismatch, _atlas_4d, _atlas_float,
    _seeds_column, _seeds_number, _seeds_dup, _seed_outside_brain, _nyquist,
    _unknown_participant, _unknown_task, _memory,
)}


def _refused(tmp_path, capsys, guard, bids, extra, out=None, work=None) -> str:
    out, work = out or tmp_path / "out", work or tmp_path / "work"
    guard(bids)
    code = main([str(bids), str(out), "participant", "--skip-bids-validation", "-w",
                 str(work), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith("bids-dfc: error: ")
    assert len(lines) == 1 or all(ln.startswith("  - ") for ln in lines[1:]), err
    for folder in (out, work):
        if folder.exists() and not folder.is_relative_to(bids):
            assert not any(folder.rglob("*")), f"{folder} written despite the error"
    return err


@pytest.mark.parametrize("case", list(CASES))
def test_refused_up_front(case, tmp_path, capsys, input_guard):
    bids = make_bids(tmp_path / "bids")
    (tmp_path / "opts").mkdir()
    extra, expected = CASES[case](bids, tmp_path / "opts")
    err = _refused(tmp_path, capsys, input_guard, bids, extra)
    missing = [e for e in expected if e not in err]
    assert not missing, f"{missing} not in: {err}"


@pytest.mark.parametrize("where", ["bids", "bids/sub-01/work", "bids/code/work"])
@pytest.mark.parametrize("what", ["work", "out"])
def test_folders_inside_the_raw_tree_refused(what, where, tmp_path, capsys, input_guard):
    bids = make_bids(tmp_path / "bids")
    folder = {"out": {"out": tmp_path / where}, "work": {"work": tmp_path / where}}[what]
    err = _refused(tmp_path, capsys, input_guard, bids, [], **folder)
    assert "is inside the raw dataset" in err and "derivatives" in err
    assert not (tmp_path / "bids/sub-01/work").exists() and not (bids / "code").exists()


def test_every_problem_reported_at_once(tmp_path, capsys, input_guard):
    bids = make_bids(tmp_path / "bids", subjects=("01", "02", "03"))
    _sidecar(bids, BOLD1, RepetitionTime=2000)
    _image(bids, BOLD2, np.zeros((7, 8, 6, 60)))
    _image(bids, "sub-03/anat/sub-03_T1w.nii.gz", np.ones((9, 10, 11)), zooms=(1, 1, 1))
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "tiny"}))
    err = _refused(tmp_path, capsys, input_guard, bids,
                   ["--bids-filter-file", '{"bold": {"sesion": "1"}}'])
    assert err.startswith("bids-dfc: error: 5 problems found before starting; nothing was "
                          "written")
    for culprit in ("BIDSVersion", "sesion", "sub-01_task-rest_bold.nii.gz: RepetitionTime "
                    "2000", "sub-02_task-rest_bold.nii.gz: every value is 0",
                    "sub-03_T1w.nii.gz: the T1w image is constant"):
        assert culprit in err, culprit


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB file system (tmpfs; root only), unmounted after the test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_refused_up_front(tmp_path, capsys, input_guard, tiny_disk):
    bids = make_bids(tmp_path / "bids", n_vols=200)
    err = _refused(tmp_path, capsys, input_guard, bids, [], work=tiny_disk / "work")
    assert "of disk space is needed for 2 participant(s)" in err and str(tiny_disk) in err


def _config(bids: Path, tmp_path: Path, *extra: str):
    return parse_args([str(bids), str(tmp_path / "out"), "participant", "-w",
                       str(tmp_path / "work"), "--skip-bids-validation", *extra])


def test_good_input_passes_and_writes_nothing(tmp_path, input_guard):
    """The controls: a clean dataset, and work/output folders under BIDS_DIR/derivatives/."""
    bids = input_guard(make_bids(tmp_path / "bids"))
    subjects = preflight(_config(bids, tmp_path))
    assert [s.subject for s in subjects] == ["01", "02"]
    config = parse_args([str(bids), str(bids / "derivatives/bids_dfc"), "participant", "-w",
                         str(bids / "derivatives/work"), "--skip-bids-validation"])
    assert len(preflight(config)) == 2
    assert not (tmp_path / "out").exists() and not (bids / "derivatives").exists()
