"""The crossover trial of ``make demo``'s dataset through the real group level: the planted
effects fall inside the reported CIs, and the diary response is usable as the imaging
analysis' outcome ("does dFC predict the diary response").

The phenotype is exactly the one ``make demo`` writes (12 subjects, seed 1: the demo
generator's own cohort and trial writers); the participant dFC files are written from the
cohort's true dFC plus a small estimation error, as in test_group_demo.py (no images, so
this runs in seconds).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bids_dfc.config import GroupOptions
from bids_dfc.demo import bids_io
from bids_dfc.demo.dataset import write_cohort_trial
from bids_dfc.demo.phenotype import simulate_cohort
from bids_dfc.derivatives import GROUP_FILES
from bids_dfc.group.run import run_group_level
from bids_dfc.stats.trial import response_column

#: make demo: bids-dfc-demo --n-subjects 12 --seed 1 (Makefile)
DEMO_SUBJECTS, DEMO_SEED = 12, 1


def _write_dfc(out, cohort, rng):
    for row in cohort.itertuples():
        func = out / row.participant_id / "func"
        func.mkdir(parents=True)
        pd.DataFrame({
            "seed_a": ["DMN"], "seed_b": ["DeS"],
            "dcc_sd": [row.true_dfc + rng.normal(0, 0.005)], "dcc_mean": 0.3,
            "pearson_r": 0.3, "a": 0.04, "b": 0.9, "converged": True, "n_volumes": 150,
            "mean_fd": 0.1,
        }).to_csv(func / f"{row.participant_id}_task-rest_seg-seeds_dfc.tsv", sep="\t",
                  index=False)


@pytest.fixture(scope="module")
def demo_trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_trial")
    bids, out, truth_dir = root / "bids", root / "out", root / "truth"
    truth_dir.mkdir()
    # the same cohort and trial make_demo_dataset draws (streams [seed, 1] and [seed, 3])
    cohort = simulate_cohort(DEMO_SUBJECTS, np.random.default_rng([DEMO_SEED, 1]))
    bids_io.write_participants(bids, cohort)
    truth_path = write_cohort_trial(bids, truth_dir, cohort, DEMO_SEED)
    _write_dfc(out, cohort, np.random.default_rng(5))
    outcome = response_column("ketamine", "observed")
    options = GroupOptions(outcome=outcome, n_boot=500)
    paths = run_group_level(bids, out, options, random_seed=0)
    return cohort, json.loads(truth_path.read_text()), paths, outcome


def _table(paths, key):
    return pd.read_csv(paths[key], sep="\t", na_values="n/a")


def test_the_planted_effects_fall_inside_the_reported_cis(demo_trial):
    _, truth, paths, _ = demo_trial
    contrasts = _table(paths, "trial_contrasts")
    checked = 0
    for outcome, horizons in truth["auc_contrasts"].items():
        for horizon, planted in horizons.items():
            for analysis in ("observed", "locf"):
                rows = contrasts[(contrasts["outcome"] == outcome)
                                 & (contrasts["horizon"] == int(horizon))
                                 & (contrasts["analysis"] == analysis)]
                if (rows["transform"] == "log").any():
                    continue  # a log ratio, not the planted difference
                for contrast, value in planted.items():
                    row = rows[rows["contrast"] == contrast].iloc[0]
                    assert row["ci_low"] <= value <= row["ci_high"], (
                        outcome, horizon, analysis, contrast, value, row.to_dict())
                    checked += 1
    assert checked >= 50  # 3 outcomes x 5 horizons x 2 analyses x 2 contrasts, few logged
    for score, planted in truth["questionnaire_contrasts"].items():
        for contrast, value in planted.items():
            row = contrasts[(contrasts["outcome"] == score)
                            & (contrasts["contrast"] == contrast)].iloc[0]
            assert row["transform"] == "none"
            assert row["ci_low"] <= value <= row["ci_high"], (score, contrast, row.to_dict())
    binary = _table(paths, "trial_binary")
    for contrast, log_or in truth["adverse_log_odds_ratio"].items():
        row = binary[binary["contrast"] == contrast].iloc[0]
        assert row["ci_low"] <= np.exp(log_or) <= row["ci_high"], (contrast, row.to_dict())


def test_the_primary_endpoint_finds_the_planted_ketamine_effect(demo_trial):
    _, truth, paths, _ = demo_trial
    omnibus = _table(paths, "trial_omnibus")
    primary = omnibus[(omnibus["outcome"] == "pain_avg") & (omnibus["horizon"] == 35)
                      & (omnibus["analysis"] == "observed")].iloc[0]
    assert primary["p"] < 0.05 and primary["df"] == 2
    icc = _table(paths, "trial_icc")
    value = icc[(icc["outcome"] == "pain_avg") & (icc["horizon"] == 35)
                & (icc["analysis"] == "observed")]["icc"].iloc[0]
    assert abs(value - truth["icc_target"]) < 0.15  # planted ~0.85, 24 participants


def test_the_diary_response_is_the_imaging_outcome(demo_trial):
    cohort, _, paths, outcome = demo_trial
    response = _table(paths, "trial_response")
    auc = _table(paths, "trial_auc")
    primary = auc[(auc["outcome"] == "pain_avg") & (auc["horizon"] == 35)
                  & (auc["analysis"] == "observed")]
    wide = primary.pivot(index="participant_id", columns="treatment", values="auc")
    expect = 100 * (wide["placebo"] - wide["ketamine"]) / wide["placebo"]
    got = response.set_index("participant_id")[outcome]
    np.testing.assert_allclose(got.loc[expect.index], expect, rtol=1e-9, equal_nan=True)
    # the imaging analysis used it: the patients' dFC against the diary response
    runs = _table(paths, "group_dfc")
    patients = cohort.loc[cohort["group"] != "HC", "participant_id"]
    joined = runs.set_index("participant_id").loc[patients, outcome]
    np.testing.assert_allclose(joined, got.loc[patients], rtol=1e-9, equal_nan=True)
    stats = _table(paths, "stats")
    assert (stats["variable"].astype(str).str.contains(outcome)
            | stats["contrast"].astype(str).str.contains(outcome)).any()
    summary = json.loads(paths["results"].read_text())
    assert summary["roles"]["outcome"] == outcome
    assert summary["files"]["trial_auc"] == GROUP_FILES["trial_auc"]


def test_no_dfc_test_still_writes_the_trial(tmp_path):
    """Two imaging participants support no dFC test; with a trial the group level still
    writes the trial's results (and the imaging tables, every test skipped) and says so."""
    bids, out, truth_dir = tmp_path / "bids", tmp_path / "out", tmp_path / "truth"
    truth_dir.mkdir()
    cohort = simulate_cohort(DEMO_SUBJECTS, np.random.default_rng([DEMO_SEED, 1]))
    bids_io.write_participants(bids, cohort)
    write_cohort_trial(bids, truth_dir, cohort, DEMO_SEED)
    patients = cohort[cohort["group"] != "HC"]
    _write_dfc(out, patients.iloc[:2], np.random.default_rng(5))
    lines: list[str] = []
    paths = run_group_level(bids, out, GroupOptions(n_boot=200), random_seed=0,
                            progress=lines.append)
    assert any(ln.startswith("group: no statistical test of dFC could be computed from 2 "
                             "participants") for ln in lines), lines
    stats = _table(paths, "stats")
    assert stats["note"].astype(str).str.startswith("skipped").any()
    assert len(_table(paths, "trial_contrasts")) > 0
