"""End-to-end tests of the group level on real files in the documented formats.

``make_group_dataset`` writes a BIDS dataset (participants.tsv, phenotype/pain.tsv and
phenotype/tsp.tsv with sidecars) and an output_dir with one ``*_dfc.tsv`` per run, in the
participant level's format, with planted effects: TSP raises DMN-DeS dFC, dFC raises relief
(full mediation), responders have higher dFC than non-responders and controls.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bids_dfc.config import GroupOptions
from bids_dfc.errors import InputError
from bids_dfc.group.run import run_group_level

PAIRS = [("DMN", "DeS"), ("PCC", "PAG"), ("PCC", "RVM"), ("mPFC", "PAG"), ("mPFC", "RVM")]


def group_options(**kw):
    """The group options with the documented defaults (as the CLI would build them)."""
    base = {f.name: getattr(GroupOptions(), f.name) for f in dataclasses.fields(GroupOptions)}
    base |= dict(group_column="group", control_label="HC", responder_label="R",
                nonresponder_label="NR", outcome=None, predictor=None, covariates=[],
                compare_columns=[],
                relief_from=("pain_pre", "pain_post"), responder_threshold=30.0,
                tsp_columns="tsp_*", max_mean_fd=0.5, n_boot=2000, all_pairs=False,
                pair=("DMN", "DeS"))
    base.update(kw)
    return types.SimpleNamespace(**base)


def _write(path, frame, sidecar=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a")
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar))


def make_group_dataset(root, n_hc=20, n_patients=30, seed=7, runs_for=("sub-03",),
                       high_fd=("sub-05",)):
    """Write bids/ and out/ under ``root``; return (bids_dir, output_dir, truth DataFrame)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    bids, out = root / "bids", root / "out"
    n = n_hc + n_patients
    ids = [f"sub-{i + 1:02d}" for i in range(n)]
    patient = np.arange(n) >= n_hc
    tsp = np.where(patient, rng.gamma(2.0, 60.0, n), rng.gamma(2.0, 40.0, n))
    dfc = np.where(patient, 0.48 + 0.0004 * tsp + rng.normal(0, 0.02, n),
                   rng.normal(0.52, 0.03, n))
    pre = np.where(patient, rng.integers(5, 10, n).astype(float), np.nan)
    relief = np.clip(30 + 600 * (dfc - 0.528) + rng.normal(0, 10, n), -20, 100)
    post = np.where(patient, np.round(pre * (1 - relief / 100), 1), np.nan)
    rel = 100 * (pre - post) / pre
    group = np.where(~patient, "HC", np.where(rel >= 30, "R", "NR"))
    first = rng.uniform(2, 4, n)
    ratings = first[:, None] * (1 + tsp[:, None] / 100 * np.linspace(0, 1, 10)[None, :])
    ratings = np.round(ratings, 3)
    _write(bids / "participants.tsv", pd.DataFrame({
        "participant_id": ids, "age": rng.integers(25, 70, n),
        "sex": rng.choice(["F", "M"], n), "group": group}),
        {"group": {"Description": "HC control, R responder, NR non-responder"}})
    _write(bids / "phenotype" / "pain.tsv", pd.DataFrame(
        {"participant_id": ids, "pain_pre": pre, "pain_post": post}),
        {"pain_pre": {"Description": "pain now before infusion, 0-10"},
         "pain_post": {"Description": "pain now one month after, 0-10"}})
    tsp_tab = pd.DataFrame(ratings, columns=[f"tsp_{k:02d}" for k in range(1, 11)])
    tsp_tab.insert(0, "participant_id", ids)
    _write(bids / "phenotype" / "tsp.tsv", tsp_tab, {"tsp_01": {"Description": "pulse 1"}})
    (out).mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps({"Name": "bids_dfc"}))
    for i, pid in enumerate(ids):
        n_runs = 2 if pid in runs_for else 1
        for r in range(1, n_runs + 1):
            run = f"_run-{r}" if n_runs > 1 else ""
            fd = 0.8 if pid in high_fd else rng.uniform(0.05, 0.3)
            rows = []
            for a, b in PAIRS:
                val = dfc[i] + (rng.normal(0, 0.005) if r > 1 else 0.0) if a == "DMN" \
                    else rng.normal(0.5, 0.04)
                rows.append({"seed_a": a, "seed_b": b, "dcc_sd": val, "dcc_mean": 0.3,
                             "pearson_r": 0.3, "a": 0.05, "b": 0.9, "converged": True,
                             "n_volumes": 273, "mean_fd": fd, "extra": 1})
            _write(out / pid / "func" / f"{pid}_task-rest{run}_seg-seeds_dfc.tsv",
                   pd.DataFrame(rows))
    truth = pd.DataFrame({"participant_id": ids, "tsp": tsp, "dfc": dfc, "relief": rel,
                          "group": group})
    return bids, out, truth


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_group_dataset(tmp_path_factory.mktemp("grp"))


@pytest.fixture(scope="module")
def outputs(dataset):
    bids, out, truth = dataset
    old = os.umask(0o022)  # what a user's shell has; io.py must honour it explicitly
    try:
        paths = run_group_level(bids, out, group_options(all_pairs=True), random_seed=3)
    finally:
        os.umask(old)
    return bids, out, truth, paths


def _set_cell(path, line: int, column: int, value: str) -> list[str]:
    """Overwrite one cell of a TSV (0-based line incl. header, column); return the old lines."""
    text = path.read_text().splitlines()
    original = list(text)
    cells = text[line].split("\t")
    cells[column] = value
    text[line] = "\t".join(cells)
    path.write_text("\n".join(text) + "\n")
    return original


def test_outputs_written_with_sidecars(outputs):
    _, out, _, paths = outputs
    for key in ("group_dfc", "stats", "mediation", "prediction", "exclusions", "report",
                "results"):
        assert Path(paths[key]).is_file(), key
    for key in ("group_dfc", "stats", "mediation", "prediction", "exclusions"):
        side = json.loads(Path(paths[key]).with_suffix(".json").read_text())
        cols = pd.read_csv(paths[key], sep="\t", nrows=0).columns
        assert set(cols) <= set(side), key
    assert not list((out / "group").glob(".*tmp"))


def test_every_group_file_is_0644_under_umask_022(outputs):
    """Tables, sidecars, figures and the report: 0o666 & ~0o022 (mkstemp alone gives 0600)."""
    _, out, _, _ = outputs
    files = [p for p in (out / "group").rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in files) and any(p.suffix == ".html" for p in files)
    wrong = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in files
             if p.stat().st_mode & 0o777 != 0o644}
    assert not wrong, wrong


def test_group_file_names_are_in_the_documented_convention(outputs):
    """Every file of group/ is on the convention list bids-dfc-check uses."""
    from bids_dfc.derivatives.validate import check_outputs

    _, out, _, paths = outputs
    report = check_outputs(out)
    assert not report.unmatched, report.unmatched
    group = report.by_convention["group level"]
    assert {f"group/{Path(p).name}" for p in paths.values()} <= set(group)
    assert any(name.startswith("group/figures/") for name in group)


def test_group_dfc_rows_and_exclusions(outputs):
    _, out, truth, paths = outputs
    gd = pd.read_csv(paths["group_dfc"], sep="\t")
    # one row per included run: 50 participants, sub-03 has 2 runs, sub-05 fails FD
    assert len(gd) == 50
    assert (gd["participant_id"] == "sub-03").sum() == 2
    assert "sub-05" not in set(gd["participant_id"])
    for col in ("group", "relief_pct", "tsp", "responder", "dcc_sd"):
        assert col in gd.columns
    merged = gd.drop_duplicates("participant_id").merge(
        truth.add_prefix("true_"), left_on="participant_id", right_on="true_participant_id")
    np.testing.assert_allclose(merged["relief_pct"], merged["true_relief"], atol=1e-9,
                               equal_nan=True)
    np.testing.assert_allclose(merged["tsp"], merged["true_tsp"], rtol=5e-3)
    ratings = pd.read_csv(out.parent / "bids" / "phenotype" / "tsp.tsv", sep="\t")
    ratings = ratings.set_index("participant_id").loc[merged["participant_id"]]
    first = ratings["tsp_01"].to_numpy()
    np.testing.assert_allclose(merged["tsp"], 100 * (ratings.max(axis=1) - first) / first,
                               rtol=1e-9)  # dfc_runs.tsv keeps 10 digits
    assert (merged["group"] == merged["true_group"]).all()
    ex = pd.read_csv(paths["exclusions"], sep="\t")
    row = ex[ex["participant_id"] == "sub-05"]
    assert "mean FD 0.800" in " ".join(row["reason"])


def test_planted_effects_recovered(outputs):
    _, _, truth, paths = outputs
    st = pd.read_csv(paths["stats"], sep="\t")
    anova = st[(st["test"] == "one-way ANOVA") & (st["variable"] == "dcc_sd")].iloc[0]
    assert anova["df"] == "2, 46" and anova["p"] < 0.01
    rho = st[(st["test"] == "Spearman rank correlation")
             & (st["contrast"] == "dcc_sd ~ relief_pct")].iloc[0]
    assert rho["statistic"] > 0.5 and rho["p"] < 0.01
    med = pd.read_csv(paths["mediation"], sep="\t").set_index("path")
    assert med.loc["indirect", "ci_low"] > 0
    assert med.loc["indirect", "n_boot"] == 2000
    np.testing.assert_allclose(med.loc["c", "estimate"],
                               med.loc["c_prime", "estimate"] + med.loc["indirect", "estimate"],
                               rtol=1e-9)
    pred = pd.read_csv(paths["prediction"], sep="\t").set_index("model")
    assert pred.loc["dFC", "auc"] > 0.8
    # secondary pairs are pure noise: tested and FDR-corrected
    sec = st[st["variable"].str.startswith("dcc_sd[")]
    assert len(sec) == 8 and sec["p_adj_method"].str.startswith("fdr_bh").all()


def test_reproducible_with_seed(dataset, tmp_path):
    bids, out, _ = dataset
    import shutil

    a = tmp_path / "a"
    shutil.copytree(out, a)
    run_group_level(bids, a, group_options(), random_seed=11)
    m1 = (a / "group" / "mediation.tsv").read_text()
    run_group_level(bids, a, group_options(), random_seed=11)
    assert (a / "group" / "mediation.tsv").read_text() == m1


def test_small_group_skips_that_test(tmp_path):
    bids, out, _ = make_group_dataset(tmp_path, n_hc=2, n_patients=30, seed=2, runs_for=(),
                                      high_fd=())
    paths = run_group_level(bids, out, group_options(n_boot=500), random_seed=1)
    st = pd.read_csv(paths["stats"], sep="\t")
    anova = st[st["test"] == "one-way ANOVA"].iloc[0]
    assert anova["note"].startswith("skipped: group HC has 2 subjects")
    assert np.isfinite(st[st["test"] == "Spearman rank correlation"]["p"]).all()
    assert "group HC has 2 subjects" in Path(paths["report"]).read_text()


def test_bad_inputs(tmp_path):
    bids, out, _ = make_group_dataset(tmp_path, n_hc=5, n_patients=10, seed=4)
    with pytest.raises(InputError, match=r"--predictor.*'nope'.*available columns:.*age"):
        run_group_level(bids, out, group_options(predictor="nope", n_boot=200), random_seed=0)
    with pytest.raises(InputError, match=r"--covariates.*'weight'.*available"):
        run_group_level(bids, out, group_options(covariates=["weight"], n_boot=200), random_seed=0)
    pain = bids / "phenotype" / "pain.tsv"
    good = _set_cell(pain, 8, 1, "seven")
    with pytest.raises(InputError, match=r"pain.tsv, line 9 \(participant_id sub-08\), "
                                         r"column 'pain_pre': value 'seven'"):
        run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
    pain.write_text("\n".join(good + [good[3]]) + "\n")
    with pytest.raises(InputError, match=r"duplicate rows for participant_id=sub-03 "
                                         r"\(lines 4, 17\)"):
        run_group_level(bids, out, group_options(n_boot=200), random_seed=0)
    empty = tmp_path / "empty_out"
    empty.mkdir()
    with pytest.raises(InputError, match="run the participant level first"):
        run_group_level(bids, empty, group_options(n_boot=200), random_seed=0)


def test_derived_groups_and_covariates(tmp_path):
    """No group column: labels come from relief; covariates enter ANCOVA and mediation."""
    bids, out, truth = make_group_dataset(tmp_path, n_hc=8, n_patients=20, seed=12)
    part = pd.read_csv(bids / "participants.tsv", sep="\t").drop(columns="group")
    part.to_csv(bids / "participants.tsv", sep="\t", index=False)
    opts = group_options(group_column="diagnosis", covariates=["age", "sex", "mean_fd"],
                         n_boot=500)
    paths = run_group_level(bids, out, opts, random_seed=2)
    gd = pd.read_csv(paths["group_dfc"], sep="\t").drop_duplicates("participant_id")
    merged = gd.merge(truth, on="participant_id")
    assert (merged["diagnosis"] == merged["group"]).all()
    st = pd.read_csv(paths["stats"], sep="\t")
    anc = st[st["test"] == "ANCOVA (OLS, type II SS)"].iloc[0]
    assert anc["note"] == "covariates: age, sex, mean_fd" and np.isfinite(anc["p"])
    part = st[st["test"] == "partial Spearman correlation"]
    assert list(part["contrast"]) == ["dcc_sd ~ relief_pct", "tsp ~ relief_pct"]
    assert (part["df"] == "15").all()  # 20 patients - 2 - 3 columns (age, sex dummy, FD)
    med = pd.read_csv(paths["mediation"], sep="\t")
    assert (med["covariates"] == "age, sex, mean_fd").all()
    res = json.loads(Path(paths["results"]).read_text())
    assert any("'diagnosis' derived" in n for n in res["notes"])


def test_sessions_join_session_level_phenotype(tmp_path):
    """Two sessions per participant: a session-level table joins on session_id too."""
    bids, out, _ = make_group_dataset(tmp_path, n_hc=6, n_patients=12, seed=21, runs_for=(),
                                      high_fd=())
    rows = []
    for f in sorted(out.glob("sub-*/func/*_dfc.tsv")):
        pid = f.name.split("_")[0]
        for ses in ("1", "2"):
            dest = out / pid / f"ses-{ses}" / "func" / f.name.replace("_task", f"_ses-{ses}_task")
            dest.parent.mkdir(parents=True)
            tab = pd.read_csv(f, sep="\t")
            tab.loc[0, "dcc_sd"] += 0.01 * int(ses)
            tab.to_csv(dest, sep="\t", index=False)
            rows.append({"participant_id": pid, "session_id": f"ses-{ses}",
                         "sleepiness": float(ses) + len(rows)})
        f.unlink()
    _write(bids / "phenotype" / "scan.tsv", pd.DataFrame(rows))
    paths = run_group_level(bids, out, group_options(covariates=["sleepiness"], n_boot=300),
                            random_seed=0)
    gd = pd.read_csv(paths["group_dfc"], sep="\t")
    assert len(gd) == 36 and set(gd["session_id"]) == {"ses-1", "ses-2"}
    joined = gd.merge(pd.DataFrame(rows), on=["participant_id", "session_id"])
    np.testing.assert_array_equal(joined["sleepiness_x"], joined["sleepiness_y"])
    res = json.loads(Path(paths["results"]).read_text())
    assert res["n_participants"] == 18
    desc = pd.read_csv(paths["descriptives"], sep="\t")
    per_subject = gd.groupby("participant_id")["dcc_sd"].mean()
    hc = per_subject[gd.groupby("participant_id")["group"].first() == "HC"]
    row = desc[(desc["variable"] == "dcc_sd") & (desc["group"] == "HC")].iloc[0]
    np.testing.assert_allclose(row["mean"], hc.mean(), rtol=1e-9)


def test_missing_values_are_listed_per_test(tmp_path):
    """A control without TSP and a patient without post rating lose only those tests."""
    bids, out, _ = make_group_dataset(tmp_path, n_hc=8, n_patients=14, seed=30, runs_for=(),
                                      high_fd=())
    tsp = pd.read_csv(bids / "phenotype" / "tsp.tsv", sep="\t")
    tsp.loc[tsp["participant_id"] == "sub-02", "tsp_05"] = np.nan
    tsp.to_csv(bids / "phenotype" / "tsp.tsv", sep="\t", index=False, na_rep="n/a")
    pain = pd.read_csv(bids / "phenotype" / "pain.tsv", sep="\t")
    pain.loc[pain["participant_id"] == "sub-12", "pain_post"] = np.nan
    pain.to_csv(bids / "phenotype" / "pain.tsv", sep="\t", index=False, na_rep="n/a")
    paths = run_group_level(bids, out, group_options(n_boot=300), random_seed=0)
    ex = pd.read_csv(paths["exclusions"], sep="\t")
    got = set(zip(ex["participant_id"], ex["scope"], ex["reason"]))
    assert ("sub-02", "tests using tsp", "tsp is missing") in got
    assert ("sub-12", "tests using relief_pct", "relief_pct is missing") in got
    st = pd.read_csv(paths["stats"], sep="\t")
    assert st[st["test"] == "one-way ANOVA"]["n"].iloc[0] == 22
    assert st[st["test"] == "Kruskal-Wallis H"]["n"].iloc[0] == 21
    assert st[st["contrast"] == "dcc_sd ~ relief_pct"]["n"].iloc[0] == 13


def _write_psych(bids, seed, missing=None):
    """phenotype/psych.tsv: integer scores, patients more anxious and catastrophizing."""
    part = pd.read_csv(bids / "participants.tsv", sep="\t")
    rng = np.random.default_rng([seed, 5])  # own stream: the dFC fixture is unchanged
    patient = (part["group"] != "HC").to_numpy()
    n = len(part)
    psych = pd.DataFrame({
        "participant_id": part["participant_id"],
        "anxiety": np.clip(np.rint(np.where(patient, 10, 5) + rng.normal(0, 3, n)), 0, 21),
        "pcs": np.clip(np.rint(np.where(patient, 24, 12) + rng.normal(0, 9, n)), 0, 52),
    }).astype({"anxiety": "Int64", "pcs": "Int64"})
    if missing:
        psych.loc[psych["participant_id"] == missing, "anxiety"] = pd.NA
    _write(bids / "phenotype" / "psych.tsv", psych,
           {"anxiety": {"Description": "HADS anxiety, 0-21"},
            "pcs": {"Description": "pain catastrophizing scale, 0-52"}})
    return psych


def test_compare_columns_match_scipy_and_statsmodels(tmp_path):
    """--compare-columns: per-group Shapiro-Wilk, ANOVA and Tukey rows equal scipy.stats
    f_oneway / shapiro and statsmodels pairwise_tukeyhsd computed here from the raw files
    (included participants only: sub-05 fails FD QC, sub-03 has two runs)."""
    from scipy import stats
    from statsmodels.stats.multicomp import pairwise_tukeyhsd

    bids, out, truth = make_group_dataset(tmp_path, n_hc=12, n_patients=21, seed=17)
    psych = _write_psych(bids, 17, missing="sub-20")
    opts = group_options(compare_columns=["anxiety", "pcs", "tsp"], n_boot=300)
    paths = run_group_level(bids, out, opts, random_seed=0)
    gd = pd.read_csv(paths["group_dfc"], sep="\t")
    assert {"anxiety", "pcs"} <= set(gd.columns) and (gd["participant_id"] == "sub-03").sum() == 2
    joined = gd.merge(psych, on="participant_id", suffixes=("", "_raw"))
    np.testing.assert_array_equal(joined["pcs"], joined["pcs_raw"].astype(float))
    side = json.loads(Path(paths["group_dfc"]).with_suffix(".json").read_text())
    assert side["anxiety"]["Description"] == "HADS anxiety, 0-21"

    included = gd.drop_duplicates("participant_id")[["participant_id", "group", "tsp"]]
    assert "sub-05" not in set(included["participant_id"])
    data = included.merge(psych, on="participant_id")
    st = pd.read_csv(paths["stats"], sep="\t", keep_default_na=False, na_values=["n/a"])
    for col in ("anxiety", "pcs", "tsp"):  # TSVs keep 10 digits (tsp is rounded): rtol 1e-7
        d = data[data[col].notna()]
        rows = st[st["variable"] == col]
        samples = [d.loc[d["group"] == g, col].to_numpy(float) for g in ("HC", "NR", "R")]
        sw = rows[rows["test"] == "Shapiro-Wilk"].set_index("contrast")
        assert list(sw.index) == ["HC", "NR", "R"]
        for g, v in zip(("HC", "NR", "R"), samples):
            ref = stats.shapiro(v)
            np.testing.assert_allclose(sw.loc[g, ["statistic", "p"]].to_numpy(float),
                                       [ref.statistic, ref.pvalue], rtol=1e-7)
            assert sw.loc[g, "n"] == v.size
        anova = rows[rows["test"] == "one-way ANOVA"].iloc[0]
        ref = stats.f_oneway(*samples)
        np.testing.assert_allclose([anova["statistic"], anova["p"]], [ref.statistic, ref.pvalue],
                                   rtol=1e-7)
        assert anova["df"] == f"2, {len(d) - 3}" and anova["n"] == len(d)
        tk = pairwise_tukeyhsd(d[col].to_numpy(float), d["group"].to_numpy())
        ref = pd.DataFrame(tk.summary().data[1:], columns=tk.summary().data[0])
        tukey = rows[rows["test"] == "Tukey HSD"]
        assert list(tukey["contrast"]) == list(ref["group2"] + " - " + ref["group1"])
        np.testing.assert_allclose(tukey["effect_size"], tk.meandiffs, rtol=1e-7)
        np.testing.assert_allclose(tukey[["ci_low", "ci_high"]].to_numpy(), tk.confint,
                                   rtol=1e-4)
        np.testing.assert_allclose(tukey["p_adj"], tk.pvalues, rtol=1e-3, atol=1e-5)
    # planted: patients score higher than controls
    anx = st[(st["test"] == "one-way ANOVA") & (st["variable"] == "anxiety")].iloc[0]
    assert anx["p"] < 0.01 and anx["n"] == 31  # 33 - sub-05 (FD) - sub-20 (n/a)
    ex = pd.read_csv(paths["exclusions"], sep="\t")
    assert ((ex["participant_id"] == "sub-20") & (ex["scope"] == "tests using anxiety")).any()
    desc = pd.read_csv(paths["descriptives"], sep="\t")
    hc = desc[(desc["variable"] == "pcs") & (desc["group"] == "HC")].iloc[0]
    np.testing.assert_allclose(hc["mean"], data.loc[data["group"] == "HC", "pcs"].mean())
    res = json.loads(Path(paths["results"]).read_text())
    assert res["options"]["compare_columns"] == ["anxiety", "pcs", "tsp"]
    assert {r["variable"] for r in res["stats"] if r["test"] == "Tukey HSD"} >= {"anxiety", "pcs"}
    report = Path(paths["report"]).read_text()
    assert "Compared columns (one-way ANOVA, Tukey HSD)" in report
    assert "anxiety across groups: one-way ANOVA F[2, 28]" in report
    assert "figures/compare_by_group.png" in report
    assert (out / "group" / "figures" / "compare_by_group.png").stat().st_size > 10000


def test_compare_columns_bad_input_and_small_group(tmp_path):
    bids, out, _ = make_group_dataset(tmp_path / "a", n_hc=6, n_patients=12, seed=8)
    _write_psych(bids, 8)
    with pytest.raises(InputError, match=r"--compare-columns: column\(s\) 'hads' not found.*"
                                         r"available columns:.*anxiety, pcs"):
        run_group_level(bids, out, group_options(compare_columns=["anxiety", "hads"],
                                                 n_boot=200), random_seed=0)
    _set_cell(bids / "phenotype" / "psych.tsv", 4, 2, "high")
    with pytest.raises(InputError, match=r"phenotype/psych.tsv, line 5 \(participant_id "
                                         r"sub-04\), column 'pcs': value 'high' is not a number"):
        run_group_level(bids, out, group_options(compare_columns=["pcs"], n_boot=200),
                        random_seed=0)

    bids, out, _ = make_group_dataset(tmp_path / "b", n_hc=2, n_patients=20, seed=2,
                                      runs_for=(), high_fd=())
    _write_psych(bids, 2)
    paths = run_group_level(bids, out, group_options(compare_columns=["anxiety"], n_boot=200),
                            random_seed=0)
    st = pd.read_csv(paths["stats"], sep="\t")
    rows = st[st["variable"] == "anxiety"]
    assert list(rows["test"]) == ["Shapiro-Wilk", "Shapiro-Wilk", "one-way ANOVA"]
    assert list(rows["contrast"][:2]) == ["NR", "R"]  # HC (2 subjects) gets no normality test
    assert rows["note"].iloc[2] == "skipped: group HC has 2 subjects with data (fewer than 3)"
    assert np.isnan(rows["p"].iloc[2])
    res = json.loads(Path(paths["results"]).read_text())
    assert {"test": "one-way ANOVA", "variable": "anxiety", "contrast": "HC vs NR vs R",
            "reason": "group HC has 2 subjects with data (fewer than 3)"} in res["skipped"]
    report = Path(paths["report"]).read_text()
    section = report.split("<h2>Compared columns")[1].split("<h2>")[0]
    assert "<td>anxiety</td>" in section and "<td>skipped: group HC has 2 subjects" in section


def test_cli_progress_lines_and_quiet(tmp_path, capsys):
    """The group level tells its stages on stderr (plain lines), and nothing with --quiet."""
    from bids_dfc.cli.run import main

    bids, out, _ = make_group_dataset(tmp_path, n_hc=10, n_patients=16, runs_for=(),
                                      high_fd=())
    (Path(bids) / "dataset_description.json").write_text(
        json.dumps({"Name": "group test", "BIDSVersion": "1.9.0"}))
    for sub in pd.read_csv(Path(bids) / "participants.tsv", sep="\t")["participant_id"]:
        (Path(bids) / sub).mkdir(exist_ok=True)  # the raw data are not needed at this level
    args = [str(bids), str(out), "group", "--n-boot", "200", "--relief-from", "pain_pre",
            "pain_post"]
    assert main(args) == 0
    err = capsys.readouterr().err
    stages = [ln for ln in err.splitlines() if ln.startswith("group: ")]
    assert [s.split("  ")[0] for s in stages] == [
        "group: checking the participant dFC files and the phenotype",
        "group: statistics of 26 participants (200 bootstrap resamples)",
        "group: tables, figures and report"], err
    assert "\r" not in err
    assert main([*args, "--quiet"]) == 0
    assert not [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("group: ")]
