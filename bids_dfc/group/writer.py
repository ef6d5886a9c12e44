"""The group level's one writer of tables: a TSV (``n/a`` for missing) with a JSON sidecar
describing every column, and the descriptions of every column the group level writes
(``docs/group.md``, ``docs/trial.md``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from bids_dfc.io import atomic_write, write_json

__all__ = ["SIDECARS", "TRIAL_SIDECARS", "write_tsv"]

PathLike = str | os.PathLike

#: column descriptions of the tables in group/, by file stem
SIDECARS = {
    "group_dfc": {
        "participant_id": "BIDS participant label", "session_id": "BIDS session label",
        "task": "task entity of the run", "acq": "acq entity", "run": "run entity",
        "file": "participant-level dFC file (relative to output_dir)",
        "responder": "1 if the outcome >= the responder threshold, 0 if below",
        "relief_pct": "pain relief %, 100 x (pre - post) / pre",
        "tsp": "temporal summation of pain, 100 x (max - first) / first rating",
        "dcc_sd": "SD over time of the DCC correlation of the primary seed pair",
        "mean_fd": "mean framewise displacement of the run (mm)",
    },
    "stats": {
        "test": "exact test performed", "variable": "dependent variable (or x of a correlation)",
        "contrast": "groups compared, pair (second - first), or 'x ~ y'",
        "statistic": "test statistic (W, F, q, H, U, rho, a*b or AUC, see test)",
        "df": "degrees of freedom ('num, den' for F)", "p": "two-sided p-value (unadjusted)",
        "effect_size": "effect size (type in effect_size_type)",
        "ci_low": "lower bound of the 95 % CI of effect_size",
        "ci_high": "upper bound of the 95 % CI of effect_size", "n": "subjects in the test",
        "effect_size_type": "name of the effect size",
        "p_adj": "adjusted p (method in p_adj_method)", "p_adj_method": "adjustment",
        "note": "population, settings or 'skipped: <reason>'",
    },
    "mediation": {
        "path": "a (X->M), b (M->Y | X), c (total X->Y), c_prime (direct), indirect (a*b)",
        "x": "predictor X", "m": "mediator M", "y": "outcome Y",
        "estimate": "unstandardised coefficient", "se": "OLS SE, bootstrap SD for indirect",
        "statistic": "t value", "df": "residual df", "p": "two-sided t-test p",
        "ci_low": "95 % CI low (OLS t interval; bootstrap percentile for indirect)",
        "ci_high": "95 % CI high", "ci_bc_low": "bias-corrected bootstrap CI low (indirect)",
        "ci_bc_high": "bias-corrected bootstrap CI high (indirect)",
        "ci_method": "CI method", "n": "patients", "n_boot": "bootstrap resamples",
        "covariates": "covariates in the M and Y models",
    },
}

_MODEL_KEYS = {
    "outcome": "diary outcome or questionnaire score",
    "horizon": "AUC over days 1..horizon (n/a for a questionnaire score)",
    "analysis": "observed: missing diary days not imputed; locf: last observation carried "
                "forward (n/a for a questionnaire score)",
    "transform": "none, or log when the Shapiro-Wilk test of the residuals gave P < .05 "
                 "(log(y + 1) when a value is 0; see the report's notes)",
}
_CONTRAST = "pair of treatments, 'A - B' (A minus B)"
#: the column descriptions of group/trial/ (docs/trial.md), by table
TRIAL_SIDECARS = {
    "auc": {
        "participant_id": "BIDS participant label", "period": "trial period (1, 2, ...)",
        "treatment": "treatment of the period (trial_allocation.tsv)",
        "outcome": "diary outcome (a column of pain_diary.tsv)",
        "horizon": "days 1..horizon after the infusion",
        "analysis": _MODEL_KEYS["analysis"],
        "auc": "trapezoidal area under the daily diary curve (score x days); n/a when day 1 "
               "or the horizon's day is missing (observed) or no day is (locf)",
    },
    "contrasts": {
        **_MODEL_KEYS, "contrast": _CONTRAST,
        "estimate": "difference of the treatments' model means (REML linear mixed model; on "
                    "the log scale when transform is log)",
        "se": "standard error of the estimate", "ci_low": "normal 95 % CI low (Wald)",
        "ci_high": "normal 95 % CI high", "p": "two-sided Wald z test P (unadjusted)",
        "p_sidak": "Sidak-adjusted P over the k pairwise contrasts, 1 - (1 - p)^k",
        "effect_size": "estimate / sqrt(var_subject + var_residual)",
        "es_ci_low": "ci_low on the effect-size scale", "es_ci_high": "ci_high on it",
    },
    "omnibus": {
        **_MODEL_KEYS,
        "statistic": "Wald chi-square of the treatment terms (every treatment equal)",
        "df": "degrees of freedom (treatments - 1)", "p": "P of the chi-square",
        "p_seq_x_treat": "Wald P of the sequence x treatment interaction (the same model "
                         "with the interaction added)",
        "shapiro_p": "Shapiro-Wilk P of the model's residuals",
    },
    "icc": {
        **{k: v for k, v in _MODEL_KEYS.items() if k != "transform"},
        "icc": "intraclass correlation, var_subject / (var_subject + var_residual), from the "
               "REML fit",
    },
    "binary": {
        "outcome": "0/1 column of adverse_events.tsv", "contrast": _CONTRAST,
        "odds_ratio": "odds ratio of A against B (logistic mixed model, AGHQ with 7 points)",
        "ci_low": "Wald 95 % CI low", "ci_high": "Wald 95 % CI high",
        "p": "two-sided Wald z test P", "p_sidak": "Sidak-adjusted P over the k contrasts",
    },

    "prediction": {
        "model": "feature set", "features": "feature columns", "n": "patients",
        "n_positive": "responders", "auc": "leave-one-out ROC AUC",
        "auc_ci_low": "stratified bootstrap 95 % CI low", "auc_ci_high": "CI high",
        "accuracy": "accuracy at probability 0.5", "sensitivity": "at probability 0.5",
        "specificity": "at probability 0.5", "l2": "ridge penalty on standardised features",
    },
    "prediction_scores": {
        "participant_id": "BIDS participant label", "model": "feature set",
        "observed": "1 responder, 0 non-responder",
        "probability": "held-out (leave-one-out) predicted probability of response",
    },
    "exclusions": {
        "participant_id": "BIDS participant label", "session_id": "session (if any)",
        "file": "run file concerned (if any)",
        "scope": "run, participant, or the tests that lost the subject",
        "reason": "why the subject or run was excluded",
    },
    "descriptives": {
        "variable": "variable", "group": "group label", "n": "subjects",
        "mean": "mean", "sd": "standard deviation (ddof 1)", "median": "median",
        "q1": "25th percentile", "q3": "75th percentile",
    },
}


def write_tsv(path: PathLike, frame: pd.DataFrame, description: str,
              extra: Mapping[str, str] | None = None) -> None:
    """Atomic TSV (``n/a`` for missing) plus a JSON sidecar describing every column."""
    path = Path(path)
    atomic_write(path, frame.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.10g",
                                  lineterminator="\n"))
    known = {**SIDECARS.get(path.stem, {}), **(extra or {})}
    side: dict[str, object] = {"Description": description}
    side.update({c: {"Description": known.get(c, "phenotype column (see its BIDS sidecar)")}
                 for c in frame.columns})
    write_json(path.with_suffix(".json"), side)
