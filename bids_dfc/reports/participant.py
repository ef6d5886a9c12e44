"""Participant HTML report: ``<output_dir>/sub-<label>.html``, figures in ``sub-<label>/figures``.

The report is assembled from the derivatives already written (BIDS-Derivatives names, see
``docs/report.md``), so it can be rebuilt at any time without the work directory:

1. summary (runs, primary dFC value, mean FD, warnings: seed fallbacks, non-converged fits);
2. anatomical: skull strip + tissue contours, T1w -> template registration;
3. per BOLD run: BOLD -> T1w registration, seed weights on the run's own BOLD reference,
   motion parameters and framewise displacement, carpet plots before and after denoising,
   network series with the DCC trace, every pair's dFC with its bootstrap interval (with
   ``--dfc-bootstrap``), the dFC table;
4. methods text generated from the workflow (:func:`bids_dfc.reports.methods.collect_methods`),
   its markdown emphasis rendered (escaped first);
5. references: every work cited anywhere on the page (figure captions too), from the one
   bibliography (:func:`bids_dfc.reports.citations.bibliography`), in author order.

Figures and tables fit the window (``max-width: 100%``); a table wider than a narrow window
scrolls inside its own box, never the page.

A figure whose inputs are missing, or whose drawing fails, is replaced by a visible note
naming the missing file or the error; the rest of the report is still written.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

import pandas as pd

from bids_dfc import __version__
from bids_dfc.derivatives import OUTPUT_NAMES
from bids_dfc.io import atomic_write
from bids_dfc.preproc.ants_utils import warp_to
from bids_dfc.reports import participant_figures as figs
from bids_dfc.reports.citations import bibliography, cited_keys
from bids_dfc.reports.methods import collect_methods, split_references
from bids_dfc.reports.participant_tables import dfc_table, has_interval, interval_text
from bids_dfc.reports.participant_tables import seed_table as _seed_table
from bids_dfc.reports.participant_tables import table_html as _table
from bids_dfc.templates import get_template

__all__ = ["build_participant_report", "find_participant_inputs"]

LOGGER = logging.getLogger("bids_dfc")
#: the markdown emphasis of the methods texts (``**strong**``, ``*em*``), on escaped HTML
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EM = re.compile(r"\*(?=\S)(.+?)(?<=\S)\*")

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:0 auto;max-width:1300px;padding:0 20px;
color:#222;overflow-wrap:break-word}
h1{border-bottom:3px solid #4c72b0;padding-bottom:6px}h2{margin-top:40px;color:#4c72b0}
h3{margin-top:28px}img{max-width:100%;height:auto}
img.fig{display:block;box-sizing:border-box;border:1px solid #ddd;margin:6px 0}
p.caption{color:#555;font-size:0.9em;margin:0 0 16px}
div.warn{background:#fff3cd;border-left:5px solid #e0a800;padding:8px 12px;margin:8px 0}
div.missing{background:#f8d7da;border-left:5px solid #c44e52;padding:8px 12px;margin:8px 0}
div.table{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:0.85em;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 4px;text-align:right}th{background:#eef}
div.methods{background:#f7f7f7;padding:2px 12px}
ul.references{list-style:none;padding-left:2em}
ul.references li{margin:4px 0;text-indent:-2em}
nav a{margin-right:14px;display:inline-block}
"""


def _glob1(folder: Path, pattern: str, *, exclude=("space-",)) -> Path | None:
    """First (sorted) non-JSON file matching ``pattern``, its name free of ``exclude``."""
    hits = sorted(p for p in folder.glob(pattern) if not p.name.endswith(".json")
                  and not any(e in p.name for e in exclude))
    return hits[0] if hits else None


def find_participant_inputs(output_dir, subject) -> tuple[dict, list[dict]]:
    """Locate the derivatives of one participant that the report draws.

    Returns
    -------
    anat : dict
        ``t1w_preproc, t1w_mask, t1w_dseg, t1w_std, template_mask`` (paths or None).
    runs : list of dict
        One per ``*_seg-seeds_dfc.tsv`` found: ``name`` and the run's files (paths or None).
    """
    root = Path(output_dir) / f"sub-{subject}"
    anat_dirs = sorted(root.glob("anat")) + sorted(root.glob("ses-*/anat"))
    anat = dict.fromkeys(("t1w_preproc", "t1w_mask", "t1w_dseg", "t1w_std", "template_mask"))
    name = OUTPUT_NAMES
    for folder in anat_dirs:
        for key in ("t1w_preproc", "t1w_mask"):
            anat[key] = anat[key] or _glob1(folder, "*" + name[key].pattern())
        anat["t1w_dseg"] = anat["t1w_dseg"] or _glob1(folder, "*" + name["t1w_dseg"].pattern(),
                                                      exclude=("space-", "seg-"))
        std = [p for p in sorted(folder.glob("*" + name["t1w_std"].pattern(space="*")))
               if "space-T1w" not in p.name]
        anat["t1w_std"] = anat["t1w_std"] or (std[0] if std else None)
        if anat["t1w_std"] is not None and anat["template_mask"] is None:
            space = re.search(r"space-([a-zA-Z0-9]+)", anat["t1w_std"].name).group(1)
            anat["template_mask"] = _template_mask(space)
    runs = []
    seed_dfc = name["seed_dfc"].pattern()
    for dfc in sorted(root.glob("**/func/*" + seed_dfc)):
        prefix = dfc.name[: -len(seed_dfc)]
        folder = dfc.parent
        run = {"name": prefix, "seed_dfc": dfc}
        for key, exclude in (("seed_timeseries", ()), ("seed_dcc", ()),
                             ("seed_weights", ("space-",)), ("seed_info", ("space-",)),
                             ("bold_ref", ("space-", "seg-")), ("bold_mask", ("space-",)),
                             ("confounds_tsv", ()), ("bold_preproc", ("space-",)),
                             ("bold_denoised", ("space-",)), ("boldref2anat_xfm", ())):
            run[key] = _glob1(folder, prefix + name[key].pattern(), exclude=exclude)
        # a boldref already in T1w space (fMRIPrep's name; bids_dfc writes the transform)
        run["bold_t1w"] = _glob1(folder, prefix + "_space-T1w*_boldref.nii*", exclude=())
        if run["seed_weights"] is None:  # template seed space: maps carry space-
            for key in ("seed_weights", "seed_info"):
                run[key] = _glob1(folder, prefix + name[key].pattern(space="*"), exclude=())
        run["tr"] = _repetition_time(run)
        runs.append(run)
    return anat, runs


def _template_mask(space: str):
    try:

        return Path(get_template(space).brain_mask)
    except Exception as exc:  # noqa: BLE001 - the figure then says why it is missing
        LOGGER.warning("no brain mask for template %s: %s", space, exc)
        return None


def _repetition_time(run) -> float | None:
    import json

    import nibabel as nb

    for key in ("bold_denoised", "bold_preproc"):
        path = run.get(key)
        if path is None:
            continue
        side = Path(str(path).replace(".nii.gz", ".json").replace(".nii", ".json"))
        if side.exists():
            tr = json.loads(side.read_text()).get("RepetitionTime")
            if tr:
                return float(tr)
        zooms = nb.load(path).header.get_zooms()
        if len(zooms) > 3 and zooms[3] > 0:
            return float(zooms[3])
    return None


def _markdown(text: str) -> str:
    """Plain text with markdown emphasis -> HTML (escaped first, so text stays text)."""
    return _EM.sub(r"<em>\1</em>", _STRONG.sub(r"<strong>\1</strong>", html.escape(text)))


class _Page:
    """Collects HTML blocks; draws each figure, or notes why it could not."""

    def __init__(self, fig_dir: Path, rel: str):
        self.fig_dir, self.rel, self.blocks, self.problems = fig_dir, rel, [], []

    def add(self, text: str):
        self.blocks.append(text)

    def figure(self, name: str, title: str, caption: str, func, *inputs, **kwargs):
        self.add(f"<h3>{html.escape(title)}</h3>")
        missing = [k for k, v in zip(func.__code__.co_varnames, inputs) if v is None]
        if missing:
            note = f"{title}: not drawn, missing input(s) {', '.join(missing)}."
            self.problems.append(note)
            self.add(f'<div class="missing">{html.escape(note)}</div>')
            return
        try:
            func(*inputs, self.fig_dir / name, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shown in the report, never hidden
            LOGGER.exception("report figure %s failed", name)
            note = f"{title}: drawing failed ({type(exc).__name__}: {exc})."
            self.problems.append(note)
            self.add(f'<div class="missing">{html.escape(note)}</div>')
            return
        self.add(f'<img class="fig" src="{self.rel}/{name}" alt="{html.escape(title)}">'
                 f'<p class="caption">{_markdown(caption)}</p>')


def _anat_section(page: _Page, anat: dict, subject: str) -> None:
    page.add('<h2 id="anat">Anatomical</h2>')
    page.figure(f"sub-{subject}_desc-brain_T1w.png", "Skull strip and tissue segmentation",
                "Preprocessed T1w; shaded yellow: grey matter; blue: white-matter border; "
                "magenta: CSF border; red: brain mask (key below the cuts).",
                figs.plot_skullstrip, anat.get("t1w_preproc"), anat.get("t1w_mask"),
                anat.get("t1w_dseg"))

    def t1w_to_template(t1w_std, template_mask, out_png):
        return figs.plot_registration(t1w_std, [template_mask], out_png,
                                      labels=["template brain mask"])

    page.figure(f"sub-{subject}_space-template_T1w.png", "T1w to template registration",
                "The subject's T1w resampled into template space under the template's brain "
                "outline (red): edges should follow the outline.", t1w_to_template,
                anat.get("t1w_std"), anat.get("template_mask"))


def _run_section(page: _Page, run: dict, anat: dict) -> None:
    name = run["name"]
    page.add(f'<h2 id="{html.escape(name)}">BOLD run {html.escape(name)}</h2>')
    wm = None
    if anat.get("t1w_dseg") is not None:
        wm = page.fig_dir / f".{name}_wm.nii.gz"
        _wm_mask(anat["t1w_dseg"], wm)

    title, caption = "BOLD to T1w registration", (
        "BOLD reference resampled into T1w space under the T1w white-matter (red) and brain "
        "(blue) outlines.")
    labels = ["T1w white matter", "T1w brain mask"]

    def bold_to_t1w(bold_t1w, t1w_mask, wm_mask, out_png):
        return figs.plot_registration(bold_t1w, [wm_mask, t1w_mask], out_png, labels=labels)

    def warp_bold_to_t1w(bold_ref, t1w_preproc, boldref2anat_xfm, t1w_mask, wm_mask, out_png):
        moved = warp_to(bold_ref, t1w_preproc, [boldref2anat_xfm],
                             page.fig_dir / f".{name}_boldref_t1w.nii.gz")
        return bold_to_t1w(moved, t1w_mask, wm_mask, out_png)

    fig_name = f"{name}_space-T1w_boldref.png"
    if run.get("bold_t1w") is not None:
        page.figure(fig_name, title, caption, bold_to_t1w, run["bold_t1w"],
                    anat.get("t1w_mask"), wm)
    else:
        page.figure(fig_name, title, caption, warp_bold_to_t1w, run.get("bold_ref"),
                    anat.get("t1w_preproc"), run.get("boldref2anat_xfm"),
                    anat.get("t1w_mask"), wm)
    page.figure(f"{name}_seg-seeds_boldref.png", "Seeds on this run's BOLD reference",
                "Each seed's partial-volume weights (colour scale at the right) after warping "
                "into native BOLD space, cut at the seed's weighted centre.", figs.plot_seeds,
                run.get("bold_ref"), run.get("seed_weights"), run.get("seed_info"))
    if run.get("seed_info") is not None:
        page.add(_seed_table(pd.read_csv(run["seed_info"], sep="\t")))
    page.figure(f"{name}_desc-motion_bold.png", "Head motion", "Rigid-body parameters and "
                "framewise displacement (Power et al. 2012).", figs.plot_motion,
                run.get("confounds_tsv"))
    page.figure(f"{name}_desc-carpet_bold.png", "Carpet plots", "Brain voxels x time "
                "(z-scored) before and after nuisance regression, band-pass and smoothing.",
                figs.plot_carpets, run.get("bold_preproc"), run.get("bold_denoised"),
                run.get("bold_mask"), tr=run.get("tr"))
    page.figure(f"{name}_desc-dcc_timeseries.png", "Network series and dynamic connectivity",
                "Top: network series. Bottom: DCC conditional correlation of the primary "
                "pair, its mean, the band of ± 1 SD (the SD is the dFC summary) and the "
                "static Pearson r.", figs.plot_networks,
                run.get("seed_timeseries"), run.get("seed_dcc"), run.get("seed_dfc"),
                tr=run.get("tr"))
    dfc = pd.read_csv(run["seed_dfc"], sep="\t") if run.get("seed_dfc") else None
    if dfc is not None and has_interval(dfc):
        page.figure(f"{name}_desc-dfcsd_interval.png", "Precision of the dFC values",
                    "dFC (SD of the DCC series, dots) of every pair with its 95% "
                    "parametric-bootstrap percentile interval (bars; Efron & Tibshirani "
                    "1993): series simulated from the pair's fitted model and refitted.",
                    figs.plot_dfc_intervals, run["seed_dfc"])
    if dfc is not None:
        page.add("<h3>dFC summary</h3>" + dfc_table(dfc))


def _wm_mask(dseg, out):
    import nibabel as nb
    import numpy as np

    img = nb.load(dseg)
    nb.save(nb.Nifti1Image((np.rint(np.asarray(img.dataobj)) == 2).astype(np.uint8),
                           img.affine), out)


def _summary(runs: list[dict]) -> str:
    rows, warns = [], []
    for run in runs:
        dfc = pd.read_csv(run["seed_dfc"], sep="\t")
        first = dfc.iloc[0]
        rows.append({"run": run["name"], "pair": f"{first['seed_a']}-{first['seed_b']}",
                     "dFC (SD of DCC)": first["dcc_sd"],
                     **({"95% interval of dFC": interval_text(first)} if has_interval(dfc)
                        else {}), "mean DCC": first["dcc_mean"],
                     "static r": first["pearson_r"], "volumes": first["n_volumes"],
                     "mean FD (mm)": first["mean_fd"]})
        bad = dfc[dfc["converged"].astype(str).str.lower().isin(["false", "0"])]
        if len(bad):
            warns.append(f"{run['name']}: DCC did not converge for "
                         + ", ".join(f"{a}-{b}" for a, b in zip(bad.seed_a, bad.seed_b)))
        if run.get("seed_info") is not None:
            info = pd.read_csv(run["seed_info"], sep="\t")
            fb = info[info["fallback"].astype(str) == "True"]["name"].tolist()
            if fb:
                warns.append(f"{run['name']}: seeds {fb} used the nearest-voxel fallback")
            low = info[info["fraction_in_mask"] < 0.5]["name"].tolist()
            if low:
                warns.append(f"{run['name']}: seeds {low} lie mostly outside the brain mask")
    out = _table(pd.DataFrame(rows), 100) if rows else "<p>No dFC output found.</p>"
    return out + "".join(f'<div class="warn">{html.escape(w)}</div>' for w in warns)


def _references(page: _Page) -> str:
    """The works cited anywhere on the page (captions, methods), from the one bibliography,
    in author order as author-year references go; a citation without an entry is a problem
    shown at the top."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", " ".join(page.blocks)))
    keys, unknown = cited_keys(text)
    if unknown:
        page.problems.append(f"cited without a bibliography entry: {', '.join(unknown)}.")
    refs = sorted(bibliography()[k]["reference"] for k in keys)
    items = "".join(f"<li>{html.escape(r)}</li>" for r in refs)
    return '<h2 id="references">References</h2>' + (
        f'<ul class="references">{items}</ul>' if refs else "<p>No works cited.</p>")


def build_participant_report(output_dir, subject, *, methods: str = "", work_dir=None,
                             anat: dict | None = None, runs: list[dict] | None = None) -> Path:
    """Write ``<output_dir>/sub-<subject>.html`` and its figures.

    Parameters
    ----------
    output_dir : str or Path
        Derivatives root holding ``sub-<subject>/``.
    subject : str
        Participant label without ``sub-``.
    methods : str
        Methods text (:func:`bids_dfc.reports.methods.collect_methods` of the workflow).
    work_dir : str or Path, optional
        Accepted for the caller's convenience; the report reads only derivatives.
    anat, runs : optional
        Override :func:`find_participant_inputs` (same keys).

    Returns
    -------
    Path
        The HTML file.
    """
    output_dir = Path(output_dir)
    subject = str(subject).removeprefix("sub-")
    found_anat, found_runs = find_participant_inputs(output_dir, subject)
    anat = {**found_anat, **(anat or {})}
    runs = runs if runs is not None else found_runs
    rel = f"sub-{subject}/figures"
    page = _Page(output_dir / rel, rel)
    page.fig_dir.mkdir(parents=True, exist_ok=True)
    nav = "".join(f'<a href="#{html.escape(r["name"])}">{html.escape(r["name"])}</a>'
                  for r in runs)
    page.add(f"<h1>bids_dfc report: sub-{html.escape(subject)}</h1>"
             f'<nav><a href="#summary">Summary</a><a href="#anat">Anatomical</a>{nav}'
             '<a href="#methods">Methods</a><a href="#references">References</a></nav>'
             f'<h2 id="summary">Summary</h2>{_summary(runs)}')
    _anat_section(page, anat, subject)
    for run in runs:
        _run_section(page, run, anat)
    paragraphs = split_references(methods or "(no methods text given)")[0]
    page.add('<h2 id="methods">Methods</h2><div class="methods">'
             + "".join(f"<p>{_markdown(p)}</p>".replace("\n", "<br>") for p in paragraphs)
             + "</div>")
    page.add(_references(page))
    page.add(f"<p>Report generated by bids_dfc {__version__}.</p>")
    if page.problems:
        page.blocks.insert(1, "".join(f'<div class="missing">{html.escape(p)}</div>'
                                      for p in page.problems))
    for tmp in page.fig_dir.glob(".*.nii.gz"):  # resampled helpers of the figures
        tmp.unlink()
    text = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>sub-{html.escape(subject)} | bids_dfc</title><style>{_CSS}</style>"
            f"</head><body>{''.join(page.blocks)}</body></html>")
    out = output_dir / f"sub-{subject}.html"
    return atomic_write(out, text)


def write_participant_reports(config, subjects, workflow) -> dict:
    """One HTML report per participant, from the derivatives just written."""
    reports = {}
    for data in subjects:
        sub_wf = workflow.get_node(f"sub_{data.subject}_wf")
        methods = collect_methods(sub_wf)
        path = build_participant_report(
            config.execution.output_dir, data.subject, methods=methods,
            work_dir=config.execution.work_dir,
        )  # fmt: skip
        reports[f"sub-{data.subject} report"] = path
    return reports
