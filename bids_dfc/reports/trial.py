"""The group report's crossover-trial section and its methods paragraph (HTML strings that
:mod:`bids_dfc.reports.group` places after the imaging sections and in "Methods").

The section: the primary endpoint in sentences and tables, the trial's figures
(:mod:`bids_dfc.reports.trial_figures`), one compact table of every diary model and one of
the questionnaire scores, the logistic models of the binary outcomes, the missing diary days
and the models' notes. ``trial`` is a :class:`bids_dfc.stats.trial.TrialResults`, read by
attribute (the reports do not import the statistics). Every P value goes through
:func:`bids_dfc.reports.text.format_p`, every other number through
:func:`~bids_dfc.reports.text.format_number` -- the notes' numbers too, which the
statistics write in their own style (:func:`note_text`).
"""

from __future__ import annotations

import html
import re
from functools import partial
from pathlib import Path

import pandas as pd

from bids_dfc.reports.text import MISSING, format_number, format_p
from bids_dfc.reports.trial_figures import endpoint_label, model_rows, omnibus_row

__all__ = ["figures_html", "note_text", "trial_methods", "trial_section", "trial_summary"]

#: the study's rule: the post hoc (pairwise) comparisons of a model are interpreted only
#: when its omnibus P is below this
OMNIBUS_ALPHA = 0.05
#: how a contrast not to be interpreted (omnibus P >= .05) is shown: grey, still legible
#: (4.5:1 on white)
MUTED = "color:#767676"
#: digits of the standardised effect sizes (as the study reports them: -0.2 (-0.6 to 0.3))
ES_DIGITS = 2


def _escape(text) -> str:
    """HTML-escaped ``text`` in which a P value never breaks across lines (the rule of
    :mod:`bids_dfc.reports.group`)."""
    return re.sub(r"\bP (=|&lt;|&gt;) ", r"P&nbsp;\1&nbsp;", html.escape(str(text)))


def figures_html(figs) -> str:
    """``<figure>`` elements of saved figures, (path, (width, height), caption) triples: a
    figure is as wide as its image (its caption wraps under it), at most the page width."""
    return "".join(
        f'<figure style="width:{w}px"><img src="figures/{html.escape(Path(p).name)}" '
        f'width="{w}" height="{h}" alt="{html.escape(c)}">'
        f"<figcaption>{_escape(c)}</figcaption></figure>" for p, (w, h), c in figs)


_P_IN_NOTE = re.compile(r"\bP = ((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_SCIENTIFIC = re.compile(r"(?<![\w.])\d+\.?\d*[eE][-+]?\d+\b")


def note_text(note: str) -> str:
    """A note of the statistics with its P values in the report's format and no number in
    scientific notation.

    >>> note_text("bpi: residuals not normal (Shapiro-Wilk P = 0.00261); gradient above 1e-3")
    'bpi: residuals not normal (Shapiro-Wilk P = .003); gradient above 0.001'
    """
    note = _P_IN_NOTE.sub(lambda m: format_p(min(max(float(m.group(1)), 0.0), 1.0)), note)
    return _SCIENTIFIC.sub(lambda m: format_number(float(m.group(0)), _digits(m.group(0))),
                           note)


def _digits(number: str) -> int:
    """Significant digits of a number in scientific notation: ``1e-3`` 1, ``2.50e4`` 3."""
    mantissa = re.split(r"[eE]", number)[0]
    return max(1, len(re.sub(r"\D", "", mantissa).lstrip("0")))


def _join(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _mean_sd(row) -> str:
    if not row["n"]:
        return MISSING
    if row["n"] == 1 or pd.isna(row["sd"]):
        return format_number(row["mean"])
    return f"{format_number(row['mean'])} +- {format_number(row['sd'], 2)}"


def _interval(low, high, digits: int = 3) -> str:
    return f"{format_number(low, digits)} to {format_number(high, digits)}"


def _means(trial, key) -> dict[str, str]:
    """treatment -> "mean +- SD" of the model ``key``."""
    return {r["treatment"]: _mean_sd(r)
            for r in model_rows(trial.descriptives, key).to_dict(orient="records")}


def _contrasts_vs_reference(trial, key) -> list[dict]:
    rows = model_rows(trial.contrasts, key).to_dict(orient="records")
    return [r for r in rows if r["contrast"].endswith(f" - {trial.reference}")]


def _endpoint_sentence(trial, key, what: str) -> str:
    """"<what>: mean +- SD a, b and c (t1, t2, reference), omnibus P; effect sizes" """
    order = [*trial.treatments[1:], trial.reference]
    means = _means(trial, key)
    row = omnibus_row(trial, key)
    text = (f"{what}: mean +- SD {_join(means.get(t, MISSING) for t in order)} "
            f"({_join(order)})")
    if row is None:
        return text + "; not modelled (see the notes)."
    text += f", omnibus {format_p(row['p'])}"
    effects = [f"{r['contrast'].split(' - ')[0]} vs {trial.reference} "
               f"{format_number(r['effect_size'], ES_DIGITS)} (95 % CI "
               f"{_interval(r['es_ci_low'], r['es_ci_high'], ES_DIGITS)}, Sidak "
               f"{format_p(r['p_sidak'])})" for r in _contrasts_vs_reference(trial, key)]
    if effects:
        text += "; effect size " + ", ".join(effects)
    if not row["p"] < OMNIBUS_ALPHA:
        text += " (not interpreted: the omnibus P is not below .05)"
    return text + "."


def trial_summary(trial) -> str:
    """The trial's key results in sentences, as the study reported them."""
    outcome, horizon, analysis = trial.primary
    n = trial.auc["participant_id"].nunique()
    text = (f"{n} participants received {_join(trial.treatments)} in a crossover design "
            f"(reference {trial.reference}). ")
    text += _endpoint_sentence(
        trial, trial.primary, f"Primary endpoint, {outcome} AUC over days 1-{horizon} "
        f"({analysis}, score-days)")
    locf = (outcome, horizon, "locf")
    if analysis != "locf" and len(model_rows(trial.omnibus, locf)):
        text += " " + _endpoint_sentence(trial, locf, "With last observation carried "
                                                      "forward (sensitivity analysis)")
    return text


def _td(lines, *, num: bool = False, style: str = "", rows: int = 1) -> str:
    """A cell of one or more lines (a list: one line each), spanning ``rows`` rows."""
    text = "<br>".join(_escape(t) for t in ([lines] if isinstance(lines, str) else lines))
    attrs = ' class="num"' if num else ""
    attrs += f' rowspan="{rows}"' if rows > 1 else ""
    attrs += f' style="{style}"' if style else ""
    return f"<td{attrs}>{text}</td>"


def _mean_sd_td(text: str, style: str) -> str:
    """A right-aligned "mean +- SD" cell that a narrow column wraps before the "+- SD"
    (kept on one line), never inside it."""
    mean, plus, sd = text.partition(" +- ")
    inner = _escape(mean) + (f' <span style="white-space:nowrap">+- {_escape(sd)}</span>'
                             if plus else "")
    return f'<td style="text-align:right;{style}">{inner}</td>'


def _table(head, rows) -> str:
    """An HTML table: ``head`` the column names (may break after an underscore), ``rows``
    the ``<tr>`` strings."""
    if not rows:
        return "<p><em>none</em></p>"
    heads = "".join(f"<th>{html.escape(str(c)).replace('_', '_<wbr>')}</th>" for c in head)
    return (f'<div class="table"><table><thead><tr>{heads}</tr></thead><tbody>'
            f"{''.join(rows)}</tbody></table></div>")


def _primary_html(trial) -> str:
    key = trial.primary
    row = omnibus_row(trial, key)
    model = model_rows(trial.models, key).to_dict(orient="records")
    icc = model_rows(trial.icc, key)
    head = f"<h3>Primary endpoint: {_escape(endpoint_label(key))}</h3>"
    if row is None:
        return head + "<p>Not modelled (see the notes).</p>"
    fit = (f"Crossover mixed model of {model[0]['n_obs']} periods of "
           f"{model[0]['n_participants']} participants" if model else "Crossover mixed model")
    fit += (f" (transform {row['transform']}): omnibus Wald chi-square({row['df']}) = "
            f"{format_number(row['statistic'])}, {format_p(row['p'])}; sequence x treatment "
            f"{format_p(row['p_seq_x_treat'])}; Shapiro-Wilk of the residuals "
            f"{format_p(row['shapiro_p'])}")
    if len(icc):
        fit += f"; ICC {format_number(icc['icc'].iloc[0])}"
    desc = [f"<tr>{_td(r['treatment'])}{_td(str(r['n']), num=True)}"
            f"{_td(_mean_sd(r), num=True)}</tr>"
            for r in model_rows(trial.descriptives, key).to_dict(orient="records")]
    muted = "" if row["p"] < OMNIBUS_ALPHA else MUTED
    pairs = [f"<tr>{_td(r['contrast'], style=muted)}"
             f"{_td(format_number(r['estimate']), num=True, style=muted)}"
             f"{_td(_interval(r['ci_low'], r['ci_high']), style=muted)}"
             f"{_td(format_number(r['effect_size'], ES_DIGITS), num=True, style=muted)}"
             f"{_td(_interval(r['es_ci_low'], r['es_ci_high'], ES_DIGITS), style=muted)}"
             f"{_td(format_p(r['p'], label=False), num=True, style=muted)}"
             f"{_td(format_p(r['p_sidak'], label=False), num=True, style=muted)}</tr>"
             for r in model_rows(trial.contrasts, key).to_dict(orient="records")]
    return (head + f"<p>{_escape(fit)}.</p>"
            + _table(["treatment", "n", "AUC mean +- SD (score-days)"], desc)
            + _table(["contrast", "estimate", "95 % CI", "effect size", "effect size 95 % CI",
                      "P", "Sidak P"], pairs))


def _model_keys(trial) -> list[tuple[str, list[tuple]]]:
    """The models in the tables' order, in groups: (heading, keys) per diary outcome, then
    the questionnaire scores."""
    keys = list(dict.fromkeys(
        (r["outcome"], None if pd.isna(r["horizon"]) else int(r["horizon"]),
         None if pd.isna(r["horizon"]) else r["analysis"])
        for r in trial.models.to_dict(orient="records")))
    groups = [(f"{outcome}: AUC (score-days)", [k for k in keys if k[0] == outcome and k[1]])
              for outcome in dict.fromkeys(k[0] for k in keys if k[1] is not None)]
    scores = [k for k in keys if k[1] is None]
    return groups + ([("questionnaire scores", scores)] if scores else [])


def _model_label(key, row) -> list[str]:
    """A model's cell: its horizon and analysis (a questionnaire score: its name), and the
    scale when not the original one."""
    lines = [f"{key[1]} days, {key[2]}"] if key[1] is not None else [str(key[0])]
    if row is None:
        return [*lines, "not modelled"]
    return lines + ([f"({row['transform']} scale)"] if row["transform"] != "none" else [])


def _grouped(trial, n_columns, row_html) -> list[str]:
    """Rows of a per-model table: a heading row per group, then ``row_html(key, row,
    style)`` for each model (bold: the primary endpoint; grey: omnibus P >= .05)."""
    out = []
    for heading, keys in _model_keys(trial):
        out.append(f'<tr><th colspan="{n_columns}">{_escape(heading)}</th></tr>')
        for key in keys:
            row = omnibus_row(trial, key)
            style = "font-weight:600" if key == trial.primary else ""
            if row is None or not row["p"] < OMNIBUS_ALPHA:
                style = MUTED
            out += row_html(key, row, style)
    return out


def _omnibus_rows(trial, key, row, style) -> list[str]:
    means = _means(trial, key)
    icc = model_rows(trial.icc, key)
    p = {c: format_p(row[c], label=False) if row else MISSING
         for c in ("p", "p_seq_x_treat", "shapiro_p")}
    cells = _td(_model_label(key, row), style=style)
    cells += "".join(_mean_sd_td(means.get(t, MISSING), style) for t in trial.treatments)
    cells += "".join(_td(p[c], num=True, style=style) for c in p)
    cells += _td(format_number(icc["icc"].iloc[0]) if len(icc) else MISSING, num=True,
                 style=style)
    return [f"<tr>{cells}</tr>"]


def _contrast_rows(trial, key, row, style) -> list[str]:
    pairs = model_rows(trial.contrasts, key).to_dict(orient="records")
    out = []
    for i, r in enumerate(pairs):
        cells = _td(_model_label(key, row), style=style, rows=len(pairs)) if i == 0 else ""
        cells += _td(r["contrast"], style=style)
        cells += _td(f"{format_number(r['estimate'])} "
                     f"({_interval(r['ci_low'], r['ci_high'])})", style=style)
        cells += _td(f"{format_number(r['effect_size'], ES_DIGITS)} "
                     f"({_interval(r['es_ci_low'], r['es_ci_high'], ES_DIGITS)})", style=style)
        cells += _td(format_p(r["p"], label=False), num=True, style=style)
        cells += _td(format_p(r["p_sidak"], label=False), num=True, style=style)
        out.append(f"<tr>{cells}</tr>")
    return out


def _models_html(trial) -> str:
    """The compact tables of every model (diary AUCs by outcome, horizon and analysis; the
    questionnaire scores): treatment means and omnibus tests, then the contrasts."""
    means_head = ["model", *(f"{t} mean +- SD" for t in trial.treatments), "omnibus P",
                  "sequence x treatment P", "Shapiro-Wilk P", "ICC"]
    contrast_head = ["model", "contrast (A - B)", "estimate (95 % CI)",
                     "effect size (95 % CI)", "P", "Sidak P"]
    return (
        "<h3>All models</h3><p>Every crossover mixed model, the primary endpoint in bold. By "
        "the study's rule the post hoc (pairwise) comparisons of a model are interpreted only "
        "when its omnibus P &lt; .05; the models whose omnibus P is .05 or more are grey. On "
        "the log scale an estimate is a log ratio.</p>"
        "<h4>Treatment means and omnibus tests</h4>"
        + _table(means_head, _grouped(trial, len(means_head), partial(_omnibus_rows, trial)))
        + "<h4>Pairwise contrasts</h4>"
        + _table(contrast_head,
                 _grouped(trial, len(contrast_head), partial(_contrast_rows, trial))))


def _binary_html(trial) -> str:
    rows = [f"<tr>{_td(r['outcome'])}{_td(r['contrast'])}"
            f"{_td(format_number(r['odds_ratio']), num=True)}"
            f"{_td(_interval(r['ci_low'], r['ci_high']))}"
            f"{_td(format_p(r['p'], label=False), num=True)}"
            f"{_td(format_p(r['p_sidak'], label=False), num=True)}</tr>"
            for r in trial.binary.to_dict(orient="records")]
    return ("<h3>Binary outcomes (logistic mixed model)</h3>"
            + _table(["outcome", "contrast", "odds ratio", "95 % CI", "P", "Sidak P"], rows))


def _missing_html(trial) -> str:
    rows = [f"<tr>{_td(r['treatment'])}{_td(str(r['periods']), num=True)}"
            f"{_td(str(r['days_expected']), num=True)}"
            f"{_td(str(r['days_missing']), num=True)}"
            f"{_td(format_number(r['pct_missing'], 2), num=True)}"
            f"{_td(str(r['periods_last_day_missing']), num=True)}</tr>"
            for r in trial.missing.to_dict(orient="records")]
    return (f"<h3>Missing diary days ({_escape(trial.primary[0])})</h3>"
            + _table(["treatment", "periods", "diary days expected", "days missing",
                      "% missing", "periods without the last day"], rows))


def _model_notes(trial) -> list[str]:
    """The design columns the models dropped as aliased, once per set of columns."""
    models = trial.models
    notes = []
    for dropped, rows in models.groupby("dropped", sort=True):
        if dropped:
            which = ("every model" if len(rows) == len(models)
                     else f"{len(rows)} of {len(models)} models")
            notes.append(f"design columns dropped as aliased (the design cannot separate "
                         f"them): {dropped} ({which})")
    return notes  # the transforms: in the statistics' own notes, one per model


def trial_section(trial, figs) -> str:
    """The report's "Crossover trial" section; ``figs`` are the saved trial figures,
    (path, (width, height), caption) triples."""
    notes = [*trial.notes, *_model_notes(trial)]
    items = "".join(f"<li>{_escape(note_text(n))}</li>" for n in notes)
    figures = (f'<h3>Figures</h3><div class="figures">{figures_html(figs)}</div>'
               if figs else "")
    return ("<h2>Crossover trial</h2>" f"<p>{_escape(trial_summary(trial))}</p>"
            + _primary_html(trial) + figures + _models_html(trial) + _binary_html(trial)
            + _missing_html(trial)
            + "<h3>Notes</h3>" + (f"<ul>{items}</ul>" if items else "<p><em>none</em></p>"))


#: the works the trial's methods cite, in their in-text form (bids_dfc/data/references.json)
TRIAL_CITED = {"crossover": "Jones & Kenward 2014", "sidak": "Sidak 1967",
               "shapiro": "Shapiro & Wilk 1965"}


def trial_methods(trial) -> str:
    """The methods paragraph of the trial analysis (plain text)."""
    outcome, horizon, analysis = trial.primary
    k = len(dict.fromkeys(trial.contrasts["contrast"]))
    return (
        "Crossover trial: each daily diary outcome was summarised per participant and period "
        "as the area under the curve (AUC, score-days) by the trapezoidal rule over days 1 "
        f"to each horizon ({_join(trial.horizons)} days; primary endpoint {outcome} over "
        f"days 1-{horizon}, {analysis}). Observed analysis: no imputation, an interior gap "
        "bridged linearly, no AUC when the first or the last day is missing; sensitivity "
        "analysis: last observation carried forward (LOCF). Each AUC and each questionnaire "
        "score was analysed with a linear mixed model fitted by REML (statsmodels MixedLM): "
        "fixed effects treatment, period, sequence and first-order carry-over (the previous "
        f"period's treatment), a random intercept per participant ({TRIAL_CITED['crossover']}"
        "); design columns the data "
        "cannot separate were dropped (see the notes). Treatment effect: omnibus Wald "
        "chi-square test; pairwise contrasts by Wald z tests with normal 95 % CIs, their P "
        f"Sidak-adjusted ({TRIAL_CITED['sidak']}) over the {k} comparisons, interpreted only "
        "when the omnibus "
        "P < .05. Effect size: the estimate / sqrt(var_subject + var_residual), its CI "
        f"scaled alike. When the Shapiro-Wilk test ({TRIAL_CITED['shapiro']}) of the "
        "residuals gave P < .05 the outcome "
        "was refitted on the log scale (log(y + 1) when a value is 0). Sequence x treatment "
        "interaction: Wald test of its terms in the model with the interaction added. ICC: "
        "var_subject / (var_subject + var_residual). Binary outcomes: logistic mixed model "
        "(treatment and period, random participant intercept) fitted by maximum likelihood "
        "with adaptive Gauss-Hermite quadrature (7 points); odds ratios with Wald 95 % CIs "
        "and Sidak-adjusted P. All tests two-sided, alpha .05."
    )
