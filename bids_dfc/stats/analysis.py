"""Run the study's group statistics and the prognostic extension on the analysis tables.

Pure function of the tables built by :func:`bids_dfc.stats.table.assemble`; no I/O. A test
that cannot run (too few subjects, a variable not given) is kept as a ``stats.tsv`` row with
empty numbers and ``note = "skipped: <reason>"``, and listed in ``skipped``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bids_dfc.stats import tests_classic as tc
from bids_dfc.stats.mediation import mediation_model4
from bids_dfc.stats.prediction import evaluate_feature_sets

if TYPE_CHECKING:
    from bids_dfc.stats.table import AnalysisTables

__all__ = ["run_group_statistics"]

MIN_CORRELATION_N = 4
MIN_MEDIATION_N = 8
MIN_CLASS_N = 3


def _skip(rows, skipped, test, variable, contrast, reason):
    row = tc._row(test, variable, contrast, np.nan, "", np.nan, 0, note=f"skipped: {reason}")
    rows.append(row)
    skipped.append({"test": test, "variable": variable, "contrast": contrast, "reason": reason})


def _design(frame, covariates):
    """Numeric covariate matrix; non-numeric columns dummy-coded (first level dropped)."""
    if not covariates:
        return None
    parts = []
    for c in covariates:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col):
            parts.append(col.to_numpy(dtype=float)[:, None])
        else:
            dummies = pd.get_dummies(col.astype(str), drop_first=True, dtype=float)
            parts.append(dummies.to_numpy())
    return np.hstack(parts)


def _between_group_tests(rows, skipped, subj, var, gcol, order, parametric, normality=True):
    values, groups = subj[var].to_numpy(dtype=float), subj[gcol].to_numpy(dtype=object)
    if normality:
        rows += tc.shapiro_by_group(values, groups, order, var)
    name, test = (("one-way ANOVA", tc.anova_tukey) if parametric
                  else ("Kruskal-Wallis H", tc.kruskal_mwu))
    problem = (tc.group_size_problem(values, groups, order) if len(order) > 1
               else f"only one group ({order[0] if order else 'none'}) has subjects")
    if problem:
        _skip(rows, skipped, name, var, " vs ".join(order), problem)
        return False
    rows += test(values, groups, order, var)
    return True


def _spearman(rows, skipped, frame, x, y, note="", covariates=()):
    n = int((frame[x].notna() & frame[y].notna()).sum())
    if n < MIN_CORRELATION_N:
        _skip(rows, skipped, "Spearman rank correlation", x, f"{x} ~ {y}",
              f"{n} patients with both values (fewer than {MIN_CORRELATION_N})")
        return
    rows += tc.spearman(frame[x], frame[y], x, f"{x} ~ {y}", note=note)
    if covariates:
        data = frame[[x, y, *covariates]].dropna()
        if len(data) - len(covariates) < MIN_CORRELATION_N:
            _skip(rows, skipped, "partial Spearman correlation", x, f"{x} ~ {y}",
                  f"{len(data)} complete patients for {len(covariates)} covariates")
            return
        rows += tc.partial_spearman(data[x], data[y], _design(data, covariates), x,
                                    f"{x} ~ {y}",
                                    note=f"{note}; covariates: {', '.join(covariates)}")


def run_group_statistics(tables: AnalysisTables, *, n_boot: int, random_seed: int | None,
                         all_pairs: bool = False, pair: Sequence[str]) -> dict[str, Any]:
    """All group tests on one row per participant.

    The columns in ``tables.roles["compare"]`` (``--compare-columns``, e.g. psychological
    scores) get the tests dFC gets: Shapiro-Wilk per group, one-way ANOVA, Tukey HSD.

    Parameters
    ----------
    tables : bids_dfc.stats.table.AnalysisTables
    n_boot : int
        Bootstrap resamples (mediation indirect effect and AUC CIs); the study's value is
        ``bids_dfc.config.GroupOptions.n_boot``.
    random_seed : int or None
        Makes every bootstrap reproducible (None: fresh entropy).
    all_pairs : bool
        Also test every other seed pair; the ANOVA and Spearman p-values of all pairs
        (primary included) are then FDR-corrected (Benjamini-Hochberg) in ``p_adj``.
    pair : tuple of str
        The primary pair (its label in ``tables.pairs`` is ``"A-B"``); the study's is
        ``bids_dfc.config.GroupOptions.pair``.

    Returns
    -------
    dict
        ``stats``, ``descriptives``, ``mediation`` (DataFrame or None), ``mediation_boot``,
        ``prediction``, ``prediction_scores``, ``roc_curves``, ``skipped``, ``groups``.
    """
    roles, subj = tables.roles, tables.subjects
    gcol, dfc = roles["group"], roles["dfc"]
    order = [g for g in roles["labels"] if (subj[gcol] == g).any()]
    patients = subj[subj[gcol].isin(roles["labels"][1:])]
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    compare = roles.get("compare") or []
    desc = [tc.describe_by_group(subj[v], subj[gcol], order, v)
            for v in dict.fromkeys(v for v in (dfc, roles["predictor"], roles["outcome"],
                                               *compare) if v)]
    _group_comparisons(rows, skipped, subj, roles, order, compare)
    _correlations(rows, skipped, patients, roles)
    med, boot = _mediation(rows, skipped, patients, roles, n_boot, random_seed)
    pred, scores, curves = _prognosis(rows, skipped, patients, roles, n_boot, random_seed)
    if all_pairs and tables.pairs.shape[1] > 1:
        rows = _all_pairs(rows, skipped, tables, order, roles["outcome"], pair)
    stats_df = pd.DataFrame(rows, columns=tc.STATS_COLUMNS)
    return {"stats": stats_df, "descriptives": pd.concat(desc, ignore_index=True),
            "mediation": med, "mediation_boot": boot, "prediction": pred,
            "prediction_scores": scores, "roc_curves": curves, "skipped": skipped,
            "groups": order}


def _group_comparisons(rows, skipped, subj, roles, order, compare):
    """Between-group tests of dFC, the compare columns and the predictor; the ANCOVA."""
    gcol, dfc, predictor, covs = (roles["group"], roles["dfc"], roles["predictor"],
                                  roles["covariates"])
    _between_group_tests(rows, skipped, subj, dfc, gcol, order, parametric=True)
    for col in compare:  # e.g. psychological scores: the same tests as dFC
        _between_group_tests(rows, skipped, subj, col, gcol, order, parametric=True,
                             normality=col != predictor)  # the predictor's come below
    if covs:
        if tc.group_size_problem(subj[dfc], subj[gcol], order) or len(order) < 2:
            _skip(rows, skipped, "ANCOVA (OLS, type II SS)", dfc, " vs ".join(order),
                  "a group has fewer than 3 subjects")
        else:
            rows += tc.ancova(subj, dfc, gcol, covs, order)
    if predictor:
        _between_group_tests(rows, skipped, subj, predictor, gcol, order, parametric=False)
    else:
        _skip(rows, skipped, "Kruskal-Wallis H", "predictor", "", "no --predictor given")


def _correlations(rows, skipped, patients, roles):
    """Spearman (and partial Spearman) correlations of dFC and the predictor in patients."""
    dfc, outcome, predictor, covs = (roles["dfc"], roles["outcome"], roles["predictor"],
                                     roles["covariates"])
    if outcome:
        _spearman(rows, skipped, patients, dfc, outcome, note="patients", covariates=covs)
        if predictor:
            _spearman(rows, skipped, patients, predictor, outcome, note="patients",
                      covariates=covs)
    else:
        _skip(rows, skipped, "Spearman rank correlation", dfc, "", "no --outcome given")
    if predictor:
        _spearman(rows, skipped, patients, dfc, predictor, note="patients")


def _mediation(rows, skipped, patients, roles, n_boot, random_seed):
    """Predictor -> dFC -> outcome mediation in patients: (paths table, bootstrap) or None."""
    dfc, outcome, predictor, covs = (roles["dfc"], roles["outcome"], roles["predictor"],
                                     roles["covariates"])
    med, boot = None, None
    if outcome and predictor:
        data = patients[[predictor, dfc, outcome, *covs]].dropna()
        if len(data) < MIN_MEDIATION_N:
            _skip(rows, skipped, "mediation (PROCESS model 4)", f"{predictor} -> {dfc}",
                  outcome, f"{len(data)} complete patients (fewer than {MIN_MEDIATION_N})")
        else:
            res = mediation_model4(data[predictor], data[dfc], data[outcome],
                                   _design(data, covs), n_boot=n_boot, random_seed=random_seed)
            med, boot = res.paths, res.boot
            med.insert(1, "x", predictor)
            med.insert(2, "m", dfc)
            med.insert(3, "y", outcome)
            med["covariates"] = ", ".join(covs)
            ind = res.indirect
            rows.append(tc._row(
                "mediation indirect effect a*b (PROCESS model 4, percentile bootstrap CI)",
                f"{predictor} -> {dfc} -> {outcome}", "patients", ind["estimate"], "", np.nan,
                ind["n"], effect_size=ind["estimate"], effect_size_type="a*b",
                ci=(ind["ci_low"], ind["ci_high"]),
                note=f"{n_boot} resamples; bias-corrected CI {ind['ci_bc_low']:.4g} to "
                     f"{ind['ci_bc_high']:.4g}"))
    else:
        _skip(rows, skipped, "mediation (PROCESS model 4)", "", "",
              "needs both --predictor and --outcome")
    return med, boot


def _prognosis(rows, skipped, patients, roles, n_boot, random_seed):
    """LOO logistic prediction of responder status: (summary, scores, ROC curves)."""
    gcol, dfc, predictor = roles["group"], roles["dfc"], roles["predictor"]
    pred, scores = pd.DataFrame(), pd.DataFrame()
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    resp_label = roles["labels"][2]
    pat = patients.assign(_responder=(patients[gcol] == resp_label).astype(float))
    counts = pat["_responder"].value_counts()
    if min(counts.get(1.0, 0), counts.get(0.0, 0)) < MIN_CLASS_N:
        _skip(rows, skipped, "LOO logistic regression ROC AUC", "responder", "",
              f"needs at least {MIN_CLASS_N} responders and non-responders "
              f"(have {int(counts.get(1.0, 0))} and {int(counts.get(0.0, 0))})")
    else:
        sets = {"dFC": [dfc]}
        if predictor:
            sets[predictor] = [predictor]
            sets[f"dFC + {predictor}"] = [dfc, predictor]
        pred, scores, curves = evaluate_feature_sets(
            pat, "_responder", sets, n_boot=n_boot,
            random_seed=None if random_seed is None else random_seed + 1)
        for r in pred.itertuples():
            rows.append(tc._row(
                "LOO logistic regression ROC AUC (stratified percentile bootstrap CI)",
                r.model, f"{resp_label} vs {roles['labels'][1]}", r.auc, "", np.nan, r.n,
                effect_size=r.auc, effect_size_type="ROC AUC",
                ci=(r.auc_ci_low, r.auc_ci_high), note=f"features: {r.features}"))
    return pred, scores, curves


def _all_pairs(rows, skipped, tables, order, outcome, pair):
    """ANOVA and Spearman for every seed pair, BH-FDR over pairs in each family."""
    roles = tables.roles
    gcol = roles["group"]
    primary = f"{pair[0]}-{pair[1]}"
    subj = tables.subjects[["participant_id", gcol]].merge(
        tables.pairs.reset_index(), on="participant_id", how="left")
    patients = subj[subj[gcol].isin(roles["labels"][1:])]
    for label in tables.pairs.columns:
        if label == primary:
            continue
        var = f"dcc_sd[{label}]"
        sub = subj.rename(columns={label: var})
        problem = tc.group_size_problem(sub[var], sub[gcol], order)
        if problem:
            _skip(rows, skipped, "one-way ANOVA", var, " vs ".join(order), problem)
        else:
            rows += tc.anova_tukey(sub[var], sub[gcol], order, var)[:1]
        if outcome:
            pat = patients.rename(columns={label: var}).assign(
                **{outcome: tables.subjects.set_index("participant_id")
                   .loc[patients["participant_id"], outcome].to_numpy()})
            _spearman(rows, skipped, pat, var, outcome, note="patients")
    for test in ("one-way ANOVA", "Spearman rank correlation"):
        fam = [r for r in rows if r["test"] == test and np.isfinite(r["p"])
               and (r["variable"] == roles["dfc"] or r["variable"].startswith("dcc_sd["))
               and (test != "Spearman rank correlation" or r["contrast"].endswith(f"~ {outcome}"))]
        adj = tc.fdr_bh([r["p"] for r in fam])
        for r, pa in zip(fam, adj):
            r["p_adj"], r["p_adj_method"] = float(pa), f"fdr_bh over {len(fam)} seed pairs"
    return rows
