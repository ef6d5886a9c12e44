"""Finding and checking fMRIPrep derivatives (bids_dfc.inputs.fmriprep).

The folders are laid out with fMRIPrep's own file names (docs/fmriprep.md), its
dataset_description.json of each generation, and the real confounds files nilearn ships in
its test data (fMRIPrep 21.0's ``desc-confounds_timeseries``, 1.4-20.2's
``desc-confounds_regressors``); the images are small, uneven grids written with nibabel.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nb
import nilearn.interfaces.fmriprep as nilearn_fmriprep
import numpy as np
import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_dfc.inputs.fmriprep import collect_fmriprep, is_fmriprep, read_description

DATA = Path(nilearn_fmriprep.__file__).parent / "data"
V21 = DATA / "test-v21_desc-confounds_timeseries"  # 30 rows
V20 = DATA / "test_desc-confounds_regressors"  # 30 rows, a_comp_cor_* with Mask metadata
AFFINE = np.diag([2.0, 2.0, 2.2, 1.0])
TPL = "MNI152NLin2009cAsym"


def _nii(path: Path, shape, *, tr: float | None = 2.0, affine=AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nb.Nifti1Image(np.ones(shape, np.float32), affine)
    if tr is not None and len(shape) == 4:
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = tr
    nb.save(img, path)
    return path


def _json(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content))
    return path


def _description(root: Path, version: str = "23.2.1") -> None:
    root.mkdir(parents=True, exist_ok=True)
    if version.startswith("20.1"):
        content = {"Name": "fMRIPrep", "BIDSVersion": "1.4.0",
                   "PipelineDescription": {"Name": "fMRIPrep", "Version": version}}
    else:
        content = {"Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.8.0",
                   "DatasetType": "derivative",
                   "GeneratedBy": [{"Name": "fMRIPrep", "Version": version,
                                    "CodeURL": "https://github.com/nipreps/fmriprep"}]}
    _json(root / "dataset_description.json", content)


def _run(root: Path, sub: str = "01", *, native: str | None = "boldref", confounds=V21,
         n_vol: int = 30, tr: float = 2.0, json_tr: float = 2.0, space: str = TPL,
         res: str | None = None, mask: bool = True, task: str = "rest") -> Path:
    """One run in fMRIPrep's layout; returns the template-space BOLD."""
    func = root / f"sub-{sub}" / "func"
    src = f"sub-{sub}_task-{task}"
    sp = f"space-{space}" + (f"_res-{res}" if res else "")
    bold = _nii(func / f"{src}_{sp}_desc-preproc_bold.nii.gz", (7, 8, 9, n_vol), tr=tr)
    _json(func / f"{src}_{sp}_desc-preproc_bold.json",
          {"RepetitionTime": json_tr, "TaskName": task, "SkullStripped": False})
    _nii(func / f"{src}_{sp}_boldref.nii.gz", (7, 8, 9))
    if mask:
        _nii(func / f"{src}_{sp}_desc-brain_mask.nii.gz", (7, 8, 9))
    name = "desc-confounds_timeseries" if confounds is V21 else "desc-confounds_regressors"
    shutil.copy(confounds.with_suffix(".tsv"), func / f"{src}_{name}.tsv")
    shutil.copy(confounds.with_suffix(".json"), func / f"{src}_{name}.json")
    if native == "boldref":  # fMRIPrep 23.2+: the series in its own reference space
        native_affine = np.diag([3.0, 3.0, 3.3, 1.0])
        _nii(func / f"{src}_desc-preproc_bold.nii.gz", (5, 6, 7, n_vol), tr=tr,
             affine=native_affine)
        _nii(func / f"{src}_desc-brain_mask.nii.gz", (5, 6, 7), affine=native_affine)
        _nii(func / f"{src}_desc-coreg_boldref.nii.gz", (5, 6, 7), affine=native_affine)
        (func / f"{src}_from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt").write_text("#\n")
    elif native == "T1w":
        _nii(func / f"{src}_space-T1w_desc-preproc_bold.nii.gz", (6, 6, 6, n_vol), tr=tr)
        _nii(func / f"{src}_space-T1w_desc-brain_mask.nii.gz", (6, 6, 6))
        _nii(func / f"{src}_space-T1w_boldref.nii.gz", (6, 6, 6))
    anat = root / f"sub-{sub}" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    (anat / f"sub-{sub}_from-{space}_to-T1w_mode-image_xfm.h5").write_bytes(b"")
    return bold


def _collect(root, subjects=("01",), **kwargs):
    options = {"template": "auto", "strategy": "acompcor", "seed_space": None} | kwargs
    return collect_fmriprep(root, list(subjects), **options)


def test_fmriprep_23_layout_is_found_with_native_files(tmp_path):
    _description(tmp_path)
    bold = _run(tmp_path)
    dataset, problems = _collect(tmp_path)
    assert problems == []
    assert dataset.version == "23.2.1"
    (run,) = dataset.subjects[0].runs
    assert run.bold == bold and run.template == TPL and run.resolution is None
    assert run.tr == pytest.approx(2.0)
    assert run.confounds.name == "sub-01_task-rest_desc-confounds_timeseries.tsv"
    assert run.native is not None and run.native.space == "boldref"
    assert run.native.boldref2anat.name.endswith("desc-coreg_xfm.txt")
    assert run.native.boldref.name == "sub-01_task-rest_desc-coreg_boldref.nii.gz"
    assert dataset.subjects[0].std2anat[TPL].name.endswith(f"from-{TPL}_to-T1w_mode-image_xfm.h5")
    assert run.entities == {"sub": "01", "task": "rest"}


def test_fmriprep_20_2_layout_with_t1w_space_and_legacy_description(tmp_path):
    _description(tmp_path, "20.1.3")
    _run(tmp_path, native="T1w", confounds=V20, space="MNI152NLin6Asym", res="2")
    dataset, problems = _collect(tmp_path)
    assert problems == []
    assert dataset.version == "20.1.3"
    (run,) = dataset.subjects[0].runs
    assert (run.template, run.resolution) == ("MNI152NLin6Asym", "2")
    assert run.native.space == "T1w" and run.native.boldref2anat is None
    assert run.confounds.name.endswith("desc-confounds_regressors.tsv")


def test_template_choice_follows_the_request_then_fmripreps_default(tmp_path):
    _description(tmp_path)
    _run(tmp_path, space="MNI152NLin6Asym", res="2")
    _run(tmp_path, space=TPL)
    assert _collect(tmp_path)[0].subjects[0].runs[0].template == TPL
    _run(tmp_path, space="MNI152NLin6Asym", res="1")  # 1 mm: larger, not the study's 2 mm
    chosen = _collect(tmp_path, template="MNI152NLin6Asym")[0].subjects[0].runs[0]
    assert (chosen.template, chosen.resolution) == ("MNI152NLin6Asym", "2")
    _, problems = _collect(tmp_path, template="MNI152NLin2009aSym")
    assert len(problems) == 1 and "MNI152NLin2009aSym" in problems[0]


def test_native_seeds_default_follows_what_the_derivatives_contain(tmp_path):
    _description(tmp_path)
    _run(tmp_path, native=None)
    dataset, problems = _collect(tmp_path)
    assert problems == [] and dataset.subjects[0].runs[0].native is None
    _, problems = _collect(tmp_path, seed_space="native")
    assert len(problems) == 1
    assert "space-T1w_desc-preproc_bold" in problems[0] and "--seed-space template" in problems[0]
    assert _collect(tmp_path, seed_space="template")[1] == []


def test_every_problem_of_every_subject_is_reported_at_once(tmp_path):
    _description(tmp_path)
    _run(tmp_path, "01", mask=False)
    _run(tmp_path, "02", n_vol=31)
    _run(tmp_path, "03", tr=2.5)
    bold4 = _run(tmp_path, "04")
    _nii(Path(str(bold4).replace("desc-preproc_bold", "desc-brain_mask")), (7, 8, 10))
    _run(tmp_path, "05")
    _, problems = _collect(tmp_path, ["01", "02", "03", "04", "05", "06"], strategy="aroma")
    text = "\n".join(problems)
    assert "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz is missing" in text
    assert "sub-02/func/sub-02_task-rest_desc-confounds_timeseries.tsv: 30 rows, but" in text
    assert "31 volumes" in text
    assert "repetition times disagree (2.5 s in the BOLD header, 2 s in its JSON)" in text
    assert "sub-04_task-rest_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz: the brain " \
           "mask is not on the grid" in text
    assert "no folder" in text and "sub-06" in text
    # aroma: the BOLD series and the columns are named, for every subject that has a run
    assert sum("smoothAROMAnonaggr_bold.nii.gz" in p for p in problems) == 5
    assert all("\n" not in p for p in problems)
    assert len(problems) == len(set(problems))


def test_missing_strategy_columns_are_named(tmp_path):
    _description(tmp_path)
    func = _run(tmp_path).parent
    tsv = func / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    lines = tsv.read_text().splitlines()
    header = lines[0].split("\t")
    drop = [i for i, c in enumerate(header) if c.startswith("rot_")]
    tsv.write_text("\n".join("\t".join(v for i, v in enumerate(line.split("\t"))
                                       if i not in drop) for line in lines) + "\n")
    _, problems = _collect(tmp_path, strategy="24P")
    assert len(problems) == 1
    assert str(tsv) in problems[0] and "rot_x" in problems[0]


def test_raw_runs_without_derivatives_are_named_by_their_raw_file(tmp_path):
    root = tmp_path / "fmriprep"
    _description(root)
    _run(root)
    raw = tmp_path / "raw" / "sub-01" / "func"
    found = {(("sub", "01"), ("task", "rest")): (raw / "sub-01_task-rest_bold.nii.gz",
                                                {"RepetitionTime": 2.0}),
             (("sub", "01"), ("task", "pain")): (raw / "sub-01_task-pain_bold.nii.gz",
                                                {"RepetitionTime": 2.0})}
    dataset, problems = _collect(root, raw_runs=found)
    assert problems == [f"{raw}/sub-01_task-pain_bold.nii.gz: no fMRIPrep outputs for this "
                        f"run in {root} (expected {root}/sub-01/.../sub-01_task-pain_space-"
                        "<template>_desc-preproc_bold.nii.gz)"]
    (run,) = dataset.subjects[0].runs
    assert run.source == raw / "sub-01_task-rest_bold.nii.gz"
    found[(("sub", "01"), ("task", "rest"))] = (run.source, {"RepetitionTime": 3.0})
    _, problems = _collect(root, raw_runs={k: v for k, v in found.items() if "rest" in str(k)})
    assert "3 s in the raw BOLD's sidecar" in problems[0]


def test_other_derivatives_are_not_taken_for_fmriprep(tmp_path):
    _json(tmp_path / "dataset_description.json",
          {"Name": "x", "BIDSVersion": "1.8.0", "DatasetType": "derivative",
           "GeneratedBy": [{"Name": "xcp_d", "Version": "0.10.0"}]})
    version, problems = read_description(tmp_path)
    assert version is None and "not fMRIPrep derivatives (GeneratedBy: xcp_d)" in problems[0]
    assert not is_fmriprep(tmp_path)
    assert not is_fmriprep(tmp_path / "absent")
    _description(tmp_path / "fp", "25.1.0")
    assert is_fmriprep(tmp_path / "fp")


def test_an_unreadable_image_is_a_problem_not_a_traceback(tmp_path):
    _description(tmp_path)
    bold = _run(tmp_path)
    bold.write_bytes(b"not a nifti")
    _, problems = _collect(tmp_path)
    assert len(problems) == 1 and "cannot be read" in problems[0]


# ---- the ingress workflow, run for real on such a folder --------------------------------

def _signal_run(root: Path) -> Path:
    """A run whose images hold real-valued series (random walks around 100)."""
    bold = _run(root)
    rng = np.random.default_rng(2)
    for path in sorted(bold.parent.glob("*desc-preproc_bold.nii.gz")):
        img = nb.load(path)
        data = 100 + rng.normal(size=img.shape).cumsum(-1).astype(np.float32)
        out = nb.Nifti1Image(data, img.affine, img.header)
        nb.save(out, path)
    coreg = bold.parent / "sub-01_task-rest_from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt"
    import ants

    tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                    translation=(1.5, -2.0, 0.5))
    ants.write_transform(tx, str(coreg))  # ITK text, as fMRIPrep writes it
    return bold


def _received(**kwargs):
    from nipype.interfaces.base import isdefined

    return {k: (v if isdefined(v) else None) for k, v in kwargs.items()}


@pytest.mark.parametrize("seed_space", ["template", "native"])
def test_ingress_workflow_denoises_and_fills_the_connectivity_inputs(tmp_path, seed_space):
    import ants

    from bids_dfc.workflows.fields import CONNECTIVITY_INPUTS
    from bids_dfc.workflows.fmriprep import init_fmriprep_bold_wf

    root = tmp_path / "fmriprep"
    _description(root)
    _signal_run(root)
    dataset, problems = _collect(root, seed_space=seed_space)
    assert problems == []
    (run,) = dataset.subjects[0].runs
    wf = init_fmriprep_bold_wf(
        run=run, std2anat=dataset.subjects[0].std2anat[TPL], version=dataset.version,
        seed_space=seed_space, strategy="acompcor", n_compcor=5, dummy_scans="auto",
        band_pass=None, smoothing_fwhm=4.0)
    # what a downstream node receives (identity nodes are pruned from the run's graph)
    fields = [*CONNECTIVITY_INPUTS, "denoise_meta"]
    collect = pe.Node(niu.Function(function=_received, input_names=fields,
                                   output_names=["out"]), name="collect")
    parent = pe.Workflow(name="parent", base_dir=str(tmp_path / "work"))
    parent.connect([(wf, collect, [(f"outputnode.{f}", f) for f in fields])])
    result = parent.run()
    received = next(n for n in result.nodes() if n.name == "collect").result.outputs.out
    out = SimpleNamespace(**received)
    assert received["bold_file"] == str(run.bold)  # no raw dataset: names from fMRIPrep's
    denoised = nb.load(out.bold_std if seed_space == "template" else out.bold_denoised)
    source = run.bold if seed_space == "template" else run.native.bold
    assert denoised.shape == nb.load(source).shape[:3] + (27,)  # 3 volumes flagged in V21
    assert np.allclose(denoised.affine, nb.load(source).affine)
    assert len(open(out.confounds_tsv).readlines()) == 28
    meta = json.loads(Path(out.denoise_meta).read_text())
    assert meta["NonSteadyStateVolumes"] == 3 and meta["SmoothingFWHMmm"] == 4.0
    header = open(run.confounds).readline().split("\t")
    wm = sorted(c for c in header if c.startswith("w_comp_cor_"))  # 4 in this file
    assert meta["CompCor"]["WM"] == wm[:5] and 0 < len(wm) < 5
    assert any("fewer aCompCor components than the 5 requested" in w for w in meta["Warnings"])
    assert out.template_ref == str(run.mask)
    if seed_space == "native":
        assert out.std2anat_xfm == [str(dataset.subjects[0].std2anat[TPL])]
        (inverse,) = [out.anat2boldref_xfm] if isinstance(out.anat2boldref_xfm, str) \
            else out.anat2boldref_xfm
        point = ants.read_transform(inverse).apply_to_point((1.0, 2.0, 3.0))
        np.testing.assert_allclose(point, (1.0 - 1.5, 2.0 + 2.0, 3.0 - 0.5), atol=1e-6)
