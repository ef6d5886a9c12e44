"""The crossover trial's figures (matplotlib ``Figure`` objects, pyplot-free, constrained
layout; the conventions of :mod:`bids_dfc.reports.group_figures`): the mean daily diary of
the primary outcome by treatment, the per-participant AUCs of the primary endpoint joined
across periods, and the residual QQ plot of the primary model.
:mod:`bids_dfc.reports.group` saves them (``group/figures/trial_*.png``) with the imaging
figures.

``trial`` is a :class:`bids_dfc.stats.trial.TrialResults` (read by attribute: the reports
do not import the statistics). Every P value shown goes through
:func:`bids_dfc.reports.text.format_p`, every other number through
:func:`~bids_dfc.reports.text.format_number`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bids_dfc.reports.group_figures import COLOURS, FONT, SMALL, _figure
from bids_dfc.reports.text import format_p

__all__ = ["draw_trial_figures", "endpoint_label", "fig_auc_paired", "fig_daily",
           "fig_diagnostics", "model_rows", "omnibus_row"]

#: the diary's rating scale (docs/trial.md: 0-10 numeric rating scale)
SCALE = "(0-10)"


def endpoint_label(key) -> str:
    """``(outcome, horizon, analysis)`` as the report names a model.

    >>> endpoint_label(("pain_avg", 35, "observed")), endpoint_label(("bpi", None, None))
    ('pain_avg AUC, days 1-35, observed', 'bpi')
    """
    outcome, horizon, analysis = key
    if pd.isna(horizon) or pd.isna(analysis):
        return str(outcome)
    return f"{outcome} AUC, days 1-{int(horizon)}, {analysis}"


def model_rows(frame, key):
    """Rows of a per-model table (outcome, horizon, analysis columns) of the model ``key``."""
    outcome, horizon, analysis = key
    rows = frame["outcome"] == outcome
    if pd.isna(horizon):
        return frame[rows & frame["horizon"].isna()]
    return frame[rows & (frame["horizon"] == horizon) & (frame["analysis"] == analysis)]


def omnibus_row(trial, key=None):
    """The omnibus row (a dict) of the model ``key`` (default: the primary), or None when
    that model was not fitted."""
    rows = model_rows(trial.omnibus, key or trial.primary)
    return rows.iloc[0].to_dict() if len(rows) else None


def _colour(trial, treatment) -> str:
    return COLOURS[trial.treatments.index(treatment) % len(COLOURS)]


def fig_daily(trial):
    """Mean daily score of the primary outcome by treatment, +- SE band; the horizons are
    the x ticks; the legend above the plot."""
    outcome = trial.primary[0]
    daily = trial.daily[trial.daily["outcome"] == outcome]
    fig = _figure(7.2, 4.2)
    ax = fig.subplots()
    for treatment in trial.treatments:
        d = daily[daily["treatment"] == treatment].sort_values("day")
        if not len(d):
            continue
        colour = _colour(trial, treatment)
        se = d["se"].fillna(0.0).to_numpy(dtype=float)
        mean = d["mean"].to_numpy(dtype=float)
        ax.fill_between(d["day"], mean - se, mean + se, color=colour, alpha=0.2, lw=0)
        ax.plot(d["day"], mean, color=colour, lw=1.8, label=treatment)
    last = int(daily["day"].max()) if len(daily) else max(trial.horizons)
    ax.set_xlim(1, last)
    ax.set_xticks(sorted({1, *(h for h in trial.horizons if h <= last)}))
    ax.set_xlabel("day after infusion", fontsize=FONT)
    ax.set_ylabel(f"{outcome} {SCALE}, mean +- SE", fontsize=FONT)
    ax.tick_params(labelsize=SMALL)
    ax.grid(axis="x", color="0.9", lw=0.8)
    ax.set_title(f"Daily diary: {outcome} by treatment", fontsize=FONT)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=max(len(labels), 1),
               fontsize=SMALL, frameon=False)
    return fig


def _wide_auc(trial):
    """participant x treatment AUCs of the primary endpoint (mean over a treatment's
    periods when a participant had it twice)."""
    outcome, horizon, analysis = trial.primary
    auc = trial.auc
    sub = auc[(auc["outcome"] == outcome) & (auc["horizon"] == horizon)
              & (auc["analysis"] == analysis)]
    wide = sub.pivot_table(index="participant_id", columns="treatment", values="auc",
                           aggfunc="mean")
    return wide.reindex(columns=[t for t in trial.treatments])


def fig_auc_paired(trial):
    """Per-participant AUC of the primary endpoint by treatment, each participant's
    periods joined by a grey line; black treatment mean +- SD beside each column."""
    wide = _wide_auc(trial)
    fig = _figure(5.0, 4.6)
    ax = fig.subplots()
    xs = np.arange(len(trial.treatments), dtype=float)
    values = wide.to_numpy(dtype=float)
    for row in values:
        seen = np.isfinite(row)
        if seen.sum() > 1:
            ax.plot(xs[seen], row[seen], color="0.6", lw=0.8, alpha=0.7, zorder=1)
    for i, treatment in enumerate(trial.treatments):
        v = values[:, i][np.isfinite(values[:, i])]
        ax.scatter(np.full(v.size, xs[i]), v, s=18, color=_colour(trial, treatment),
                   edgecolor="none", alpha=0.85, zorder=2)
        if v.size:
            sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
            ax.errorbar(xs[i] + 0.22, v.mean(), yerr=sd, fmt="o", color="k", capsize=4,
                        ms=5, zorder=3)
    ax.set_xlim(-0.5, len(xs) - 0.3)
    ax.set_xticks(xs, trial.treatments, fontsize=FONT)
    ax.tick_params(axis="y", labelsize=SMALL)
    outcome, horizon, analysis = trial.primary
    ax.set_ylabel(f"{outcome} AUC, days 1-{horizon} (score-days)", fontsize=FONT)
    row = omnibus_row(trial)
    test = f"omnibus {format_p(row['p'])}" if row else "not modelled"
    ax.set_title(f"Primary endpoint ({analysis}): {test}", fontsize=FONT)
    return fig


def fig_diagnostics(trial):
    """Normal QQ plot of the primary model's residuals with its least-squares line; the
    Shapiro-Wilk and sequence x treatment P in the title (never over a point)."""
    resid = np.asarray(trial.residuals[trial.primary], dtype=float)
    (theoretical, ordered), (slope, intercept, _) = stats.probplot(resid, dist="norm")
    fig = _figure(4.8, 4.6)
    ax = fig.subplots()
    ax.scatter(theoretical, ordered, s=16, color=COLOURS[0], edgecolor="none", zorder=2)
    ends = np.array([theoretical.min(), theoretical.max()])
    ax.plot(ends, intercept + slope * ends, color="k", lw=1, zorder=1)
    row = omnibus_row(trial) or {}
    transform = row.get("transform", "none")
    scale = "log scale" if transform == "log" else "score-days"
    ax.set_xlabel("theoretical normal quantile", fontsize=FONT)
    ax.set_ylabel(f"residual ({scale})", fontsize=FONT)
    ax.tick_params(labelsize=SMALL)
    ax.set_title(f"Residuals of the primary model (n = {resid.size})\nShapiro-Wilk "
                 f"{format_p(row.get('shapiro_p', np.nan))}; sequence x treatment "
                 f"{format_p(row.get('p_seq_x_treat', np.nan))}", fontsize=FONT)
    return fig


def draw_trial_figures(trial) -> list[tuple[str, object, str]]:
    """The trial's figures the results allow: (file name, Figure, caption) triples."""
    outcome, horizon, analysis = trial.primary
    figs: list[tuple[str, object, str]] = []
    if len(trial.daily[trial.daily["outcome"] == outcome]):
        figs.append(("trial_daily.png", fig_daily(trial),
                     f"Mean daily {outcome} by treatment (lines) +- SE (bands), observed "
                     "diary entries; the x ticks are the AUC horizons."))
    if len(_wide_auc(trial).dropna(how="all")):
        figs.append(("trial_auc_paired.png", fig_auc_paired(trial),
                     f"Primary endpoint ({endpoint_label(trial.primary)}) per participant: "
                     "points, grey lines joining a participant's periods; black mean +- SD; "
                     "in the title the omnibus Wald test of the crossover mixed model."))
    if trial.primary in trial.residuals and len(trial.residuals[trial.primary]) >= 3:
        row = omnibus_row(trial) or {}
        figs.append(("trial_diagnostics.png", fig_diagnostics(trial),
                     "Normal QQ plot of the primary model's residuals"
                     + (" (log scale)" if row.get("transform") == "log" else "")
                     + "; the line is their least-squares fit. A model is refitted on the log "
                     "scale when the Shapiro-Wilk P < .05."))
    return figs
