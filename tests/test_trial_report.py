"""The group report's crossover-trial section (docs/trial.md): the trial-only page and the
trial after the imaging sections, the trial's figures (PNGs of their stated size, no label
over another), the primary endpoint's numbers as the report's formatters write them, every
P value in the one format, the study's post hoc rule, and the page in headless Chromium at
1280, 800 and 500 px (``BIDS_DFC_SAVE_SCREENSHOTS=1`` also copies the 800 px trial-only
page to ``validation/results/screenshots/trial_report_800.png`` for a reviewer).

The trial is simulated here (a deterministic rng) and analysed by the real
:func:`bids_dfc.stats.trial.run_trial`; the imaging part comes from the group tests' own
synthetic dataset.
"""

from __future__ import annotations

import html
import itertools
import re

import numpy as np
import pandas as pd
import pytest
from _browser import CHROMIUM, CHROMIUM_MISSING, render_in_chromium
from matplotlib import image as mpimg
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from test_group_report import APA_P, SCIENTIFIC, _p_styles, _shrunk, _texts, _visible_text
from test_group_workflow import _write_psych, group_options, make_group_dataset
from test_report_participant import _copy_screenshot  # validation/results/screenshots/

from bids_dfc.group.collect import collect_dfc, read_phenotype
from bids_dfc.reports.citations import IN_TEXT, bibliography
from bids_dfc.reports.group import build_group_report
from bids_dfc.reports.group_figures import DPI, draw_figures
from bids_dfc.reports.text import format_number, format_p
from bids_dfc.reports.trial import ES_DIGITS, MUTED, TRIAL_CITED, note_text
from bids_dfc.reports.trial_figures import draw_trial_figures
from bids_dfc.stats import table as tb
from bids_dfc.stats.analysis import run_group_statistics
from bids_dfc.stats.trial import TrialData, run_trial

TREATMENTS = ("ketamine", "ketamine_mg", "placebo")
#: the simulated treatment effects on the daily pain (they fade over the period)
EFFECT = {"ketamine": -1.6, "ketamine_mg": -1.0, "placebo": 0.0}
N_DAYS = 14
HORIZONS = (7, 14)
TRIAL_FIGURES = ["trial_daily.png", "trial_auc_paired.png", "trial_diagnostics.png"]
IMAGING_FIGURES = ["dfc_by_group.png", "predictor_by_group.png", "compare_by_group.png",
                   "scatter_outcome.png", "mediation.png", "roc.png"]
PNG = b"\x89PNG\r\n\x1a\n"


def simulate_trial(n: int = 15, seed: int = 11) -> TrialData:
    """A three-period crossover trial of ``n`` participants (the six sequences in turn):
    two diary outcomes with missing days, one adverse event, a questionnaire score with a
    treatment effect and one without; the last participant drops out after period 2."""
    rng = np.random.default_rng(seed)
    sequences = list(itertools.permutations(TREATMENTS))
    alloc, diary, events, scores = [], [], [], []
    for i in range(n):
        pid = f"sub-{i + 1:02d}"
        level = rng.normal(0, 1.2)
        periods = sequences[i % len(sequences)][: 2 if i == n - 1 else 3]
        for period, treatment in enumerate(periods, 1):
            alloc.append((pid, period, treatment))
            noise = 0.0
            for day in range(1, N_DAYS + 1):
                noise = 0.6 * noise + rng.normal(0, 0.8)
                pain = 6 + level + EFFECT[treatment] * np.exp(-(day - 1) / 10) + noise
                pain = float(np.clip(pain, 0, 10))
                if day > 1 and rng.random() < 0.08:
                    pain = np.nan
                diary.append((pid, period, day, round(pain, 1), round(min(10, pain + 1.2), 1)))
            events.append((pid, period, int(rng.random() < (0.15 if treatment == "placebo"
                                                             else 0.5))))
            scores.append((pid, period, 5 + level + EFFECT[treatment] + rng.normal(0, 1),
                           4 + rng.normal(0, 1)))
    return TrialData(
        allocation=pd.DataFrame(alloc, columns=["participant_id", "period", "treatment"]),
        diary=pd.DataFrame(diary, columns=["participant_id", "period", "day", "pain_avg",
                                           "pain_max"]),
        diary_outcomes=["pain_avg", "pain_max"], n_days=N_DAYS,
        binary=pd.DataFrame(events, columns=["participant_id", "period", "any_ae"]),
        binary_outcomes=["any_ae"],
        questionnaires=pd.DataFrame(scores, columns=["participant_id", "period", "bpi",
                                                     "mood"]),
        questionnaire_outcomes=["bpi", "mood"])


@pytest.fixture(scope="module")
def trial():
    return run_trial(simulate_trial(), reference="placebo", horizons=HORIZONS)


@pytest.fixture(scope="module")
def imaging(tmp_path_factory):
    """The imaging tables and results of the group tests' synthetic dataset (every
    figure: predictor, outcome, compared columns, mediation, ROC)."""
    root = tmp_path_factory.mktemp("imaging")
    bids, out, _ = make_group_dataset(root, n_hc=12, n_patients=22, seed=9)
    _write_psych(bids, 9)
    options = group_options(n_boot=200, compare_columns=["anxiety", "pcs", "tsp", "age"])
    participants, phenotypes, _ = read_phenotype(bids)
    tables = tb.assemble(collect_dfc(out, pair=options.pair, fd_needed_by="FD QC"),
                         participants, phenotypes, options)
    results = run_group_statistics(tables, n_boot=options.n_boot, random_seed=5,
                                   all_pairs=False, pair=options.pair)
    return tables, results, options


@pytest.fixture(scope="module")
def trial_only(trial, tmp_path_factory):
    """A trial-only report (no participant dFC outputs): its folder and page."""
    gdir = tmp_path_factory.mktemp("trial_only") / "group"
    path = build_group_report(gdir, None, None, group_options(), random_seed=1, trial=trial)
    return gdir, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def both(trial, imaging, tmp_path_factory):
    """The imaging report with the trial's section."""
    tables, results, options = imaging
    gdir = tmp_path_factory.mktemp("both") / "group"
    path = build_group_report(gdir, tables, results, options, random_seed=1, trial=trial)
    return gdir, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trial_figures(trial):
    figs = draw_trial_figures(trial)
    for _, fig, _ in figs:
        FigureCanvasAgg(fig).draw()
    return {name: fig for name, fig, _ in figs}


def _h2(page: str) -> list[str]:
    return [_visible_text(h).strip() for h in re.findall(r"<h2>(.*?)</h2>", page)]


def _tables(page: str) -> list[tuple[list[str], list[list[tuple[str, str]]]]]:
    """Every table's headers and body rows, a row as (cell text, cell attributes) pairs
    (heading rows, a ``<th>`` in the body, left out)."""
    out = []
    for table in re.findall(r"<table>.*?</table>", page, flags=re.S):
        head, body = table.split("</thead>")
        heads = [_visible_text(h).strip() for h in re.findall(r"<th>(.*?)</th>", head)]
        rows = [[(_visible_text(text).strip(), attrs) for attrs, text in
                 re.findall(r"<td([^>]*)>(.*?)</td>", row)]
                for row in re.findall(r"<tr>(.*?)</tr>", body) if "<td" in row]
        out.append((heads, rows))
    return out


# --- the page ----------------------------------------------------------------------------

def test_a_trial_only_page_says_so_and_shows_the_trial(trial_only):
    gdir, page = trial_only
    text = _visible_text(page)
    assert "No participant dFC outputs were found, so only the crossover trial was analysed" \
        in text
    assert _h2(page) == ["Crossover trial", "Methods", "References"]
    assert "Key results" not in text and "Tests" not in _h2(page)
    for heading in ("Primary endpoint", "Figures", "All models", "Binary outcomes",
                    "Missing diary days", "Notes"):
        assert f"<h3>{heading}" in page, heading
    methods = page.split("<h2>Methods</h2>")[1].split("<h2>References</h2>")[0]
    assert "Crossover trial: each daily diary outcome" in methods
    assert "Gauss-Hermite quadrature (7 points)" in methods and "dFC is" not in methods
    assert sorted(p.name for p in (gdir / "figures").iterdir()) == sorted(TRIAL_FIGURES)


def test_the_trial_section_follows_the_imaging_sections(both, imaging):
    gdir, page = both
    heads = _h2(page)
    assert heads.index("Exclusions") < heads.index("Crossover trial") < heads.index("Methods")
    assert heads[-2:] == ["Methods", "References"]
    methods = page.split("<h2>Methods</h2>")[1]
    assert "dFC is the standard deviation" in methods
    assert "Crossover trial: each daily diary outcome" in methods
    srcs = re.findall(r'<img src="figures/([^"]+)"', page)
    assert srcs == IMAGING_FIGURES + TRIAL_FIGURES
    assert sorted(p.name for p in (gdir / "figures").iterdir()) == sorted(srcs)


def test_without_a_trial_the_page_has_no_trial_and_its_old_figures_go(trial, imaging,
                                                                       tmp_path):
    tables, results, options = imaging
    gdir = tmp_path / "group"
    build_group_report(gdir, tables, results, options, random_seed=1, trial=trial)
    page = build_group_report(gdir, tables, results, options, random_seed=1).read_text()
    assert "Crossover trial" not in page and "trial_" not in page
    names = [name for name, _, _ in draw_figures(tables, results, options)]
    assert sorted(p.name for p in (gdir / "figures").iterdir()) == sorted(names)
    with pytest.raises(ValueError, match="imaging results, a trial or both"):
        build_group_report(tmp_path / "none", None, None, options, random_seed=1)


def test_the_trial_figures_are_pngs_of_their_stated_size(trial_only, trial_figures):
    gdir, page = trial_only
    for name in TRIAL_FIGURES:
        path = gdir / "figures" / name
        assert path.read_bytes()[:8] == PNG, name
        width, height = (int(round(v * DPI)) for v in trial_figures[name].get_size_inches())
        assert mpimg.imread(path).shape[:2] == (height, width), name
        assert f'src="figures/{name}" width="{width}" height="{height}"' in page
        assert width <= 720  # fits an 800 px window at 100 %


def test_the_primary_endpoint_reads_as_the_formatters_write_it(trial_only, trial):
    _, page = trial_only
    text = _visible_text(page)
    outcome, horizon, analysis = trial.primary
    key = ((trial.omnibus["outcome"] == outcome) & (trial.omnibus["horizon"] == horizon)
           & (trial.omnibus["analysis"] == analysis))
    omnibus = trial.omnibus[key].iloc[0]
    summary = text.split("Crossover trial", 1)[1].split("Primary endpoint:", 1)[0]
    assert summary.startswith(f" 15 participants received {', '.join(trial.treatments[:-1])}"
                              f" and {trial.treatments[-1]} in a crossover design "
                              f"(reference {trial.reference}).")
    desc = trial.descriptives
    desc = desc[(desc["outcome"] == outcome) & (desc["horizon"] == horizon)
                & (desc["analysis"] == analysis)].set_index("treatment")
    order = [*trial.treatments[1:], trial.reference]
    means = [f"{format_number(desc.loc[t, 'mean'])} +- {format_number(desc.loc[t, 'sd'], 2)}"
             for t in order]
    assert (f"Primary endpoint, {outcome} AUC over days 1-{horizon} ({analysis}, score-days): "
            f"mean +- SD {means[0]}, {means[1]} and {means[2]} ({order[0]}, {order[1]} and "
            f"{order[2]}), omnibus {format_p(omnibus['p'])}; effect size ") in summary
    con = trial.contrasts
    con = con[(con["outcome"] == outcome) & (con["horizon"] == horizon)
              & (con["analysis"] == analysis)]
    for r in con.itertuples():
        es = (f"{format_number(r.effect_size, ES_DIGITS)} (95 % CI "
              f"{format_number(r.es_ci_low, ES_DIGITS)} to "
              f"{format_number(r.es_ci_high, ES_DIGITS)}, Sidak {format_p(r.p_sidak)})")
        if r.contrast.endswith(" - placebo"):
            assert f"{r.contrast.split(' - ')[0]} vs placebo {es}" in summary
        # the primary endpoint's contrasts table: every number of the row
        row = (f"{r.contrast} {format_number(r.estimate)} {format_number(r.ci_low)} to "
               f"{format_number(r.ci_high)} {format_number(r.effect_size, ES_DIGITS)} "
               f"{format_number(r.es_ci_low, ES_DIGITS)} to "
               f"{format_number(r.es_ci_high, ES_DIGITS)} {format_p(r.p, label=False)} "
               f"{format_p(r.p_sidak, label=False)}")
        assert row in text, row
    fit = (f"omnibus Wald chi-square({omnibus['df']}) = {format_number(omnibus['statistic'])}, "
           f"{format_p(omnibus['p'])}; sequence x treatment {format_p(omnibus['p_seq_x_treat'])}"
           f"; Shapiro-Wilk of the residuals {format_p(omnibus['shapiro_p'])}")
    assert fit in text


def test_every_p_value_is_written_one_way(trial_only, both, trial_figures):
    for _, page in (trial_only, both):
        text = _visible_text(page)
        assert _p_styles(text) == []
        assert SCIENTIFIC.findall(text) == []
        for heads, rows in _tables(page):
            for row in rows:
                # a row may start with a model cell spanning rows: align from the right
                for head, (cell, _) in zip(heads[::-1], row[::-1]):
                    if head == "P" or head.endswith(" P"):
                        assert re.fullmatch(r"(?:< \.001|> \.999|\.\d{3}|n/a)(?: \(.+\))?", cell), \
                            (head, cell)
    # every P value of the trial's tables is on the page
    assert len(APA_P.findall(_visible_text(trial_only[1]))) >= 12
    annotations = [t.get_text() for fig in trial_figures.values() for t in fig.findobj(Text)]
    assert _p_styles(" ".join(annotations)) == []
    assert SCIENTIFIC.findall(" ".join(annotations)) == []
    assert sum(bool(APA_P.search(a)) for a in annotations) >= 2


def test_post_hoc_comparisons_are_grey_when_the_omnibus_p_is_not_below_05(trial_only, trial):
    """The study's rule: the rows of a model whose omnibus P >= .05 are grey, in both
    tables (and the simulated mood score has no treatment effect, so there are some)."""
    _, page = trial_only
    assert "interpreted only when its omnibus P < .05" in _visible_text(page)
    means, contrasts = [t for t in _tables(page) if t[0][0] == "model"]
    n_null = int((~(trial.omnibus["p"] < 0.05)).sum()) + len(trial.models) - len(trial.omnibus)
    assert n_null >= 1
    assert len(means[1]) == len(trial.models)
    omnibus_column = means[0].index("omnibus P")
    for row in means[1]:
        p = float(row[omnibus_column][0].lstrip("<> ").replace("n/a", "nan"))
        assert all(MUTED in attrs for _, attrs in row) == (not p < 0.05), row
    n_pairs = len(set(trial.contrasts["contrast"]))
    assert sum(all(MUTED in attrs for _, attrs in row) for row in contrasts[1]) == \
        n_null * n_pairs
    assert sum(any(MUTED in attrs for _, attrs in row) for row in contrasts[1]) == \
        n_null * n_pairs


def test_the_notes_are_in_the_report_format(trial_only, trial):
    _, page = trial_only
    text = _visible_text(page)
    notes = text.split("Notes", 1)[1].split("Methods", 1)[0]
    assert "sub-15 has no period 3" in notes
    for note in trial.notes:
        assert _visible_text(note_text(note)) in notes
    assert "design columns dropped as aliased" in notes
    assert note_text("x (Shapiro-Wilk P = 0.00261), tol 1e-3, P = 3e-5") == \
        "x (Shapiro-Wilk P = .003), tol 0.001, P < .001"


def test_the_page_lists_exactly_the_works_it_cites(trial_only, both):
    entries = bibliography()
    by_cite = {e["cite"]: k for k, e in entries.items()}
    for _, page in (trial_only, both):
        body, refs = page.split("<h2>References</h2>")
        cites = list(dict.fromkeys(IN_TEXT.findall(_visible_text(body))))
        assert set(cites) <= set(by_cite), cites
        listed = re.findall(r"<li>(.*?)</li>", refs)
        assert len(listed) == len(cites)
        assert "without a bibliography entry" not in refs
        for cite in TRIAL_CITED.values():  # the trial's methods cite their works
            assert cite in cites
            assert html.escape(entries[by_cite[cite]]["reference"]) in refs


# --- the figures -------------------------------------------------------------------------

@pytest.mark.parametrize("name", TRIAL_FIGURES)
def test_trial_figure_labels_do_not_overlap_and_stay_inside(trial_figures, name):
    fig = trial_figures[name]
    canvas = fig.bbox
    texts = _texts(fig)
    assert len(texts) >= 8, [t.get_text() for t, _ in texts]
    for t, box in texts:
        assert box.x0 >= canvas.x0 - 0.5 and box.x1 <= canvas.x1 + 0.5, (name, t.get_text())
        assert box.y0 >= canvas.y0 - 0.5 and box.y1 <= canvas.y1 + 0.5, (name, t.get_text())
        assert t.get_fontsize() >= 9, (name, t.get_text())
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1:]:
            assert not _shrunk(box_a).overlaps(_shrunk(box_b)), \
                (name, a.get_text(), b.get_text())
    if name == "trial_daily.png":  # the legend is outside the data
        legend = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
        assert not legend.overlaps(fig.axes[0].get_window_extent())


def test_the_figures_say_what_they_show(trial, trial_figures):
    daily = trial_figures["trial_daily.png"].axes[0]
    assert daily.get_xlabel() == "day after infusion"
    assert trial.primary[0] in daily.get_ylabel() and "(0-10)" in daily.get_ylabel()
    assert [t.get_text() for t in trial_figures["trial_daily.png"].legends[0].get_texts()] \
        == trial.treatments
    paired = trial_figures["trial_auc_paired.png"].axes[0]
    assert [t.get_text() for t in paired.get_xticklabels()] == trial.treatments
    joined = [ln for ln in paired.get_lines() if ln.get_color() == "0.6"]
    assert len(joined) == trial.auc["participant_id"].nunique()  # one line per participant
    qq = trial_figures["trial_diagnostics.png"].axes[0]
    assert len(qq.collections[0].get_offsets()) == len(trial.residuals[trial.primary])


# --- the page in a browser ----------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason=CHROMIUM_MISSING)
@pytest.mark.parametrize("mode", ["trial_only", "both"])
def test_the_trial_report_fits_the_window_with_all_figures(mode, request, tmp_path):
    gdir, page = request.getfixturevalue(mode)
    expected = [f"figures/{name}" for name in
                (TRIAL_FIGURES if mode == "trial_only" else IMAGING_FIGURES + TRIAL_FIGURES)]
    for width in (1280, 800, 500):
        info = render_in_chromium(gdir / "report.html", tmp_path / f"{mode}_{width}.png",
                                  width=width)
        assert [im["src"] for im in info["images"]] == expected
        assert info["broken"] == [], width
        assert not info["scrolls_sideways"], (width, info["scroll_width"], info["overflowing"])
        assert info["overflowing"] == [], (width, info["overflowing"])
        for im in info["images"]:
            assert im["shown_width"] == min(im["width"], im["shown_width"]) <= width - 32
            if width >= 800:
                assert im["shown_width"] == im["width"], (width, im)
        shot = mpimg.imread(info["screenshot"])
        assert shot.shape[1] == width and np.std(shot[..., :3]) > 0.05
        if mode == "trial_only" and width == 800:
            _copy_screenshot(info["screenshot"], "trial_report_800.png")
