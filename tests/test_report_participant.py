"""Participant report: built from BIDS-Derivatives files, rendered in headless Chromium."""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from _browser import CHROMIUM, CHROMIUM_MISSING, render_in_chromium
from _study import connectivity_kwargs
from nilearn import datasets, image

from bids_dfc.connectivity import seeds as sd
from bids_dfc.connectivity import series as ss
from bids_dfc.connectivity import weights as sw
from bids_dfc.connectivity.tables import dfc_core
from bids_dfc.connectivity.weights import warp_weights_core
from bids_dfc.reports.methods import collect_methods
from bids_dfc.reports.participant import build_participant_report, find_participant_inputs

N_VOL = 90
PREFIX = "sub-01_task-rest_run-1"


def _save(img, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nb.save(img, path)
    return path


@pytest.fixture(scope="module")
def derivatives(tmp_path_factory):
    """One participant's derivatives with real (small) images and the connectivity outputs."""
    out = tmp_path_factory.mktemp("deriv")
    anat, func = out / "sub-01" / "anat", out / "sub-01" / "func"
    t1w = datasets.load_mni152_template(resolution=2)
    mask = image.resample_to_img(datasets.load_mni152_brain_mask(resolution=2), t1w,
                                 interpolation="nearest", copy_header=True,
                                 force_resample=True)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=2).dataobj)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=2).dataobj)
    brain = np.asarray(mask.dataobj) > 0
    dseg = np.where(brain, np.where(wm > 0.5, 2, np.where(gm > 0.3, 1, 3)), 0)
    _save(t1w, anat / "sub-01_desc-preproc_T1w.nii.gz")
    _save(mask, anat / "sub-01_desc-brain_mask.nii.gz")
    _save(nb.Nifti1Image(dseg.astype(np.uint8), t1w.affine), anat / "sub-01_dseg.nii.gz")
    # "normalised" T1w: the template shifted by 2 mm, so the overlay shows a real offset
    shifted = t1w.affine.copy()
    shifted[0, 3] += 2.0
    std = image.resample_img(nb.Nifti1Image(np.asarray(t1w.dataobj), shifted), t1w.affine,
                             t1w.shape, force_resample=True, copy_header=True)
    _save(std, anat / "sub-01_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz")
    _save(mask, out / "template_mask.nii.gz")

    # BOLD at 4 mm: template intensity + noise, network signals planted in the seeds
    rng = np.random.default_rng(4)
    ref = image.resample_img(t1w, np.diag([4.0, 4.0, 4.0, 1.0]) @ np.c_[
        np.eye(4)[:, :3], [-24, -30, -18, 1]], (50, 58, 46), force_resample=True,
        copy_header=True)
    ref_data = np.asarray(ref.dataobj, dtype=np.float32)
    bmask = ref_data > 0.2 * ref_data.max()
    _save(ref, func / f"{PREFIX}_boldref.nii.gz")
    _save(nb.Nifti1Image(bmask.astype(np.uint8), ref.affine),
          func / f"{PREFIX}_desc-brain_mask.nii.gz")
    # BOLD -> T1w: a real ANTs affine file (1.5 mm shift), as the BOLD derivatives write it
    import ants

    xfm = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                     translation=(1.5, 0.0, 0.0))
    ants.write_transform(xfm, str(func / f"{PREFIX}_from-boldref_to-T1w_mode-image_xfm.mat"))
    seeds = sd.read_seeds()
    maps = sw.seed_weight_maps(seeds, ref)
    _save(maps, out / "maps.nii.gz")
    weights, info = warp_weights_core(out / "maps.nii.gz", seeds, str(
        func / f"{PREFIX}_boldref.nii.gz"), [], func / f"{PREFIX}_desc-brain_mask.nii.gz",
        out)
    _save(weights, func / f"{PREFIX}_seg-seeds_probseg.nii.gz")
    info.to_csv(func / f"{PREFIX}_seg-seeds_probseg.tsv", sep="\t", index=False)
    preproc = ref_data[..., None] * (1 + 0.02 * rng.normal(size=ref.shape + (N_VOL,)))
    preproc += np.linspace(0, 30, N_VOL)  # a drift the denoising removes
    signals = rng.normal(size=(N_VOL, 2))
    denoised = rng.normal(scale=0.5, size=ref.shape + (N_VOL,)) * bmask[..., None]
    for k, net in enumerate(seeds["network"]):
        denoised[np.asarray(weights.dataobj)[..., k] > 0] += signals[:, int(net == "DeS")]
    zooms = (4.0, 4.0, 4.0, 2.0)
    for name, data in (("preproc", preproc), ("denoised", denoised)):
        img = nb.Nifti1Image(data.astype(np.float32), ref.affine)
        img.header.set_zooms(zooms)
        _save(img, func / f"{PREFIX}_desc-{name}_bold.nii.gz")
    (func / f"{PREFIX}_desc-denoised_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    motion = np.cumsum(rng.normal(scale=0.02, size=(N_VOL, 6)), axis=0)
    conf = pd.DataFrame(motion, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y",
                                         "rot_z"])
    conf["framewise_displacement"] = np.r_[np.nan, np.abs(np.diff(motion, axis=0)).sum(1)[:]]
    conf.to_csv(func / f"{PREFIX}_desc-confounds_timeseries.tsv", sep="\t", index=False,
                na_rep="n/a")
    ts = pd.DataFrame(ss.weighted_mean_series(denoised, np.asarray(weights.dataobj)),
                      columns=seeds["name"])
    ts = pd.concat([ts, ss.network_series(ts, dict(zip(seeds["name"], seeds["network"])))],
                   axis=1)
    ts.to_csv(func / f"{PREFIX}_seg-seeds_stat-mean_timeseries.tsv", sep="\t", index=False)
    summary, dcc, _ = dfc_core(ts, [("network", ["DMN", "DeS"]),
                                       ("seed", list(seeds["name"]))], mode="pairwise",
                                  fd=float(conf["framewise_displacement"].mean()))
    summary.to_csv(func / f"{PREFIX}_seg-seeds_dfc.tsv", sep="\t", index=False)
    dcc.to_csv(func / f"{PREFIX}_seg-seeds_desc-dcc_timeseries.tsv", sep="\t", index=False)
    return out


def test_inputs_are_found_from_derivative_names(derivatives):
    anat, runs = find_participant_inputs(derivatives, "01")
    assert anat["t1w_preproc"].name == "sub-01_desc-preproc_T1w.nii.gz"
    assert anat["t1w_std"].name.startswith("sub-01_space-MNI152NLin2009aSym")
    assert [r["name"] for r in runs] == [PREFIX]
    run = runs[0]
    assert run["bold_ref"].name == f"{PREFIX}_boldref.nii.gz"
    assert run["boldref2anat_xfm"].suffix == ".mat"
    assert run["tr"] == 2.0
    missing = [k for k, v in run.items() if v is None]
    assert missing == ["bold_t1w"]  # drawn by resampling bold_ref with the transform


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason=CHROMIUM_MISSING)
def test_report_renders_every_figure_in_chromium(derivatives, tmp_path):
    from nipype.pipeline import engine as pe

    from bids_dfc.workflows.connectivity import init_connectivity_wf

    parent = pe.Workflow(name="sub_01_wf")
    parent.__desc__ = "Results were generated with bids_dfc."
    parent.add_nodes([init_connectivity_wf(name="bold_run1_connectivity_wf",
                                           **connectivity_kwargs())])
    methods = collect_methods(parent)
    html_path = build_participant_report(derivatives, "01", methods=methods,
                                         anat={"template_mask": derivatives /
                                               "template_mask.nii.gz"})
    assert html_path == derivatives / "sub-01.html"
    text = html_path.read_text()
    assert 'class="missing"' not in text, text[text.find('class="missing"'):][:400]
    assert "dynamic conditional correlation" in text and "Lindquist MA" in text
    assert "nipype " in text  # the versions paragraph
    info = render_in_chromium(html_path, tmp_path / "shot.png")
    assert info["n_images"] == 7, info["images"]
    assert info["broken"] == []
    assert all(im["width"] > 400 for im in info["images"])
    assert all(im["src"].startswith("sub-01/figures/") for im in info["images"])
    assert info["title"] == "sub-01 | bids_dfc"
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_missing_inputs_are_reported_not_hidden(derivatives, tmp_path):
    out = tmp_path / "out"
    func = out / "sub-01" / "func"
    func.mkdir(parents=True)
    for name in (f"{PREFIX}_seg-seeds_dfc.tsv", f"{PREFIX}_desc-confounds_timeseries.tsv"):
        (func / name).write_bytes((derivatives / "sub-01" / "func" / name).read_bytes())
    html_path = build_participant_report(out, "sub-01", methods="m")
    text = html_path.read_text()
    assert "Skull strip and tissue segmentation: not drawn, missing input(s) t1w" in text
    assert "Carpet plots: not drawn, missing input(s) bold_before" in text
    assert "<img" in text and "desc-motion_bold.png" in text  # motion plot still drawn
