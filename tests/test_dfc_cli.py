"""The ``bids-dfc-dcc`` file contract (docs/dcc.md): inputs, outputs, errors, exit codes."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bids_dfc.cli.dcc import main
from bids_dfc.dfc import dcc, dfc_summary, sliding_window_correlation

NAMES = ["PCC", "mPFC", "PAG", "RVM"]


@pytest.fixture(scope="module")
def roi():
    rng = np.random.default_rng(1234)
    n_t = 133
    x = rng.standard_normal((n_t, 4))
    t = np.arange(n_t)
    rho = 0.6 * np.sin(2 * np.pi * t / 60)
    x[:, 2] = rho * x[:, 0] + np.sqrt(1 - rho**2) * x[:, 2]
    return pd.DataFrame(x * [2.0, 30.0, 0.5, 7.0] + [100, 5, -3, 0], columns=NAMES)


def _write(df, path, sep="\t"):
    df.to_csv(path, sep=sep, index=False)
    return path


def test_dcc_outputs_match_the_library(roi, tmp_path):
    inp = _write(roi, tmp_path / "roi.tsv")
    prefix = tmp_path / "out" / "sub-01"
    assert main([str(inp), str(prefix), "--thresholds", "0.3", "-0.3"]) == 0
    ts = pd.read_csv(f"{prefix}_timeseries.tsv", sep="\t")
    summ = pd.read_csv(f"{prefix}_summary.tsv", sep="\t")
    res = dcc(roi.to_numpy())
    pairs = [f"{NAMES[i]}__{NAMES[j]}" for i, j in res.pairs]
    assert list(ts.columns) == pairs and ts.shape == (133, 6)
    np.testing.assert_allclose(ts.to_numpy(), res.R, atol=1e-9)
    need = ["region_a", "region_b", "a", "b", "loglik", "sd", "mean", "converged"]
    assert set(need) <= set(summ.columns)
    assert list(summ["region_a"] + "__" + summ["region_b"]) == pairs
    np.testing.assert_allclose(summ["a"], res.a, atol=1e-9)
    np.testing.assert_allclose(summ["b"], res.b, atol=1e-9)
    np.testing.assert_allclose(summ["loglik"], res.loglik, rtol=1e-9)
    ref = dfc_summary(res.R, thresholds=[0.3, -0.3])
    np.testing.assert_allclose(summ["sd"], ref["sd"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(summ["mean"], ref["mean"], rtol=1e-8)
    np.testing.assert_allclose(summ["frac_above_0.3"], ref["frac_above_0.3"])
    np.testing.assert_allclose(summ["frac_below_-0.3"], ref["frac_below_-0.3"])
    assert summ["converged"].all()
    # the dynamic pair (PCC, PAG) varies, the others hardly
    assert summ.loc[1, "sd"] > 3 * summ.drop(index=1)["sd"].max()
    meta = json.loads((tmp_path / "out" / "sub-01_timeseries.json").read_text())
    assert meta["method"] == "dcc" and meta["mode"] == "pairwise"


def test_csv_input_and_joint_mode(roi, tmp_path):
    inp = _write(roi, tmp_path / "roi.csv", sep=",")
    assert main([str(inp), str(tmp_path / "j"), "--mode", "joint"]) == 0
    summ = pd.read_csv(tmp_path / "j_summary.tsv", sep="\t")
    assert summ["a"].nunique() == 1 and summ["b"].nunique() == 1


def test_sliding_window_and_pearson(roi, tmp_path):
    inp = _write(roi, tmp_path / "roi.tsv")
    args = [str(inp), str(tmp_path / "sw"), "--method", "sliding-window", "--window", "30"]
    assert main(args + ["--taper", "boxcar"]) == 0
    ts = pd.read_csv(tmp_path / "sw_timeseries.tsv", sep="\t", na_values="n/a")
    ref = sliding_window_correlation(roi.to_numpy(), 30, taper="boxcar")
    np.testing.assert_allclose(ts.to_numpy(), ref, atol=1e-9, equal_nan=True)
    assert ts.iloc[:14].isna().all().all() and ts.iloc[14:118].notna().all().all()
    summ = pd.read_csv(tmp_path / "sw_summary.tsv", sep="\t", keep_default_na=False)
    assert (summ["a"] == "n/a").all() and (summ["converged"] == "n/a").all()
    assert main([str(inp), str(tmp_path / "p"), "--method", "pearson"]) == 0
    summ = pd.read_csv(tmp_path / "p_summary.tsv", sep="\t", keep_default_na=False)
    np.testing.assert_allclose(
        summ["mean"].astype(float), roi.corr().to_numpy()[np.triu_indices(4, 1)]
    )
    assert (summ["sd"].astype(float) == 0).all()


def test_module_entry_point(roi, tmp_path):
    inp = _write(roi.iloc[:, :2], tmp_path / "two.tsv")
    proc = subprocess.run(
        [sys.executable, "-m", "bids_dfc.cli.dcc", str(inp), str(tmp_path / "m")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(tmp_path / "m_timeseries.tsv", sep="\t").columns.tolist() == ["PCC__mPFC"]


@pytest.mark.parametrize(
    "argv,option",
    [
        (["--method", "sliding-window"], "--window"),
        (["--window", "20"], "--window"),
        (["--method", "sliding-window", "--window", "two"], "--window"),
        (["--method", "pearson", "--mode", "joint"], "--mode"),
        (["--mode", "both"], "--mode"),
        (["--method", "kalman"], "--method"),
        (["--thresholds", "1.5"], "--thresholds"),
    ],
)
def test_bad_arguments_exit_2(roi, tmp_path, capsys, argv, option):
    inp = _write(roi, tmp_path / "roi.tsv")
    with pytest.raises(SystemExit) as exc:
        main([str(inp), str(tmp_path / "o")] + argv)
    assert exc.value.code == 2
    assert option in capsys.readouterr().err
    assert not list(tmp_path.glob("o_*"))


def _corrupt(roi, kind):
    df = roi.astype(object)
    if kind == "text":
        df.iloc[41, 2] = "abc"
    elif kind == "empty":
        df.iloc[7, 1] = ""
    elif kind == "constant":
        df["RVM"] = 4.0
    elif kind == "short":
        df = df.iloc[:40]
    elif kind == "dup":
        df.columns = ["PCC", "PAG", "PAG", "RVM"]
    elif kind == "numeric_header":
        df.columns = ["1", "2", "3", "4"]
    elif kind == "inf":
        df.iloc[3, 0] = "inf"
    return df


@pytest.mark.parametrize(
    "kind,words",
    [
        ("text", ["'PAG'", "data row 42", "'abc'"]),
        ("empty", ["'mPFC'", "data row 8"]),
        ("constant", ["RVM", "constant"]),
        ("short", ["40 time points", "at least 50"]),
        ("dup", ["duplicated", "PAG"]),
        ("numeric_header", ["header", "name the regions"]),
        ("inf", ["PCC", "non-finite", "time point 3"]),
    ],
)
def test_bad_data_exit_1_without_outputs(roi, tmp_path, capsys, kind, words):
    inp = _write(_corrupt(roi, kind), tmp_path / "bad.tsv")
    assert main([str(inp), str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.tsv" in err
    for word in words:
        assert word in err
    assert not list(tmp_path.glob("o*")) and not list(tmp_path.glob(".o*"))


def test_comma_file_with_tsv_extension_is_explained(roi, tmp_path, capsys):
    inp = _write(roi, tmp_path / "roi.tsv", sep=",")
    assert main([str(inp), str(tmp_path / "o")]) == 1
    assert "comma-separated" in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.tsv"), str(tmp_path / "o")]) == 1
    assert "no such file" in capsys.readouterr().err
