"""Command-line parser of ``bids-dfc`` (BIDS-Apps convention), and the TOML config file.

Option defaults come from the dataclasses of :mod:`bids_dfc.config` (:func:`_default`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bids_dfc import __version__
from bids_dfc.cli.config_file import toml_tokens
from bids_dfc.cli.resources import usable_cpus
from bids_dfc.cli.types import (
    acompcor_components,
    bids_label,
    dummy_scans,
    existing_file,
    finite_number,
    json_object,
    nonneg_int,
    or_none,
    positive_int,
)
from bids_dfc.config import SECTIONS, Config, section_of

NIPYPE_PLUGINS = (
    "MultiProc", "Linear", "LegacyMultiProc", "SLURM", "SLURMGraph", "SGE", "SGEGraph",
    "PBS", "PBSGraph", "LSF", "Condor", "DAGMan", "OAR",
)  # fmt: skip
TEMPLATES = ("auto", "MNI152NLin6Asym", "MNI152NLin2009aSym")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only where it says something (not None/False, not already in the text)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS, []) or "default" in text:
            return text
        return super()._get_help_string(action)


class _OneLineParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line naming the option, with exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _default(name: str):
    """Default of option ``name`` from its :mod:`bids_dfc.config` field (``default_factory``
    called: a fresh list each time; a tuple as the list argparse gives ``nargs`` options)."""
    field = {f.name: f for f in dataclasses.fields(SECTIONS[section_of(name)])}[name]
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        raise TypeError(f"config field {name!r} has no default")
    return list(value) if isinstance(value, tuple) else value


def _add_base_args(parser: argparse.ArgumentParser) -> None:
    """Positional arguments (BIDS-Apps order), version, verbosity and the config file."""
    parser.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset (read only)")
    parser.add_argument(
        "output_dir", type=Path,
        help="where the BIDS-Derivatives dataset is written (not inside bids_dir's raw data; "
        "bids_dir/derivatives/<name> is fine)",
    )  # fmt: skip
    parser.add_argument(
        "analysis_level", choices=["participant", "group"],
        help="'participant': preprocess and compute dFC per subject; 'group': statistics over "
        "the participant outputs found in output_dir",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"bids-dfc {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=_default("verbose"),
        help="more log output (-vv: debug)",
    )  # fmt: skip
    parser.add_argument(
        "--quiet", action="store_true", default=_default("quiet"),
        help="no progress lines (subject, step, elapsed time) on stderr",
    )  # fmt: skip
    parser.add_argument(
        "--debug", action="store_true", default=_default("debug"),
        help="show the Python traceback of an error (crash files in WORK_DIR/logs hold them "
        "anyway)",
    )  # fmt: skip
    parser.add_argument(
        "--config-file", type=existing_file, metavar="TOML",
        help="TOML file with the same keys as these options (e.g. smoothing-fwhm = 4, or in "
        "sections [execution], [workflow], [group]); options on the command line win",
    )  # fmt: skip


def _add_bids_args(parser: argparse.ArgumentParser) -> None:
    """BIDS filtering: which subjects, sessions, tasks and files are processed."""
    g = parser.add_argument_group("Selecting data")
    g.add_argument(
        "--participant-label", "--participant_label", dest="participant_label", nargs="+",
        type=bids_label, metavar="LABEL", help="subjects to process (with or without 'sub-'); "
        "default: all",
    )  # fmt: skip
    g.add_argument(
        "--session-label", "--session_label", dest="session_label", nargs="+", type=bids_label,
        metavar="LABEL", help="sessions to process (with or without 'ses-'); default: all",
    )  # fmt: skip
    g.add_argument(
        "--task", "--task-id", dest="task", nargs="+", type=bids_label, metavar="TASK",
        help="tasks to process; default: every task whose name contains 'rest', else all",
    )  # fmt: skip
    g.add_argument(
        "--bids-filter-file", dest="bids_filters", type=json_object, metavar="JSON",
        help="JSON with pybids filters per query, e.g. {\"bold\": {\"run\": 1}, \"t1w\": "
        "{\"acquisition\": null}} (keys: bold, t1w)",
    )  # fmt: skip
    g.add_argument(
        "--skip-bids-validation", "--skip_bids_validation", dest="skip_bids_validation",
        action="store_true", help="do not run the BIDS validator on bids_dir",
    )  # fmt: skip


def _add_execution_args(parser: argparse.ArgumentParser) -> None:
    """Execution and performance: work directory, processes, threads, plugin, seed."""
    g = parser.add_argument_group("Resources and execution")
    g.add_argument(
        "-w", "--work-dir", dest="work_dir", type=Path,
        help="nipype working directory (intermediate files; reuse it to resume an "
        "interrupted run); default: <output_dir>_work (a sibling of output_dir)",
    )  # fmt: skip
    g.add_argument(
        "--nprocs", "--n-cpus", "--n_cpus", dest="nprocs", type=positive_int, metavar="N",
        help="processes run at once by MultiProc; default: the CPUs this process may use "
        "(affinity, cgroup quota, SLURM_CPUS_PER_TASK)",
    )  # fmt: skip
    g.add_argument(
        "--omp-nthreads", dest="omp_nthreads", type=positive_int, metavar="N",
        help="worker processes of the BOLD head-motion correction, each with one ITK thread "
        "(results do not depend on N), and the OpenMP/BLAS threads of each process unless "
        "OMP_NUM_THREADS etc. are set; all registrations run single-threaded, for "
        "reproducibility; default: min(nprocs, 8), at most nprocs",
    )  # fmt: skip
    g.add_argument(
        "--mem-gb", "--mem_gb", dest="mem_gb", type=finite_number(0.0, strict=True),
        metavar="GB", help="memory limit given to the nipype scheduler",
    )  # fmt: skip
    g.add_argument(
        "--plugin", choices=NIPYPE_PLUGINS, default=_default("plugin"),
        help="nipype execution plugin (SLURM/SLURMGraph submit each node as a job)",
    )  # fmt: skip
    g.add_argument(
        "--plugin-args", dest="plugin_args", type=json_object, metavar="JSON",
        help="arguments of the plugin as JSON or a JSON file, e.g. "
        "'{\"sbatch_args\": \"-p debug --mem=4G\"}'",
    )  # fmt: skip
    g.add_argument(
        "--random-seed", dest="random_seed", type=nonneg_int, default=_default("random_seed"),
        metavar="SEED", help="seed of every random step (registration sampling, bootstrap): "
        "same seed, same outputs",
    )  # fmt: skip
    g.add_argument(
        "--sloppy", action="store_true",
        help="fast, low-precision registration for tests and demos - NOT FOR RESEARCH USE",
    )


def _add_preprocessing_args(parser: argparse.ArgumentParser) -> None:
    """Preprocessing of the participant level: dummy scans, smoothing, filtering, nuisance."""
    g = parser.add_argument_group("Preprocessing (participant level; defaults are the study's)")
    g.add_argument(
        "--dummy-scans", dest="dummy_scans", type=dummy_scans, default=_default("dummy_scans"),
        metavar="N|auto",
        help="non-steady-state volumes dropped at the start of each run ('auto': detected)",
    )  # fmt: skip
    g.add_argument(
        "--smoothing-fwhm", dest="smoothing_fwhm", type=finite_number(0.0),
        default=_default("smoothing_fwhm"), metavar="MM",
        help="Gaussian smoothing FWHM within the brain mask (0: none)",
    )  # fmt: skip
    g.add_argument(
        "--band-pass", dest="band_pass", nargs=2, type=finite_number(0.0),
        default=_default("band_pass"), metavar=("LOW_HZ", "HIGH_HZ"),
        help="band-pass filter edges (Hz)",
    )  # fmt: skip
    g.add_argument(
        "--acompcor-components", dest="acompcor_components", type=acompcor_components,
        default=_default("acompcor_components"), metavar="N|FRACTION",
        help="aCompCor components from eroded WM+CSF regressed out: a number (>= 1) or a "
        "fraction of variance to explain (0-1)",
    )  # fmt: skip
    g.add_argument(
        "--confounds", nargs="+", choices=["acompcor", "motion"], default=_default("confounds"),
        metavar="GROUP",
        help="confounds regressed out: acompcor (the study's nuisance model), motion (the 6 "
        "head-motion parameters; add them with --confounds acompcor motion)",
    )  # fmt: skip
    g.add_argument(
        "--fd-threshold", dest="fd_threshold", type=finite_number(0.0, strict=True),
        metavar="MM",
        help="censor volumes with framewise displacement above this (default: no censoring)",
    )  # fmt: skip
    g.add_argument(
        "--output-spaces", dest="output_spaces", nargs="+", metavar="SPACE",
        choices=["native", "template", *TEMPLATES[1:]], default=_default("output_spaces"),
        help="spaces of the denoised BOLD written: native (always), template",
    )  # fmt: skip
    g.add_argument(
        "--template", choices=TEMPLATES, default=_default("template"),
        help="standard space: 'auto' uses TemplateFlow's MNI152NLin6Asym 2 mm (the study's "
        "MNI152) when present locally, else the bundled MNI152NLin2009aSym",
    )  # fmt: skip


def _add_connectivity_args(parser: argparse.ArgumentParser) -> None:
    """Seeds (or atlas) and the dynamic connectivity estimated between them."""
    g = parser.add_argument_group("Seeds and dynamic connectivity")
    g.add_argument(
        "--seeds", type=existing_file, metavar="TSV",
        help="seeds table (columns name, x, y, z, radius_mm, network; MNI mm); default: the "
        "study's PCC, mPFC (DMN), PAG, RVM (DeS)",
    )  # fmt: skip
    g.add_argument(
        "--atlas", type=existing_file, metavar="NIFTI",
        help="labelled atlas in template space for region-to-region dFC (needs --atlas-labels)",
    )  # fmt: skip
    g.add_argument(
        "--atlas-labels", dest="atlas_labels", type=existing_file, metavar="TSV",
        help="atlas labels table (columns index, name)",
    )  # fmt: skip
    g.add_argument(
        "--seed-space", dest="seed_space", choices=["native", "template"],
        default=_default("seed_space"),
        help="native: seeds warped into each subject's BOLD space (the study); template: "
        "extracted from template-space BOLD",
    )  # fmt: skip
    g.add_argument(
        "--network-weighting", dest="network_weighting", choices=["equal", "voxel"],
        default=_default("network_weighting"),
        help="network series = mean of seed series (equal) or of all voxels",
    )  # fmt: skip
    g.add_argument(
        "--dcc-mode", dest="dcc_mode", choices=["pairwise", "joint"],
        default=_default("dcc_mode"), help="DCC (a, b) per pair of series, or one (a, b) for all",
    )  # fmt: skip
    g.add_argument(
        "--dfc-bootstrap", dest="dfc_bootstrap", type=nonneg_int,
        default=_default("dfc_bootstrap"), metavar="N",
        help="precision of each seed pair's dFC SD: N parametric-bootstrap replicates "
        "(simulated from the fitted DCC-GARCH model and refitted) give its 95%% percentile "
        "interval, columns dcc_sd_ci_low/dcc_sd_ci_high of the _dfc.tsv (n/a when 0: off); "
        "1000 recommended (about 17 s per BOLD run for the 4 seeds); same --random-seed, same "
        "interval",
    )  # fmt: skip


def _add_group_args(parser: argparse.ArgumentParser) -> None:
    """Group level: column names of the phenotype, derived columns and statistics."""
    g = parser.add_argument_group("Group level (column names are yours)")
    g.add_argument("--group-column", dest="group_column", default=_default("group_column"),
                   metavar="COLUMN", help="participants.tsv/phenotype column with the group labels")
    g.add_argument("--control-label", dest="control_label", default=_default("control_label"),
                   metavar="LABEL", help="group label of healthy controls")
    g.add_argument("--responder-label", dest="responder_label",
                   default=_default("responder_label"), metavar="LABEL",
                   help="group label of responders")
    g.add_argument("--nonresponder-label", dest="nonresponder_label",
                   default=_default("nonresponder_label"), metavar="LABEL",
                   help="group label of non-responders")
    g.add_argument("--outcome", metavar="COLUMN",
                   help="outcome column (e.g. relief_pct, derived by --relief-from)")
    g.add_argument("--predictor", metavar="COLUMN",
                   help="predictor column (e.g. tsp, derived by --tsp-columns)")
    g.add_argument("--covariates", nargs="+", default=_default("covariates"), metavar="COLUMN",
                   help="covariates of the regressions (e.g. age sex mean_fd)")
    g.add_argument("--compare-columns", dest="compare_columns", nargs="+",
                   default=_default("compare_columns"), metavar="COLUMN",
                   help="numeric columns compared across the groups as dFC is (Shapiro-Wilk, "
                   "one-way ANOVA, Tukey HSD), e.g. hads_anxiety hads_depression pcs")
    g.add_argument("--relief-from", dest="relief_from", nargs=2, metavar=("PRE", "POST"),
                   help="derive relief_pct = 100 (PRE - POST) / PRE from these rating columns")
    g.add_argument("--responder-threshold", dest="responder_threshold",
                   type=finite_number(0.0), default=_default("responder_threshold"),
                   metavar="PCT", help="responder = relief >= this (%%)")
    g.add_argument("--tsp-columns", dest="tsp_columns", nargs="+", metavar="COLUMN",
                   help="temporal summation ratings in order (or one glob such as 'tsp_*'); "
                   "derives tsp = %% change of the peak from the first rating")
    g.add_argument("--max-mean-fd", dest="max_mean_fd",
                   type=or_none(finite_number(0.0, strict=True)),
                   default=_default("max_mean_fd"), metavar="MM",
                   help="exclude runs with mean FD above this (mm); 'none': no FD check")
    g.add_argument("--n-boot", dest="n_boot", type=positive_int, default=_default("n_boot"),
                   metavar="N", help="bootstrap resamples (mediation, AUC)")
    g.add_argument("--all-pairs", dest="all_pairs", action="store_true",
                   help="also test every secondary pair (FDR-corrected)")
    g.add_argument("--pair", nargs=2, default=_default("pair"), metavar=("A", "B"),
                   help="the primary pair of the dFC summary")
    g = parser.add_argument_group(
        "Crossover trial (group level; runs when phenotype/trial_allocation.tsv exists)")
    g.add_argument("--trial-reference", dest="trial_reference", metavar="LABEL",
                   default=_default("trial_reference"),
                   help="treatment label every other treatment is compared with")
    g.add_argument("--trial-horizons", dest="trial_horizons", nargs="+", type=positive_int,
                   default=_default("trial_horizons"), metavar="DAYS",
                   help="diary AUC horizons in days after the infusion (the longest is the "
                   "primary endpoint)")
    g.add_argument("--trial-days", dest="trial_days", type=positive_int,
                   default=_default("trial_days"), metavar="DAYS",
                   help="days of a diary period (diary days run 1..DAYS)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="bids-dfc",
        description=(
            "bids_dfc: resting-state fMRI -> dynamic conditional correlation (DCC) between the "
            "default mode network (DMN) and the descending pain-modulatory pathway (DeS), "
            "per participant; then group statistics against phenotype (pain relief, temporal "
            "summation of pain). Run 'participant' first, then 'group'."
        ),
        formatter_class=_HelpFormatter,
    )
    _add_base_args(parser)
    _add_bids_args(parser)
    _add_execution_args(parser)
    _add_preprocessing_args(parser)
    _add_connectivity_args(parser)
    _add_group_args(parser)
    return parser


def _explicit_dests(argv: list[str]) -> set[str]:
    """Destinations the user gave on the command line (defaults suppressed)."""
    parser = _build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def parse_args(argv: list[str] | None = None):
    """Parse the command line (and ``--config-file``) into a :class:`bids_dfc.config.Config`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    ns = parser.parse_args(argv)
    if ns.config_file is not None:
        explicit = _explicit_dests(argv)
        cfg_parser = _build_parser()
        cfg_parser.prog = f"bids-dfc (config file {ns.config_file.name})"
        tokens = toml_tokens(cfg_parser, ns.config_file)
        from_file = cfg_parser.parse_args(
            [str(ns.bids_dir), str(ns.output_dir), ns.analysis_level, *tokens]
        )
        for key, value in vars(from_file).items():
            if key not in explicit:
                setattr(ns, key, value)

    values = vars(ns)
    if values["band_pass"][0] >= values["band_pass"][1]:
        parser.error(
            f"argument --band-pass: LOW_HZ must be below HIGH_HZ, got {values['band_pass']}"
        )
    if values["dfc_bootstrap"] == 1:
        parser.error("argument --dfc-bootstrap: 0 (off) or at least 2 replicates (1000 "
                     "recommended), got 1")
    cpus = usable_cpus()  # affinity mask, cgroup CPU quota, SLURM_CPUS_PER_TASK
    values["nprocs"] = values["nprocs"] or cpus or 1
    values["omp_nthreads"] = min(values["omp_nthreads"] or min(values["nprocs"], 8),
                                 values["nprocs"])
    values["bids_dir"] = values["bids_dir"].expanduser().absolute()
    values["output_dir"] = values["output_dir"].expanduser().absolute()
    if values["work_dir"] is None:
        out = values["output_dir"]
        values["work_dir"] = out.parent / f"{out.name}_work"
    values["work_dir"] = values["work_dir"].expanduser().absolute()
    values["bids_filters"] = values["bids_filters"] or {}
    values["plugin_args"] = values["plugin_args"] or {}
    values["band_pass"] = tuple(values["band_pass"])
    values["pair"] = tuple(values["pair"])
    values["trial_horizons"] = tuple(sorted(set(values["trial_horizons"])))
    late = [h for h in values["trial_horizons"] if not 2 <= h <= values["trial_days"]]
    if late:
        parser.error(f"argument --trial-horizons: {', '.join(map(str, late))} outside 2.."
                     f"{values['trial_days']} (a horizon is a diary day; the diary has "
                     "--trial-days days)")
    if values["relief_from"] is not None:
        values["relief_from"] = tuple(values["relief_from"])
    values.pop("config_file")
    sections: dict[str, dict] = {name: {} for name in SECTIONS}
    for key, value in values.items():
        sections[section_of(key)][key] = value
    return Config(**{name: SECTIONS[name](**kw) for name, kw in sections.items()})
