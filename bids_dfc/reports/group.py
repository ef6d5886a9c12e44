"""Group report: ``group/report.html`` around the figures (PNG files in ``group/figures/``,
drawn by :mod:`bids_dfc.reports.group_figures`).

The page: key results in sentences, the figures, every table, then the crossover trial's
section when the dataset has a trial (:mod:`bids_dfc.reports.trial`), the methods and the
reference list. A dataset with a trial but no participant dFC outputs gets a page of the trial
alone. It fits any window from 500 px up (figures shrink to the page, never past their own
size; tables fit with whole words from 800 px). Every P value shown goes through
:func:`bids_dfc.reports.text.format_p`, every other number through
:func:`~bids_dfc.reports.text.format_number`; the works the page cites come from the one
bibliography (:func:`bids_dfc.reports.citations.bibliography`) and all are listed under
"References".
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bids_dfc.derivatives import GROUP_FILES
from bids_dfc.io import atomic_write, save_figure
from bids_dfc.reports.citations import bibliography, cited_keys
from bids_dfc.reports.group_figures import DPI, draw_figures
from bids_dfc.reports.text import MISSING, format_number, format_p
from bids_dfc.reports.trial import figures_html, trial_methods, trial_section
from bids_dfc.reports.trial_figures import draw_trial_figures

__all__ = ["build_group_report"]

#: columns of the report's tables that hold P values (shown with :func:`format_p`)
P_COLUMNS = ("p", "p_adj")
#: the report shows a table's paired columns as one (the TSVs keep them apart), so that
#: every table fits an 800 px window with whole words: (shown column, first, second, joiner)
#: -- an interval "low to high", or a value with its kind "value (kind)"
MERGED_COLUMNS = (
    ("effect size", "effect_size", "effect_size_type", "kind"),
    ("95 % CI", "ci_low", "ci_high", "interval"),
    ("bias-corrected 95 % CI", "ci_bc_low", "ci_bc_high", "interval"),
    ("AUC 95 % CI", "auc_ci_low", "auc_ci_high", "interval"),
    ("adjusted P", "p_adj", "p_adj_method", "kind"),
)


def _escape(text) -> str:
    """HTML-escaped ``text`` in which a P value never breaks across lines
    (``P&nbsp;=&nbsp;.034``)."""
    return re.sub(r"\bP (=|&lt;|&gt;) ", r"P&nbsp;\1&nbsp;", html.escape(str(text)))


def _cell(column, v) -> tuple[str, bool]:
    """(text, is a number) of one table value."""
    if v is None or v is pd.NA:
        return MISSING, False
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return MISSING, True
        return (format_p(v, label=False) if column in P_COLUMNS else format_number(v)), True
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(v), True
    return str(v), column == "df"  # "2, 30" reads as numbers


def _merge(first, second, joiner) -> tuple[str, bool]:
    (a, a_num), (b, _) = first, second
    if a == MISSING:
        return MISSING, True
    if joiner == "interval":
        return (f"{a} to {b}", False) if b != MISSING else (a, a_num)
    return (f"{a} ({b})", False) if b and b != MISSING else (a, a_num)


def _table(frame):
    """An HTML table of ``frame`` (P values and numbers formatted, paired columns merged)."""
    if frame is None or len(frame) == 0:
        return "<p><em>none</em></p>"
    columns = {c: [_cell(c, v) for v in frame[c]] for c in frame.columns}
    shown: dict[str, list[tuple[str, bool]]] = {}
    merged = {}
    for name, first, second, joiner in MERGED_COLUMNS:
        if first in columns and second in columns:
            merged[first] = (name, second, joiner)
    skip = {second for _, second, _ in merged.values()}
    for c, cells in columns.items():
        if c in merged:
            name, second, joiner = merged[c]
            shown[name] = [_merge(x, y, joiner) for x, y in zip(cells, columns[second])]
        elif c not in skip:
            shown[c] = cells
    # headers may break after an underscore (effect_<wbr>size_<wbr>type)
    head = "".join(f"<th>{html.escape(str(c)).replace('_', '_<wbr>')}</th>" for c in shown)
    rows = zip(*shown.values())
    body = "".join("<tr>" + "".join(f'<td class="num">{_escape(t)}</td>' if num
                                    else f"<td>{_escape(t)}</td>" for t, num in row) + "</tr>"
                   for row in rows)
    return (f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


#: columns of the mediation table with one value for the whole model (said once, above it)
MODEL_COLUMNS = ("x", "m", "y", "n", "covariates")


def _mediation_table(med):
    """The mediation paths; the model's variables, n and covariates in a line above."""
    if med is None or len(med) == 0:
        return _table(med)
    first = med.iloc[0]
    covariates = first["covariates"] if isinstance(first["covariates"], str) else ""
    model = (f"X {first['x']}, M {first['m']}, Y {first['y']}; {first['n']} patients; "
             f"covariates: {covariates or 'none'}.")
    return f"<p>{_escape(model)}</p>" + _table(med.drop(columns=list(MODEL_COLUMNS)))


#: the methods paragraph; works are cited as their bibliography entries' ``cite`` spells
#: them, so the reference list finds them (:func:`bids_dfc.reports.citations.cited_keys`)
METHODS = (
    "dFC is the standard deviation over time of the dynamic conditional correlation (DCC; "
    "Engle 2002; Lindquist et al. 2014) of the primary seed pair, averaged over a "
    "participant's included runs. Normality: Shapiro-Wilk per group. dFC across groups: "
    "one-way ANOVA with Tukey HSD post hoc (scipy). Predictor across groups: Kruskal-Wallis "
    "with two-sided Mann-Whitney U post hoc (Holm-adjusted P in p_adj; Holm 1979). Spearman "
    "rank correlations in patients, Fisher-z CI with the variance of Bonett & Wright 2000. "
    "Mediation X -> M -> Y: PROCESS model 4 (Hayes 2022) by OLS, indirect effect a*b with a "
    "nonparametric bootstrap (percentile and bias-corrected intervals; Efron 1987). "
    "Covariates enter the ANCOVA and both mediation models. With all seed pairs tested, "
    "ANOVA and Spearman P values are FDR-corrected across pairs (Benjamini & Hochberg "
    "1995). Prognosis: leave-one-out L2-penalised logistic regression of responder status, "
    "ROC AUC with a stratified bootstrap CI. All tests two-sided, alpha .05."
)


def _references(page: str) -> str:
    """The reference list of every work the page (HTML) cites, from the one bibliography,
    in author order; citations without an entry are named in a warning."""
    keys, unknown = cited_keys(html.unescape(re.sub(r"<[^>]+>", " ", page)))
    refs = sorted(bibliography()[k]["reference"] for k in keys)
    items = "".join(f"<li>{html.escape(r)}</li>" for r in refs)
    out = f'<ul class="references">{items}</ul>' if refs else "<p>No works cited.</p>"
    if unknown:
        out += (f"<p class='skip'>cited without a bibliography entry: "
                f"{html.escape(', '.join(unknown))}</p>")
    return "<h2>References</h2>" + out


def _key_results(stats_rows, roles):
    """Sentences in the paper's style for the tests that ran."""
    dfc, outcome, predictor = roles["dfc"], roles["outcome"], roles["predictor"]

    def find(test, variable=None, contrast=None):
        return next((r for r in stats_rows if r["test"].startswith(test)
                     and (variable is None or r["variable"] == variable)
                     and (contrast is None or r["contrast"] == contrast)
                     and np.isfinite(r["statistic"])), None)

    out = []
    for var in (dfc, *(roles.get("compare") or [])):
        r = find("one-way ANOVA", var)
        if r:
            out.append(f"{var} across groups: one-way ANOVA F[{r['df']}] = "
                       f"{r['statistic']:.2f}, {format_p(r['p'])}.")
    r = find("Kruskal-Wallis", predictor)
    if r:
        out.append(f"{predictor} across groups: Kruskal-Wallis H({r['df']}) = "
                   f"{r['statistic']:.2f}, {format_p(r['p'])}.")
    for x in (dfc, predictor):
        r = find("Spearman", x, f"{x} ~ {outcome}") if x and outcome else None
        if r:
            out.append(f"{x} vs {outcome} (patients): Spearman rho = {r['statistic']:.2f}, "
                       f"{format_p(r['p'])}, n = {r['n']}.")
    r = find("mediation")
    if r:
        verdict = "excludes" if r["ci_low"] > 0 or r["ci_high"] < 0 else "includes"
        out.append(f"Mediation {r['variable']}: indirect effect {format_number(r['statistic'])}"
                   f", 95 % bootstrap CI {format_number(r['ci_low'])} to "
                   f"{format_number(r['ci_high'])} ({verdict} 0).")
    for r in stats_rows:
        if r["test"].startswith("LOO logistic") and np.isfinite(r["statistic"]):
            out.append(f"Responder prediction from {r['variable']}: leave-one-out AUC "
                       f"{r['statistic']:.2f} (95 % CI {r['ci_low']:.2f} to {r['ci_high']:.2f}).")
    return out


def _compare_table(results, columns):
    """One row per compared column: mean +- SD (n) per group, ANOVA and Tukey HSD."""
    desc = results["descriptives"]
    st = results["stats"]
    rows = []
    for col in columns:
        row = {"variable": col}
        for d in desc[desc["variable"] == col].itertuples():
            row[d.group] = (f"{format_number(d.mean)} +- {format_number(d.sd, 2)} (n {d.n})"
                            if d.n > 1 else f"{format_number(d.mean)} (n {d.n})" if d.n
                            else "n/a")
        mine = st[st["variable"] == col]
        anova = mine[mine["test"] == "one-way ANOVA"]
        if len(anova) and np.isfinite(anova["p"].iloc[0]):
            a = anova.iloc[0]
            row["one-way ANOVA"] = (f"F({a['df']}) = {format_number(a['statistic'])}, "
                                    f"{format_p(a['p'])}")
            row["eta squared"] = a["effect_size"]
            row["Tukey HSD (mean difference, adjusted P)"] = "; ".join(
                f"{t.contrast}: {format_number(t.effect_size)}, {format_p(t.p_adj)}"
                for t in mine[mine["test"] == "Tukey HSD"].itertuples())
        else:
            row["one-way ANOVA"] = anova["note"].iloc[0] if len(anova) else "not run"
        rows.append(row)
    return pd.DataFrame(rows)


#: the page fits any window from 360 px up: figures shrink to the page width (never past
#: their own size), tables wrap their cells, nothing is wider than the window
CSS = ("*,*::before,*::after{box-sizing:border-box}"
       "body{font-family:sans-serif;margin:0 auto;padding:0 2em 2em;max-width:1200px;"
       "line-height:1.4;overflow-wrap:break-word}"
       "h1,h2{font-weight:600}h2{margin-top:1.6em}"
       "img{max-width:100%;height:auto}"
       ".figures{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}"
       "figure{margin:0;min-width:0;max-width:100%}"
       "figure img{display:block;outline:1px solid #ddd}"
       "figcaption{font-size:13px;color:#333;margin-top:0.3em}"
       ".table{max-width:100%}"
       "table{border-collapse:collapse;font-size:12px;margin:0.5em 0;max-width:100%}"
       "td,th{border:1px solid #ccc;padding:2px 5px;vertical-align:top}"
       # below 800 px a long word may break anywhere, so that every table still fits
       "@media (max-width:799px){td,th{overflow-wrap:anywhere}}"
       "td.num{text-align:right;white-space:nowrap}"
       "th{background:#eee;text-align:left}"
       ".skip{color:#a00}"
       "ul.references{list-style:none;padding-left:2em}"
       "ul.references li{margin:4px 0;text-indent:-2em}")


def build_group_report(gdir, tables, results, options, *, random_seed, trial=None):
    """Draw the figures and write ``report.html`` in ``gdir``; return the report path.

    ``tables`` and ``results`` are the imaging analysis' (None when the dataset has no
    participant dFC outputs: a trial-only page); ``trial`` is the crossover trial's
    :class:`~bids_dfc.stats.trial.TrialResults` (None without a trial).
    """
    if tables is None and trial is None:
        raise ValueError("a group report needs the imaging results, a trial or both")
    gdir = Path(gdir)
    imaging = draw_figures(tables, results, options) if tables is not None else []
    drawn = draw_trial_figures(trial) if trial is not None else []
    saved = _save_figures(gdir / "figures", imaging + drawn)  # one call: none is stale
    figs, trial_figs = saved[:len(imaging)], saved[len(imaging):]
    path = gdir / GROUP_FILES["report"]
    atomic_write(path, _html(figs, tables, results, options, random_seed, trial, trial_figs))
    return path


def _save_figures(fdir, figs) -> list[tuple[Path, tuple[int, int], str]]:
    """Save each figure as a PNG in ``fdir`` (removing stale ones); (path, (width, height)
    in pixels, caption) triples."""
    saved = [(save_figure(fig, fdir / name, dpi=DPI, format="png"),
              tuple(int(round(v * DPI)) for v in fig.get_size_inches()), caption)
             for name, fig, caption in figs]
    made = {name for name, _, _ in figs}
    for stale in fdir.glob("*.png"):  # figures of an earlier run with other options
        if stale.name not in made:
            stale.unlink()
    return saved


#: the page's head, up to its first heading
HEAD = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bids_dfc group report</title><style>{css}</style></head><body>
<h1>bids_dfc group report</h1>
"""


def _html(figs, tables, results, options, random_seed, trial=None, trial_figs=()) -> str:
    """The report page around the figures: the imaging sections (unless ``tables`` is
    None), the trial's section (when ``trial``), the methods and the references."""
    methods = []
    if tables is not None:
        body, imaging_methods = _imaging_html(figs, tables, results, options, random_seed)
        methods.append(imaging_methods)
    else:
        n = trial.auc["participant_id"].nunique()
        body = (f"<p>No participant dFC outputs were found, so only the crossover trial was "
                f"analysed ({n} participants).</p>\n")
    if trial is not None:
        body += trial_section(trial, trial_figs) + "\n"
        methods.append(trial_methods(trial))
    body = (HEAD.format(css=CSS) + body + "<h2>Methods</h2>"
            + "".join(f"<p>{_escape(m)}</p>" for m in methods) + "\n")
    return body + _references(body) + "\n</body></html>\n"


def _imaging_html(figs, tables, results, options, random_seed) -> tuple[str, str]:
    """The imaging analysis' part of the page (from the summary line to the exclusions)
    and its methods paragraph."""
    roles, subj = tables.roles, tables.subjects
    gcol, outcome, predictor = roles["group"], roles["outcome"], roles["predictor"]
    stats_rows = results["stats"].to_dict(orient="records")
    compare = roles.get("compare") or []
    fig_html = figures_html(figs)
    counts = subj[gcol].value_counts()
    ngroups = ", ".join(f"{g}: {int(counts.get(g, 0))}" for g in roles["labels"])
    skipped = "".join(f"<li class='skip'>{html.escape(s['test'])} ({html.escape(s['variable'])}"
                      f"): {html.escape(s['reason'])}</li>" for s in results["skipped"])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in tables.notes)
    key = "".join(f"<li>{_escape(k)}</li>" for k in _key_results(stats_rows, roles))
    methods = METHODS
    compare_html = ""
    if compare:
        methods += (f" Compared columns ({', '.join(compare)}): Shapiro-Wilk per group, "
                    "one-way ANOVA with Tukey HSD post hoc, as dFC.")
        compare_html = ("<h2>Compared columns (one-way ANOVA, Tukey HSD)</h2>"
                        + _table(_compare_table(results, compare)))
    body = f"""<p>{len(subj)} participants ({ngroups}), {len(tables.runs)} runs; primary pair
{html.escape('-'.join(options.pair))}; outcome {html.escape(str(outcome))}; predictor
{html.escape(str(predictor))}; covariates {html.escape(', '.join(roles['covariates']) or 'none')};
bootstrap resamples {options.n_boot}; random seed {html.escape(str(random_seed))}.</p>
<ul>{notes}</ul>
<h2>Key results</h2><ul>{key or '<li>no test could run</li>'}</ul>
<h2>Figures</h2><div class="figures">{fig_html}</div>
{compare_html}<h2>Descriptive statistics</h2>{_table(results['descriptives'])}
<h2>Tests</h2>{_table(results['stats'])}
<h2>Mediation</h2>{_mediation_table(results['mediation'])}
<h2>Responder prediction</h2>{_table(results['prediction'])}
<h2>Skipped tests</h2>{'<ul>' + skipped + '</ul>' if skipped else '<p><em>none</em></p>'}
<h2>Exclusions</h2>{_table(tables.exclusions)}
"""
    return body, methods
