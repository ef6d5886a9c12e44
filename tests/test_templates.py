"""Template resolution: TemplateFlow files when present locally, nilearn's bundle otherwise,
never the network unless asked."""

from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from bids_dfc.errors import InputError
from bids_dfc.templates import cache_root, get_template


@pytest.fixture
def empty_tf(tmp_path, monkeypatch):
    home = tmp_path / "tf"
    home.mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    return home


def test_bundled_template_matches_nilearn(tmp_path, empty_tf):
    """The cached files hold nilearn's own arrays (the independent reference), CSF is
    mask - GM - WM clipped, and nothing lands in TEMPLATEFLOW_HOME."""
    from nilearn import datasets

    spec = get_template("auto", 2, cache_dir=tmp_path / "cache")
    assert spec.name == "MNI152NLin2009aSym" and spec.source == "nilearn-bundled"
    assert spec.resolution == 2 and spec.has_tissue_priors
    t1 = nib.load(spec.t1w)
    assert t1.shape == (99, 117, 95)
    ref = datasets.load_mni152_template(resolution=2)
    np.testing.assert_allclose(t1.affine, ref.affine)
    mask = np.asarray(nib.load(spec.brain_mask).dataobj)
    assert set(np.unique(mask)) == {0, 1}
    ref_mask = datasets.load_mni152_brain_mask(resolution=2).get_fdata() > 0
    np.testing.assert_array_equal(mask > 0, ref_mask)
    np.testing.assert_allclose(t1.get_fdata()[ref_mask], ref.get_fdata()[ref_mask], atol=1e-6)
    assert not t1.get_fdata()[~ref_mask].any()
    gm, wm, csf = (nib.load(p).get_fdata() for p in (spec.gm, spec.wm, spec.csf))
    ref_gm = datasets.load_mni152_gm_template(resolution=2).get_fdata()
    np.testing.assert_allclose(gm, ref_gm, atol=1e-6)
    np.testing.assert_allclose(csf, np.clip(mask - gm - wm, 0, 1), atol=1e-6)
    assert csf.min() >= 0 and csf.max() <= 1 and csf[mask == 0].max() == 0
    assert list(empty_tf.iterdir()) == []
    assert spec.metadata() == {"Template": "MNI152NLin2009aSym", "TemplateResolution": 2,
                               "TemplateSource": "nilearn-bundled"}


def test_bundled_written_once(tmp_path, empty_tf):
    first = get_template("MNI152NLin2009aSym", 2, cache_dir=tmp_path)
    stamp = os.stat(first.t1w).st_mtime_ns
    second = get_template("MNI152NLin2009aSym", 2, cache_dir=tmp_path)
    assert second == first and os.stat(second.t1w).st_mtime_ns == stamp
    assert not [p for p in (tmp_path / "templates").rglob(".tmp-*")]


def _fake_templateflow(home, name="MNI152NLin6Asym", res="02", tissues=False, empty=False):
    folder = home / f"tpl-{name}"
    folder.mkdir(parents=True)
    shape, aff = (9, 11, 10), np.diag([2.0, 2.0, 2.0, 1.0])
    rng = np.random.default_rng(0)
    files = {"T1w": rng.random(shape).astype("float32"),
             "desc-brain_mask": (rng.random(shape) > 0.5).astype("uint8")}
    if tissues:
        files.update({f"label-{t}_probseg": rng.random(shape).astype("float32")
                      for t in ("GM", "WM", "CSF")})
    for key, data in files.items():
        path = folder / f"tpl-{name}_res-{res}_{key}.nii.gz"
        if empty:
            path.touch()
        else:
            nib.save(nib.Nifti1Image(data, aff), path)
    return folder


def test_templateflow_used_when_present(tmp_path, empty_tf):
    folder = _fake_templateflow(empty_tf)
    spec = get_template("auto", 2, cache_dir=tmp_path / "cache")
    assert spec.source == "templateflow" and spec.name == "MNI152NLin6Asym"
    assert spec.t1w == str(folder / "tpl-MNI152NLin6Asym_res-02_T1w.nii.gz")
    assert not spec.has_tissue_priors and spec.gm is None
    other = _fake_templateflow(empty_tf, name="MNI152NLin2009cAsym", res="1", tissues=True)
    spec = get_template("MNI152NLin2009cAsym", 1)
    assert spec.has_tissue_priors
    assert spec.csf == str(other / "tpl-MNI152NLin2009cAsym_res-1_label-CSF_probseg.nii.gz")


def test_templateflow_skeleton_placeholders_ignored(tmp_path, empty_tf):
    _fake_templateflow(empty_tf, empty=True)
    spec = get_template("auto", 2, cache_dir=tmp_path / "cache")
    assert spec.source == "nilearn-bundled"
    with pytest.raises(InputError, match="MNI152NLin6Asym.*not in TEMPLATEFLOW_HOME"):
        get_template("MNI152NLin6Asym", 2, cache_dir=tmp_path / "cache")


def test_bad_requests(tmp_path, empty_tf):
    with pytest.raises(InputError, match="resolution"):
        get_template("auto", 0, cache_dir=tmp_path)
    with pytest.raises(InputError, match="1 or 2 mm"):
        get_template("MNI152NLin2009aSym", 3, cache_dir=tmp_path)


def test_unwritable_cache_falls_back_to_tmp(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BIDS_DFC_CACHE", str(blocker / "cache"))
    root = cache_root()
    assert root.name == f"bids_dfc-cache-{os.getuid()}" and os.access(root, os.W_OK)


def test_offline_path_never_imports_templateflow(tmp_path):
    code = ("import sys; from bids_dfc.templates import get_template; "
            f"s = get_template('auto', 2, cache_dir={str(tmp_path / 'c')!r}); "
            "print(s.source, 'templateflow' in sys.modules)")
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(tmp_path / "tf-missing")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, cwd=os.getcwd())
    assert out.stdout.split() == ["nilearn-bundled", "False"]
    assert not (tmp_path / "tf-missing").exists()
