"""The derivatives dataset's own files and its names, as BIDS defines them.

dataset_description.json (SourceDatasets by DOI or relative path, DatasetLinks, License),
README.md (what was run, each command line once, even from concurrent jobs), the input's
LICENSE; the output-name check of ``bids-dfc-check`` against the real BIDS schema
(bidsschematools) and the documented conventions; a pybids query for participant dFC files
returning no group table. The real outputs of a participant run are checked in
tests/test_end_to_end.py, those of a group run in tests/test_group_workflow.py.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from bids_dfc import __version__
from bids_dfc.cli.check import main as check_main
from bids_dfc.derivatives import GROUP_FILES, OUTPUT_NAMES, build_path
from bids_dfc.derivatives.dataset import dataset_description, write_dataset_description
from bids_dfc.derivatives.validate import check_outputs, classify

#: the keys BIDS defines for a SourceDatasets entry (BIDS 1.9 "Derived dataset")
SOURCE_KEYS = {"DOI", "URL", "Version"}


def _raw(root: Path, **desc) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "Ketamine rest", "BIDSVersion": "1.9.0", **desc}))
    return root


def test_source_by_relative_path_and_links_resolve(tmp_path):
    bids = _raw(tmp_path / "bids")
    out = tmp_path / "results" / "bids_dfc"
    desc = dataset_description(bids, out)
    assert desc["SourceDatasets"] == [{"URL": "../../bids"}]
    assert set(desc["SourceDatasets"][0]) <= SOURCE_KEYS
    assert (out / desc["DatasetLinks"]["raw"]).resolve() == bids.resolve()
    assert "License" not in desc and "file://" not in json.dumps(desc)
    inside = dataset_description(bids, bids / "derivatives" / "bids_dfc")
    assert inside["DatasetLinks"] == {"raw": "../.."}


@pytest.mark.parametrize("declared", ["10.18112/openneuro.ds002748.v1.0.5",
                                      "https://doi.org/10.18112/openneuro.ds002748.v1.0.5",
                                      "doi:10.18112/openneuro.ds002748.v1.0.5"])
def test_source_by_doi_and_licence_carried_over(tmp_path, declared):
    bids = _raw(tmp_path / "bids", DatasetDOI=declared, License="CC0")
    desc = dataset_description(bids, tmp_path / "out")
    assert desc["SourceDatasets"] == [{"DOI": "doi:10.18112/openneuro.ds002748.v1.0.5"}]
    assert desc["License"] == "CC0"
    assert desc["DatasetLinks"] == {"raw": "../bids"}  # the sidecars' URIs stay local


def test_readme_names_version_commands_and_licence(tmp_path):
    bids = _raw(tmp_path / "bids", License="CC-BY-4.0")
    (bids / "LICENSE").write_text("Creative Commons Attribution 4.0\n")
    out = tmp_path / "out"
    first = "bids-dfc /data /out participant --participant-label 01"
    write_dataset_description(out, bids, first)
    write_dataset_description(out, bids, first)  # a rerun: listed once
    write_dataset_description(out, bids, "bids-dfc /data /out group")
    readme = (out / "README.md").read_text()
    assert f"bids_dfc {__version__}" in readme and '"Ketamine rest"' in readme
    assert readme.count(f"`{first}`") == 1 and "`bids-dfc /data /out group`" in readme
    assert "CC-BY-4.0" in readme
    assert (out / "LICENSE").read_text() == "Creative Commons Attribution 4.0\n"
    assert (out / "dataset_description.json").is_file()


def test_readme_says_when_the_input_states_no_licence(tmp_path):
    out = tmp_path / "out"
    write_dataset_description(out, _raw(tmp_path / "bids"), "bids-dfc a b participant")
    assert "states no licence" in (out / "README.md").read_text()
    assert not (out / "LICENSE").exists()


def _write(args):
    out, bids, label = args
    write_dataset_description(Path(out), Path(bids),
                              f"bids-dfc /data /out participant --participant-label {label}")


def test_concurrent_jobs_lose_no_command_line(tmp_path):
    """Array tasks start together: each one's command line ends up in the README."""
    bids = _raw(tmp_path / "bids")
    out = tmp_path / "out"
    labels = [f"{k:02d}" for k in range(12)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_write, [(str(out), str(bids), label) for label in labels])
    readme = (out / "README.md").read_text()
    assert all(f"--participant-label {label}`" in readme for label in labels), readme


def _names() -> list[str]:
    """One path per participant output kind (every OUTPUT_NAMES entry), with its sidecar."""
    per_run = {"t1w_tpms": {"label": "GM"}, "t1w_std": {"space": "MNI152NLin6Asym"},
               "anat2std_xfm": {"to": "MNI152NLin6Asym"},
               "std2anat_xfm": {"from": "MNI152NLin6Asym"},
               "bold_std": {"space": "MNI152NLin6Asym"}, "atlas_relmats": {"stat": "dccsd"}}
    anat = "/d/sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz"
    bold = "/d/sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_bold.nii.gz"
    names = []
    for key, name in OUTPUT_NAMES.items():
        entities = {**dict(name.entities), **per_run.get(key, {})}
        if key.startswith("atlas_"):
            entities.setdefault("seg", "Schaefer100")
        ext = name.extension or ".h5"
        path = str(build_path(anat if key.startswith(("t1w", "anat2", "std2")) else bold,
                              suffix=name.suffix, extension=ext, entities=entities))
        names += [path, path[: -len(ext)] + ".json"]
    return names


def test_every_output_kind_is_in_the_schema_or_a_documented_convention():
    kinds = {name: classify(name) for name in _names()}
    assert not [n for n, kind in kinds.items() if kind is None], kinds
    # what the schema itself covers (bidsschematools' derivative rules) stays with it
    assert kinds["sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_seg-seeds_dseg.tsv"] == "schema"
    assert kinds["sub-01/ses-1/anat/sub-01_ses-1_desc-preproc_T1w.nii.gz"] == "schema"
    group = [f"group/{name}" for name in GROUP_FILES.values()] + ["group/figures/roc.png"]
    assert all(classify(name) == "group level" for name in group)
    for name in ("sub-01.html", "README.md", "dataset_description.json", "LICENSE",
                 # a template transform is written as its affine and its warp field
                 "sub-01/anat/sub-01_from-T1w_to-MNI152NLin6Asym_mode-image_desc-affine_xfm.txt",
                 "sub-01/anat/sub-01_from-T1w_to-MNI152NLin6Asym_mode-image_desc-warp_xfm.nii.gz"):
        assert classify(name), name


@pytest.mark.parametrize("name", [
    "sub-01/func/sub-01_task-rest_seg-seeds_probseg.tsv",  # the old seed table name
    "sub-01/func/sub-01_task-rest_seg-seeds_dfc.csv",
    "sub-01/func/sub-01_task-rest_seg-seeds_dfc.tsv~",
    "group/group_dfc.tsv",  # the old group table name
    "sub-01/func/sub-01_task rest_bold.nii.gz",
    "notes.txt",
])
def test_names_outside_schema_and_conventions_are_caught(name):
    assert classify(name) is None


def test_check_resolves_uris_and_flags_what_does_not(tmp_path, capsys):
    bids = _raw(tmp_path / "bids")
    (bids / "sub-01" / "func").mkdir(parents=True)
    (bids / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz").write_bytes(b"")
    out = tmp_path / "out"
    write_dataset_description(out, bids, "bids-dfc bids out participant")
    func = out / "sub-01" / "func"
    func.mkdir(parents=True)
    (func / "sub-01_task-rest_seg-seeds_dfc.tsv").write_text("seed_a\n")
    (func / "sub-01_task-rest_seg-seeds_dfc.json").write_text(json.dumps(
        {"Sources": ["bids:raw:sub-01/func/sub-01_task-rest_bold.nii.gz"]}))
    assert check_main([str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 bids: URIs, 1 resolved" in printed and printed.rstrip().endswith("OK")

    (func / "sub-01_task-rest_seg-seeds_probseg.tsv").write_text("name\n")
    (func / "sub-01_task-rest_seg-seeds_dfc.json").write_text(json.dumps(
        {"Sources": ["bids:raw:sub-01/func/sub-01_task-rest_run-9_bold.nii.gz",
                     "bids:atlas:tpl-X_dseg.nii.gz"]}))
    report = check_outputs(out)
    assert report.unmatched == ["sub-01/func/sub-01_task-rest_seg-seeds_probseg.tsv"]
    assert len(report.unresolved) == 2 and "does not exist" in report.unresolved[0]
    assert "no local DatasetLinks entry" in report.unresolved[1]
    assert check_main([str(out)]) == 1
    assert check_main([str(tmp_path / "nowhere")]) == 2


def test_pybids_participant_query_returns_no_group_table(tmp_path):
    """``suffix='dfc'`` finds the participants' tables only (group_dfc.tsv matched it)."""
    from bids import BIDSLayout

    bids = _raw(tmp_path / "bids")
    out = tmp_path / "out"
    write_dataset_description(out, bids, "bids-dfc bids out participant")
    for sub in ("01", "02"):
        func = out / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        (func / f"sub-{sub}_task-rest_seg-seeds_dfc.tsv").write_text("seed_a\n")
    (out / "group" / "trial").mkdir(parents=True)
    for name in GROUP_FILES.values():
        (out / "group" / name).write_text("x\n")
    layout = BIDSLayout(out, validate=False)
    found = layout.get(suffix="dfc", extension=".tsv", return_type="filename")
    assert sorted(Path(f).name for f in found) == [
        "sub-01_task-rest_seg-seeds_dfc.tsv", "sub-02_task-rest_seg-seeds_dfc.tsv"]
    (out / "group" / "group_dfc.tsv").write_text("x\n")  # the old name: it did match
    found = BIDSLayout(out, validate=False).get(suffix="dfc", extension=".tsv")
    assert len(found) == 3
