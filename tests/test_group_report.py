"""The group HTML report rendered in headless Chromium: every figure must load."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _browser import CHROMIUM, CHROMIUM_MISSING, render_in_chromium
from matplotlib import image as mpimg
from test_group_workflow import group_options, make_group_dataset

from bids_dfc.group.run import run_group_level

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason=CHROMIUM_MISSING)]


def test_report_renders_with_all_figures(tmp_path):
    bids, out, _ = make_group_dataset(tmp_path, n_hc=12, n_patients=22, seed=9)
    paths = run_group_level(bids, out, group_options(n_boot=1000), random_seed=5)
    info = render_in_chromium(paths["report"], tmp_path / "report.png")
    assert info["title"] == "bids_dfc group report"
    srcs = [im["src"] for im in info["images"]]
    assert srcs == ["figures/dfc_by_group.png", "figures/predictor_by_group.png",
                    "figures/scatter_outcome.png", "figures/mediation.png", "figures/roc.png"]
    assert info["broken"] == [] and all(im["width"] >= 300 for im in info["images"])
    shot = mpimg.imread(info["screenshot"])
    assert shot.shape[1] == 1280 and shot.shape[0] >= 1000
    assert np.std(shot[..., :3]) > 0.05  # not a blank page

    # the probe really detects a missing figure
    broken = tmp_path / "broken"
    shutil.copytree(out / "group", broken)
    (broken / "figures" / "roc.png").unlink()
    info = render_in_chromium(broken / "report.html", tmp_path / "broken.png")
    assert info["broken"] == ["figures/roc.png"]
