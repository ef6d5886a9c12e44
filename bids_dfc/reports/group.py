"""Group report: matplotlib figures (PNG files in ``group/figures/``) and ``group/report.html``.

Figures: dFC, the predictor and the ``--compare-columns`` by group (individual points,
mean +- SD, significance bars of the post hoc tests), scatter plots against the outcome with
the Spearman rho and a least-squares line, the mediation path diagram, and the leave-one-out
ROC curves.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from bids_dfc.io import atomic_write, save_figure

__all__ = ["build_group_report"]

COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]


def _subplots(nrows=1, ncols=1, *, figsize, squeeze=True):
    """A pyplot-free Agg figure (no global figure registry, nothing to close)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _save(fig, path):
    return save_figure(fig, path, dpi=100, format="png")


#: seed of the points' horizontal jitter in the by-group figures: fixed, so a report looks the
#: same whatever --random-seed the statistics used
JITTER_SEED = 0


def _stars(p):
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def fig_by_group(subj, var, gcol, order, posthoc, title, path, *, seed):
    """Individual points, mean +- SD and bars for post hoc pairs with p < 0.05."""
    fig, ax = _subplots(figsize=(4.2, 4.0))
    fig.subplots_adjust(left=0.19, right=0.97, top=0.92, bottom=0.08)
    _draw_by_group(ax, subj, var, gcol, order, posthoc, title, seed)
    return _save(fig, path)


def fig_compare(subj, columns, gcol, order, stats_rows, path, *, seed):
    """One :func:`fig_by_group` panel per compared column (ANOVA p in the title)."""
    width = 3.6 * len(columns)
    fig, axes = _subplots(1, len(columns), figsize=(width, 4.0), squeeze=False)
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.15 / width, top=0.92, bottom=0.08,
                        wspace=0.35)
    for ax, col in zip(axes[0], columns):
        rows = [r for r in stats_rows if r["variable"] == col]
        anova = next((r for r in rows if r["test"] == "one-way ANOVA"
                      and np.isfinite(r["p"])), None)
        title = f"ANOVA p = {anova['p']:.3g}" if anova else "ANOVA skipped"
        _draw_by_group(ax, subj, col, gcol, order, [r for r in rows if r["test"] == "Tukey HSD"],
                       title, seed)
    return _save(fig, path)


def _draw_by_group(ax, subj, var, gcol, order, posthoc, title, seed):
    rng = np.random.default_rng(seed)
    tops = []
    for i, g in enumerate(order):
        v = subj.loc[subj[gcol] == g, var].dropna().to_numpy(dtype=float)
        ax.scatter(i + rng.uniform(-0.15, 0.15, v.size), v, s=18, alpha=0.7,
                   color=COLOURS[i % len(COLOURS)], edgecolor="none")
        if v.size:
            ax.errorbar(i + 0.3, v.mean(), yerr=v.std(ddof=1) if v.size > 1 else 0,
                        fmt="o", color="k", capsize=4, ms=5)
            tops.append(v.max())
    lo, hi = ax.get_ylim()
    step = 0.08 * (hi - lo)
    level = max(tops) if tops else hi
    for r in posthoc:
        p = r["p_adj"] if r["p_adj_method"] == "Tukey HSD" else r["p"]
        if not np.isfinite(p) or p >= 0.05:
            continue
        g2, g1 = [s.strip() for s in r["contrast"].replace(" vs ", " - ").split(" - ")]
        if g1 not in order or g2 not in order:
            continue
        x1, x2 = sorted((order.index(g1), order.index(g2)))
        level += step
        ax.plot([x1, x1, x2, x2], [level - step / 3, level, level, level - step / 3], "k-",
                lw=1)
        ax.text((x1 + x2) / 2, level, f"{_stars(p)} p={p:.3g}", ha="center", va="bottom",
                fontsize=8)
    ax.set_ylim(lo, max(hi, level + 1.5 * step))
    ax.set_xticks(range(len(order)), order)
    ax.set_ylabel(var)
    ax.set_title(title, fontsize=10)


def fig_scatter(patients, xs, outcome, gcol, order, stats_rows, path, first_colour=0):
    """One panel per x: patients' x against the outcome, least-squares line, Spearman rho."""
    fig, axes = _subplots(1, len(xs), figsize=(4.2 * len(xs), 4.0), squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.96, bottom=0.12, wspace=0.3)
    for ax, x in zip(axes[0], xs):
        data = patients[[x, outcome, gcol]].dropna()
        for i, g in enumerate(order):
            d = data[data[gcol] == g]
            if len(d):
                ax.scatter(d[x], d[outcome], s=20, alpha=0.8, label=g, edgecolor="none",
                           color=COLOURS[(i + first_colour) % len(COLOURS)])
        if len(data) > 2:
            slope, icpt = np.polyfit(data[x].astype(float), data[outcome].astype(float), 1)
            xx = np.linspace(data[x].min(), data[x].max(), 50)
            ax.plot(xx, icpt + slope * xx, "k-", lw=1.2)
        row = next((r for r in stats_rows if r["test"] == "Spearman rank correlation"
                    and r["contrast"] == f"{x} ~ {outcome}" and np.isfinite(r["p"])), None)
        if row:
            ax.text(0.03, 0.97, f"Spearman rho = {row['statistic']:.2f}\np = {row['p']:.3g}, "
                    f"n = {row['n']}", transform=ax.transAxes, va="top", fontsize=9)
        ax.set_xlabel(x)
        ax.set_ylabel(outcome)
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def fig_mediation(med, path):
    """Path diagram X -> M -> Y with a, b, c, c' and the indirect effect."""
    est = med.set_index("path")
    x, m, y = med["x"].iloc[0], med["m"].iloc[0], med["y"].iloc[0]
    fig, ax = _subplots(figsize=(6.4, 3.6))
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.01)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6)
    ax.axis("off")
    pos = {"X": (1.5, 1.2), "M": (5, 4.6), "Y": (8.5, 1.2)}
    for key, label in (("X", x), ("M", m), ("Y", y)):
        ax.text(*pos[key], f"{key}\n{label}", ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "fc": "#eef", "ec": "k"})

    def arrow(a, b, text, dx=0.0, dy=0.0):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate("", xy=(x1 - 0.9 * np.sign(x1 - x0), y1 - 0.6 * np.sign(y1 - y0)),
                    xytext=(x0 + 0.9 * np.sign(x1 - x0), y0 + 0.6 * np.sign(y1 - y0)),
                    arrowprops={"arrowstyle": "->", "lw": 1.4})
        ax.text((x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy, text, ha="center", fontsize=8)

    def coef(p):
        r = est.loc[p]
        return f"{r['estimate']:.3g} (SE {r['se']:.2g}), p={r['p']:.3g}"

    arrow("X", "M", "a = " + coef("a"), dx=-1.3, dy=0.3)
    arrow("M", "Y", "b = " + coef("b"), dx=1.3, dy=0.3)
    arrow("X", "Y", "c' = " + coef("c_prime") + "\nc = " + coef("c"), dy=-0.9)
    ind = est.loc["indirect"]
    ax.text(5, 5.85, f"indirect a*b = {ind['estimate']:.3g}, 95% bootstrap CI "
            f"[{ind['ci_low']:.3g}, {ind['ci_high']:.3g}] (percentile), "
            f"[{ind['ci_bc_low']:.3g}, {ind['ci_bc_high']:.3g}] (BC)",
            ha="center", fontsize=8)
    return _save(fig, path)


def fig_roc(pred, curves, path):
    """Leave-one-out ROC curves with AUC and its bootstrap CI."""
    fig, ax = _subplots(figsize=(4.4, 4.2))
    fig.subplots_adjust(left=0.15, right=0.97, top=0.93, bottom=0.12)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    for i, r in enumerate(pred.itertuples()):
        fpr, tpr = curves[r.model]
        ax.plot(fpr, tpr, color=COLOURS[i % len(COLOURS)], lw=1.6,
                label=f"{r.model}: AUC {r.auc:.2f} [{r.auc_ci_low:.2f}, {r.auc_ci_high:.2f}]")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("Responder prediction (leave-one-out)", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def _table(frame, digits=4):
    if frame is None or len(frame) == 0:
        return "<p><em>none</em></p>"

    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "n/a" if not np.isfinite(v) else f"{v:.{digits}g}"
        return html.escape("n/a" if v is None or (isinstance(v, float) and np.isnan(v))
                           else str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


METHODS = (
    "dFC is the standard deviation over time of the dynamic conditional correlation (DCC; "
    "Lindquist et al. 2014, NeuroImage 101:531) of the primary seed pair, averaged over a "
    "participant's included runs. Normality: Shapiro-Wilk per group. dFC across groups: "
    "one-way ANOVA with Tukey HSD post hoc (scipy). Predictor across groups: Kruskal-Wallis "
    "with two-sided Mann-Whitney U post hoc (Holm-adjusted p in p_adj). Spearman rank "
    "correlations in patients (Fisher-z CI with the Bonett-Wright variance). Mediation "
    "X -> M -> Y: Hayes PROCESS model 4 by OLS, indirect effect a*b with a nonparametric "
    "bootstrap (percentile and bias-corrected intervals). Covariates enter the ANCOVA and both "
    "mediation models. With all seed pairs tested, ANOVA and Spearman p-values are "
    "Benjamini-Hochberg FDR-corrected across pairs. Prognosis: leave-one-out L2-penalised "
    "logistic regression of responder status, ROC AUC with a stratified bootstrap CI. "
    "All tests two-sided, alpha 0.05."
)

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
                       f"{r['statistic']:.2f}, P = {r['p']:.3g}.")
    r = find("Kruskal-Wallis", predictor)
    if r:
        out.append(f"{predictor} across groups: Kruskal-Wallis H({r['df']}) = "
                   f"{r['statistic']:.2f}, P = {r['p']:.3g}.")
    for x in (dfc, predictor):
        r = find("Spearman", x, f"{x} ~ {outcome}") if x and outcome else None
        if r:
            out.append(f"{x} vs {outcome} (patients): Spearman rho = {r['statistic']:.2f}, "
                       f"P = {r['p']:.3g}, n = {r['n']}.")
    r = find("mediation")
    if r:
        verdict = "excludes" if r["ci_low"] > 0 or r["ci_high"] < 0 else "includes"
        out.append(f"Mediation {r['variable']}: indirect effect {r['statistic']:.3g}, 95 % "
                   f"bootstrap CI {r['ci_low']:.3g} to {r['ci_high']:.3g} ({verdict} 0).")
    for r in stats_rows:
        if r["test"].startswith("LOO logistic") and np.isfinite(r["statistic"]):
            out.append(f"Responder prediction from {r['variable']}: leave-one-out AUC "
                       f"{r['statistic']:.2f} (95 % CI {r['ci_low']:.2f} to {r['ci_high']:.2f}).")
    return out


def _compare_table(results, columns):
    """One row per compared column: mean +- SD (n) per group, ANOVA and Tukey HSD."""
    import pandas as pd

    desc = results["descriptives"]
    st = results["stats"]
    rows = []
    for col in columns:
        row = {"variable": col}
        for d in desc[desc["variable"] == col].itertuples():
            row[d.group] = (f"{d.mean:.3g} +- {d.sd:.2g} (n {d.n})" if d.n > 1
                            else f"{d.mean:.3g} (n {d.n})" if d.n else "n/a")
        mine = st[st["variable"] == col]
        anova = mine[mine["test"] == "one-way ANOVA"]
        if len(anova) and np.isfinite(anova["p"].iloc[0]):
            a = anova.iloc[0]
            row["one-way ANOVA"] = f"F({a['df']}) = {a['statistic']:.3g}, p = {a['p']:.3g}"
            row["eta squared"] = a["effect_size"]
            row["Tukey HSD (mean difference, adjusted p)"] = "; ".join(
                f"{t.contrast}: {t.effect_size:.3g}, p = {t.p_adj:.3g}"
                for t in mine[mine["test"] == "Tukey HSD"].itertuples())
        else:
            row["one-way ANOVA"] = anova["note"].iloc[0] if len(anova) else "not run"
        rows.append(row)
    return pd.DataFrame(rows)


CSS = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
       "font-size:12px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
       "th{background:#eee}figure{display:inline-block;margin:0.5em;vertical-align:top}"
       "figcaption{font-size:12px;max-width:560px}.skip{color:#a00}")


def build_group_report(gdir, tables, results, options, *, random_seed):
    """Draw the figures and write ``report.html`` in ``gdir``; return the report path."""
    gdir = Path(gdir)
    figs = _figures(gdir / "figures", tables, results, options)
    path = gdir / "report.html"
    atomic_write(path, _html(figs, tables, results, options, random_seed))
    return path


def _figures(fdir, tables, results, options) -> list[tuple[Path, str]]:
    """Draw every figure the results allow (removing stale ones); (path, caption) pairs."""
    roles, subj = tables.roles, tables.subjects
    gcol, dfc, order = roles["group"], roles["dfc"], results["groups"]
    outcome, predictor = roles["outcome"], roles["predictor"]
    stats_rows = results["stats"].to_dict(orient="records")
    figs = []

    def post(test, var):
        return [r for r in stats_rows if r["test"] == test and r["variable"] == var]

    figs.append((fig_by_group(subj, dfc, gcol, order, post("Tukey HSD", dfc),
                              "dFC by group (ANOVA, Tukey HSD)", fdir / "dfc_by_group.png",
                              seed=JITTER_SEED),
                 f"{dfc} by group: points are participants, black mean +- SD; bars mark "
                 "Tukey HSD pairs with adjusted p < 0.05."))
    if predictor:
        figs.append((fig_by_group(subj, predictor, gcol, order,
                                  post("Mann-Whitney U (two-sided)", predictor),
                                  f"{predictor} by group (Kruskal-Wallis, Mann-Whitney U)",
                                  fdir / "predictor_by_group.png", seed=JITTER_SEED),
                     f"{predictor} by group; bars mark Mann-Whitney U pairs with p < 0.05."))
    compare = roles.get("compare") or []
    if compare:
        figs.append((fig_compare(subj, compare, gcol, order, stats_rows,
                                 fdir / "compare_by_group.png", seed=JITTER_SEED),
                     f"{', '.join(compare)} by group (one-way ANOVA; bars mark Tukey HSD pairs "
                     "with adjusted p < 0.05; black mean +- SD)."))
    patients = subj[subj[gcol].isin(roles["labels"][1:])]
    if outcome and len(patients):
        xs = [dfc] + ([predictor] if predictor else [])
        figs.append((fig_scatter(patients, xs, outcome, gcol, roles["labels"][1:], stats_rows,
                                 fdir / "scatter_outcome.png",
                                 first_colour=int(roles["labels"][0] in order)),
                     f"Patients: {', '.join(xs)} against {outcome} (Spearman rho; line is the "
                     "least-squares fit)."))
    if results["mediation"] is not None:
        figs.append((fig_mediation(results["mediation"], fdir / "mediation.png"),
                     "Mediation (PROCESS model 4): unstandardised paths, indirect effect with "
                     f"its {options.n_boot}-resample bootstrap CI."))
    if len(results["prediction"]):
        figs.append((fig_roc(results["prediction"], results["roc_curves"], fdir / "roc.png"),
                     "Leave-one-out ROC curves of responder prediction; AUC with stratified "
                     "bootstrap 95 % CI."))
    made = {Path(p).name for p, _ in figs}
    for stale in fdir.glob("*.png"):  # figures of an earlier run with other options
        if stale.name not in made:
            stale.unlink()
    return figs


def _html(figs, tables, results, options, random_seed) -> str:
    """The report page around the figures."""
    roles, subj = tables.roles, tables.subjects
    gcol, outcome, predictor = roles["group"], roles["outcome"], roles["predictor"]
    stats_rows = results["stats"].to_dict(orient="records")
    compare = roles.get("compare") or []
    fig_html = "".join(
        f'<figure><img src="figures/{html.escape(Path(p).name)}" alt="{html.escape(c)}">'
        f"<figcaption>{html.escape(c)}</figcaption></figure>" for p, c in figs)
    counts = subj[gcol].value_counts()
    ngroups = ", ".join(f"{g}: {int(counts.get(g, 0))}" for g in roles["labels"])
    skipped = "".join(f"<li class='skip'>{html.escape(s['test'])} ({html.escape(s['variable'])}"
                      f"): {html.escape(s['reason'])}</li>" for s in results["skipped"])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in tables.notes)
    key = "".join(f"<li>{html.escape(k)}</li>" for k in _key_results(stats_rows, roles))
    methods = METHODS
    compare_html = ""
    if compare:
        methods += (f" Compared columns ({', '.join(compare)}): Shapiro-Wilk per group, "
                    "one-way ANOVA with Tukey HSD post hoc, as dFC.")
        compare_html = ("<h2>Compared columns (one-way ANOVA, Tukey HSD)</h2>"
                        + _table(_compare_table(results, compare)))
    body = f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>bids_dfc group report</title><style>{CSS}</style></head><body>
<h1>bids_dfc group report</h1>
<p>{len(subj)} participants ({ngroups}), {len(tables.runs)} runs; primary pair
{html.escape('-'.join(options.pair))}; outcome {html.escape(str(outcome))}; predictor
{html.escape(str(predictor))}; covariates {html.escape(', '.join(roles['covariates']) or 'none')};
bootstrap resamples {options.n_boot}; random seed {html.escape(str(random_seed))}.</p>
<ul>{notes}</ul>
<h2>Key results</h2><ul>{key or '<li>no test could run</li>'}</ul>
<h2>Figures</h2>{fig_html}
{compare_html}<h2>Descriptive statistics</h2>{_table(results['descriptives'])}
<h2>Tests</h2>{_table(results['stats'])}
<h2>Mediation</h2>{_table(results['mediation'])}
<h2>Responder prediction</h2>{_table(results['prediction'])}
<h2>Skipped tests</h2>{'<ul>' + skipped + '</ul>' if skipped else '<p><em>none</em></p>'}
<h2>Exclusions</h2>{_table(tables.exclusions)}
<h2>Methods</h2><p>{html.escape(methods)}</p>
</body></html>
"""
    return body
