"""End to end: the real participant level on one tiny demo subject, through the CLI entry point.

Nothing is mocked: the demo generator writes a BIDS dataset, ``bids-dfc ... participant
--sloppy`` runs every step (antspyx registration, motion correction, denoising, seeds, DCC,
report), and the test reads what it wrote.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bids_dfc import __version__
from bids_dfc.cli.run import main
from bids_dfc.demo import make_demo_dataset
from bids_dfc.derivatives.validate import check_outputs, summary

pytestmark = pytest.mark.slow  # tier: tests/conftest.py


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}  # fmt: skip


@pytest.fixture(scope="module")
def participant_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    bids = root / "bids"
    make_demo_dataset(bids, n_subjects=1, seed=5, n_volumes=64)
    before = _snapshot(bids)
    out, work = root / "derivatives", root / "work"
    old = os.umask(0o022)  # what a user's shell has; io.py must honour it explicitly
    try:
        code = main([str(bids), str(out), "participant", "--sloppy", "--nprocs", "2",
                     "-w", str(work), "--skip-bids-validation"])  # fmt: skip
    finally:
        os.umask(old)
    return {"code": code, "bids": bids, "out": out, "work": work, "before": before}


def test_participant_level_runs_and_leaves_the_input_alone(participant_run):
    assert participant_run["code"] == 0
    assert _snapshot(participant_run["bids"]) == participant_run["before"]


def test_derivatives_dataset_description(participant_run):
    desc = json.loads((participant_run["out"] / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "bids_dfc"
    assert desc["GeneratedBy"][0]["Version"] == __version__
    # the input by its path relative to the outputs, and the link the sidecars' URIs use
    assert desc["SourceDatasets"] == [{"URL": "../bids"}]
    assert desc["DatasetLinks"] == {"raw": "../bids"}
    readme = (participant_run["out"] / "README.md").read_text()
    assert f"bids_dfc {__version__}: `bids-dfc {participant_run['bids']}" in readme


def test_outputs_pass_the_schema_check_and_every_uri_resolves(participant_run):
    """The names against bidsschematools' derivative rules or the documented conventions;
    every bids:raw: URI of every sidecar resolves through DatasetLinks to the input file."""
    report = check_outputs(participant_run["out"])
    print(summary(report))
    assert report.ok, summary(report)
    assert report.uris > 20 and len(report.by_schema) > 20
    assert {"transforms", "time series (confounds, seeds, atlas, DCC)", "dFC summaries",
            "participant reports"} <= set(report.by_convention)


def test_every_output_has_a_sidecar_and_no_temporary_files_remain(participant_run):
    out = participant_run["out"]
    files = [p for p in out.rglob("sub-*/**/*") if p.is_file()]
    assert files
    data = [p for p in files if p.suffix != ".json" and "figures" not in p.parts]
    for path in data:
        stem = path.name.split(".")[0]
        assert (path.parent / f"{stem}.json").is_file(), f"no sidecar for {path.name}"
    assert not [p for p in out.rglob(".*") if p.name != ".bids_dfc.lock"], "leftover temp files"


def test_every_output_file_is_0644_under_umask_022(participant_run):
    """Images, tables, sidecars, figures, the report and dataset_description.json."""
    out = participant_run["out"]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".png") for p in files) and any(p.suffix == ".html" for p in files)
    wrong = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in files
             if p.stat().st_mode & 0o777 != 0o644}
    assert not wrong, wrong


def test_dfc_summary_has_the_primary_row(participant_run):
    found = sorted(participant_run["out"].glob("sub-*/func/*_seg-seeds_dfc.tsv"))
    assert len(found) == 1
    table = pd.read_csv(found[0], sep="\t")
    for column in ("seed_a", "seed_b", "dcc_sd", "dcc_mean", "pearson_r", "a", "b",
                   "converged", "n_volumes", "mean_fd"):
        assert column in table.columns
    primary = table.iloc[0]
    assert (primary.seed_a, primary.seed_b) == ("DMN", "DeS")
    assert np.isfinite(table[["dcc_sd", "dcc_mean", "pearson_r", "mean_fd"]].to_numpy()).all()
    assert int(primary.n_volumes) == 64 - 4  # the 4 dummy scans are dropped
    # 4 seeds -> 6 seed pairs + the network pair
    assert len(table) == 7


def test_participant_report_exists(participant_run):
    reports = list(participant_run["out"].glob("sub-*.html"))
    assert len(reports) == 1
    html = reports[0].read_text()
    assert "<img" in html and __version__ in html
