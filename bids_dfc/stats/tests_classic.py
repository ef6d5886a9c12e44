"""Classical group tests of the study, each returning rows of ``stats.tsv``.

Every function returns a list of dicts with the keys of :data:`STATS_COLUMNS`; the ``test``
value names the exact test. The numbers come from scipy and statsmodels (the tests in
``tests/test_stats_classic.py`` check them against the other library where one exists).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = [
    "MIN_GROUP_SIZE",
    "STATS_COLUMNS",
    "ancova",
    "anova_tukey",
    "describe_by_group",
    "fdr_bh",
    "group_size_problem",
    "kruskal_mwu",
    "partial_spearman",
    "shapiro_by_group",
    "spearman",
]

#: columns of stats.tsv, in order
STATS_COLUMNS = [
    "test", "variable", "contrast", "statistic", "df", "p", "effect_size", "ci_low", "ci_high",
    "n", "effect_size_type", "p_adj", "p_adj_method", "note",
]
#: one row of stats.tsv (keys: STATS_COLUMNS)
Row = dict[str, Any]
#: smallest group a test is run on (smaller groups skip the test, with the reason reported)
MIN_GROUP_SIZE = 3


def _row(test, variable, contrast, statistic, df, p, n, *, effect_size=np.nan,
         effect_size_type="", ci=(np.nan, np.nan), p_adj=np.nan, p_adj_method="", note=""):
    return {
        "test": test, "variable": variable, "contrast": contrast,
        "statistic": float(statistic), "df": df, "p": float(p),
        "effect_size": float(effect_size), "ci_low": float(ci[0]), "ci_high": float(ci[1]),
        "n": int(n), "effect_size_type": effect_size_type, "p_adj": float(p_adj),
        "p_adj_method": p_adj_method, "note": note,
    }


def _fmt_df(*dfs):
    return ", ".join(f"{d:g}" for d in dfs)


def _split(values, groups, order):
    values = np.asarray(values, dtype=float)
    groups = np.asarray(groups, dtype=object)
    ok = ~np.isnan(values)
    return [values[ok & (groups == g)] for g in order]


def group_size_problem(values: ArrayLike, groups: ArrayLike, order: Sequence[str],
                       minimum: int = MIN_GROUP_SIZE) -> str | None:
    """Return why a between-group test cannot run (a too-small group), or ``None``.

    Examples
    --------
    >>> group_size_problem([1, 2, 3, 4, 5], ["a", "a", "a", "b", "b"], ["a", "b"])
    'group b has 2 subjects with data (fewer than 3)'
    """
    for g, v in zip(order, _split(values, groups, order)):
        if v.size < minimum:
            return f"group {g} has {v.size} subjects with data (fewer than {minimum})"
    return None


def describe_by_group(values: ArrayLike, groups: ArrayLike, order: Sequence[str],
                      variable: str) -> pd.DataFrame:
    """n, mean, SD, median and quartiles of one variable per group (a DataFrame)."""
    rows = []
    for g, v in zip(order, _split(values, groups, order)):
        q1, med, q3 = (np.percentile(v, [25, 50, 75]) if v.size else (np.nan,) * 3)
        rows.append({
            "variable": variable, "group": g, "n": v.size,
            "mean": v.mean() if v.size else np.nan,
            "sd": v.std(ddof=1) if v.size > 1 else np.nan,
            "median": med, "q1": q1, "q3": q3,
        })
    return pd.DataFrame(rows)


def shapiro_by_group(values: ArrayLike, groups: ArrayLike, order: Sequence[str],
                     variable: str) -> list[Row]:
    """Shapiro-Wilk normality test in each group with at least 3 values.

    A group whose values are all equal (e.g. a questionnaire score at its floor) has no
    defined W: its row has empty numbers and a note saying so.
    """
    rows = []
    for g, v in zip(order, _split(values, groups, order)):
        if v.size < MIN_GROUP_SIZE:
            continue
        if np.ptp(v) == 0:
            rows.append(_row("Shapiro-Wilk", variable, g, np.nan, "", np.nan, v.size,
                             note=f"not defined: all {v.size} values equal {v[0]:g}"))
            continue
        res = stats.shapiro(v)
        rows.append(_row("Shapiro-Wilk", variable, g, res.statistic, "", res.pvalue, v.size,
                         note="normality within group"))
    return rows


def anova_tukey(values: ArrayLike, groups: ArrayLike, order: Sequence[str],
                variable: str) -> list[Row]:
    """One-way ANOVA across groups, then Tukey HSD for every pair.

    ANOVA: ``scipy.stats.f_oneway``, effect size eta squared. Tukey HSD:
    ``scipy.stats.tukey_hsd``; ``statistic`` is the studentized range q, ``effect_size`` the
    mean difference (second group minus first, as in statsmodels' ``pairwise_tukeyhsd``),
    ``ci_low``/``ci_high`` its simultaneous 95 % CI and ``p`` the family-wise adjusted p.
    """
    samples = _split(values, groups, order)
    n_tot = sum(v.size for v in samples)
    k = len(samples)
    f = stats.f_oneway(*samples)
    grand = np.concatenate(samples).mean()
    ss_between = sum(v.size * (v.mean() - grand) ** 2 for v in samples)
    ss_within = sum(((v - v.mean()) ** 2).sum() for v in samples)
    eta2 = ss_between / (ss_between + ss_within)
    contrast = " vs ".join(order)
    rows = [_row("one-way ANOVA", variable, contrast, f.statistic, _fmt_df(k - 1, n_tot - k),
                 f.pvalue, n_tot, effect_size=eta2, effect_size_type="eta squared")]
    tk = stats.tukey_hsd(*samples)
    ci = tk.confidence_interval(0.95)
    mse = ss_within / (n_tot - k)
    for i, j in itertools.combinations(range(k), 2):
        diff = samples[j].mean() - samples[i].mean()
        q = abs(diff) / np.sqrt(mse / 2 * (1 / samples[i].size + 1 / samples[j].size))
        rows.append(_row(
            "Tukey HSD", variable, f"{order[j]} - {order[i]}", q, _fmt_df(n_tot - k),
            tk.pvalue[j, i], samples[i].size + samples[j].size, effect_size=diff,
            effect_size_type="mean difference", ci=(ci.low[j, i], ci.high[j, i]),
            p_adj=tk.pvalue[j, i], p_adj_method="Tukey HSD"))
    return rows


def ancova(frame: pd.DataFrame, variable: str, group: str, covariates: Sequence[str],
           order: Sequence[str]) -> list[Row]:
    """Group effect adjusted for covariates: OLS with type II sums of squares (statsmodels).

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per subject; numeric ``variable``, ``group`` labels, covariate columns
        (non-numeric covariates are treated as categorical).
    variable, group : str
        Dependent variable and group column.
    covariates : list of str
        Adjustment columns.
    order : list of str
        Groups included.

    Returns
    -------
    list of dict
        One row, effect size partial eta squared.
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    data = frame[frame[group].isin(order)][[variable, group, *covariates]].dropna()
    data = data.rename(columns={c: f"v{i}" for i, c in enumerate([variable, group, *covariates])})
    terms = ["C(v1)"] + [
        f"v{i + 2}" if pd.api.types.is_numeric_dtype(data[f"v{i + 2}"]) else f"C(v{i + 2})"
        for i in range(len(covariates))
    ]
    fit = smf.ols("v0 ~ " + " + ".join(terms), data=data).fit()
    table = anova_lm(fit, typ=2)
    ss_g, ss_r = table.loc["C(v1)", "sum_sq"], table.loc["Residual", "sum_sq"]
    return [_row(
        "ANCOVA (OLS, type II SS)", variable, " vs ".join(order), table.loc["C(v1)", "F"],
        _fmt_df(table.loc["C(v1)", "df"], table.loc["Residual", "df"]),
        table.loc["C(v1)", "PR(>F)"], len(data), effect_size=ss_g / (ss_g + ss_r),
        effect_size_type="partial eta squared", note="covariates: " + ", ".join(covariates))]


def kruskal_mwu(values: ArrayLike, groups: ArrayLike, order: Sequence[str],
                variable: str) -> list[Row]:
    """Kruskal-Wallis H across groups, then two-sided Mann-Whitney U for every pair.

    Kruskal-Wallis effect size: epsilon squared, H / (n - 1). Mann-Whitney: ``statistic`` is
    U of the first named group, ``effect_size`` the rank-biserial correlation
    (2 U / (n1 n2) - 1, positive when the first group tends to be larger); ``p_adj`` is
    Holm-adjusted over the pairs.
    """
    samples = _split(values, groups, order)
    n_tot = sum(v.size for v in samples)
    h = stats.kruskal(*samples)
    rows = [_row("Kruskal-Wallis H", variable, " vs ".join(order), h.statistic,
                 _fmt_df(len(samples) - 1), h.pvalue, n_tot,
                 effect_size=h.statistic / (n_tot - 1), effect_size_type="epsilon squared")]
    pairs = []
    for i, j in itertools.combinations(range(len(samples)), 2):
        x, y = samples[j], samples[i]
        u = stats.mannwhitneyu(x, y, alternative="two-sided")
        pairs.append(_row(
            "Mann-Whitney U (two-sided)", variable, f"{order[j]} vs {order[i]}", u.statistic,
            "", u.pvalue, x.size + y.size, effect_size=2 * u.statistic / (x.size * y.size) - 1,
            effect_size_type="rank-biserial correlation"))
    if pairs:
        adj = multipletests([r["p"] for r in pairs], method="holm")[1]
        for r, pa in zip(pairs, adj):
            r["p_adj"], r["p_adj_method"] = float(pa), "holm"
    return rows + pairs


def spearman(x: ArrayLike, y: ArrayLike, variable: str, contrast: str, *,
             note: str = "") -> list[Row]:
    """Spearman rank correlation (``scipy.stats.spearmanr``) on complete pairs.

    The 95 % CI uses Fisher's z with the Bonett & Wright (2000) variance
    (1 + rho^2 / 2) / (n - 3).
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    ok = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[ok], ys[ok]
    res = stats.spearmanr(xs, ys)
    rho, n = float(res.statistic), xs.size
    ci = (np.nan, np.nan)
    if n > 3 and abs(rho) < 1:
        half = stats.norm.ppf(0.975) * np.sqrt((1 + rho**2 / 2) / (n - 3))
        ci = (np.tanh(np.arctanh(rho) - half), np.tanh(np.arctanh(rho) + half))
    return [_row("Spearman rank correlation", variable, contrast, rho, _fmt_df(n - 2),
                 res.pvalue, n, effect_size=rho, effect_size_type="Spearman rho", ci=ci,
                 note=note)]


def partial_spearman(x: ArrayLike, y: ArrayLike, covariates: ArrayLike, variable: str,
                     contrast: str, *, note: str = "") -> list[Row]:
    """Spearman correlation adjusted for covariates (rank-based partial correlation).

    Every variable (x, y and each covariate column) is rank-transformed, x and y ranks are
    residualised on the covariate ranks by least squares, and the residuals are correlated;
    p from t with n - 2 - k df (as ppcor and pingouin's ``partial_corr(method="spearman")``).

    Parameters
    ----------
    x, y : array-like, shape (n,)
    covariates : array-like, shape (n, k)
        Numeric covariates (dummy-code categorical ones); rows with NaN anywhere are dropped.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    cov = np.asarray(covariates, dtype=float).reshape(x.size, -1)
    ok = ~(np.isnan(x) | np.isnan(y) | np.isnan(cov).any(axis=1))
    n, k = int(ok.sum()), cov.shape[1]
    ranks = np.column_stack([stats.rankdata(c) for c in (x[ok], y[ok], *cov[ok].T)])
    design = np.column_stack([np.ones(n), ranks[:, 2:]])
    resid = ranks[:, :2] - design @ np.linalg.lstsq(design, ranks[:, :2], rcond=None)[0]
    r = float(np.corrcoef(resid[:, 0], resid[:, 1])[0, 1])
    dof = n - 2 - k
    p = 2 * stats.t.sf(abs(r) * np.sqrt(dof / max(1 - r**2, 1e-300)), dof)
    ci = (np.nan, np.nan)
    if n - 3 - k > 0 and abs(r) < 1:
        half = stats.norm.ppf(0.975) / np.sqrt(n - 3 - k)
        ci = (np.tanh(np.arctanh(r) - half), np.tanh(np.arctanh(r) + half))
    return [_row("partial Spearman correlation", variable, contrast, r, _fmt_df(dof), p, n,
                 effect_size=r, effect_size_type="partial Spearman rho", ci=ci, note=note)]


def fdr_bh(pvalues: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (statsmodels ``multipletests``), NaN kept."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return out
