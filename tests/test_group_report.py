"""The group HTML report: P values in one format, references from the one bibliography,
figures whose labels do not overlap and whose ROC curves all show, and the page rendered in
headless Chromium at 1280, 800 and 500 px (every figure loads, nothing scrolls sideways;
``BIDS_DFC_SAVE_SCREENSHOTS=1`` also copies the 1280 and 800 px screenshots to
``validation/results/screenshots/group_*.png`` for a reviewer)."""

from __future__ import annotations

import html
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _browser import CHROMIUM, CHROMIUM_MISSING, render_in_chromium
from matplotlib import image as mpimg
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.lines import Line2D
from matplotlib.path import Path as Polyline
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from test_group_workflow import _write_psych, group_options, make_group_dataset
from test_report_participant import _copy_screenshot  # validation/results/screenshots/

from bids_dfc.group.collect import collect_dfc, read_phenotype
from bids_dfc.group.run import run_group_level
from bids_dfc.reports import group_figures
from bids_dfc.reports.citations import IN_TEXT, bibliography
from bids_dfc.reports.text import format_number, format_p
from bids_dfc.stats import table as tb
from bids_dfc.stats.analysis import run_group_statistics

#: four compared columns: the figure that was 1440 px wide
COMPARE = ["anxiety", "pcs", "tsp", "age"]
FIGURES = ["dfc_by_group.png", "predictor_by_group.png", "compare_by_group.png",
           "scatter_outcome.png", "mediation.png", "roc.png"]
#: a P value as the report writes it, and the significance level of the captions
APA_P = re.compile(r"P (?:= \.\d{3}|< \.001|> \.999)|P < \.05")
#: anything that looks like a P value, in any style: p = 0.034, p<0.001, P=3.4e-02, p-value .2
ANY_P = re.compile(r"(?<![\w.])[pP](?:[ -]?values?)?\s*(?:[=<>≤≥]|&lt;|&gt;)\s*"
                   r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
SCIENTIFIC = re.compile(r"\d\.?\d*[eE][-+]?\d")


def _options(**kw):
    return group_options(n_boot=500, compare_columns=COMPARE, **kw)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A group run with every figure: predictor, outcome, four compared columns, mediation
    and three ROC curves; all seed pairs (longer variable names in the tables)."""
    root = tmp_path_factory.mktemp("report")
    bids, out, _ = make_group_dataset(root, n_hc=12, n_patients=22, seed=9)
    _write_psych(bids, 9)
    options = _options(all_pairs=True)
    paths = run_group_level(bids, out, options, random_seed=5)
    return bids, out, options, paths


@pytest.fixture(scope="module")
def figures(study):
    """The report's figures as matplotlib objects, built from the same inputs as the run."""
    bids, out, options, _ = study
    participants, phenotypes, _ = read_phenotype(bids)
    tables = tb.assemble(collect_dfc(out, pair=options.pair, fd_needed_by="FD QC"),
                         participants, phenotypes, options)
    results = run_group_statistics(tables, n_boot=options.n_boot, random_seed=5,
                                   all_pairs=True, pair=options.pair)
    figs = group_figures.draw_figures(tables, results, options)
    for _, fig, _ in figs:
        FigureCanvasAgg(fig).draw()
    return {name: fig for name, fig, _ in figs}


def _visible_text(page: str) -> str:
    """What a reader sees of an HTML page (tags removed, entities decoded, one space)."""
    body = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", body)).replace("\u00a0", " ")
    return re.sub(r"\s+", " ", text)


def _p_styles(text: str) -> list[str]:
    """The P values of ``text`` that are not in the report's one format."""
    return [m.group(0) for m in ANY_P.finditer(text) if not APA_P.fullmatch(m.group(0))]


# --- format_p and format_number ---------------------------------------------------------

@pytest.mark.parametrize(("p", "text", "cell"), [
    (0.001, "P = .001", ".001"),      # .001 itself is not below .001
    (0.0005, "P < .001", "< .001"),
    (0.000999, "P < .001", "< .001"),  # would round to .001
    (0.0349, "P = .035", ".035"),     # three decimals, no leading zero
    (0.0495, "P = .049", ".049"),     # below .05 never reads .050
    (0.05, "P = .050", ".050"),
    (0.5, "P = .500", ".500"),
    (0.9987, "P = .999", ".999"),
    (0.9994, "P > .999", "> .999"),
    (1.0, "P > .999", "> .999"),
    (0.0, "P < .001", "< .001"),
    (math.nan, "n/a", "n/a"),
    (np.float64(0.2), "P = .200", ".200"),
])
def test_format_p_apa_style(p, text, cell):
    assert format_p(p) == text
    assert format_p(p, label=False) == cell


@pytest.mark.parametrize("bad", [-0.01, 1.2, math.inf])
def test_format_p_refuses_what_is_no_probability(bad):
    with pytest.raises(ValueError, match="P value must be in"):
        format_p(bad)


def test_format_number_is_positional():
    assert [format_number(x) for x in (2.95e-4, 7.2e-5, 128.4, -0.05321, 9.996, 0.0)] == \
        ["0.000295", "0.0000720", "128", "-0.0532", "10.0", "0"]
    assert format_number(1234.5, 2) == "1200" and format_number(np.int64(7)) == "7"
    assert format_number(math.nan) == "n/a" and format_number(None) == "n/a"


# --- the report's text --------------------------------------------------------------------

@pytest.mark.slow
def test_report_writes_every_p_value_one_way(study, figures):
    """Key results, captions, table cells and figure annotations: APA P values only; no
    ``p = 0.034``, ``p<0.001`` or ``3.4e-02`` anywhere."""
    page = Path(study[3]["report"]).read_text(encoding="utf-8")
    text = _visible_text(page)
    assert _p_styles(text) == []
    assert SCIENTIFIC.findall(text) == []
    assert len(APA_P.findall(text)) >= 20 and "P < .001" in text and "P = ." in text
    # the checker itself catches the styles the report used to mix
    assert _p_styles("p = 0.034, p<0.001, P = 3.4e-02, ANOVA p=0.000172") == [
        "p = 0.034", "p<0.001", "P = 3.4e-02", "p=0.000172"]
    # table cells under a P header hold the bare form
    for table in re.findall(r"<table>.*?</table>", page, flags=re.S):
        heads = [_visible_text(h).strip() for h in re.findall(r"<th>(.*?)</th>", table)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("</thead>")[1]):
            cells = [_visible_text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for head, cell in zip(heads, cells):
                if head in ("p", "adjusted P"):
                    assert re.fullmatch(r"(?:< \.001|> \.999|\.\d{3}|n/a)(?: \(.+\))?", cell), \
                        (head, cell)
    annotations = [t.get_text() for fig in figures.values() for t in fig.findobj(Text)]
    assert _p_styles(" ".join(annotations)) == []
    assert SCIENTIFIC.findall(" ".join(annotations)) == []
    assert sum(bool(APA_P.search(a)) for a in annotations) >= 10


@pytest.mark.slow
def test_report_lists_exactly_the_works_it_cites(study):
    page = Path(study[3]["report"]).read_text(encoding="utf-8")
    body, refs = page.split("<h2>References</h2>")
    cites = list(dict.fromkeys(IN_TEXT.findall(_visible_text(body))))
    entries = bibliography()
    by_cite = {e["cite"]: k for k, e in entries.items()}
    assert "Lindquist et al. 2014" in cites and set(cites) <= set(by_cite)
    listed = [html.unescape(li) for li in re.findall(r"<li>(.*?)</li>", refs)]
    assert listed == sorted(entries[by_cite[c]]["reference"] for c in cites)
    assert "without a bibliography entry" not in refs


# --- the figures -------------------------------------------------------------------------

def _texts(fig):
    """(artist, window extent) of every text ``fig`` draws: figure and legend texts, and per
    axes its texts and annotations, titles, axis labels and the tick labels in view."""
    drawn = list(fig.texts) + [t for leg in fig.legends for t in leg.get_texts()]
    for ax in fig.axes:
        drawn += [*ax.texts, ax.title, ax._left_title, ax._right_title]
        if ax.get_legend():
            drawn += ax.get_legend().get_texts()
        if ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                drawn += [axis.label, axis.offsetText]
                drawn += [tick.label1 for tick in axis._update_ticks()]  # the ticks in view
    renderer = fig.canvas.get_renderer()
    return [(t, t.get_window_extent(renderer)) for t in drawn
            if t.get_visible() and t.get_text().strip()]


def _shrunk(box, px=1.0):
    """``box`` 1 px smaller on every side (texts that merely touch do not overlap)."""
    return Bbox.from_extents(box.x0 + px, box.y0 + px, box.x1 - px, box.y1 - px)


@pytest.mark.slow
@pytest.mark.parametrize("name", FIGURES)
def test_figure_labels_do_not_overlap_and_stay_inside(figures, name):
    fig = figures[name]
    canvas = fig.bbox
    texts = _texts(fig)
    assert len(texts) >= 7  # the mediation diagram has 7
    for t, box in texts:
        assert box.x0 >= canvas.x0 - 0.5 and box.x1 <= canvas.x1 + 0.5, (name, t.get_text())
        assert box.y0 >= canvas.y0 - 0.5 and box.y1 <= canvas.y1 + 0.5, (name, t.get_text())
        assert t.get_fontsize() >= 9, (name, t.get_text())  # read at 100 %: >= 12.5 px
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1:]:
            assert not _shrunk(box_a).overlaps(_shrunk(box_b)), \
                (name, a.get_text(), b.get_text())
    # significance bars: no label is crossed by a bar or by the feet of the bar above it
    bars = [ln for ln in fig.findobj(Line2D) if ln.get_gid() == "bracket"]
    labels = [(t, box) for t, box in texts if t.get_gid() == "bracket"]
    assert len(bars) == len(labels)
    for ln in bars:
        path = ln.get_transform().transform_path(ln.get_path())
        for t, box in labels:
            assert not path.intersects_bbox(_shrunk(box), filled=False), (name, t.get_text())


@pytest.mark.slow
def test_by_group_figures_have_their_significance_bars(figures):
    """The data have significant Tukey pairs (anxiety, pcs) and Mann-Whitney pairs (tsp):
    the overlap test above checks real bars, not an empty figure."""
    for name, n in (("compare_by_group.png", 4), ("predictor_by_group.png", 2)):
        labels = [t.get_text() for t in figures[name].findobj(Text) if t.get_gid() == "bracket"]
        assert len(labels) >= n and all(APA_P.search(t) for t in labels), (name, labels)


@pytest.mark.slow
def test_mediation_labels_cross_no_arrow(figures):
    fig = figures["mediation.png"]
    arrows = [t.arrow_patch for t in fig.findobj(Text) if getattr(t, "arrow_patch", None)]
    assert len(arrows) == 3
    for arrow in arrows:
        path = arrow.get_transform().transform_path(arrow.get_path())
        # the shaft and the head, curves flattened (a CLOSEPOLY vertex is no point)
        parts = [Polyline(poly) for poly in path.to_polygons(closed_only=False)]
        assert len(parts) >= 2
        for t, box in _texts(fig):
            assert not any(part.intersects_bbox(box, filled=False) for part in parts), \
                t.get_text()


def _pixels(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


def test_every_roc_curve_shows_where_curves_coincide():
    """Two models with the same ROC curve and one on the chance diagonal: hiding any
    model's curve changes the picture (none is covered by another line)."""
    step = (np.array([0, 0, 0.5, 0.5, 1]), np.array([0, 0.5, 0.5, 1, 1]))
    pred = pd.DataFrame({"model": ["dFC", "tsp", "dFC + tsp"], "auc": [0.75, 0.75, 0.5],
                         "auc_ci_low": [0.5, 0.5, 0.3], "auc_ci_high": [0.9, 0.9, 0.7]})
    curves = {"dFC": step, "tsp": step, "dFC + tsp": (np.array([0, 1]), np.array([0, 1]))}
    fig = group_figures.fig_roc(pred, curves)
    ax = fig.axes[0]
    chance = next(ln for ln in ax.get_lines() if ln.get_label().startswith("chance"))
    models = [ln for ln in ax.get_lines() if ln is not chance]
    assert [ln.get_label().split(":")[0] for ln in models] == list(pred["model"])
    assert all(ln.get_zorder() > chance.get_zorder() for ln in models)
    full = _pixels(fig)
    fig.set_layout_engine("none")  # keep the drawn layout: only the hidden line may change
    assert np.array_equal(_pixels(fig), full)
    for ln in models:
        ln.set_visible(False)
        # a pixel changes colour, not just the shade of an antialiased edge drawn twice
        changed = (np.abs(_pixels(fig) - full).max(axis=-1) > 80).sum()
        ln.set_visible(True)
        assert changed > 150, (ln.get_label(), changed)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["dFC: AUC 0.75 (95 % CI 0.50 to 0.90)",
                          "tsp: AUC 0.75 (95 % CI 0.50 to 0.90)",
                          "dFC + tsp: AUC 0.50 (95 % CI 0.30 to 0.70)"]


# --- the page in a browser ----------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason=CHROMIUM_MISSING)
def test_report_fits_the_window_with_all_figures(study, tmp_path):
    _, out, _, paths = study
    expected = [f"figures/{name}" for name in FIGURES]
    for width in (1280, 800, 500):  # 500: Chromium's narrowest window
        info = render_in_chromium(paths["report"], tmp_path / f"group_{width}.png", width=width)
        assert info["title"] == "bids_dfc group report"
        assert [im["src"] for im in info["images"]] == expected
        assert info["broken"] == [], width
        assert info["viewport"] == width
        assert not info["scrolls_sideways"], (width, info["scroll_width"], info["overflowing"])
        assert info["overflowing"] == [], (width, info["overflowing"])
        for im in info["images"]:
            # shown at its own size when the page allows, never wider than the window
            assert im["shown_width"] == min(im["width"], im["shown_width"]) <= width - 32, \
                (width, im)
        if width >= 800:  # every figure at 100 %: the font sizes are the ones read
            assert all(im["shown_width"] == im["width"] for im in info["images"]), width
        else:  # the 720 px figures scale down to the page
            assert all(im["shown_width"] < im["width"] for im in info["images"]
                       if im["width"] > width), width
        shot = mpimg.imread(info["screenshot"])
        assert shot.shape[1] == width and shot.shape[0] >= 1000
        assert np.std(shot[..., :3]) > 0.05  # not a blank page
        if width in (1280, 800):  # with BIDS_DFC_SAVE_SCREENSHOTS=1, for the reviewer
            _copy_screenshot(info["screenshot"], f"group_{width}.png")

    # the probe really detects a missing figure
    broken = tmp_path / "broken"
    shutil.copytree(out / "group", broken)
    (broken / "figures" / "roc.png").unlink()
    info = render_in_chromium(broken / "report.html", tmp_path / "broken.png")
    assert info["broken"] == ["figures/roc.png"]
