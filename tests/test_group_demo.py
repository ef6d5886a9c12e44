"""The group level on the demo generator's own phenotype files (bids_dfc.demo).

The demo writes participants.tsv, phenotype/pain.tsv and phenotype/tsp.tsv with sidecars
exactly as for a full demo dataset; the dFC files are written from the demo's true dFC plus
a small estimation error (no images are generated, so this runs in seconds). The options are
those of ``demo/group.toml``. The lead's end-to-end run checks the same on pipeline outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bids_dfc.group.run import run_group_level

demo_pheno = pytest.importorskip("bids_dfc.demo.phenotype")
demo_io = pytest.importorskip("bids_dfc.demo.bids_io")
config = pytest.importorskip("bids_dfc.config")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_group")
    rng = np.random.default_rng(20)
    cohort = demo_pheno.simulate_cohort(60, rng)
    bids, out = root / "bids", root / "out"
    demo_io.write_participants(bids, cohort)
    for row in cohort.itertuples():
        func = out / row.participant_id / "func"
        func.mkdir(parents=True)
        pd.DataFrame({
            "seed_a": ["DMN", "PCC"], "seed_b": ["DeS", "PAG"],
            "dcc_sd": [row.true_dfc + rng.normal(0, 0.005), rng.normal(0.2, 0.05)],
            "dcc_mean": 0.3, "pearson_r": 0.3, "a": 0.04, "b": 0.9, "converged": True,
            "n_volumes": 150, "mean_fd": 0.1,
        }).to_csv(func / f"{row.participant_id}_task-rest_seg-seeds_dfc.tsv", sep="\t",
                  index=False)
    opts = config.GroupOptions(relief_from=("pain_pre", "pain_post"), tsp_columns=["tsp_*"],
                               outcome="relief_pct", predictor="tsp", n_boot=2000)
    paths = run_group_level(bids, out, opts, random_seed=0)
    return cohort, bids, paths


def test_demo_phenotype_joined_and_derived(demo_run):
    cohort, bids, paths = demo_run
    gd = pd.read_csv(paths["group_dfc"], sep="\t").merge(
        cohort.add_prefix("true_"), left_on="participant_id", right_on="true_participant_id")
    assert len(gd) == 60 and (gd["group"] == gd["true_group"]).all()
    np.testing.assert_allclose(gd["tsp"], gd["true_tsp"], rtol=1e-3)
    pain = pd.read_csv(bids / "phenotype" / "pain.tsv", sep="\t", na_values="n/a")
    pain = pain.set_index("participant_id").loc[gd["participant_id"]]
    expect = 100 * (pain["pain_pre"] - pain["pain_post"]) / pain["pain_pre"]
    np.testing.assert_allclose(gd["relief_pct"], expect.to_numpy(), rtol=1e-9, equal_nan=True)
    patients = gd["true_group"] != "HC"
    assert gd.loc[~patients, "relief_pct"].isna().all()
    assert gd.loc[patients, "relief_pct"].notna().all()


def test_demo_planted_effects_recovered(demo_run):
    _, _, paths = demo_run
    st = pd.read_csv(paths["stats"], sep="\t")
    rho = st[st["contrast"] == "dcc_sd ~ relief_pct"].iloc[0]
    assert rho["statistic"] > 0.4 and rho["p"] < 0.05
    anova = st[(st["test"] == "one-way ANOVA") & (st["variable"] == "dcc_sd")].iloc[0]
    assert anova["p"] < 0.05
    tukey = st[(st["test"] == "Tukey HSD") & (st["contrast"] == "R - NR")].iloc[0]
    assert tukey["effect_size"] > 0 and tukey["p"] < 0.05
    med = pd.read_csv(paths["mediation"], sep="\t").set_index("path")
    assert med.loc["a", "p"] < 0.05 and med.loc["b", "p"] < 0.05
    assert med.loc["indirect", "ci_low"] > 0 and med.loc["indirect", "ci_bc_low"] > 0
    pred = pd.read_csv(paths["prediction"], sep="\t").set_index("model")
    assert pred.loc["dFC", "auc_ci_low"] > 0.5
