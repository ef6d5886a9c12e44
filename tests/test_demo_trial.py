"""The demo's simulated crossover trial (bids_dfc/demo/trial.py): tables, design, missing
diary days, planted effects against the truth, and the files written into the demo dataset.

Independent references: numpy's trapezoid over the observed diary days (AUC), a one-way
random-effects ANOVA (ICC), scipy.stats (correlation), the raw tables re-read with pandas.
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import permutations

import numpy as np
import pandas as pd
import pytest

from bids_dfc.demo import bids_io
from bids_dfc.demo.dataset import TRIAL_PARTICIPANTS, write_cohort_trial
from bids_dfc.demo.trial import OUTCOMES, TRIAL_PARAMS, simulate_trial

TREATMENTS = ("ketamine", "ketamine_mg", "placebo")
IDS_24 = [f"sub-{i:02d}" for i in range(1, 25)]
IDS_120 = [f"sub-{i:03d}" for i in range(1, 121)]


@pytest.fixture(scope="module")
def trial24():
    return simulate_trial(IDS_24, np.random.default_rng([0, 3]))


@pytest.fixture(scope="module")
def trial120():
    return simulate_trial(IDS_120, np.random.default_rng(7))


def _aucs(trial, horizon=35) -> pd.DataFrame:
    """AUC of pain_avg over days 1..horizon per participant x period (np.trapezoid over the
    observed days; n/a unless day 1 and day ``horizon`` were observed), with the treatment."""
    diary = trial["diary"].dropna(subset=["pain_avg"])
    rows = []
    for (pid, period), g in diary[diary["day"] <= horizon].groupby(["participant_id",
                                                                     "period"]):
        days = g["day"].to_numpy()
        ok = days[0] == 1 and days[-1] == horizon
        rows.append((pid, period, np.trapezoid(g["pain_avg"], days) if ok else np.nan))
    table = pd.DataFrame(rows, columns=["participant_id", "period", "auc"])
    return table.merge(trial["allocation"], on=["participant_id", "period"], how="right")


def _one_way_icc(values: np.ndarray) -> float:
    """ICC(1) of an (n participants, k periods) array from the one-way ANOVA mean squares."""
    n, k = values.shape
    means = values.mean(axis=1)
    msb = k * np.sum((means - values.mean()) ** 2) / (n - 1)
    msw = np.sum((values - means[:, None]) ** 2) / (n * (k - 1))
    return (msb - msw) / (msb + (k - 1) * msw)


def test_tables_have_the_exact_columns_and_types(trial24):
    cols = {"allocation": ["participant_id", "period", "treatment"],
            "diary": ["participant_id", "period", "day", *OUTCOMES],
            "adverse_events": ["participant_id", "period", "any_adverse_event"],
            "questionnaires": ["participant_id", "period", "bpi_interference",
                               "sleep_quality"]}
    for name, expected in cols.items():
        table = trial24[name]
        assert list(table.columns) == expected, name
        assert table["participant_id"].str.startswith("sub-").all(), name
        assert set(table["participant_id"]) == set(IDS_24), name
        assert table["period"].dtype.kind == "i" and set(table["period"]) == {1, 2, 3}, name
    diary = trial24["diary"]
    assert diary["day"].dtype.kind == "i" and diary["day"].between(1, 35).all()
    assert not diary.duplicated(["participant_id", "period", "day"]).any()
    values = diary[list(OUTCOMES)]
    assert all(dtype.kind == "f" for dtype in values.dtypes)
    observed = values.dropna()
    assert ((observed >= 0) & (observed <= 10)).all().all()
    assert np.allclose(observed * 10, np.round(observed * 10))  # one decimal
    assert (observed["pain_max"] >= observed["pain_avg"]).all()
    assert observed["pain_avg"].corr(observed["pain_night"]) > 0.6
    adverse = trial24["adverse_events"]["any_adverse_event"]
    assert adverse.dtype.kind == "i" and set(adverse) <= {0, 1}
    scores = trial24["questionnaires"][["bpi_interference", "sleep_quality"]]
    assert scores.notna().all().all() and ((scores >= 0) & (scores <= 10)).all().all()
    json.dumps(trial24["truth"])  # serialisable as it is


def test_every_participant_gets_each_treatment_once_in_balanced_sequences(trial24):
    alloc = trial24["allocation"].sort_values(["participant_id", "period"])
    seqs = alloc.groupby("participant_id")["treatment"].agg(tuple)
    assert len(seqs) == 24 and all(sorted(s) == sorted(TREATMENTS) for s in seqs)
    assert Counter(seqs) == {s: 4 for s in permutations(TREATMENTS)}
    assert trial24["truth"]["sequence_counts"] == {"-".join(s): 4
                                                   for s in permutations(TREATMENTS)}
    # a non-multiple of 6: every order once or twice; a single participant works too
    counts = Counter(simulate_trial(IDS_24[:8], np.random.default_rng(1))["allocation"]
                     .groupby("participant_id")["treatment"].agg(tuple))
    assert len(counts) == 6 and set(counts.values()) == {1, 2}
    one = simulate_trial(["sub-01"], np.random.default_rng(2))
    assert len(one["allocation"]) == 3 and len(one["diary"]) == 105
    assert one["truth"]["early_stops"] == []


def test_missing_days_and_early_stops(trial24):
    diary = trial24["diary"]
    na = diary[list(OUTCOMES)].isna()
    assert (na.all(axis=1) == na.any(axis=1)).all()  # a missing day is n/a in every column
    fraction = na["pain_avg"].mean()
    assert 0.05 <= fraction <= 0.11 and fraction == trial24["truth"]["missing_fraction"]
    assert not na.loc[diary["day"] == 1, "pain_avg"].any()
    stops = trial24["truth"]["early_stops"]
    assert len(stops) == 3  # 24 / 8
    last = diary.groupby(["participant_id", "period"])["day"].agg(["max", "count"])
    stopped = {(s["participant_id"], s["period"]): s["last_day"] for s in stops}
    for key, row in last.iterrows():
        if key in stopped:
            assert 24 <= stopped[key] <= 31 and row["max"] == row["count"] == stopped[key]
            entry = diary[(diary["participant_id"] == key[0]) & (diary["period"] == key[1])
                          & (diary["day"] == stopped[key])]
            assert entry["pain_avg"].notna().all()  # the last entry is there
        else:
            assert row["max"] == row["count"] == 35
    first_week = diary[diary["day"] <= 7].groupby(["participant_id", "period"])["pain_avg"]
    assert (first_week.count() >= 4).all() and len(first_week.count()) == 72
    assert len(simulate_trial(IDS_24[:6], np.random.default_rng(3))["truth"]
               ["early_stops"]) == 1


def test_icc_of_the_35_day_auc(trial120):
    wide = _aucs(trial120).pivot(index="participant_id", columns="period", values="auc")
    wide = wide.dropna()
    assert len(wide) > 60
    icc = _one_way_icc(wide.to_numpy())
    assert 0.7 <= icc <= 0.95, icc
    truth = trial120["truth"]
    assert truth["icc_target"] == 0.85 and abs(truth["icc_model"] - 0.85) < 0.02
    assert abs(icc - truth["icc_model"]) < 0.08


def test_planted_auc_contrasts_are_recovered(trial120):
    truth = trial120["truth"]["auc_contrasts"]["pain_avg"]
    wide = _aucs(trial120).pivot(index="participant_id", columns="treatment", values="auc")
    for active in ("ketamine", "ketamine_mg"):
        diff = (wide[active] - wide["placebo"]).dropna()
        se = diff.std(ddof=1) / np.sqrt(len(diff))
        planted = truth["35"][f"{active} - placebo"]
        # 4 SE + the small carry-over / clipping bias (about +0.3 NRS-days)
        assert abs(diff.mean() - planted) < 4 * se + 1.0, (active, diff.mean(), planted, se)
    assert truth["35"]["ketamine - placebo"] < truth["35"]["ketamine_mg - placebo"] < -5
    # the planted contrast grows with the horizon and follows the waning curve
    area = [truth[str(h)]["ketamine - placebo"] for h in (7, 15, 21, 28, 35)]
    assert all(np.diff(area) < 0)
    days = np.arange(35)
    delta = TRIAL_PARAMS["treatment_effect"]["ketamine"]
    assert np.isclose(area[-1], delta * np.trapezoid(np.exp(-days / 14.0)))
    night = trial120["truth"]["auc_contrasts"]["pain_night"]["35"]["ketamine - placebo"]
    assert np.isclose(night, 0.8 * area[-1])


def test_responders_get_the_larger_ketamine_effect():
    responder = np.arange(120) % 2 == 0
    trial = simulate_trial(IDS_120, np.random.default_rng(7), responder=responder)
    wide = _aucs(trial).pivot(index="participant_id", columns="treatment", values="auc")
    diff = (wide["ketamine"] - wide["placebo"]).reindex(IDS_120)
    r, nr = diff[responder].dropna(), diff[~responder].dropna()
    by = trial["truth"]["pain_avg_auc_contrasts_35_by_responder"]
    assert by["R"]["ketamine - placebo"] < by["NR"]["ketamine - placebo"]
    assert r.mean() < nr.mean() - 5
    for group, values in (("R", r), ("NR", nr)):
        se = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - by[group]["ketamine - placebo"]) < 4 * se + 1.0, group
    assert np.isclose(trial["truth"]["mean_gain"], 1.0)
    # responder changes the means only: same allocation, same draws, so a placebo period 1
    # (no treatment, no carry-over) is identical with and without responder status
    plain = simulate_trial(IDS_120, np.random.default_rng(7))
    pd.testing.assert_frame_equal(trial["allocation"], plain["allocation"])
    first = plain["allocation"].query("period == 1 and treatment == 'placebo'")
    keys = ["participant_id", "period"]
    pick = [d.merge(first[keys], on=keys) for d in (trial["diary"], plain["diary"])]
    assert len(pick[0]) > 500
    pd.testing.assert_frame_equal(*pick)
    with pytest.raises(ValueError, match="responder has shape"):
        simulate_trial(IDS_24, np.random.default_rng(0), responder=[True, False])


def test_adverse_events_and_questionnaires_follow_the_planted_effects():
    ids = [f"sub-{i:04d}" for i in range(1, 2001)]
    trial = simulate_trial(ids, np.random.default_rng(11))
    truth = trial["truth"]
    events = trial["adverse_events"].merge(trial["allocation"])
    rates = events.groupby("treatment")["any_adverse_event"].mean()
    assert rates["ketamine"] > rates["ketamine_mg"] > rates["placebo"]
    for treatment, rate in rates.items():
        expected = truth["adverse_marginal_probability"][treatment]
        assert abs(rate - expected) < 4 * np.sqrt(expected * (1 - expected) / len(ids))
    log_or = truth["adverse_log_odds_ratio"]["ketamine - placebo"]
    assert np.isclose(log_or, np.log(0.55 / 0.45) - np.log(0.15 / 0.85))
    scores = trial["questionnaires"].merge(trial["allocation"])
    for name, better in (("bpi_interference", -1), ("sleep_quality", 1)):
        wide = scores.pivot(index="participant_id", columns="treatment", values=name)
        diff = wide["ketamine"] - wide["placebo"]
        planted = truth["questionnaire_contrasts"][name]["ketamine - placebo"]
        assert better * planted > 0.5
        assert abs(diff.mean() - planted) < 4 * diff.std() / np.sqrt(len(diff)) + 0.05, name
    # the questionnaires carry the participant's pain level
    level = trial["diary"].groupby("participant_id")["pain_avg"].mean()
    bpi = scores.groupby("participant_id")["bpi_interference"].mean()
    assert level.corr(bpi) > 0.3


def test_same_seed_same_trial(trial24):
    again = simulate_trial(IDS_24, np.random.default_rng([0, 3]))
    for name in ("allocation", "diary", "adverse_events", "questionnaires"):
        pd.testing.assert_frame_equal(trial24[name], again[name])
    assert again["truth"] == trial24["truth"]
    other = simulate_trial(IDS_24, np.random.default_rng([1, 3]))
    assert not other["diary"]["pain_avg"].equals(trial24["diary"]["pain_avg"])
    assert TRIAL_PARAMS["treatments"] == TREATMENTS  # the parameters were not mutated


def _check_trial_files(bids, trial=None):
    pheno = bids / "phenotype"
    names = {"trial_allocation": "allocation", "pain_diary": "diary",
             "adverse_events": "adverse_events", "questionnaires": "questionnaires"}
    for stem, key in names.items():
        table = pd.read_csv(pheno / f"{stem}.tsv", sep="\t", na_values="n/a",
                            keep_default_na=False)
        side = json.loads((pheno / f"{stem}.json").read_text())
        assert side["MeasurementToolMetadata"]["Description"], stem
        assert set(side) - {"MeasurementToolMetadata"} == set(table.columns), stem
        assert all(side[c]["Description"] for c in table.columns), stem
        if trial is not None:
            pd.testing.assert_frame_equal(table, trial[key], check_dtype=False,
                                          check_exact=False, atol=1e-9)
    side = json.loads((pheno / "trial_allocation.json").read_text())
    assert set(side["treatment"]["Levels"]) == set(TREATMENTS)
    side = json.loads((pheno / "adverse_events.json").read_text())
    assert side["any_adverse_event"]["Levels"] == {"0": "no", "1": "yes"}
    assert json.loads((pheno / "pain_diary.json").read_text())["pain_avg"]["Units"]
    diary_text = (pheno / "pain_diary.tsv").read_text()
    assert "\tn/a\tn/a\tn/a\n" in diary_text and "nan" not in diary_text
    # long tables of the trial's participants only: hidden from the BIDS validator
    ignored = (bids / ".bidsignore").read_text().splitlines()
    assert ignored == [f"phenotype/{stem}.*" for stem in names]


def test_write_trial_round_trips(trial24, tmp_path):
    bids_io.write_trial(tmp_path, trial24)
    bids_io.write_trial(tmp_path, trial24)  # again: .bidsignore lists each pattern once
    _check_trial_files(tmp_path, trial24)


@pytest.mark.slow
def test_demo_dataset_has_the_patients_trial(shared_demo_bids, tmp_path):
    """The shared demo (2 subjects: one R, one NR) holds the trial of its patients and of
    trial-only participants (up to TRIAL_PARTICIPANTS, not in participants.tsv), and the
    truth beside it the trial's planted values (the responder gains by group)."""
    _check_trial_files(shared_demo_bids)
    groups = pd.read_csv(shared_demo_bids / "participants.tsv", sep="\t")
    patients = groups[groups["group"] != "HC"]
    alloc = pd.read_csv(shared_demo_bids / "phenotype" / "trial_allocation.tsv", sep="\t")
    ids = list(dict.fromkeys(alloc["participant_id"]))
    assert len(ids) == TRIAL_PARTICIPANTS
    assert set(patients["participant_id"]) <= set(ids)
    extra = sorted(set(ids) - set(groups["participant_id"]))
    assert len(extra) == TRIAL_PARTICIPANTS - len(patients)
    last = max(int(p[4:]) for p in groups["participant_id"])
    assert min(int(p[4:]) for p in extra) == last + 1  # labels after the cohort's
    truth_dir = shared_demo_bids.parent / (shared_demo_bids.name + "_truth")
    truth = json.loads((truth_dir / "trial_truth.json").read_text())
    gain = TRIAL_PARAMS["responder_gain"]
    assert {p: truth["participant_gain"][p] for p in patients["participant_id"]} == {
        p: gain[g] for p, g in zip(patients["participant_id"], patients["group"])}
    seed = 3  # tests/_demo_data.py builds the shared demo with --seed 3
    (tmp_path / "truth").mkdir()
    again = write_cohort_trial(tmp_path / "bids", tmp_path / "truth", groups, seed)
    assert json.loads(again.read_text()) == truth
    readme = (shared_demo_bids / "README").read_text()
    assert "trial_allocation.tsv" in readme and "pain_diary.tsv" in readme
