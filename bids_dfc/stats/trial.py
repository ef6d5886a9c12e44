"""The crossover trial's analysis (nipype-free; docs/trial.md): diary AUCs, the crossover
mixed models of every continuous outcome, the logistic mixed models of the binary ones, the
ICCs and the per-participant diary response.

:func:`run_trial` takes the checked inputs (:class:`TrialData`, read by
:mod:`bids_dfc.group.trial_inputs`) and returns every table of ``group/trial/`` plus what
the report draws; it writes nothing (the group level's writer does).

* Diary outcomes: one AUC per participant, period, outcome, horizon and analysis
  (:func:`bids_dfc.stats.diary.diary_auc`), each combination modelled by
  :func:`bids_dfc.stats.crossover.fit_crossover`.
* Questionnaire scores: one value per participant and period, the same model (``horizon``
  and ``analysis`` are n/a in the tables).
* Binary outcomes (adverse events): logistic mixed model, random intercept per participant,
  fixed effects treatment + period (:func:`bids_dfc.stats.glmm.fit_logistic_glmm`);
  pairwise odds ratios with Wald CIs and Sidak P.
* Response: ``relief_pct`` of each active treatment against the reference, from the
  primary diary outcome's AUC at the longest horizon, as observed and with LOCF.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bids_dfc.stats.crossover import CrossoverFit, fit_crossover, sidak, treatment_pairs
from bids_dfc.stats.diary import ANALYSES, diary_auc
from bids_dfc.stats.glmm import fit_logistic_glmm

__all__ = ["TRIAL_COLUMNS", "TrialData", "TrialResults", "response_column", "run_trial"]

#: the primary diary outcome when the diary has it (else its first outcome column)
PRIMARY_OUTCOME = "pain_avg"
_Z = float(stats.norm.ppf(0.975))

#: the columns of every table of group/trial/ (docs/trial.md), in order
TRIAL_COLUMNS = {
    "auc": ["participant_id", "period", "treatment", "outcome", "horizon", "analysis", "auc"],
    "contrasts": ["outcome", "horizon", "analysis", "transform", "contrast", "estimate", "se",
                  "ci_low", "ci_high", "p", "p_sidak", "effect_size", "es_ci_low",
                  "es_ci_high"],
    "omnibus": ["outcome", "horizon", "analysis", "transform", "statistic", "df", "p",
                "p_seq_x_treat", "shapiro_p"],
    "icc": ["outcome", "horizon", "analysis", "icc"],
    "binary": ["outcome", "contrast", "odds_ratio", "ci_low", "ci_high", "p", "p_sidak"],
}


@dataclass
class TrialData:
    """The trial's checked inputs (one row per allocated participant and period)."""

    allocation: pd.DataFrame  #: participant_id, period (int), treatment (str)
    diary: pd.DataFrame  #: participant_id, period, day (int), one float column per outcome
    diary_outcomes: list[str]
    n_days: int  #: days of a diary period (days run 1..n_days)
    binary: pd.DataFrame | None = None  #: participant_id, period, 0/1 columns
    binary_outcomes: list[str] = field(default_factory=list)
    questionnaires: pd.DataFrame | None = None  #: participant_id, period, scores
    questionnaire_outcomes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  #: what the inputs' check found


@dataclass
class TrialResults:
    """Every table of group/trial/ and what the report shows."""

    reference: str
    horizons: list[int]
    treatments: list[str]  #: the reference first, then the others sorted
    primary: tuple[str, int, str]  #: (outcome, horizon, analysis) of the primary endpoint
    auc: pd.DataFrame
    contrasts: pd.DataFrame
    omnibus: pd.DataFrame
    icc: pd.DataFrame
    binary: pd.DataFrame
    response: pd.DataFrame
    descriptives: pd.DataFrame  #: outcome, horizon, analysis, treatment, n, mean, sd
    daily: pd.DataFrame  #: outcome, treatment, day, n, mean, se (observed entries)
    missing: pd.DataFrame  #: per treatment: periods, days expected, missing, last day missing
    models: pd.DataFrame  #: per model: n_obs, n_participants, dropped columns, notes
    residuals: dict[tuple, np.ndarray]  #: (outcome, horizon, analysis) -> residuals
    notes: list[str] = field(default_factory=list)


def response_column(treatment: str, analysis: str) -> str:
    """Column of response.tsv: ``relief_pct_<treatment>_<analysis>`` (characters other than
    letters, digits and ``_`` in the label become ``_``, so it is usable as ``--outcome``).

    >>> response_column("ketamine+magnesium", "locf")
    'relief_pct_ketamine_magnesium_locf'
    """
    return f"relief_pct_{re.sub(r'[^A-Za-z0-9_]', '_', str(treatment))}_{analysis}"


def _diary_arrays(data: TrialData) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """(participant, period) -> outcome -> values of days 1..n_days (NaN = missing)."""
    out: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    diary = data.diary
    for (pid, period), rows in diary.groupby(["participant_id", "period"], sort=True):
        index = rows["day"].to_numpy(dtype=int) - 1
        arrays = {}
        for outcome in data.diary_outcomes:
            values = np.full(data.n_days, np.nan)
            values[index] = rows[outcome].to_numpy(dtype=float)
            arrays[outcome] = values
        out[(str(pid), int(period))] = arrays  # type: ignore[call-overload]
    return out


_Arrays = dict[tuple[str, int], dict[str, np.ndarray]]


def _auc_table(data: TrialData, arrays: _Arrays, horizons: Sequence[int]) -> pd.DataFrame:
    rows = []
    alloc = data.allocation
    for pid, period, treatment in zip(alloc["participant_id"], alloc["period"],
                                      alloc["treatment"]):
        key = (str(pid), int(period))
        days = arrays.get(key)
        for outcome in data.diary_outcomes:
            for horizon in horizons:
                for analysis in ANALYSES:
                    auc = (diary_auc(days[outcome], horizon, analysis) if days is not None
                           else float("nan"))
                    rows.append((key[0], key[1], treatment, outcome, int(horizon),
                                 analysis, auc))
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS["auc"])


def _model_rows(fit: CrossoverFit, outcome: str, horizon: int | None,
                analysis: str | None) -> tuple[list[dict], dict, dict]:
    label = {"outcome": outcome, "horizon": horizon, "analysis": analysis,
             "transform": fit.transform}
    contrasts = [{**label, **row} for row in fit.contrasts.to_dict(orient="records")]
    omnibus = {**label, "statistic": fit.omnibus["statistic"], "df": fit.omnibus["df"],
               "p": fit.omnibus["p"], "p_seq_x_treat": fit.omnibus["p_seq_x_treat"],
               "shapiro_p": fit.shapiro_p}
    icc = {"outcome": outcome, "horizon": horizon, "analysis": analysis, "icc": fit.icc}
    return contrasts, omnibus, icc


def _where(outcome: str, horizon: int | None, analysis: str | None) -> str:
    return outcome + (f", {horizon} days, {analysis}" if horizon is not None else "")


_Job = tuple[str, "int | None", "str | None", pd.DataFrame]


def _fit_all(jobs: list[_Job], reference: str) -> tuple[list, list, list, list, list[str],
                                                        dict[tuple, np.ndarray]]:
    """Fit every continuous outcome: jobs are (outcome, horizon, analysis, frame)."""
    contrasts: list[dict] = []
    omnibus: list[dict] = []
    icc: list[dict] = []
    models: list[dict] = []
    notes: list[str] = []
    residuals: dict[tuple, np.ndarray] = {}
    for outcome, horizon, analysis, frame in jobs:
        where = _where(outcome, horizon, analysis)
        try:
            fit = fit_crossover(frame, "value", reference)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            notes.append(f"{where}: not modelled ({exc})")
            models.append({"outcome": outcome, "horizon": horizon, "analysis": analysis,
                           "transform": "n/a", "n_obs": int(frame["value"].notna().sum()),
                           "n_participants": int(frame.loc[frame["value"].notna(),
                                                           "participant_id"].nunique()),
                           "dropped": "", "notes": f"not modelled: {exc}"})
            continue
        c, o, i = _model_rows(fit, outcome, horizon, analysis)
        contrasts += c
        omnibus.append(o)
        icc.append(i)
        residuals[(outcome, horizon, analysis)] = fit.residuals
        models.append({"outcome": outcome, "horizon": horizon, "analysis": analysis,
                       "transform": fit.transform, "n_obs": fit.n_obs,
                       "n_participants": fit.n_participants,
                       "dropped": ", ".join(fit.dropped), "notes": "; ".join(fit.notes)})
        notes += [f"{where}: {note}" for note in fit.notes]
    return contrasts, omnibus, icc, models, notes, residuals


def _binary(data: TrialData, reference: str,
            treatments: list[str]) -> tuple[pd.DataFrame, list[str]]:
    rows: list[dict] = []
    notes: list[str] = []
    if data.binary is None:
        return pd.DataFrame(columns=TRIAL_COLUMNS["binary"]), notes
    frame = data.allocation.merge(data.binary, on=["participant_id", "period"], how="inner")
    for outcome in data.binary_outcomes:
        sub = frame[frame[outcome].notna()]
        levels = [t for t in treatments if t in set(sub["treatment"])]
        if reference not in levels or len(levels) < 2:
            notes.append(f"{outcome}: not modelled (needs the reference and another treatment)")
            continue
        y = sub[outcome].to_numpy(dtype=float)
        if y.min() == y.max():
            notes.append(f"{outcome}: not modelled (every value is {int(y[0])})")
            continue
        others = [t for t in levels if t != reference]
        periods = sorted(set(sub["period"]))[1:]
        columns: list[np.ndarray] = [np.ones(len(sub))]
        columns += [(sub["treatment"] == t).to_numpy(dtype=float) for t in others]
        columns += [(sub["period"] == p).to_numpy(dtype=float) for p in periods]
        X = np.column_stack(columns)
        try:
            fit = fit_logistic_glmm(X, y, sub["participant_id"].to_numpy())
        except (np.linalg.LinAlgError, ValueError) as exc:
            notes.append(f"{outcome}: the logistic mixed model failed ({exc})")
            continue
        if not fit.converged:
            notes.append(f"{outcome}: the logistic mixed model did not converge (gradient "
                         "above 1e-3); its odds ratios are not reported")
            continue
        if not np.all(np.isfinite(fit.cov)) or np.any(np.linalg.eigvalsh(fit.cov) <= 0):
            notes.append(f"{outcome}: the logistic mixed model's information matrix is not "
                         "positive definite (separation?); its odds ratios are not reported")
            continue
        pairs = treatment_pairs(levels, reference)
        for a, b in pairs:
            L = np.zeros(X.shape[1])
            for level, sign in ((a, 1.0), (b, -1.0)):
                if level != reference:
                    L[1 + others.index(level)] += sign
            est = float(L @ fit.params)
            se = float(np.sqrt(L @ fit.cov @ L))
            p = float(2 * stats.norm.sf(abs(est / se)))
            rows.append({"outcome": outcome, "contrast": f"{a} - {b}",
                         "odds_ratio": float(np.exp(est)),
                         "ci_low": float(np.exp(est - _Z * se)),
                         "ci_high": float(np.exp(est + _Z * se)),
                         "p": p, "p_sidak": sidak(p, len(pairs))})
        if fit.sigma < 1e-3:
            notes.append(f"{outcome}: the participant SD of the logistic model is on its "
                         "boundary (0)")
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS["binary"]), notes


def _response(auc: pd.DataFrame, primary: str, horizon: int, reference: str,
              treatments: list[str]) -> pd.DataFrame:
    sub = auc[(auc["outcome"] == primary) & (auc["horizon"] == horizon)]
    participants = sorted(set(auc["participant_id"]))
    out = pd.DataFrame({"participant_id": participants})
    for treatment in treatments:
        if treatment == reference:
            continue
        for analysis in ANALYSES:
            part = sub[sub["analysis"] == analysis]
            wide = part.pivot_table(index="participant_id", columns="treatment", values="auc",
                                    aggfunc="mean")
            ref = wide.get(reference, pd.Series(np.nan, index=wide.index))
            act = wide.get(treatment, pd.Series(np.nan, index=wide.index))
            relief = 100.0 * (ref - act) / ref.where(ref > 0)
            out[response_column(treatment, analysis)] = out["participant_id"].map(relief)
    return out


def _descriptives(values: pd.DataFrame, treatments: list[str]) -> pd.DataFrame:
    """mean and SD (ddof 1) per outcome, horizon, analysis and treatment."""
    rows = []
    keys = ["outcome", "horizon", "analysis"]
    for key, frame in values.groupby(keys, sort=False, dropna=False):
        for treatment in treatments:
            v = frame.loc[frame["treatment"] == treatment, "value"].dropna()
            rows.append({**dict(zip(keys, key)), "treatment": treatment, "n": len(v),
                         "mean": float(v.mean()) if len(v) else float("nan"),
                         "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan")})
    return pd.DataFrame(rows, columns=[*keys, "treatment", "n", "mean", "sd"])


def _daily(data: TrialData, treatments: list[str]) -> pd.DataFrame:
    frame = data.diary.merge(data.allocation, on=["participant_id", "period"], how="inner")
    rows = []
    for outcome in data.diary_outcomes:
        grouped = frame.groupby(["treatment", "day"])[outcome]
        table = grouped.agg(["count", "mean", "std"]).reset_index()
        for treatment, day, n, mean, sd in zip(table["treatment"], table["day"],
                                               table["count"], table["mean"], table["std"]):
            rows.append({"outcome": outcome, "treatment": treatment, "day": int(day),
                         "n": int(n), "mean": float(mean),
                         "se": float(sd / np.sqrt(n)) if n > 1 else np.nan})
    out = pd.DataFrame(rows, columns=["outcome", "treatment", "day", "n", "mean", "se"])
    order = {t: k for k, t in enumerate(treatments)}
    return out.sort_values(["outcome", "treatment", "day"],
                           key=lambda c: c.map(order) if c.name == "treatment" else c,
                           ignore_index=True)


def _missing(data: TrialData, arrays: _Arrays, treatments: list[str],
             outcome: str) -> pd.DataFrame:
    rows = []
    for treatment in treatments:
        alloc = data.allocation[data.allocation["treatment"] == treatment]
        keys = [(str(pid), int(period))
                for pid, period in zip(alloc["participant_id"], alloc["period"])]
        values = [arrays[k][outcome] if k in arrays else np.full(data.n_days, np.nan)
                  for k in keys]
        missing = int(sum(np.isnan(v).sum() for v in values))
        # the last day missing: an early stop, or that one entry missing (the observed AUC
        # at the longest horizon is then n/a)
        last_missing = sum(int(np.isnan(v[-1])) for v in values)
        expected = len(keys) * data.n_days
        rows.append({"treatment": treatment, "periods": len(keys), "days_expected": expected,
                     "days_missing": missing,
                     "pct_missing": 100.0 * missing / expected if expected else float("nan"),
                     "periods_last_day_missing": last_missing})
    return pd.DataFrame(rows)


def _period_notes(data: TrialData) -> list[str]:
    """Participants without every period of the trial: analysed with the periods they have."""
    periods = sorted(set(data.allocation["period"]))
    notes = []
    for pid, rows in data.allocation.groupby("participant_id", sort=True):
        lacking = sorted(set(periods) - set(rows["period"]))
        if lacking:
            have = ", ".join(str(p) for p in sorted(rows["period"]))
            notes.append(f"{pid} has no period {', '.join(map(str, lacking))} (periods {have} "
                         "are analysed: the mixed model uses every observed period)")
    return notes


def run_trial(data: TrialData, *, reference: str, horizons: Sequence[int],
              progress: Callable[[str], None] | None = None) -> TrialResults:
    """The whole trial analysis (see the module docstring); ``progress`` gets a line.

    The models' matrices are tiny (a few dozen rows): BLAS runs single-threaded for them,
    as threads cost more than they bring there (and far more on a busy machine).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _run_trial(data, reference=reference, horizons=horizons, progress=progress)


def _run_trial(data: TrialData, *, reference: str, horizons: Sequence[int],
               progress: Callable[[str], None] | None = None) -> TrialResults:
    say = progress or (lambda line: None)
    horizons = sorted(int(h) for h in horizons)
    treatments = [reference] + sorted(set(data.allocation["treatment"]) - {reference})
    primary_outcome = (PRIMARY_OUTCOME if PRIMARY_OUTCOME in data.diary_outcomes
                       else data.diary_outcomes[0])
    primary = (primary_outcome, horizons[-1], "observed")
    notes = list(data.notes) + _period_notes(data)
    arrays = _diary_arrays(data)
    auc = _auc_table(data, arrays, horizons)
    base = data.allocation[["participant_id", "period", "treatment"]]
    jobs: list[_Job] = []
    values = []
    for outcome in data.diary_outcomes:
        for horizon in horizons:
            for analysis in ANALYSES:
                sub = auc[(auc["outcome"] == outcome) & (auc["horizon"] == horizon)
                          & (auc["analysis"] == analysis)]
                frame = sub[["participant_id", "period", "treatment"]].assign(
                    value=sub["auc"].to_numpy())
                jobs.append((outcome, horizon, analysis, frame))
    if data.questionnaires is not None:
        merged = base.merge(data.questionnaires, on=["participant_id", "period"], how="left")
        for outcome in data.questionnaire_outcomes:
            frame = merged[["participant_id", "period", "treatment"]].assign(
                value=merged[outcome].to_numpy(dtype=float))
            jobs.append((outcome, None, None, frame))
    for job in jobs:
        values.append(job[3].assign(outcome=job[0], horizon=job[1], analysis=job[2]))
    say(f"group: crossover trial: {len(jobs)} linear mixed models, "
        f"{len(data.binary_outcomes)} logistic")
    contrasts, omnibus, icc, models, fit_notes, residuals = _fit_all(jobs, reference)
    binary, binary_notes = _binary(data, reference, treatments)
    value_frame = pd.concat(values, ignore_index=True)
    horizon_cols = {"horizon": "Int64"}
    return TrialResults(
        reference=reference, horizons=horizons, treatments=treatments, primary=primary,
        auc=auc,
        contrasts=pd.DataFrame(contrasts, columns=TRIAL_COLUMNS["contrasts"]).astype(
            horizon_cols),
        omnibus=pd.DataFrame(omnibus, columns=TRIAL_COLUMNS["omnibus"]).astype(horizon_cols),
        icc=pd.DataFrame(icc, columns=TRIAL_COLUMNS["icc"]).astype(horizon_cols),
        binary=binary,
        response=_response(auc, primary_outcome, horizons[-1], reference, treatments),
        descriptives=_descriptives(value_frame, treatments).astype(horizon_cols),
        daily=_daily(data, treatments),
        missing=_missing(data, arrays, treatments, primary_outcome),
        models=pd.DataFrame(models).astype(horizon_cols),
        residuals=residuals, notes=notes + fit_notes + binary_notes)
