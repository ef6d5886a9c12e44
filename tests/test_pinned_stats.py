"""Pinned outputs of the group statistics: the tables and results of the pre-refactor code.

The inputs are built in memory in the formats :func:`bids_dfc.stats.table.assemble` receives
from the group workflow (the long ``*_dfc.tsv`` table with the file-name entities, and the
phenotype tables read as strings with a ``_line`` column). Every output table (column names,
index, dtypes, every value) is compared with what ``bids_dfc/stats`` computed at commit
025ed64, before ``assemble`` and ``run_group_statistics`` were cut into helpers: bit-identical
on the recording machine, to 1e-6 relative (1e-7 absolute) elsewhere (tests/_pinned.py;
re-record with ``scripts/record_pinned.py``, which runs the pre-refactor commit, never the
current code).
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from _pinned import check

from bids_dfc.errors import InputError
from bids_dfc.stats import table as tb
from bids_dfc.stats.analysis import run_group_statistics

SEED = 90210
PAIRS = [("DMN", "DeS"), ("PCC", "PAG"), ("PCC", "RVM"), ("mPFC", "PAG")]
N_HC, N_PAT = 12, 26


def _strings(frame: pd.DataFrame) -> pd.DataFrame:
    """As the workflow reads a phenotype TSV: strings (NaN for n/a) plus ``_line``."""
    out = frame.astype(object).map(
        lambda v: v if isinstance(v, str) else np.nan if pd.isna(v) else repr(float(v)))
    out["_line"] = np.arange(len(out)) + 2
    return out


def make_inputs(seed: int = SEED):
    """``dfc_long``, participants and phenotypes with every kind of exclusion planted."""
    rng = np.random.default_rng(seed)
    n = N_HC + N_PAT
    ids = [f"sub-{i + 1:02d}" for i in range(n)]
    patient = np.arange(n) >= N_HC
    tsp = np.where(patient, rng.gamma(2.0, 60.0, n), rng.gamma(2.0, 40.0, n))
    dfc = np.where(patient, 0.47 + 0.0005 * tsp + rng.normal(0, 0.02, n),
                   rng.normal(0.52, 0.03, n))
    pre = np.where(patient, rng.integers(4, 10, n).astype(float), np.nan)
    relief = np.clip(30 + 500 * (dfc - 0.53) + rng.normal(0, 12, n), -20, 100)
    post = np.where(patient, np.round(pre * (1 - relief / 100), 1), np.nan)
    pre[N_HC + 3] = 0.0  # relief undefined
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = 100 * (pre - post) / pre
    group = np.where(~patient, "HC", np.where(rel >= 30, "R", "NR")).astype(object)
    group[N_HC + 5] = "patient"  # outside the labels: relabelled from the outcome
    group[N_HC + 3] = np.nan  # no group and no relief: excluded
    first = rng.uniform(2, 4, n)
    ratings = np.round(first[:, None] * (1 + tsp[:, None] / 100
                                         * np.linspace(0, 1, 10)[None, :]), 3)
    ratings[N_HC + 7, 4] = np.nan  # one missing rating: tsp n/a
    age = rng.integers(25, 70, n).astype(float)
    age[N_HC + 9] = np.nan  # a missing covariate
    raw_ids = [pid[4:] if k % 5 == 0 else pid for k, pid in enumerate(ids)]  # no "sub-"
    participants = tb.load_phenotype(_strings(pd.DataFrame({
        "participant_id": raw_ids[:-1], "age": age[:-1],
        "sex": rng.choice(["F", "M"], n)[:-1], "group": group[:-1],
        "anxiety": np.round(rng.normal(10, 3, n), 1)[:-1]})), "participants.tsv")
    pain = tb.load_phenotype(_strings(pd.DataFrame(
        {"participant_id": ids, "pain_pre": pre, "pain_post": post})), "phenotype/pain.tsv")
    tsp_tab = pd.DataFrame(ratings, columns=[f"tsp_{k}" for k in range(1, 11)])
    tsp_tab.insert(0, "participant_id", ids)
    tsp_tab = tb.load_phenotype(_strings(tsp_tab), "phenotype/tsp.tsv")
    phenotypes = {"phenotype/pain.tsv": pain, "phenotype/tsp.tsv": tsp_tab}

    frames = []
    dfc_ids = ids[:-2] + ["sub-99"]  # sub-99: no phenotype; the last two: no dFC
    for i, pid in enumerate(dfc_ids):
        sessions = ["ses-1", "ses-2"] if pid == "sub-04" else [np.nan]
        n_runs = 2 if pid in ("sub-03", f"sub-{N_HC + 2:02d}") else 1
        for ses in sessions:
            for r in range(1, n_runs + 1):
                run = str(r) if n_runs > 1 else np.nan
                fd = 0.8 if pid in ("sub-06", f"sub-{N_HC + 11:02d}") else rng.uniform(0.05, 0.3)
                rows = []
                for a, b in PAIRS:
                    if a == "DMN" and pid == "sub-08":
                        continue  # no primary pair in the file
                    val = (dfc[i % n] + (rng.normal(0, 0.005) if r > 1 else 0.0)
                           if a == "DMN" else rng.normal(0.5, 0.04))
                    rows.append({"seed_a": a, "seed_b": b, "dcc_sd": val, "dcc_mean": 0.3,
                                 "a": 0.05, "b": 0.9, "converged": True, "n_volumes": 273,
                                 "mean_fd": fd})
                frame = pd.DataFrame(rows)
                if pid == "sub-09" and r == 1:
                    frame.loc[0, "dcc_sd"] = np.nan
                if pid == f"sub-{N_HC + 2:02d}" and r == 2:
                    frame["converged"] = False
                name = f"{pid}/func/{pid}_task-rest{'' if run is np.nan else '_run-' + run}"
                frame.insert(0, "participant_id", pid)
                frame.insert(1, "session_id", ses)
                frame.insert(2, "task", "rest")
                frame.insert(3, "acq", np.nan)
                frame.insert(4, "run", run)
                frame.insert(5, "file", f"{name}_{'' if ses is np.nan else ses}_dfc.tsv")
                frames.append(frame)
    return pd.concat(frames, ignore_index=True), participants, phenotypes


def options(**kw):
    base = dict(group_column="group", control_label="HC", responder_label="R",
                nonresponder_label="NR", outcome=None, predictor=None,
                covariates=["age", "sex", "mean_fd"], compare_columns=["anxiety"],
                relief_from=("pain_pre", "pain_post"), responder_threshold=30.0,
                tsp_columns="tsp_*", max_mean_fd=0.5, pair=("DMN", "DeS"))
    base.update(kw)
    return types.SimpleNamespace(**base)


def tables_outputs(t: tb.AnalysisTables) -> tuple:
    return (t.runs, t.subjects, t.pairs, t.exclusions, t.roles, t.notes)


def results_outputs(res: dict) -> tuple:
    return tuple(res[k] for k in sorted(res))


@pytest.fixture(scope="module")
def inputs():
    return make_inputs()


def test_pinned_full_study_options(inputs):
    tables = tb.assemble(*inputs, options())
    check("tables_full", *tables_outputs(tables))
    res = run_group_statistics(tables, n_boot=200, random_seed=3, all_pairs=True,
                               pair=("DMN", "DeS"))
    check("results_full", *results_outputs(res))


def test_pinned_derived_group_column(inputs):
    opts = options(group_column="diagnosis", covariates=[], compare_columns=[],
                   tsp_columns=None, predictor="anxiety", responder_threshold=25.0,
                   max_mean_fd=None)
    tables = tb.assemble(*inputs, opts)
    check("tables_derived_group", *tables_outputs(tables))
    res = run_group_statistics(tables, n_boot=150, random_seed=11, all_pairs=False,
                               pair=("DMN", "DeS"))
    check("results_derived_group", *results_outputs(res))


def test_pinned_small_cohort_skips(inputs):
    dfc_long, participants, phenotypes = inputs
    keep = [f"sub-{i:02d}" for i in (1, 2, 3, 4, 7, 10, 13, 14, 15, 17, 19)]
    small = dfc_long[dfc_long["participant_id"].isin(keep)]
    opts = options(relief_from=None, tsp_columns=None, outcome="pain_post", covariates=["sex"],
                   compare_columns=[], max_mean_fd=0.25, responder_threshold=4.0)
    tables = tb.assemble(small, participants, phenotypes, opts)
    check("tables_small", *tables_outputs(tables))
    res = run_group_statistics(tables, n_boot=120, random_seed=0, all_pairs=True,
                               pair=("DMN", "DeS"))
    check("results_small", *results_outputs(res))


def test_pinned_no_outcome_tiny_cohort(inputs):
    dfc_long, participants, phenotypes = inputs
    keep = [f"sub-{i:02d}" for i in (1, 2, 3, 4, 5, 13, 15, 17)]
    floor = np.where(np.arange(len(participants)) < N_HC, "0",
                     np.arange(len(participants)).astype(str))
    opts = options(relief_from=None, tsp_columns=None, predictor="anxiety", covariates=[],
                   compare_columns=["floor"], max_mean_fd=None)
    tables = tb.assemble(dfc_long[dfc_long["participant_id"].isin(keep)],
                         participants.assign(floor=floor), phenotypes, opts)
    check("tables_no_outcome", *tables_outputs(tables))
    res = run_group_statistics(tables, n_boot=100, random_seed=5, all_pairs=True,
                               pair=("DMN", "DeS"))
    check("results_no_outcome", *results_outputs(res))


def test_pinned_session_phenotype_few_patients(inputs):
    dfc_long, participants, phenotypes = inputs
    keep = [f"sub-{i:02d}" for i in (1, 2, 4, 13, 14, 15, 17, 18, 19, 21)]
    rng = np.random.default_rng(SEED + 1)
    ses = pd.DataFrame({"participant_id": keep + ["sub-04"],
                        "session_id": [np.nan, np.nan, "1"] + [np.nan] * 7 + ["ses-2"],
                        "sleep": np.round(rng.normal(7, 1, len(keep) + 1), 2)})
    sessions = tb.load_phenotype(_strings(ses), "phenotype/sessions.tsv")
    opts = options(tsp_columns=["tsp_2", "tsp_3", "tsp_1"], covariates=["sleep", "sex", "mean_fd"],
                   compare_columns=["sleep"], max_mean_fd=0.29)
    tables = tb.assemble(dfc_long[dfc_long["participant_id"].isin(keep)], participants,
                         {**phenotypes, "phenotype/sessions.tsv": sessions}, opts)
    check("tables_sessions", *tables_outputs(tables))
    res = run_group_statistics(tables, n_boot=100, random_seed=8, all_pairs=False,
                               pair=("DMN", "DeS"))
    check("results_sessions", *results_outputs(res))


def test_pinned_input_errors(inputs):
    dfc_long, participants, phenotypes = inputs
    clash = dict(phenotypes)
    clash["phenotype/extra.tsv"] = phenotypes["phenotype/pain.tsv"][["participant_id", "_line"]]
    clash["phenotype/extra.tsv"] = clash["phenotype/extra.tsv"].assign(age="1")
    derived = dict(phenotypes)
    derived["phenotype/tsp.tsv"] = phenotypes["phenotype/tsp.tsv"].assign(tsp="1")
    bad_calls = [
        lambda: tb.assemble(dfc_long, participants, clash, options()),
        lambda: tb.assemble(dfc_long, participants, derived, options()),
        lambda: tb.assemble(dfc_long, participants, phenotypes, options(predictor="nope")),
        lambda: tb.assemble(dfc_long, participants, phenotypes, options(covariates=["w"])),
        lambda: tb.assemble(dfc_long, participants, phenotypes,
                            options(compare_columns=["hads"])),
        lambda: tb.assemble(dfc_long, participants, phenotypes,
                            options(group_column="dx", relief_from=None)),
        lambda: tb.assemble(dfc_long, participants, phenotypes,
                            options(covariates=["sex"], compare_columns=["sex"])),
        lambda: tb.assemble(dfc_long, participants, phenotypes, options(tsp_columns="heat_*")),
        lambda: tb.assemble(dfc_long, participants, phenotypes,
                            options(tsp_columns=["tsp_1", "tsp_11"])),
        lambda: tb.load_phenotype(participants.drop(columns="participant_id"), "x.tsv"),
        lambda: tb.load_phenotype(pd.concat([participants, participants.iloc[[3]]]), "y.tsv"),
    ]
    messages = []
    for call in bad_calls:
        try:
            call()
        except InputError as exc:
            messages.append(str(exc))
        else:
            messages.append("no error")
    check("errors", messages)
