"""The group report's figures (matplotlib ``Figure`` objects, pyplot-free, constrained
layout so that no two labels overlap); :mod:`bids_dfc.reports.group` saves them and writes
the page around them.

dFC, the predictor and the ``--compare-columns`` by group (individual points, mean +- SD,
significance bars of the post hoc tests), scatter plots against the outcome with the
Spearman rho and a least-squares line, the mediation path diagram, and the leave-one-out ROC
curves. Every P value shown goes through :func:`bids_dfc.reports.text.format_p`, every other
number through :func:`~bids_dfc.reports.text.format_number`.
"""

from __future__ import annotations

import math

import numpy as np

from bids_dfc.reports.text import format_number, format_p

__all__ = ["DPI", "draw_figures", "fig_by_group", "fig_compare", "fig_mediation", "fig_roc",
           "fig_scatter"]

COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
#: figure resolution: a figure's pixel width is 100 x its width in inches, and the page
#: shows it at that size up to the page width (the widest figure, 7.2 in, fits an 800 px
#: window), so the font sizes below are the sizes read on screen
DPI = 100
FONT = 10
SMALL = 9
#: at most this many panels per row in the compared-columns figure
MAX_PANELS_PER_ROW = 2
PANEL = 3.6  # inches, one by-group or scatter panel


def _figure(width, height):
    """A pyplot-free Agg figure with constrained layout (labels are kept apart)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.06, w_pad=0.06, hspace=0.04, wspace=0.04)
    return fig


#: seed of the points' horizontal jitter in the by-group figures: fixed, so a report looks the
#: same whatever --random-seed the statistics used
JITTER_SEED = 0


def _stars(p):
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def fig_by_group(subj, var, gcol, order, posthoc, title, *, seed):
    """Individual points, mean +- SD and bars for post hoc pairs with P < .05."""
    fig = _figure(4.4, 4.0)
    _draw_by_group(fig.subplots(), subj, var, gcol, order, posthoc, title, seed)
    return fig


def fig_compare(subj, columns, gcol, order, stats_rows, *, seed):
    """One by-group panel per compared column (ANOVA P in its title), at most
    :data:`MAX_PANELS_PER_ROW` panels a row."""
    ncols = min(len(columns), MAX_PANELS_PER_ROW)
    nrows = math.ceil(len(columns) / ncols)
    fig = _figure(PANEL * ncols, PANEL * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(columns):]:
        ax.remove()
    for ax, col in zip(axes, columns):
        rows = [r for r in stats_rows if r["variable"] == col]
        anova = next((r for r in rows if r["test"] == "one-way ANOVA"
                      and np.isfinite(r["p"])), None)
        title = f"ANOVA {format_p(anova['p'])}" if anova else "ANOVA skipped"
        _draw_by_group(ax, subj, col, gcol, order, [r for r in rows if r["test"] == "Tukey HSD"],
                       title, seed)
    return fig


def _significant_pairs(posthoc, order):
    """(x1, x2, p) of the post hoc pairs with P < .05, the narrowest first (so a wider bar
    is drawn above the narrower ones it spans)."""
    pairs = []
    for r in posthoc:
        p = r["p_adj"] if r["p_adj_method"] == "Tukey HSD" else r["p"]
        if not np.isfinite(p) or p >= 0.05:
            continue
        g2, g1 = [s.strip() for s in r["contrast"].replace(" vs ", " - ").split(" - ")]
        if g1 in order and g2 in order:
            x1, x2 = sorted((order.index(g1), order.index(g2)))
            pairs.append((x1, x2, p))
    return sorted(pairs, key=lambda t: (t[1] - t[0], t[0]))


#: height of one significance bar level as a fraction of the y axis: the label (SMALL pt)
#: fits between a bar and the feet of the bar above it
BAR_LEVEL = 0.09
BAR_FOOT = 0.25  # a bar's feet, as a fraction of its level's height


def _draw_by_group(ax, subj, var, gcol, order, posthoc, title, seed):
    rng = np.random.default_rng(seed)
    lows, highs = [], []
    for i, g in enumerate(order):
        v = subj.loc[subj[gcol] == g, var].dropna().to_numpy(dtype=float)
        ax.scatter(i + rng.uniform(-0.15, 0.15, v.size), v, s=18, alpha=0.75,
                   color=COLOURS[i % len(COLOURS)], edgecolor="none", zorder=2)
        if v.size:
            sd = v.std(ddof=1) if v.size > 1 else 0.0
            ax.errorbar(i + 0.3, v.mean(), yerr=sd, fmt="o", color="k", capsize=4, ms=5,
                        zorder=3)
            lows += [v.min(), v.mean() - sd]
            highs += [v.max(), v.mean() + sd]
    lo, hi = (min(lows), max(highs)) if lows else (0.0, 1.0)
    data_span = (hi - lo) or 1.0
    pairs = _significant_pairs(posthoc, order)
    # the axis spans the data (5 % margins) plus one level per bar and one for the top
    # label: span = 1.1 * data_span + (len(pairs) + 1) * BAR_LEVEL * span
    span = 1.1 * data_span / (1 - (len(pairs) + 1) * BAR_LEVEL) if pairs else 1.1 * data_span
    step = BAR_LEVEL * span
    level = hi + 0.05 * data_span
    for x1, x2, p in pairs:
        level += step
        ax.plot([x1, x1, x2, x2], [level - BAR_FOOT * step, level, level,
                                   level - BAR_FOOT * step], "k-", lw=1, gid="bracket")
        ax.text((x1 + x2) / 2, level, f"{_stars(p)} {format_p(p)}", ha="center", va="bottom",
                fontsize=SMALL, gid="bracket")
    ax.set_ylim(lo - 0.05 * data_span, lo - 0.05 * data_span + span)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_xticks(range(len(order)), order, fontsize=FONT)
    ax.tick_params(axis="y", labelsize=SMALL)
    ax.set_ylabel(var, fontsize=FONT)
    ax.set_title(title, fontsize=FONT)


def fig_scatter(patients, xs, outcome, gcol, order, stats_rows, first_colour=0):
    """One panel per x: patients' x against the outcome, least-squares line, Spearman rho
    (in the panel's title, so it never covers a point); one legend above the panels."""
    fig = _figure(PANEL * len(xs), PANEL + 0.3)
    axes = fig.subplots(1, len(xs), squeeze=False)[0]
    for ax, x in zip(axes, xs):
        data = patients[[x, outcome, gcol]].dropna()
        for i, g in enumerate(order):
            d = data[data[gcol] == g]
            ax.scatter(d[x], d[outcome], s=20, alpha=0.85, label=g, edgecolor="none",
                       color=COLOURS[(i + first_colour) % len(COLOURS)])
        if len(data) > 2:
            slope, icpt = np.polyfit(data[x].astype(float), data[outcome].astype(float), 1)
            xx = np.linspace(data[x].min(), data[x].max(), 50)
            ax.plot(xx, icpt + slope * xx, "k-", lw=1.2, label="least-squares fit")
        row = next((r for r in stats_rows if r["test"] == "Spearman rank correlation"
                    and r["contrast"] == f"{x} ~ {outcome}" and np.isfinite(r["p"])), None)
        ax.set_title(f"rho = {format_number(row['statistic'], 2)}, {format_p(row['p'])}, "
                     f"n = {row['n']}" if row else "Spearman rho not computed", fontsize=FONT)
        ax.set_xlabel(x, fontsize=FONT)
        ax.set_ylabel(outcome, fontsize=FONT)
        ax.tick_params(labelsize=SMALL)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), fontsize=SMALL,
               frameon=False)
    return fig


def fig_mediation(med):
    """Path diagram X -> M -> Y with a, b, c, c' and the indirect effect.

    Each path's label sits on the outer side of its arrow, aligned away from it (the a
    label ends left of and above the X -> M arrow's middle, the b label starts right of and
    above the M -> Y arrow's middle, c and c' hang below X -> Y), so no label crosses an
    arrow.
    """
    est = med.set_index("path")
    x, m, y = med["x"].iloc[0], med["m"].iloc[0], med["y"].iloc[0]
    fig = _figure(7.2, 4.2)
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6)
    ax.axis("off")
    pos = {"X": (1.3, 1.2), "M": (5.0, 4.1), "Y": (8.7, 1.2)}
    boxes = {}
    for key, label in (("X", x), ("M", m), ("Y", y)):
        boxes[key] = ax.text(*pos[key], f"{key}\n{label}", ha="center", va="center",
                             fontsize=FONT, bbox={"boxstyle": "round", "fc": "#eef", "ec": "k"})

    def arrow(a, b):
        ax.annotate("", xy=pos[b], xytext=pos[a], xycoords="data",
                    arrowprops={"arrowstyle": "-|>", "lw": 1.4, "color": "k",
                                "patchA": boxes[a].get_bbox_patch(),
                                "patchB": boxes[b].get_bbox_patch(),
                                "shrinkA": 4, "shrinkB": 4})
        return ((pos[a][0] + pos[b][0]) / 2, (pos[a][1] + pos[b][1]) / 2)

    def coef(p, sep="\n"):
        r = est.loc[p]
        return f"{format_number(r['estimate'])}{sep}(SE {format_number(r['se'], 2)}), " \
               f"{format_p(r['p'])}"

    gap = 0.25
    mx, my = arrow("X", "M")
    ax.text(mx - gap, my + gap, "a = " + coef("a"), ha="right", va="bottom", fontsize=SMALL)
    mx, my = arrow("M", "Y")
    ax.text(mx + gap, my + gap, "b = " + coef("b"), ha="left", va="bottom", fontsize=SMALL)
    mx, my = arrow("X", "Y")
    ax.text(mx, my - gap, "c' = " + coef("c_prime", " ") + "\nc = " + coef("c", " "),
            ha="center", va="top", fontsize=SMALL)
    ind = est.loc["indirect"]
    ax.text(5, 6, f"indirect effect a*b = {format_number(ind['estimate'])}; 95 % bootstrap CI "
            f"{format_number(ind['ci_low'])} to {format_number(ind['ci_high'])} (percentile),\n"
            f"{format_number(ind['ci_bc_low'])} to {format_number(ind['ci_bc_high'])} "
            "(bias-corrected)", ha="center", va="top", fontsize=SMALL)
    return fig


#: ROC curves, first to last: each drawn narrower and on top of the one before, in its own
#: colour and dash pattern, so a curve stays visible where another runs along it
ROC_STYLES = [{"lw": 4.5, "ls": "-"}, {"lw": 2.8, "ls": (0, (4, 1.5))},
              {"lw": 1.4, "ls": "-"}, {"lw": 1.0, "ls": (0, (1, 1))}]


def fig_roc(pred, curves):
    """Leave-one-out ROC curves (legend with the AUC and its bootstrap CI below the plot);
    the chance diagonal lies under every curve."""
    fig = _figure(4.6, 5.2)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls=":", color="0.55", lw=1, zorder=1, label="chance (AUC 0.50)")
    for i, r in enumerate(pred.itertuples()):
        fpr, tpr = curves[r.model]
        style = ROC_STYLES[min(i, len(ROC_STYLES) - 1)]
        ax.plot(fpr, tpr, color=COLOURS[i % len(COLOURS)], zorder=2 + i,
                solid_capstyle="butt", dash_capstyle="butt", **style,
                label=f"{r.model}: AUC {format_number(r.auc, 2)} (95 % CI "
                      f"{format_number(r.auc_ci_low, 2)} to {format_number(r.auc_ci_high, 2)})")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_aspect("equal")
    ax.set_xlabel("1 - specificity", fontsize=FONT)
    ax.set_ylabel("sensitivity", fontsize=FONT)
    ax.tick_params(labelsize=SMALL)
    ax.set_title("Responder prediction (leave-one-out)", fontsize=FONT)
    handles, labels = ax.get_legend_handles_labels()
    order = list(range(1, len(handles))) + [0]  # the models first, chance last
    fig.legend([handles[k] for k in order], [labels[k] for k in order], loc="outside lower "
               "center", fontsize=SMALL, frameon=False, handlelength=3)
    return fig


def draw_figures(tables, results, options) -> list[tuple[str, object, str]]:
    """Every figure the results allow: (file name, matplotlib Figure, caption) triples."""
    roles, subj = tables.roles, tables.subjects
    gcol, dfc, order = roles["group"], roles["dfc"], results["groups"]
    outcome, predictor = roles["outcome"], roles["predictor"]
    stats_rows = results["stats"].to_dict(orient="records")
    figs = []

    def post(test, var):
        return [r for r in stats_rows if r["test"] == test and r["variable"] == var]

    figs.append(("dfc_by_group.png",
                 fig_by_group(subj, dfc, gcol, order, post("Tukey HSD", dfc),
                              "dFC by group (ANOVA, Tukey HSD)", seed=JITTER_SEED),
                 f"{dfc} by group: points are participants, black mean +- SD; bars mark "
                 "Tukey HSD pairs with adjusted P < .05."))
    if predictor:
        figs.append(("predictor_by_group.png",
                     fig_by_group(subj, predictor, gcol, order,
                                  post("Mann-Whitney U (two-sided)", predictor),
                                  f"{predictor} by group (Kruskal-Wallis, Mann-Whitney U)",
                                  seed=JITTER_SEED),
                     f"{predictor} by group; bars mark Mann-Whitney U pairs with unadjusted "
                     "P < .05."))
    compare = roles.get("compare") or []
    if compare:
        figs.append(("compare_by_group.png",
                     fig_compare(subj, compare, gcol, order, stats_rows, seed=JITTER_SEED),
                     f"{', '.join(compare)} by group (one-way ANOVA; bars mark Tukey HSD pairs "
                     "with adjusted P < .05; black mean +- SD)."))
    patients = subj[subj[gcol].isin(roles["labels"][1:])]
    if outcome and len(patients):
        xs = [dfc] + ([predictor] if predictor else [])
        figs.append(("scatter_outcome.png",
                     fig_scatter(patients, xs, outcome, gcol, roles["labels"][1:], stats_rows,
                                 first_colour=int(roles["labels"][0] in order)),
                     f"Patients: {', '.join(xs)} against {outcome} (Spearman rho; line is the "
                     "least-squares fit)."))
    if results["mediation"] is not None:
        figs.append(("mediation.png", fig_mediation(results["mediation"]),
                     "Mediation (PROCESS model 4): unstandardised paths, indirect effect with "
                     f"its {options.n_boot}-resample bootstrap CI."))
    if len(results["prediction"]):
        figs.append(("roc.png", fig_roc(results["prediction"], results["roc_curves"]),
                     "Leave-one-out ROC curves of responder prediction; AUC with stratified "
                     "bootstrap 95 % CI; the dotted diagonal is chance."))
    return figs
