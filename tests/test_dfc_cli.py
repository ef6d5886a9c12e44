"""The ``bids-dfc-dcc`` file contract (docs/dcc.md): inputs, outputs, errors, exit codes,
the estimate, progress, ``--summary-only`` and stopping on SIGTERM/SIGINT."""

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _signals import as_from_a_terminal

from bids_dfc import __version__
from bids_dfc.cli.dcc import main
from bids_dfc.cli.dcc_plan import Plan
from bids_dfc.cli.signals import descendants, running
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
    elif kind == "nan":
        df.iloc[10, 3] = "NaN"
    elif kind == "twin":
        df["RVM"] = 3.0 * df["mPFC"] - 1.0
    return df


@pytest.mark.parametrize(
    "kind,words",
    [
        ("text", ["line 43, column 3 'PAG'", "'abc' is not a number"]),
        ("empty", ["line 9, column 2 'mPFC'", "empty cell"]),
        ("nan", ["line 12, column 4 'RVM'", "missing value 'NaN'"]),
        ("constant", ["column 4 'RVM'", "constant (every value is 4)"]),
        ("short", ["40 time points", "lines 2-41", "at least 50"]),
        ("dup", ["line 1, columns 2, 3", "duplicated region name 'PAG'"]),
        ("numeric_header", ["line 1", "header", "name the regions"]),
        ("inf", ["line 5, column 1 'PCC'", "non-finite value 'inf'"]),
        ("twin", ["column 2 'mPFC' and column 4 'RVM'", "perfectly correlated"]),
    ],
)
def test_bad_data_exit_2_without_outputs(roi, tmp_path, capsys, kind, words):
    inp = _write(_corrupt(roi, kind), tmp_path / "bad.tsv")
    assert main([str(inp), str(tmp_path / "out" / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.tsv" in err
    assert err.startswith("bids-dfc-dcc: error: ") and "Traceback" not in err
    for word in words:
        assert word in err
    _assert_nothing_written(tmp_path)


def test_comma_file_with_tsv_extension_is_explained(roi, tmp_path, capsys):
    inp = _write(roi, tmp_path / "roi.tsv", sep=",")
    assert main([str(inp), str(tmp_path / "out" / "o")]) == 2
    assert "comma-separated" in capsys.readouterr().err
    _assert_nothing_written(tmp_path)


def test_missing_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.tsv"), str(tmp_path / "out" / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    _assert_nothing_written(tmp_path)


# -- bad input: every problem named by file, line and column; nothing written ----------------

HEADER = "PCC\tmPFC\tPAG\tRVM\n"


def _assert_nothing_written(tmp_path: Path) -> None:
    """No output, no temporary file and no output folder (the outputs go to out/)."""
    assert not (tmp_path / "out").exists(), sorted((tmp_path / "out").rglob("*"))
    stray = [p for p in tmp_path.rglob("*") if p.name.startswith((".o", "o_", "."))]
    assert not stray, stray


def _table_text(roi, n_rows=None):
    rows = roi.to_numpy()[: n_rows or len(roi)]
    return HEADER + "".join("\t".join(f"{v:.6f}" for v in row) + "\n" for row in rows)


def _run_bad(tmp_path, capsys, content, name="bad.tsv", extra=()):
    inp = tmp_path / name
    if isinstance(content, bytes):
        inp.write_bytes(content)
    else:
        inp.write_text(content, encoding="utf-8")
    code = main([str(inp), str(tmp_path / "out" / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert all(line.startswith("bids-dfc-dcc: error: ") for line in err.splitlines()), err
    _assert_nothing_written(tmp_path)
    return err


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda rows: rows.__setitem__(9, rows[9] + "\t1.5"), ["line 11", "5 field(s)",
                                                               "header has 4", "too many"]),
        (lambda rows: rows.__setitem__(20, rows[20].rsplit("\t", 1)[0]), ["line 22",
                                                                          "3 field(s)", "too few"]),
        (lambda rows: rows.__setitem__(30, rows[30] + "\t"), ["line 32", "extra separator"]),
    ],
    ids=["too-many", "too-few", "trailing-tab"],
)
def test_ragged_row(roi, tmp_path, capsys, edit, words):
    lines = _table_text(roi).splitlines()
    data = lines[1:]
    edit(data)
    err = _run_bad(tmp_path, capsys, "\n".join([lines[0], *data]) + "\n")
    assert len(err.splitlines()) == 1 and "bad.tsv" in err
    for word in words:
        assert word in err, err


def test_duplicate_and_empty_region_names(roi, tmp_path, capsys):
    text = _table_text(roi).replace(HEADER, "PCC\t\tPAG\tPAG\n", 1)
    err = _run_bad(tmp_path, capsys, text)
    lines = err.splitlines()
    assert "bad.tsv, line 1, column 2: empty region name" in lines[0]
    assert "bad.tsv, line 1, columns 3, 4: duplicated region name 'PAG'" in lines[1]
    assert "2 problems in the table" in lines[2]


def test_latin1_file_is_refused_with_the_place_of_the_first_bad_byte(roi, tmp_path, capsys):
    text = _table_text(roi).replace("mPFC", "mPFC_régio", 1)
    err = _run_bad(tmp_path, capsys, text.encode("latin-1"))
    assert len(err.splitlines()) == 1
    offset = text.encode("latin-1").index("é".encode("latin-1"))
    for word in ["bad.tsv, line 1, column 2", f"byte 0xe9 at byte offset {offset}",
                 "'mPFC_régio'", "must be saved as UTF-8"]:
        assert word in err, err


@pytest.mark.parametrize(
    "content,words",
    [
        ("utf-16", ["bad.tsv: the file is UTF-16 text", "must be saved as UTF-8"]),
        (b"PK\x03\x04 an xlsx", ["bad.tsv: this is a zip or Excel (.xlsx) file"]),
        ("blank", ["bad.tsv, line 31: empty line between data rows"]),
    ],
    ids=["utf16", "xlsx", "blank-line"],
)
def test_other_unreadable_tables(roi, tmp_path, capsys, content, words):
    text = _table_text(roi)
    if content == "utf-16":
        content = text.encode("utf-16")
    elif content == "blank":
        lines = text.splitlines(keepends=True)
        content = "".join(lines[:30] + ["\n"] + lines[30:]) + "\n\n"  # trailing ones are fine
    err = _run_bad(tmp_path, capsys, content)
    assert len(err.splitlines()) == 1
    for word in words:
        assert word in err, err


def test_utf8_with_bom_is_read_and_the_bom_dropped(roi, tmp_path):
    plain, bom = tmp_path / "plain.tsv", tmp_path / "bom.tsv"
    plain.write_text(_table_text(roi), encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert main([str(bom), str(tmp_path / "b"), "--method", "pearson", "--quiet"]) == 0
    assert main([str(plain), str(tmp_path / "p"), "--method", "pearson", "--quiet"]) == 0
    summ = pd.read_csv(tmp_path / "b_summary.tsv", sep="\t")
    assert summ["region_a"].iloc[0] == "PCC"
    assert (tmp_path / "b_summary.tsv").read_bytes() == (tmp_path / "p_summary.tsv").read_bytes()
    header = (tmp_path / "b_timeseries.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert header.split("\t")[0] == "PCC__mPFC"


def test_every_problem_is_reported_at_once_up_to_20(roi, tmp_path, capsys):
    lines = _table_text(roi).splitlines()
    for k in range(1, 31):  # 30 cells that are not numbers, lines 2..31
        cells = lines[k].split("\t")
        cells[1] = "x"
        lines[k] = "\t".join(cells)
    lines[40] += "\t0"  # a ragged row (line 41)
    text = "\n".join(lines) + "\n"
    err = _run_bad(tmp_path, capsys, text)
    out = err.splitlines()
    assert len(out) == 21
    assert "bad.tsv, line 2, column 2 'mPFC': 'x' is not a number" in out[0]
    assert "bad.tsv, line 21, column 2 'mPFC'" in out[19]
    assert "31 problems in the table (the first 20 above, and 11 more)" in out[20]


def test_too_few_time_points_names_the_need(roi, tmp_path, capsys):
    err = _run_bad(tmp_path, capsys, _table_text(roi, n_rows=12))
    assert "12 time points (lines 2-13); at least 50 are needed" in err


def test_unwritable_output_folder_is_refused_before_computing(roi, tmp_path, capsys):
    inp = tmp_path / "roi.tsv"
    inp.write_text(_table_text(roi), encoding="utf-8")
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be\n")
    assert main([str(inp), str(blocker / "sub" / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"the output folder {blocker / 'sub'} cannot be created ({blocker} is a file" in err
    assert blocker.read_text().startswith("a file") and sorted(tmp_path.iterdir()) == [blocker, inp]


@pytest.mark.skipif(sys.platform != "linux" or __import__("os").geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused(roi, tmp_path, capsys):
    inp = tmp_path / "roi.tsv"
    inp.write_text(_table_text(roi), encoding="utf-8")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        assert main([str(inp), str(locked / "o")]) == 2
    finally:
        locked.chmod(0o755)
    assert f"the output folder {locked} cannot be written" in capsys.readouterr().err
    assert not list(locked.iterdir())


def test_output_prefix_naming_a_folder_is_a_usage_error(roi, tmp_path, capsys):
    inp = _write(roi, tmp_path / "roi.tsv")
    with pytest.raises(SystemExit) as exc:
        main([str(inp), str(tmp_path) + "/"])
    assert exc.value.code == 2 and "names a folder" in capsys.readouterr().err


def test_version():
    from bids_dfc.cli.demo import main as demo_main

    for entry, prog in ((main, "bids-dfc-dcc"), (demo_main, "bids-dfc-demo")):
        proc = subprocess.run([sys.executable, "-c", f"import sys; from {entry.__module__} "
                               "import main; sys.exit(main(['--version']))"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and proc.stdout.strip() == f"{prog} {__version__}"


# -- size: memory refusal, --summary-only ------------------------------------------------------


def _many_regions(n_regions, n_t, seed=5):
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((n_t, 1))
    x = rng.standard_normal((n_t, n_regions)) + 0.5 * common * rng.uniform(0, 1, n_regions)
    return pd.DataFrame(x, columns=[f"R{k:03d}" for k in range(n_regions)])


def test_series_that_do_not_fit_switch_to_summary_only_or_are_refused(tmp_path, capsys):
    n_regions, n_t = 300, 60
    inp = _write(_many_regions(n_regions, n_t), tmp_path / "wide.tsv")
    args = ["--method", "sliding-window", "--window", "20"]
    plan = Plan("sliding-window", "pairwise", n_t, n_regions, 1, False)
    full, only = plan.memory(), plan.memory(summary_only=True)
    assert full > only
    budget = f"{(full + only) / 2e9:.4f}"
    # the series do not fit, the summaries do: summary-only, said once and kept in the sidecar
    out = tmp_path / "auto" / "o"
    assert main([str(inp), str(out), *args, "--max-memory-gb", budget]) == 0
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if "only the per-pair summary" in x]
    assert len(line) == 1 and "--max-memory-gb" in line[0] and "of memory" in line[0], err
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "o_stat-swmean_relmat.tsv", "o_stat-swsd_relmat.tsv", "o_summary.json", "o_summary.tsv"]
    meta = json.loads((out.parent / "o_summary.json").read_text())
    assert "of memory" in meta["summary_only"]
    # --with-series insists: then the run is refused up front, naming the need and the way out
    out = str(tmp_path / "out" / "o")
    assert main([str(inp), out, *args, "--max-memory-gb", budget, "--with-series"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in ["wide.tsv: 44,850 pairs x 60 time points need about", "--max-memory-gb",
                 "use --summary-only"]:
        assert word in err, err
    _assert_nothing_written(tmp_path / "out")
    # nothing fits a tiny budget: then fewer regions is the advice
    assert main([str(inp), str(tmp_path / "x" / "o"), *args, "--max-memory-gb", "0.01"]) == 2
    assert "use fewer regions" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_huge_series_table_is_left_out_unless_asked_for(tmp_path, capsys, monkeypatch):
    """Above SERIES_AUTO_BYTES (1 GB: a 1,000-region atlas) the time series table is not
    written; the summary and the matrices are. The limit is lowered here to a 30-region
    table's size so that the rule runs on a small table."""
    import bids_dfc.cli.dcc as dcc_cli

    inp = _write(_many_regions(30, 80), tmp_path / "r30.tsv")
    size = Plan("dcc", "pairwise", 80, 30, 1, False).series_text_bytes()
    monkeypatch.setattr(dcc_cli, "SERIES_AUTO_BYTES", size - 1)
    assert main([str(inp), str(tmp_path / "a" / "o"), "--thresholds", "0.2"]) == 0
    err = capsys.readouterr().err
    assert "would make a" in err and "--with-series writes it anyway" in err, err
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "o_timeseries.tsv" not in names and "o_summary.tsv" in names
    assert "o_stat-dccfracabove0p2_relmat.tsv" in names
    assert "table" in json.loads((tmp_path / "a" / "o_summary.json").read_text())["summary_only"]
    assert main([str(inp), str(tmp_path / "b" / "o"), "--thresholds", "0.2",
                 "--with-series", "--quiet"]) == 0
    assert (tmp_path / "b" / "o_timeseries.tsv").exists()
    # the same numbers either way
    assert ((tmp_path / "a" / "o_summary.tsv").read_bytes()
            == (tmp_path / "b" / "o_summary.tsv").read_bytes())
    monkeypatch.setattr(dcc_cli, "SERIES_AUTO_BYTES", size)
    assert main([str(inp), str(tmp_path / "c" / "o"), "--quiet"]) == 0
    assert (tmp_path / "c" / "o_timeseries.tsv").exists()


@pytest.mark.parametrize("method", [[], ["--method", "sliding-window", "--window", "20"],
                                    ["--method", "pearson"]])
def test_relmats_are_the_summary_as_region_by_region_matrices(tmp_path, method):
    inp = _write(_many_regions(7, 90), tmp_path / "r7.tsv")
    assert main([str(inp), str(tmp_path / "o"), "--thresholds", "-0.1", "0.25", "--quiet",
                 *method]) == 0
    summ = pd.read_csv(tmp_path / "o_summary.tsv", sep="\t", na_values="n/a")
    sidecar = next(tmp_path.glob("o_*.json"))
    relmats = json.loads(sidecar.read_text())["relmats"]
    files = sorted(tmp_path.glob("o_stat-*_relmat.tsv"))
    assert sorted(f"stat-{p.name[7:-11]}" for p in files) == sorted(relmats)
    assert len(files) == (1 if method[1:] == ["pearson"] else 6)
    names = [f"R{k:03d}" for k in range(7)]
    for path in files:
        mat = pd.read_csv(path, sep="\t", index_col="Node")
        assert list(mat.index) == names and list(mat.columns) == names
        assert np.array_equal(mat.to_numpy(), mat.to_numpy().T)
        column = relmats[f"stat-{path.name[7:-11]}"].rsplit("summary column ", 1)[1][:-1]
        for row in summ.itertuples():
            assert mat.loc[row.region_a, row.region_b] == pytest.approx(
                summ[column][row.Index], rel=1e-9)
        diag = np.diag(mat.to_numpy())
        expect = {"sd": 0.0, "mean": 1.0, "frac_above_-0.1": 1.0, "frac_below_-0.1": 0.0,
                  "frac_above_0.25": 1.0, "frac_below_0.25": 0.0}[column]
        assert np.all(diag == expect)


def test_summary_only_equals_the_full_summary(tmp_path):
    # 50 regions: 1,225 pairs, several chunks each summarised in its worker process
    inp = _write(_many_regions(50, 120), tmp_path / "r50.tsv")
    opts = ["--thresholds", "0.2", "--quiet"]
    assert main([str(inp), str(tmp_path / "full"), "--n-jobs", "2", *opts]) == 0
    assert main([str(inp), str(tmp_path / "only"), "--summary-only", *opts]) == 0
    assert Plan("dcc", "pairwise", 120, 50, 1, True).chunk < 1225  # really chunked
    full = (tmp_path / "full_summary.tsv").read_text()
    assert (tmp_path / "only_summary.tsv").read_text() == full
    assert len(full.splitlines()) == 1226
    assert not (tmp_path / "only_timeseries.tsv").exists()
    meta = json.loads((tmp_path / "only_summary.json").read_text())
    assert meta["method"] == "dcc" and "summary_only" in meta


# -- progress and stopping (the real command in a subprocess) ---------------------------------


def _command(*args):
    return [sys.executable, "-m", "bids_dfc.cli.dcc", *map(str, args)]


def test_estimate_and_plain_progress_lines_and_quiet(tmp_path):
    inp = _write(_many_regions(40, 120), tmp_path / "r40.tsv")
    proc = subprocess.run(_command(inp, tmp_path / "a"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "\r" not in err
    assert "r40.tsv: 40 regions x 120 time points, 780 pairs; dcc pairwise" in err
    assert "expected peak memory about" in err and "expected duration about" in err
    progress = [line for line in err.splitlines() if "estimation:" in line]
    assert 5 <= len(progress) <= 11, err
    assert progress[-1].startswith("bids-dfc-dcc: estimation: 100% 780/780")
    assert "pairs/s" in progress[0]
    quiet = subprocess.run(_command(inp, tmp_path / "q", "--quiet"), capture_output=True,
                           text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert (tmp_path / "q_summary.tsv").read_text() == (tmp_path / "a_summary.tsv").read_text()


class _Lines:
    """The lines a subprocess writes to stderr, read in a thread (no blocking reads)."""

    def __init__(self, stream):
        self.queue: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def wait_for(self, text, timeout=300.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.queue.get(timeout=max(0.01, end - time.monotonic()))
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never appeared in: {''.join(self.seen)}")


def _wait_for_children(pid, n, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        kids = descendants(pid)
        if len(kids) >= n:
            return kids
        time.sleep(0.05)
    raise AssertionError(f"{n} worker processes never appeared under {pid}")


def test_workers_die_with_a_killed_run(tmp_path):
    """kill -9 of bids-dfc-dcc (no chance to clean up): its worker processes end too."""
    inp = _write(_many_regions(150, 300), tmp_path / "r150.tsv")
    proc = subprocess.Popen(_command(inp, tmp_path / "out" / "sub-01", "--n-jobs", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _Lines(proc.stderr).wait_for("estimation:")
        workers = _wait_for_children(proc.pid, 2)
        proc.kill()
        proc.wait(timeout=60)
        end = time.monotonic() + 30
        while [pid for pid in workers if running(pid)] and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert not [pid for pid in workers if running(pid)], "workers outlived a killed run"


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_run_and_leaves_nothing(tmp_path, sig, code):
    inp = _write(_many_regions(150, 300), tmp_path / "r150.tsv")
    proc = subprocess.Popen(_command(inp, tmp_path / "out" / "sub-01", "--n-jobs", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_from_a_terminal)
    try:
        lines = _Lines(proc.stderr)
        lines.wait_for("estimation:")  # the worker processes are fitting pairs
        assert proc.poll() is None, "the run ended before the signal: make the table larger"
        workers = _wait_for_children(proc.pid, 2)
        sent = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=300) == code
        took = time.monotonic() - sent
        lines.wait_for("stopped by")
    finally:
        proc.kill()
        proc.wait()
    assert took < 10.0, f"{took:.1f} s to stop"
    assert not [pid for pid in workers if running(pid)], "a worker outlived the run"
    assert f"stopped by {sig.name}; no output was written" in "".join(lines.seen)
    _assert_nothing_written(tmp_path)


def test_help_example_runs_and_writes_the_files_it_lists(roi, tmp_path, capsys):
    """``--help`` ends with an example: run it as printed, then check that it wrote exactly
    the files the help lists and that the summary has the columns the help names."""
    import re

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    example = re.search(r"^  (bids-dfc-dcc \S+ \S+.*)$", text, re.M).group(1).split()
    listed = re.findall(r"^      (dcc/\S+)\s", text, re.M)
    assert len(listed) == 5, text
    _write(roi, tmp_path / example[1])
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(example[1:] + ["--quiet"]) == 0
    finally:
        os.chdir(here)
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "dcc").iterdir()) \
        == sorted(listed)
    columns = re.search(r"one row per pair: (.*?)\(\+", text, re.S).group(1)
    named = [c.strip() for c in columns.replace("\n", " ").split(",") if c.strip()]
    summary = pd.read_csv(tmp_path / "dcc" / "sub-01_summary.tsv", sep="\t")
    assert list(summary.columns) == named


# -- threads by default, start-up without pandas/scipy, the same bytes ------------------------

#: prints the two defaults: bids-dfc-dcc's --n-jobs and bids-dfc's --nprocs
_DEFAULTS = ("import json; from bids_dfc.cli.dcc import _build_parser; "
             "from bids_dfc.cli.parser import parse_args; print(json.dumps(["
             "_build_parser().get_default('n_jobs'), "
             "parse_args(['/b', '/o', 'participant']).execution.nprocs]))")


def _child_env(**extra):
    import os

    env = {k: v for k, v in os.environ.items() if k != "SLURM_CPUS_PER_TASK"}
    return {**env, **extra}


def _defaults(env, preexec_fn=None):
    proc = subprocess.run([sys.executable, "-c", _DEFAULTS], capture_output=True, text=True,
                          env=env, preexec_fn=preexec_fn, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _help(env, preexec_fn=None):
    proc = subprocess.run(_command("--help"), capture_output=True, text=True, env=env,
                          preexec_fn=preexec_fn, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


def test_thread_default_follows_the_affinity_mask():
    """Both commands default to the CPUs the process may use: in a child pinned to one CPU
    (os.sched_setaffinity, as taskset does) that is 1, and the help says so."""
    import os

    from bids_dfc.cli.resources import usable_cpus

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    env = _child_env()
    mine = usable_cpus(environ=env)
    assert 1 <= mine <= len(os.sched_getaffinity(0))
    assert _defaults(env) == [mine, mine]
    assert f"SLURM_CPUS_PER_TASK; here {mine})" in _help(env)
    one = min(os.sched_getaffinity(0))

    def pin():
        os.sched_setaffinity(0, {one})

    assert _defaults(env, pin) == [1, 1]
    assert "SLURM_CPUS_PER_TASK; here 1)" in _help(env, pin)


def test_thread_default_follows_slurm_cpus_per_task():
    from bids_dfc.cli.resources import slurm_cpus, usable_cpus

    mine = usable_cpus(environ={})
    assert _defaults(_child_env(SLURM_CPUS_PER_TASK="1")) == [1, 1]
    # more than the process may use, or not a count: the other limits decide
    assert _defaults(_child_env(SLURM_CPUS_PER_TASK="4096")) == [mine, mine]
    assert _defaults(_child_env(SLURM_CPUS_PER_TASK="two")) == [mine, mine]
    assert slurm_cpus({"SLURM_CPUS_PER_TASK": " 3\n"}) == 3
    assert slurm_cpus({"SLURM_CPUS_PER_TASK": "0"}) is None and slurm_cpus({}) is None
    assert usable_cpus(environ={"SLURM_CPUS_PER_TASK": "1"}) == 1


def _cgroup(tmp_path, membership, files):
    """A cgroup tree under tmp_path/fs and a /proc/self/cgroup file naming membership."""
    root = tmp_path / "fs"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    root.mkdir(exist_ok=True)
    self_cgroup = tmp_path / "self_cgroup"
    self_cgroup.write_text(membership)
    return root, self_cgroup


@pytest.mark.parametrize("membership,files,cpus", [
    # cgroup v2: cpu.max "quota period" of this cgroup and its ancestors, the tightest
    ("0::/user.slice/job\n", {"user.slice/job/cpu.max": "150000 100000\n",
                              "user.slice/cpu.max": "max 100000\n"}, 1.5),
    ("0::/a/b\n", {"a/b/cpu.max": "400000 100000\n", "a/cpu.max": "50000 100000\n"}, 0.5),
    ("0::/a\n", {"a/cpu.max": "max 100000\n", "cpu.max": "max\n"}, None),
    # a container: /proc/self/cgroup names the host's path, the mount root is its own
    ("0::/docker/f00d\n", {"cpu.max": "200000 100000\n"}, 2.0),
    ("0::/\n", {"cpu.max": "100000 50000\n"}, 2.0),
    ("0::/\n", {}, None),
    ("0::/\n", {"cpu.max": "lots\n"}, None),
    # cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us (quota -1: no limit), at cpu,cpuacct
    ("12:memory:/x\n4:cpu,cpuacct:/slurm/uid_1/job_5\n1:name=systemd:/y\n",
     {"cpu,cpuacct/slurm/uid_1/job_5/cpu.cfs_quota_us": "300000\n",
      "cpu,cpuacct/slurm/uid_1/job_5/cpu.cfs_period_us": "100000\n",
      "cpu,cpuacct/slurm/cpu.cfs_quota_us": "-1\n",
      "cpu,cpuacct/slurm/cpu.cfs_period_us": "100000\n"}, 3.0),
    # ... or at cpu (as on this machine), a parent tighter; cpuacct alone is not cpu
    ("3:cpuacct:/k\n2:cpu:/k/j\n", {"cpu/k/j/cpu.cfs_quota_us": "-1\n",
                                    "cpu/k/j/cpu.cfs_period_us": "100000\n",
                                    "cpu/k/cpu.cfs_quota_us": "25000\n",
                                    "cpu/k/cpu.cfs_period_us": "100000\n",
                                    "cpuacct/k/cpu.cfs_quota_us": "1000\n",
                                    "cpuacct/k/cpu.cfs_period_us": "100000\n"}, 0.25),
    ("2:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ("garbage without colons\n", {"cpu.max": "100000 100000\n"}, None),
])  # fmt: skip
def test_cgroup_cpu_quota_from_real_files(tmp_path, membership, files, cpus):
    import math
    import os

    from bids_dfc.cli.resources import cgroup_cpus, usable_cpus

    root, self_cgroup = _cgroup(tmp_path, membership, files)
    assert cgroup_cpus(root, self_cgroup) == cpus
    mask = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    expected = mask if cpus is None else max(1, min(mask, math.ceil(cpus)))
    assert usable_cpus(root, self_cgroup, environ={}) == expected


def test_cgroup_cpu_quota_of_this_machine():
    """The real /sys/fs/cgroup and /proc/self/cgroup: a quota found is the one in the files
    of this process's cgroup or an ancestor, and the default respects it."""
    import math
    import os

    from bids_dfc.cli.resources import CGROUP_ROOT, SELF_CGROUP, cgroup_cpus, usable_cpus

    quota = cgroup_cpus()
    assert quota is None or quota > 0
    if not SELF_CGROUP.exists():
        assert quota is None
        return
    limits = []
    for line in SELF_CGROUP.read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        if controllers == "" and (CGROUP_ROOT / "cpu.max").exists():
            text = (CGROUP_ROOT / "cpu.max").read_text().split()
            limits += [] if text[0] == "max" else [int(text[0]) / int(text[1])]
        elif "cpu" in controllers.split(","):
            folder = CGROUP_ROOT / "cpu"
            if (folder / "cpu.cfs_quota_us").exists():
                q = int((folder / "cpu.cfs_quota_us").read_text())
                limits += [q / int((folder / "cpu.cfs_period_us").read_text())] if q > 0 else []
    if limits:  # the mount root's own limit bounds the quota found
        assert quota is not None and quota <= min(limits)
    mask = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    expected = mask if quota is None else max(1, min(mask, math.ceil(quota)))
    assert usable_cpus(environ={}) == expected


#: runs the CLI's main in a fresh interpreter, then lists the heavy modules it imported
_IMPORTS = ("import sys; from bids_dfc.cli.dcc import main; code = main(sys.argv[1:]); "
            "print(code, *sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pandas', 'scipy', 'tqdm', 'matplotlib', 'nipype')))")


@pytest.mark.parametrize("extra", [[], ["--summary-only", "--thresholds", "0.2"],
                                   ["--method", "pearson"]])
def test_small_run_imports_neither_pandas_nor_scipy(roi, tmp_path, extra):
    """Start-up time (benchmarks/bench_dcc_startup.py): a small DCC run needs numpy only."""
    inp = _write(roi, tmp_path / "roi.tsv")
    proc = subprocess.run([sys.executable, "-c", _IMPORTS, str(inp), str(tmp_path / "o"),
                           *extra], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "estimation: 100%" in proc.stderr or "pearson" in extra  # the plain progress line
    assert proc.stdout.split("\n")[-2].split() == ["0"], proc.stdout


def _old_summary_text(names, result):
    """The summary as the committed writer made it: pandas' to_csv of this frame."""
    label = np.asarray(names, dtype=object)
    summ = result.summary
    frame = pd.DataFrame({"region_a": label[result.pairs[:, 0]],
                          "region_b": label[result.pairs[:, 1]], **result.extra,
                          "sd": summ["sd"], "mean": summ["mean"], "n_timepoints": summ["n"]})
    for key, val in summ.items():
        if key.startswith("frac_"):
            frame[key] = val
    return frame.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.10g",
                        lineterminator="\n")


def _written(writer):
    import io

    fh = io.StringIO(newline="")
    writer(fh)
    return fh.getvalue()


@pytest.mark.parametrize("static", [False, True])
def test_summary_and_series_bytes_are_pandas_to_csv_bytes(static):
    """The pandas-free writers write what pandas' to_csv wrote: numbers (%.10g, n/a, inf,
    -0, tiny and huge), integers, strings and the csv quoting of awkward region names."""
    from bids_dfc.cli.dcc_run import Result, StopState, series_writer, summary_writer

    names = ["PCC", 'say "hi"', "tab\there", "comma,name", "new\nline", "é ü", "'q'", " sp "]
    pairs = np.column_stack(np.triu_indices(len(names), 1))
    n_p = len(pairs)
    rng = np.random.default_rng(7)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-300, 1.5e300, 1 / 3, -2.5e-7,
                        123456789.123, 0.1 + 0.2, 1.0, -1.0, 2.0**-1074])
    vals = np.resize(special, n_p)
    if static:
        na = np.full(n_p, "n/a", dtype=object)
        extra = {"a": na, "b": na, "loglik": na, "converged": na}
    else:
        extra = {"a": rng.uniform(0, 0.2, n_p), "b": vals.copy(), "loglik": rng.normal(size=n_p),
                 "converged": np.where(rng.uniform(size=n_p) > 0.3, "true", "false")}
    summary = {"sd": rng.uniform(0, 1, n_p) ** 7, "mean": vals[::-1].copy(),
               "n": rng.integers(2, 300, n_p), "frac_above_0.2": vals.copy(),
               "frac_below_-0.5": rng.uniform(size=n_p)}
    result = Result(pairs, extra, summary, {})
    assert _written(summary_writer(names, result)) == _old_summary_text(names, result)
    series = rng.normal(size=(9, n_p))
    series[2] = np.nan
    series[4, :5] = special[:5]
    labels = [f"{names[i]}__{names[j]}" for i, j in pairs]
    old = pd.DataFrame(series, columns=labels).to_csv(
        sep="\t", index=False, na_rep="n/a", float_format="%.10g", lineterminator="\n")
    assert _written(series_writer(names, pairs, series, StopState(), quiet=True)) == old


def test_cli_summary_rewritten_by_pandas_is_the_same_file(tmp_path):
    """End to end, the quoting of awkward names in a real run's summary (CSV input)."""
    rng = np.random.default_rng(2)
    names = ['a"q', "b, c", "tab\tin", "é"]
    df = pd.DataFrame(rng.standard_normal((60, 4)) + np.arange(4), columns=names)
    inp = _write(df, tmp_path / "odd.csv", sep=",")
    assert main([str(inp), str(tmp_path / "o"), "--quiet"]) == 0
    text = (tmp_path / "o_summary.tsv").read_text()
    back = pd.read_csv(tmp_path / "o_summary.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(back["region_a"][:3]) == ['a"q'] * 3 and back["region_b"][5] == "é"
    assert back.to_csv(sep="\t", index=False, lineterminator="\n") == text


def test_recursion_is_lfilter_bit_for_bit():
    """The pairwise DCC's S_t recursion (no scipy.signal import) against lfilter itself."""
    from scipy.signal import lfilter

    from bids_dfc.dfc._grid import GRID_B, _filter

    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        for shape in ((273, 4), (133, 512), (40,), (1, 3), (300, 1)):
            e = (rng.standard_normal(shape) * rng.uniform(0.01, 100)).astype(dtype)
            for b in (*GRID_B, 0.5, 0.9999):
                a = np.array([1.0, -b], dtype)
                ref = lfilter(np.array([0.0, 1.0], dtype), a, e, axis=0)
                got = _filter(e, b)
                assert got.dtype == ref.dtype == dtype and got.shape == shape
                assert got.tobytes() == ref.tobytes(), (dtype, shape, b)


def test_plain_progress_line_is_tqdms():
    from tqdm import tqdm

    from bids_dfc.cli.dcc_run import Progress, plain_line

    for total in (1, 6, 780, 79_800, 10**7):
        for frac in (0.0, 0.001, 0.1, 0.5, 0.999, 1.0):
            for elapsed in (0.0, 1e-4, 0.3, 1.0, 59.99, 61.0, 3599.5, 3600.0, 2 * 86400 + 5.5):
                done = int(total * frac)
                for unit in (" pairs", " rows"):
                    ref = tqdm.format_meter(done, total, elapsed, unit=unit, prefix="p: est",
                                            bar_format=Progress.FORMAT)
                    assert plain_line("p: est", done, total, elapsed, unit) == ref
