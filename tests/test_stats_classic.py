"""Classical group tests against independent implementations.

References: statsmodels OLS + ``anova_lm`` (ANOVA), statsmodels ``pairwise_tukeyhsd`` (Tukey),
pingouin ``ancova``/``mwu`` (ANCOVA, rank-biserial), and the textbook formulas written out
here with numpy (Kruskal-Wallis H with tie correction, Mann-Whitney U from rank sums,
Spearman rho = Pearson correlation of ranks, Benjamini-Hochberg step-up).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multicomp import pairwise_tukeyhsd

from bids_dfc.stats import tests_classic as tc

ORDER = ["HC", "NR", "R"]


@pytest.fixture
def three_groups():
    rng = np.random.default_rng(42)
    sizes = {"HC": 13, "NR": 9, "R": 11}  # uneven on purpose
    means = {"HC": 0.52, "NR": 0.51, "R": 0.55}
    vals, grp = [], []
    for g, n in sizes.items():
        vals.append(rng.normal(means[g], 0.04, n))
        grp += [g] * n
    frame = pd.DataFrame({"y": np.concatenate(vals), "g": grp})
    frame["age"] = rng.normal(45, 10, len(frame))
    frame["sex"] = rng.choice(["F", "M"], len(frame))
    return frame


def test_anova_and_tukey_match_statsmodels(three_groups):
    rows = tc.anova_tukey(three_groups["y"], three_groups["g"], ORDER, "y")
    fit = smf.ols("y ~ C(g)", data=three_groups).fit()
    ref = anova_lm(fit, typ=1).loc["C(g)"]
    assert rows[0]["test"] == "one-way ANOVA"
    np.testing.assert_allclose(rows[0]["statistic"], ref["F"], rtol=1e-10)
    np.testing.assert_allclose(rows[0]["p"], ref["PR(>F)"], rtol=1e-8)
    assert rows[0]["df"] == "2, 30"
    np.testing.assert_allclose(rows[0]["effect_size"],
                               ref["sum_sq"] / (ref["sum_sq"] + fit.ssr), rtol=1e-10)
    tk = pairwise_tukeyhsd(three_groups["y"], three_groups["g"])
    ref = pd.DataFrame(tk.summary().data[1:], columns=tk.summary().data[0])
    for r, (_, s) in zip(rows[1:], ref.iterrows()):
        assert r["contrast"] == f"{s['group2']} - {s['group1']}"
        np.testing.assert_allclose(r["effect_size"], tk.meandiffs[_], rtol=1e-10)
        np.testing.assert_allclose([r["ci_low"], r["ci_high"]], tk.confint[_], rtol=1e-4)
        np.testing.assert_allclose(r["p"], tk.pvalues[_], rtol=1e-3, atol=1e-5)
    # q statistic: |meandiff| / SE as in the studentized range definition
    np.testing.assert_allclose([r["statistic"] for r in rows[1:]],
                               np.abs(tk.meandiffs) / tk.std_pairs, rtol=1e-10)


def test_ancova_matches_pingouin(three_groups):
    row = tc.ancova(three_groups, "y", "g", ["age"], ORDER)[0]
    ref = pg.ancova(data=three_groups, dv="y", between="g", covar="age").set_index("Source")
    np.testing.assert_allclose(row["statistic"], ref.loc["g", "F"], rtol=1e-8)
    np.testing.assert_allclose(row["p"], ref.loc["g", "p_unc"], rtol=1e-6)
    np.testing.assert_allclose(row["effect_size"], ref.loc["g", "np2"], rtol=1e-8)
    # a categorical covariate is accepted (dummy-coded by the formula)
    assert np.isfinite(tc.ancova(three_groups, "y", "g", ["age", "sex"], ORDER)[0]["p"])


def test_kruskal_and_mwu_match_formulas(three_groups):
    y = np.round(three_groups["y"].to_numpy(), 2)  # rounding makes ties
    g = three_groups["g"].to_numpy()
    rows = tc.kruskal_mwu(y, g, ORDER, "y")
    ranks = stats.rankdata(y)
    n = y.size
    h = 12 / (n * (n + 1)) * sum(ranks[g == k].sum() ** 2 / (g == k).sum() for k in ORDER)
    h -= 3 * (n + 1)
    _, counts = np.unique(y, return_counts=True)
    h /= 1 - (counts**3 - counts).sum() / (n**3 - n)
    np.testing.assert_allclose(rows[0]["statistic"], h, rtol=1e-12)
    np.testing.assert_allclose(rows[0]["p"], stats.chi2.sf(h, 2), rtol=1e-12)
    np.testing.assert_allclose(rows[0]["effect_size"], h / (n - 1), rtol=1e-12)
    r_vs_nr = next(r for r in rows if r["contrast"] == "R vs NR")
    x1, x2 = y[g == "R"], y[g == "NR"]
    rk = stats.rankdata(np.concatenate([x1, x2]))
    u1 = rk[: x1.size].sum() - x1.size * (x1.size + 1) / 2
    np.testing.assert_allclose(r_vs_nr["statistic"], u1, rtol=1e-12)
    ref = pg.mwu(x1, x2)
    np.testing.assert_allclose(r_vs_nr["p"], ref["p_val"].iloc[0], rtol=1e-10)
    np.testing.assert_allclose(r_vs_nr["effect_size"], ref["RBC"].iloc[0], rtol=1e-10)
    holm = [r["p_adj"] for r in rows[1:]]
    raw = np.array([r["p"] for r in rows[1:]])
    order = np.argsort(raw)
    expect = np.minimum(1, np.maximum.accumulate(raw[order] * (3 - np.arange(3))))
    np.testing.assert_allclose(np.array(holm)[order], expect, rtol=1e-12)


def test_spearman_matches_rank_pearson():
    rng = np.random.default_rng(5)
    x = rng.normal(size=27)
    y = 0.5 * x + rng.normal(size=27)
    x[3] = np.nan  # incomplete pair dropped
    row = tc.spearman(x, y, "x", "x ~ y")[0]
    ok = ~np.isnan(x)
    rho = np.corrcoef(stats.rankdata(x[ok]), stats.rankdata(y[ok]))[0, 1]
    np.testing.assert_allclose(row["statistic"], rho, rtol=1e-12)
    t = rho * np.sqrt(24 / (1 - rho**2))
    np.testing.assert_allclose(row["p"], 2 * stats.t.sf(abs(t), 24), rtol=1e-10)
    assert row["n"] == 26 and row["ci_low"] < rho < row["ci_high"]
    z = np.arctanh(rho)
    half = 1.959963984540054 * np.sqrt((1 + rho**2 / 2) / 23)
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]],
                               np.tanh([z - half, z + half]), rtol=1e-10)


def test_fdr_bh_step_up():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.2])
    adj = tc.fdr_bh(p)
    raw = p[~np.isnan(p)]
    m = raw.size
    order = np.argsort(raw)
    stepped = np.minimum.accumulate((raw[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    expect = np.empty(m)
    expect[order] = np.minimum(stepped, 1)
    np.testing.assert_allclose(adj[~np.isnan(p)], expect, rtol=1e-12)
    assert np.isnan(adj[2])


def test_group_size_problem_and_shapiro():
    v = np.arange(7.0)
    g = np.array(["HC"] * 3 + ["NR"] * 2 + ["R"] * 2)
    assert tc.group_size_problem(v, g, ORDER) == "group NR has 2 subjects with data (fewer than 3)"
    rows = tc.shapiro_by_group(v, g, ORDER, "v")
    assert [r["contrast"] for r in rows] == ["HC"]
    np.testing.assert_allclose(rows[0]["statistic"], stats.shapiro([0.0, 1, 2]).statistic)


def test_shapiro_on_a_constant_group_and_integer_scores():
    """A questionnaire score at its floor in one group: no W for that group (scipy would
    warn and return W = 1), the other groups and the ANOVA/Tukey rows still match scipy
    ``f_oneway`` and statsmodels ``pairwise_tukeyhsd``."""
    score = np.array([0, 0, 0, 0, 5, 9, 7, 12, 8, 6, 11, 14, 9])
    g = np.array(["HC"] * 4 + ["NR"] * 4 + ["R"] * 5)
    rows = tc.shapiro_by_group(score, g, ORDER, "hads_depression")
    assert [r["contrast"] for r in rows] == ORDER
    assert np.isnan(rows[0]["statistic"]) and np.isnan(rows[0]["p"]) and rows[0]["n"] == 4
    assert rows[0]["note"] == "not defined: all 4 values equal 0"
    ref = stats.shapiro(score[g == "R"])
    np.testing.assert_allclose([rows[2]["statistic"], rows[2]["p"]], [ref.statistic, ref.pvalue])
    rows = tc.anova_tukey(score, g, ORDER, "hads_depression")
    ref = stats.f_oneway(*(score[g == k] for k in ORDER))
    np.testing.assert_allclose([rows[0]["statistic"], rows[0]["p"]], [ref.statistic, ref.pvalue],
                               rtol=1e-12)
    tk = pairwise_tukeyhsd(score, g)
    np.testing.assert_allclose([r["effect_size"] for r in rows[1:]], tk.meandiffs, rtol=1e-12)
    np.testing.assert_allclose([r["p"] for r in rows[1:]], tk.pvalues, rtol=1e-3, atol=1e-5)


def test_partial_spearman_matches_pingouin():
    rng = np.random.default_rng(17)
    n = 29
    age = rng.normal(50, 10, n)
    fd = rng.gamma(2, 0.1, n)
    x = 0.02 * age + rng.normal(size=n)
    y = 0.5 * x + 0.03 * age - fd + rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "y": y, "age": age, "fd": fd})
    row = tc.partial_spearman(x, y, frame[["age", "fd"]].to_numpy(), "x", "x ~ y")[0]
    ref = pg.partial_corr(frame, x="x", y="y", covar=["age", "fd"], method="spearman")
    np.testing.assert_allclose(row["statistic"], ref["r"].iloc[0], rtol=1e-10)
    np.testing.assert_allclose(row["p"], ref["p_val"].iloc[0], rtol=1e-8)
    assert row["n"] == n and row["df"] == "25"
