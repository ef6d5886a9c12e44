"""Participant report: built from BIDS-Derivatives files (named by ``OUTPUT_NAMES``), its
text checked for rendered markdown and complete references, rendered in headless Chromium at
two window widths (``BIDS_DFC_SAVE_SCREENSHOTS=1`` also copies the screenshots to
``validation/results/screenshots/`` for a reviewer)."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from _browser import CHROMIUM, CHROMIUM_MISSING, render_in_chromium
from nilearn import datasets, image
from test_citations import _subject

from bids_dfc.connectivity import seeds as sd
from bids_dfc.connectivity import series as ss
from bids_dfc.connectivity import weights as sw
from bids_dfc.connectivity.tables import dfc_core
from bids_dfc.connectivity.weights import warp_weights_core
from bids_dfc.derivatives import OUTPUT_NAMES
from bids_dfc.reports.citations import IN_TEXT
from bids_dfc.reports.methods import collect_methods
from bids_dfc.reports.participant import build_participant_report, find_participant_inputs
from bids_dfc.workflows.base import init_bids_dfc_wf

N_VOL = 90
PREFIX = "sub-01_task-rest_run-1"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "validation" / "results" / "screenshots"


def _name(key: str, prefix: str = PREFIX, **values) -> str:
    """The file name the derivatives workflows give output ``key`` of ``prefix``."""
    return prefix + OUTPUT_NAMES[key].pattern(**values)


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
    _save(t1w, anat / _name("t1w_preproc", "sub-01"))
    _save(mask, anat / _name("t1w_mask", "sub-01"))
    _save(nb.Nifti1Image(dseg.astype(np.uint8), t1w.affine), anat / _name("t1w_dseg", "sub-01"))
    # "normalised" T1w: the template shifted by 2 mm, so the overlay shows a real offset
    shifted = t1w.affine.copy()
    shifted[0, 3] += 2.0
    std = image.resample_img(nb.Nifti1Image(np.asarray(t1w.dataobj), shifted), t1w.affine,
                             t1w.shape, force_resample=True, copy_header=True)
    _save(std, anat / _name("t1w_std", "sub-01", space="MNI152NLin2009aSym"))
    _save(mask, out / "template_mask.nii.gz")

    # BOLD at 4 mm: template intensity + noise, network signals planted in the seeds
    rng = np.random.default_rng(4)
    ref = image.resample_img(t1w, np.diag([4.0, 4.0, 4.0, 1.0]) @ np.c_[
        np.eye(4)[:, :3], [-24, -30, -18, 1]], (50, 58, 46), force_resample=True,
        copy_header=True)
    ref_data = np.asarray(ref.dataobj, dtype=np.float32)
    bmask = ref_data > 0.2 * ref_data.max()
    _save(ref, func / _name("bold_ref"))
    _save(nb.Nifti1Image(bmask.astype(np.uint8), ref.affine),
          func / _name("bold_mask"))
    # BOLD -> T1w: a real ANTs affine file (1.5 mm shift), as the BOLD derivatives write it
    import ants

    xfm = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                     translation=(1.5, 0.0, 0.0))
    ants.write_transform(xfm, str(func / _name("boldref2anat_xfm")))
    seeds = sd.read_seeds()
    maps = sw.seed_weight_maps(seeds, ref)
    _save(maps, out / "maps.nii.gz")
    weights, info = warp_weights_core(out / "maps.nii.gz", seeds, str(
        func / _name("bold_ref")), [], func / _name("bold_mask"),
        out)
    _save(weights, func / _name("seed_weights"))
    info.to_csv(func / _name("seed_info"), sep="\t", index=False)
    preproc = ref_data[..., None] * (1 + 0.02 * rng.normal(size=ref.shape + (N_VOL,)))
    preproc += np.linspace(0, 30, N_VOL)  # a drift the denoising removes
    signals = rng.normal(size=(N_VOL, 2))
    denoised = rng.normal(scale=0.5, size=ref.shape + (N_VOL,)) * bmask[..., None]
    for k, net in enumerate(seeds["network"]):
        denoised[np.asarray(weights.dataobj)[..., k] > 0] += signals[:, int(net == "DeS")]
    zooms = (4.0, 4.0, 4.0, 2.0)
    for key, data in (("bold_preproc", preproc), ("bold_denoised", denoised)):
        img = nb.Nifti1Image(data.astype(np.float32), ref.affine)
        img.header.set_zooms(zooms)
        _save(img, func / _name(key))
    sidecar = func / _name("bold_denoised").replace(".nii.gz", ".json")
    sidecar.write_text(json.dumps({"RepetitionTime": 2.0}))
    motion = np.cumsum(rng.normal(scale=0.02, size=(N_VOL, 6)), axis=0)
    conf = pd.DataFrame(motion, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y",
                                         "rot_z"])
    conf["framewise_displacement"] = np.r_[np.nan, np.abs(np.diff(motion, axis=0)).sum(1)[:]]
    conf.to_csv(func / _name("confounds_tsv"), sep="\t", index=False,
                na_rep="n/a")
    ts = pd.DataFrame(ss.weighted_mean_series(denoised, np.asarray(weights.dataobj)),
                      columns=seeds["name"])
    ts = pd.concat([ts, ss.network_series(ts, dict(zip(seeds["name"], seeds["network"])))],
                   axis=1)
    ts.to_csv(func / _name("seed_timeseries"), sep="\t", index=False)
    summary, dcc, _ = dfc_core(ts, [("network", ["DMN", "DeS"]),
                                       ("seed", list(seeds["name"]))], mode="pairwise",
                                  fd=float(conf["framewise_displacement"].mean()))
    summary.to_csv(func / _name("seed_dfc"), sep="\t", index=False)
    dcc.to_csv(func / _name("seed_dcc"), sep="\t", index=False)
    return out


def test_inputs_are_found_from_derivative_names(derivatives):
    anat, runs = find_participant_inputs(derivatives, "01")
    assert anat["t1w_preproc"].name == _name("t1w_preproc", "sub-01")
    assert anat["t1w_std"].name.startswith("sub-01_space-MNI152NLin2009aSym")
    assert [r["name"] for r in runs] == [PREFIX]
    run = runs[0]
    assert run["bold_ref"].name == _name("bold_ref")
    assert run["seed_info"].name == _name("seed_info")
    assert run["boldref2anat_xfm"].suffix == ".mat"
    assert run["tr"] == 2.0
    missing = [k for k, v in run.items() if v is None]
    assert missing == ["bold_t1w"]  # drawn by resampling bold_ref with the transform


@pytest.fixture(scope="module")
def report(derivatives, tmp_path_factory) -> Path:
    """The report with the methods text of a real (built, not run) participant workflow,
    sloppy so that its emphasised words are in the text too."""
    from bids_dfc.cli.parser import parse_args

    root = tmp_path_factory.mktemp("bids")
    cfg = parse_args([str(root), str(root / "out"), "participant", "--sloppy"])
    methods = collect_methods(init_bids_dfc_wf(cfg, [_subject(root)]).get_node("sub_01_wf"))
    assert "*bids_dfc*" in methods and "*sloppy*" in methods  # markdown, as the builders write
    return build_participant_report(derivatives, "01", methods=methods,
                                    anat={"template_mask": derivatives / "template_mask.nii.gz"})


class _Text(HTMLParser):
    """The page's visible text: the reference list's items apart from everything else."""

    def __init__(self, page: str):
        super().__init__()
        self.body, self.references, self._skip, self._in_refs = [], [], 0, False
        self.feed(page)
        self.body_text = " ".join(self.body)

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script", "title")
        self._in_refs |= tag == "ul" and ("class", "references") in attrs
        if self._in_refs and tag == "li":
            self.references.append("")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script", "title")
        self._in_refs &= tag != "ul"

    def handle_data(self, data):
        if self._skip:
            return
        if self._in_refs and self.references:
            self.references[-1] += data
        else:
            self.body.append(data)


def _cite_of(reference: str) -> str:
    """The in-text form of a formatted reference ("Avants BB, Epstein CL, ... 2008;..." ->
    "Avants et al. 2008"), read from the reference itself."""
    authors = reference.split(". ", 1)[0]
    year = re.search(r"\b((?:19|20)\d{2});", reference).group(1)
    return f"{authors.split()[0]}{' et al.' if ',' in authors else ''} {year}"


def test_methods_markdown_is_rendered_not_shown(report):
    page = report.read_text()
    text = _Text(page).body_text
    assert "*" not in text, re.findall(r".{30}\*.{30}", text)
    assert "<em>bids_dfc</em>" in page and "<em>Nipype</em>" in page
    assert "<em>sloppy</em>" in page  # every paragraph, not only the first
    assert "<pre" not in page  # paragraphs wrap in the window


def test_every_citation_is_listed_and_every_reference_cited(report):
    text = _Text(report.read_text())
    cited = set(IN_TEXT.findall(text.body_text))
    listed = [_cite_of(r) for r in text.references]
    assert len(listed) == len(set(listed)), listed
    assert text.references == sorted(text.references)  # author order, as author-year goes
    assert cited == set(listed), (sorted(cited - set(listed)), sorted(set(listed) - cited))
    # the works the new user missed: a caption's citation, the smoothing filter, ANTsPy
    assert {"Power et al. 2012", "Lindquist et al. 2019", "Avants et al. 2008"} <= cited
    assert "References:" not in text.body_text  # the methods' own list is not repeated


def _copy_screenshot(png: Path, name: str) -> None:
    """With ``BIDS_DFC_SAVE_SCREENSHOTS=1``: a copy for the reviewer in 256 colours (octree:
    the plot colours stay true; a third of the size, the text as sharp)."""
    if os.environ.get("BIDS_DFC_SAVE_SCREENSHOTS") == "1":
        from PIL import Image

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with Image.open(png) as shot:
            shot.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(
                SCREENSHOTS / name, optimize=True)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason=CHROMIUM_MISSING)
@pytest.mark.parametrize("width", [1280, 800])
def test_report_renders_in_chromium_without_sideways_scrolling(report, tmp_path, width):
    assert report.name == "sub-01.html"
    text = report.read_text()
    assert 'class="missing"' not in text, text[text.find('class="missing"'):][:400]
    assert "dynamic conditional correlation" in text and "Lindquist MA" in text
    assert "nipype " in text  # the versions paragraph
    shot = tmp_path / f"participant_{width}.png"
    info = render_in_chromium(report, shot, width=width)
    _copy_screenshot(shot, shot.name)
    assert info["viewport"] == width
    assert info["n_images"] == 7, info["images"]
    assert info["broken"] == []
    assert not info["scrolls_sideways"], (info["scroll_width"], info["overflowing"])
    assert info["overflowing"] == []
    assert all(im["src"].startswith("sub-01/figures/") for im in info["images"])
    # every figure fits the text column, and is shrunk (never cut) when the window is narrow
    column = width - 40  # the body's padding
    for im in info["images"]:
        assert 400 < im["shown_width"] <= min(column, im["width"] + 2), im  # + the border
    if width < 1000:
        assert all(im["shown_width"] < im["width"] for im in info["images"])
    assert info["title"] == "sub-01 | bids_dfc"
    assert shot.stat().st_size > 10_000


def test_missing_inputs_are_reported_not_hidden(derivatives, tmp_path):
    out = tmp_path / "out"
    func = out / "sub-01" / "func"
    func.mkdir(parents=True)
    for name in (_name("seed_dfc"), _name("confounds_tsv")):
        (func / name).write_bytes((derivatives / "sub-01" / "func" / name).read_bytes())
    html_path = build_participant_report(out, "sub-01", methods="m")
    text = html_path.read_text()
    assert "Skull strip and tissue segmentation: not drawn, missing input(s) t1w" in text
    assert "Carpet plots: not drawn, missing input(s) bold_before" in text
    assert "<img" in text and "desc-motion_bold.png" in text  # motion plot still drawn
    # the motion caption cites Power et al. 2012: listed though the methods cite nothing
    refs = _Text(text).references
    assert len(refs) == 1 and refs[0].startswith("Power JD"), refs


def test_a_citation_without_entry_is_shown_as_a_problem(derivatives, tmp_path):
    out = tmp_path / "out"
    (out / "sub-01").mkdir(parents=True)
    html_path = build_participant_report(out, "01", methods="Filtered as *before* "
                                         "(Nobody 1999; Engle 2002).")
    text = _Text(html_path.read_text())
    assert "cited without a bibliography entry: Nobody 1999." in text.body_text
    assert [_cite_of(r) for r in text.references] == ["Engle 2002"]


def test_sd_intervals_are_shown_when_the_bootstrap_ran(derivatives, report, tmp_path):
    """--dfc-bootstrap: the summary and the dFC table give each SD's interval, a figure
    draws them (cited), and the report without the bootstrap shows no empty columns."""
    import shutil

    from PIL import Image

    plain = report.read_text().replace("\u200b", "")
    assert "dcc_sd_ci_low" not in plain and "95% interval" not in plain
    out = tmp_path / "deriv"
    shutil.copytree(derivatives, out)
    func = out / "sub-01" / "func"
    ts = pd.read_csv(func / _name("seed_timeseries"), sep="\t")
    summary, _, _ = dfc_core(ts, [("network", ["DMN", "DeS"]),
                                  ("seed", ["PCC", "mPFC", "PAG", "RVM"])], mode="pairwise",
                             fd=0.1, n_boot=20, random_seed=0)
    summary.to_csv(func / _name("seed_dfc"), sep="\t", index=False, na_rep="n/a")
    page = build_participant_report(out, "01", methods="m",
                                    anat={"template_mask": out / "template_mask.nii.gz"})
    text = page.read_text()
    assert 'class="missing"' not in text, text[text.find('class="missing"'):][:400]
    body = _Text(text)
    first = summary.iloc[0]
    low, high = (f"{first[c]:.3g}" for c in ("dcc_sd_ci_low", "dcc_sd_ci_high"))
    assert "95% interval of dFC" in body.body_text and f"{low} to {high}" in body.body_text
    assert "dcc_sd_ci_low" in text.replace("\u200b", "")  # the dFC table's columns
    fig = out / "sub-01" / "figures" / f"{PREFIX}_desc-dfcsd_interval.png"
    assert fig.exists() and f"figures/{fig.name}" in text
    with Image.open(fig) as shown:
        width, height = shown.size
    assert width >= 900 and 200 <= height <= 600  # 7 pairs, one row each: readable
    assert "Efron & Tibshirani 1993" in body.body_text
    assert any(r.startswith("Efron B, Tibshirani RJ") for r in body.references)
