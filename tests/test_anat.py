"""Anatomical workflow on a demo subject with known truth (small size, sloppy schedules).

The truth comes from the demo generator (bids_dfc.demo), which moves and warps nilearn's
MNI152 2009a head into a random native space with its own code (scipy resampling of an
analytic pose + smooth displacement field), independently of ANTs: the brain mask and the
mapping of template points into T1w space are therefore an outside reference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from bids_dfc.errors import InputError

ants = pytest.importorskip("ants")

from bids_dfc.demo import make_demo_dataset  # noqa: E402
from bids_dfc.demo.truth import load_truth, mni_to_t1w  # noqa: E402
from bids_dfc.errors import RegistrationError  # noqa: E402
from bids_dfc.interfaces import anat as ianat  # noqa: E402
from bids_dfc.preproc import anat as panat  # noqa: E402
from bids_dfc.preproc.ants_utils import (  # noqa: E402
    ants_seed,
    ants_threads,
    fill_holes,
    node_tmpdir,
    otsu_threshold,
    read_finite_image,
    superior_mm,
)
from bids_dfc.templates import TemplateSpec, get_template  # noqa: E402
from bids_dfc.workflows.anat import (  # noqa: E402
    init_anat_derivatives_wf,
    init_anat_wf,
)
from bids_dfc.workflows.fields import ANAT_OUTPUTS as OUTPUT_FIELDS  # noqa: E402

pytestmark = pytest.mark.slow  # tier: tests/conftest.py

#: Template points (MNI mm): the study's four seeds and a spread of cortical points.
LANDMARKS = np.array([[-2, -46, 28], [4, 54, 2], [0, -32, -10], [0, -34, -50],
                      [40, -20, 50], [-40, 10, 0], [20, -80, 10], [-30, -60, 45]], float)


def _dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return get_template("MNI152NLin2009aSym", 2, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "ds"
    out = make_demo_dataset(root, n_subjects=1, seed=11, n_volumes=60)
    truth = load_truth(out["truth_dir"], out["subjects"][0])
    t1w = next((root / f"sub-{out['subjects'][0]}" / "anat").glob("*_T1w.nii.gz"))
    return {"t1w": t1w, "truth": truth}


@pytest.fixture(scope="module")
def anat_run(demo, template, tmp_path_factory):
    from nipype.pipeline import engine as pe

    base = tmp_path_factory.mktemp("anat")
    wf = pe.Workflow(name="top", base_dir=str(base / "work"))
    anat = init_anat_wf(template=template, sloppy=True, random_seed=42)
    anat.inputs.inputnode.t1w = str(demo["t1w"])
    ds = init_anat_derivatives_wf(output_dir=str(base / "out"), template=template, sloppy=True)
    ds.inputs.inputnode.source_file = str(demo["t1w"])
    fields = [f for f in OUTPUT_FIELDS if f not in {"t1w_brain", "template_ref", "template_mask"}]
    wf.connect([(anat, ds, [(f"outputnode.{f}", f"inputnode.{f}") for f in fields])])
    wf.run(plugin="Linear")
    return base / "out" / demo["t1w"].parent.relative_to(demo["t1w"].parents[2])


def _one(folder, pattern):
    hits = sorted(folder.glob(pattern))
    assert len(hits) == 1, (pattern, hits)
    return hits[0]


def test_outputs_named_and_described(anat_run, template):
    tpl = template.name
    names = ["desc-preproc_T1w.nii.gz", "desc-brain_mask.nii.gz", "dseg.nii.gz",
             f"space-{tpl}_desc-preproc_T1w.nii.gz",
             f"from-T1w_to-{tpl}_mode-image_desc-affine_xfm.txt",
             f"from-T1w_to-{tpl}_mode-image_desc-warp_xfm.nii.gz",
             f"from-{tpl}_to-T1w_mode-image_desc-affine_xfm.txt",
             f"from-{tpl}_to-T1w_mode-image_desc-warp_xfm.nii.gz"]
    names += [f"label-{t}_probseg.nii.gz" for t in ("GM", "WM", "CSF")]
    for name in names:
        path = _one(anat_run, f"sub-??_{name}")
        meta = json.loads(path.with_name(path.name.split(".")[0] + ".json").read_text())
        assert meta["Template"] == tpl and meta["TemplateSource"] == "nilearn-bundled"
        assert meta["TemplateResolution"] == 2
        assert "antspyx" in meta["SoftwareVersions"] and "NOT FOR RESEARCH" in meta["Warning"]
        if name == "desc-brain_mask.nii.gz":
            assert meta["RegistrationQC"]["CorrelationWithTemplate"] > panat.MIN_CORRELATION
    dseg = nib.load(_one(anat_run, "sub-*_dseg.nii.gz")).get_fdata()
    assert set(np.unique(dseg)) == {0, 1, 2, 3}
    mask = nib.load(_one(anat_run, "sub-*_desc-brain_mask.nii.gz"))
    assert np.array_equal((dseg > 0), np.asarray(mask.dataobj) > 0)
    tpms = np.stack([nib.load(_one(anat_run, f"sub-*_label-{t}_probseg.nii.gz")).get_fdata()
                     for t in ("GM", "WM", "CSF")])
    inside = np.asarray(mask.dataobj) > 0
    np.testing.assert_allclose(tpms.sum(0)[inside], 1.0, atol=1e-3)


def test_brain_mask_dice_against_truth(anat_run, demo):
    mask = nib.load(_one(anat_run, "sub-*_desc-brain_mask.nii.gz")).get_fdata()
    truth = nib.load(demo["truth"]["files"]["t1w_brain_mask"]).get_fdata()
    assert _dice(mask, truth) >= 0.90


def test_tissues_against_truth(anat_run, demo):
    dseg = nib.load(_one(anat_run, "sub-*_dseg.nii.gz")).get_fdata()
    files = demo["truth"]["files"]
    truth = np.stack([nib.load(files[f"t1w_{t}"]).get_fdata() for t in ("gm", "wm", "csf")])
    labels = np.where(truth.sum(0) > 0.5, truth.argmax(0) + 1, 0)
    assert _dice(dseg == 1, labels == 1) >= 0.80  # GM
    assert _dice(dseg == 2, labels == 2) >= 0.80  # WM


def test_landmarks_within_3mm(anat_run, demo, template):
    """Template points mapped to the T1w with the written transforms land where the demo's
    own (independent) geometry puts them; image resampling with the inverse list, applied
    without any invert flag, puts a template blob at the same place."""
    tpl = template.name
    fwd = [str(_one(anat_run, f"*from-T1w_to-{tpl}_*desc-warp_xfm.nii.gz")),
           str(_one(anat_run, f"*from-T1w_to-{tpl}_*desc-affine_xfm.txt"))]
    inv = [str(_one(anat_run, f"*from-{tpl}_to-T1w_*desc-affine_xfm.txt")),
           str(_one(anat_run, f"*from-{tpl}_to-T1w_*desc-warp_xfm.nii.gz"))]
    true = mni_to_t1w(LANDMARKS, demo["truth"])
    lps = pd.DataFrame(LANDMARKS * [-1, -1, 1], columns=["x", "y", "z"])
    est = ants.apply_transforms_to_points(3, lps, fwd)[["x", "y", "z"]].to_numpy() * [-1, -1, 1]
    err = np.linalg.norm(est - true, axis=1)
    assert err.max() <= 3.0, err

    tpl_img = ants.image_read(template.t1w)
    t1w = ants.image_read(str(demo["t1w"]))
    for point, expected in zip(LANDMARKS[:2], true[:2]):
        blob = tpl_img.new_image_like(_ball(tpl_img, point, 6.0))
        native = ants.apply_transforms(t1w, blob, inv).numpy()  # default arguments on purpose
        centroid = _centroid_world(nib.load(str(demo["t1w"])).affine, native)
        assert np.linalg.norm(centroid - expected) <= 3.0


def _ball(img, centre_ras, radius):
    aff = _ras_affine(img)
    ijk = np.indices(img.shape).reshape(3, -1).T
    xyz = ijk @ aff[:3, :3].T + aff[:3, 3]
    return (np.linalg.norm(xyz - centre_ras, axis=1) <= radius).reshape(img.shape).astype("float32")


def _ras_affine(img):
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(img.direction) * np.asarray(img.spacing)
    aff[:3, 3] = img.origin
    return np.diag([-1, -1, 1, 1]) @ aff


def _centroid_world(affine, data):
    ijk = np.array(ndimage.center_of_mass(data))
    return affine[:3, :3] @ ijk + affine[:3, 3]


def test_oblique_anisotropic_t1w(demo, template, tmp_path):
    """A T1w on a 25/15-degree oblique, 1.6 x 2.2 x 3 mm grid is stripped as well."""
    img = nib.load(str(demo["t1w"]))
    rot = _rotation(np.deg2rad(25), np.deg2rad(-15))
    zooms = np.array([1.6, 2.2, 3.0])
    shape = np.array([130, 110, 70])
    centre = img.affine[:3, :3] @ (np.array(img.shape) / 2) + img.affine[:3, 3]
    new = np.eye(4)
    new[:3, :3] = rot @ np.diag(zooms)
    new[:3, 3] = centre - new[:3, :3] @ (shape / 2)
    vox = np.linalg.inv(img.affine) @ new
    data = ndimage.affine_transform(img.get_fdata(), vox[:3, :3], vox[:3, 3], shape, order=1)
    truth = nib.load(demo["truth"]["files"]["t1w_brain_mask"]).get_fdata()
    truth = ndimage.affine_transform(truth, vox[:3, :3], vox[:3, 3], shape, order=0)
    src = tmp_path / "oblique_T1w.nii.gz"
    nib.save(nib.Nifti1Image(data.astype("float32"), new), src)
    with node_tmpdir(tmp_path), ants_threads(2):
        n4 = panat.n4_core(src, tmp_path / "n4.nii.gz", sloppy=True)
        res = panat.register_core(n4, template.t1w, template.brain_mask, tmp_path / "reg",
                                  sloppy=True, random_seed=3)
    panat.check_registration(res["qc"], str(src))
    mask = nib.load(res["brain_mask"])
    np.testing.assert_allclose(mask.affine, new, atol=1e-4)
    assert _dice(mask.get_fdata(), truth) >= 0.90


def _rotation(ax, az):
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


def test_registration_is_reproducible(anat_run, template, tmp_path):
    """Same seed, one ITK thread: identical transforms and segmentation on a rerun.  ITK fixes
    its thread count when the process first uses it, so the reruns go to a fresh process with
    the variable set from the start (as a nipype worker does)."""
    n4 = next((anat_run.parents[2] / "work").rglob("t1w_n4.nii.gz"))
    code = (
        "import sys; from bids_dfc.preproc.anat import register_core, segment_core\n"
        "for k in range(2):\n"
        f"    out = {str(tmp_path)!r} + f'/r{{k}}'\n"
        f"    res = register_core({str(n4)!r}, {template.t1w!r}, {template.brain_mask!r}, "
        "out, sloppy=True, random_seed=0)\n"
        "    segment_core(res['t1w_brain'], res['brain_mask'], out, sloppy=True)\n"
    )
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1", "TMPDIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    for name in ("from-template_to-T1w_warp.nii.gz", "brain_mask.nii.gz", "dseg.nii.gz",
                 "label-GM_probseg.nii.gz"):
        first, second = (nib.load(tmp_path / f"r{k}" / name).get_fdata() for k in range(2))
        np.testing.assert_array_equal(first, second)
    texts = [(tmp_path / f"r{k}" / "from-T1w_to-template_affine.txt").read_text()
             for k in range(2)]
    assert texts[0] == texts[1]


def test_registration_failure_is_reported(template, tmp_path):
    """A head-sized smooth noise blob (no anatomy) must not pass as a registered brain."""
    rng = np.random.default_rng(0)
    data = ndimage.gaussian_filter(rng.normal(size=(48, 52, 40)), 2.0)
    data = np.clip(data - data.mean(), 0, None) * 1000
    src = tmp_path / "sub-99_T1w.nii.gz"
    nib.save(nib.Nifti1Image(data.astype("float32"), np.diag([4.0, 4.0, 4.0, 1.0])), src)
    node = ianat.TemplateRegistration(in_file=str(src), source_file=str(src),
                                      template=template.t1w, template_mask=template.brain_mask,
                                      sloppy=True, random_seed=1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(RegistrationError, match="sub-99_T1w"):
            node.run()
    finally:
        os.chdir(cwd)


def test_check_registration_thresholds():
    good = {"correlation": 0.8, "mask_in_head": 0.99, "brain_volume_ml": 1500.0}
    panat.check_registration(good, "x.nii.gz")
    for key, value in (("correlation", 0.2), ("mask_in_head", 0.5), ("brain_volume_ml", 90.0)):
        with pytest.raises(RegistrationError, match="x.nii.gz"):
            panat.check_registration({**good, key: value}, "x.nii.gz")


def test_nonfinite_voxels(tmp_path):
    data = np.ones((9, 8, 7), np.float32)
    data[2, 3, 4] = np.nan
    data[1, 1, 1] = np.inf
    src = tmp_path / "sub-01_T1w.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), src)
    with pytest.raises(InputError, match=r"sub-01_T1w.nii.gz has 2 NaN or infinite"):
        read_finite_image(src)
    with pytest.warns(UserWarning, match="2 NaN/inf"):
        img = read_finite_image(src, sanitise=True)
    assert np.isfinite(img.numpy()).all() and img.numpy()[2, 3, 4] == 0


def test_workflow_graph_without_tissue_priors(template):
    spec = TemplateSpec(name="MNI152NLin6Asym", resolution=2, t1w=template.t1w,
                        brain_mask=template.brain_mask, gm=None, wm=None, csf=None,
                        source="templateflow")
    wf = init_anat_wf(template=spec, sloppy=False, random_seed=1)
    assert set(wf.get_node("outputnode").inputs.copyable_trait_names()) == set(OUTPUT_FIELDS)
    assert "k-means" in wf.__desc__ and "sloppy" not in wf.__desc__
    seg = wf.get_node("segment")
    assert not seg.inputs.priors and seg.n_procs == 1  # single ITK thread: reproducible reruns
    assert wf.get_node("register").inputs.random_seed == 1
    assert panat._params(True)["reg_iterations"] < panat._params(False)["reg_iterations"]


def test_kmeans_segmentation_orders_tissues(anat_run, demo, tmp_path):
    work = anat_run.parents[2] / "work"
    brain = next(work.rglob("t1w_brain.nii.gz"))
    mask = next(work.rglob("brain_mask.nii.gz"))
    with node_tmpdir(tmp_path):
        res = panat.segment_core(brain, mask, tmp_path, priors=None, sloppy=True)
    dseg = nib.load(res["dseg"]).get_fdata()
    wm_truth = nib.load(demo["truth"]["files"]["t1w_wm"]).get_fdata() > 0.5
    assert _dice(dseg == 2, wm_truth) >= 0.75


def test_helpers(tmp_path):
    rng = np.random.default_rng(1)
    sample = np.r_[rng.normal(10, 1, 700), rng.normal(30, 2, 300)]
    assert 13 < otsu_threshold(sample) < 26
    shell = np.zeros((21, 22, 23), bool)
    zz, yy, xx = np.indices(shell.shape)
    r = np.sqrt((zz - 10) ** 2 + (yy - 11) ** 2 + (xx - 11) ** 2)
    shell[(r > 7) & (r < 9)] = True
    shell[:, :, :6] = False  # opened: no closed 3-D hole any more
    filled = fill_holes(shell)
    assert filled[10, 11, 11] and not ndimage.binary_fill_holes(shell)[10, 11, 11]
    img = ants.from_numpy(np.zeros((7, 9, 11), np.float32), origin=(3.0, -4.0, 5.0),
                          spacing=(1.5, 2.0, 3.0))
    rot = _rotation(0.4, -0.3)
    img.set_direction(rot)
    z = superior_mm(img)
    for idx in [(0, 0, 0), (6, 1, 10), (3, 8, 4)]:  # ANTs' own index -> physical mapping
        assert z[idx] == pytest.approx(ants.transform_index_to_physical_point(img, idx)[2],
                                       abs=1e-4)
    old = tempfile.gettempdir()
    with node_tmpdir(tmp_path) as d:
        assert tempfile.gettempdir() == d == str(tmp_path) and os.environ["TMPDIR"] == d
    assert tempfile.gettempdir() == old
    with ants_threads(1):
        assert os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "1"
    with pytest.raises(InputError):
        ants_threads(0)
    before = ants.config._random_seed
    with ants_seed(17):
        assert ants.config._random_seed == 18  # shifted: ANTs takes 0 as "unseeded"
    with ants_seed(0):
        assert ants.config._random_seed == 1
    assert ants.config._random_seed == before
