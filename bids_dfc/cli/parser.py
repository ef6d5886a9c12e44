"""Command-line parser of ``bids-dfc`` (BIDS-Apps convention), and the TOML config file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bids_dfc import __version__
from bids_dfc.config import DEFAULT_CONFOUNDS

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def _float(minimum: float = 0.0, *, strict: bool = False):
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < minimum or (strict and value == minimum):
            sign = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"expected a number {sign} {minimum}, got {value}")
        return value

    return convert


def _dummy_scans(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        return _nonneg_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a whole number >= 0, got {text!r}"
        ) from None


def _acompcor(text: str) -> float:
    """A number of components (integer >= 1) or a fraction of variance in (0, 1)."""
    value = _float(0.0, strict=True)(text)
    if value >= 1 and value != int(value):
        raise argparse.ArgumentTypeError(
            f"expected a whole number of components (>= 1) or a variance fraction in (0, 1), "
            f"got {text!r}"
        )
    return int(value) if value >= 1 else value


def _existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    return path.absolute()


def _label(text: str) -> str:
    value = text.strip()
    for prefix in ("sub-", "ses-", "task-"):
        if value.startswith(prefix):
            value = value[len(prefix):]
    if not value or not value.isalnum():
        raise argparse.ArgumentTypeError(f"labels are alphanumeric, got {text!r}")
    return value


def _json_or_file(text: str) -> dict:
    """JSON given inline, or the path of a JSON file."""
    path = Path(text).expanduser()
    try:
        raw = path.read_text() if path.is_file() else text
        value = json.loads(raw)
    except (json.JSONDecodeError, OSError) as exc:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object or the path of a JSON file, got {text!r} ({exc})"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


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
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    parser.add_argument(
        "--config-file", type=_existing_file, metavar="TOML",
        help="TOML file with the same keys as these options (e.g. smoothing-fwhm = 4, or in "
        "sections [execution], [workflow], [group]); options on the command line win",
    )  # fmt: skip

    g = parser.add_argument_group("Selecting data")
    g.add_argument(
        "--participant-label", "--participant_label", dest="participant_label", nargs="+",
        type=_label, metavar="LABEL", help="subjects to process (with or without 'sub-'); "
        "default: all",
    )  # fmt: skip
    g.add_argument(
        "--session-label", "--session_label", dest="session_label", nargs="+", type=_label,
        metavar="LABEL", help="sessions to process (with or without 'ses-'); default: all",
    )  # fmt: skip
    g.add_argument(
        "--task", "--task-id", dest="task", nargs="+", type=_label, metavar="TASK",
        help="tasks to process; default: every task whose name contains 'rest', else all",
    )  # fmt: skip
    g.add_argument(
        "--bids-filter-file", dest="bids_filters", type=_json_or_file, metavar="JSON",
        help="JSON with pybids filters per query, e.g. {\"bold\": {\"run\": 1}, \"t1w\": "
        "{\"acquisition\": null}} (keys: bold, t1w)",
    )  # fmt: skip
    g.add_argument(
        "--skip-bids-validation", "--skip_bids_validation", dest="skip_bids_validation",
        action="store_true", help="do not run the BIDS validator on bids_dir",
    )  # fmt: skip

    g = parser.add_argument_group("Resources and execution")
    g.add_argument(
        "-w", "--work-dir", dest="work_dir", type=Path,
        help="nipype working directory (intermediate files; reuse it to resume an "
        "interrupted run); default: <output_dir>_work (a sibling of output_dir)",
    )  # fmt: skip
    g.add_argument(
        "--nprocs", "--n-cpus", "--n_cpus", dest="nprocs", type=_positive_int, metavar="N",
        help="processes run at once by MultiProc; default: all CPUs",
    )  # fmt: skip
    g.add_argument(
        "--omp-nthreads", dest="omp_nthreads", type=_positive_int, metavar="N",
        help="threads per process (ITK/ANTs, BLAS); default: min(nprocs, 8)",
    )
    g.add_argument(
        "--mem-gb", "--mem_gb", dest="mem_gb", type=_float(0.0, strict=True), metavar="GB",
        help="memory limit given to the nipype scheduler",
    )  # fmt: skip
    g.add_argument(
        "--plugin", choices=NIPYPE_PLUGINS, default="MultiProc",
        help="nipype execution plugin (SLURM/SLURMGraph submit each node as a job)",
    )  # fmt: skip
    g.add_argument(
        "--plugin-args", dest="plugin_args", type=_json_or_file, metavar="JSON",
        help="arguments of the plugin as JSON or a JSON file, e.g. "
        "'{\"sbatch_args\": \"-p debug --mem=4G\"}'",
    )  # fmt: skip
    g.add_argument(
        "--random-seed", dest="random_seed", type=_nonneg_int, default=0, metavar="SEED",
        help="seed of every random step (registration sampling, bootstrap): same seed, "
        "same outputs",
    )  # fmt: skip
    g.add_argument(
        "--sloppy", action="store_true",
        help="fast, low-precision registration for tests and demos - NOT FOR RESEARCH USE",
    )

    g = parser.add_argument_group("Preprocessing (participant level; defaults are the study's)")
    g.add_argument(
        "--dummy-scans", dest="dummy_scans", type=_dummy_scans, default=4, metavar="N|auto",
        help="non-steady-state volumes dropped at the start of each run ('auto': detected)",
    )  # fmt: skip
    g.add_argument(
        "--smoothing-fwhm", dest="smoothing_fwhm", type=_float(0.0), default=4.0, metavar="MM",
        help="Gaussian smoothing FWHM within the brain mask (0: none)",
    )  # fmt: skip
    g.add_argument(
        "--band-pass", dest="band_pass", nargs=2, type=_float(0.0), default=[0.01, 0.1],
        metavar=("LOW_HZ", "HIGH_HZ"), help="band-pass filter edges (Hz)",
    )  # fmt: skip
    g.add_argument(
        "--acompcor-components", dest="acompcor_components", type=_acompcor, default=5,
        metavar="N|FRACTION",
        help="aCompCor components from eroded WM+CSF regressed out: a number (>= 1) or a "
        "fraction of variance to explain (0-1)",
    )  # fmt: skip
    g.add_argument(
        "--confounds", nargs="+", choices=["acompcor", "motion"],
        default=list(DEFAULT_CONFOUNDS),
        metavar="GROUP",
        help="confounds regressed out: acompcor (the study's nuisance model), motion (the 6 "
        "head-motion parameters; add them with --confounds acompcor motion)",
    )  # fmt: skip
    g.add_argument(
        "--fd-threshold", dest="fd_threshold", type=_float(0.0, strict=True), metavar="MM",
        help="censor volumes with framewise displacement above this (default: no censoring)",
    )  # fmt: skip
    g.add_argument(
        "--output-spaces", dest="output_spaces", nargs="+", metavar="SPACE",
        choices=["native", "template", *TEMPLATES[1:]], default=["native"],
        help="spaces of the denoised BOLD written: native (always), template",
    )  # fmt: skip
    g.add_argument(
        "--template", choices=TEMPLATES, default="auto",
        help="standard space: 'auto' uses TemplateFlow's MNI152NLin6Asym 2 mm (the study's "
        "MNI152) when present locally, else the bundled MNI152NLin2009aSym",
    )  # fmt: skip

    g = parser.add_argument_group("Seeds and dynamic connectivity")
    g.add_argument(
        "--seeds", type=_existing_file, metavar="TSV",
        help="seeds table (columns name, x, y, z, radius_mm, network; MNI mm); default: the "
        "study's PCC, mPFC (DMN), PAG, RVM (DeS)",
    )  # fmt: skip
    g.add_argument(
        "--atlas", type=_existing_file, metavar="NIFTI",
        help="labelled atlas in template space for region-to-region dFC (needs --atlas-labels)",
    )  # fmt: skip
    g.add_argument(
        "--atlas-labels", dest="atlas_labels", type=_existing_file, metavar="TSV",
        help="atlas labels table (columns index, name)",
    )  # fmt: skip
    g.add_argument(
        "--seed-space", dest="seed_space", choices=["native", "template"], default="native",
        help="native: seeds warped into each subject's BOLD space (the study); template: "
        "extracted from template-space BOLD",
    )  # fmt: skip
    g.add_argument(
        "--network-weighting", dest="network_weighting", choices=["equal", "voxel"],
        default="equal", help="network series = mean of seed series (equal) or of all voxels",
    )  # fmt: skip
    g.add_argument(
        "--dcc-mode", dest="dcc_mode", choices=["pairwise", "joint"], default="pairwise",
        help="DCC (a, b) per pair of series, or one (a, b) for all",
    )  # fmt: skip

    g = parser.add_argument_group("Group level (column names are yours)")
    g.add_argument("--group-column", dest="group_column", default="group", metavar="COLUMN",
                   help="participants.tsv/phenotype column with the group labels")
    g.add_argument("--control-label", dest="control_label", default="HC", metavar="LABEL",
                   help="group label of healthy controls")
    g.add_argument("--responder-label", dest="responder_label", default="R", metavar="LABEL",
                   help="group label of responders")
    g.add_argument("--nonresponder-label", dest="nonresponder_label", default="NR",
                   metavar="LABEL", help="group label of non-responders")
    g.add_argument("--outcome", metavar="COLUMN",
                   help="outcome column (e.g. relief_pct, derived by --relief-from)")
    g.add_argument("--predictor", metavar="COLUMN",
                   help="predictor column (e.g. tsp, derived by --tsp-columns)")
    g.add_argument("--covariates", nargs="+", default=[], metavar="COLUMN",
                   help="covariates of the regressions (e.g. age sex mean_fd)")
    g.add_argument("--compare-columns", dest="compare_columns", nargs="+", default=[],
                   metavar="COLUMN",
                   help="numeric columns compared across the groups as dFC is (Shapiro-Wilk, "
                   "one-way ANOVA, Tukey HSD), e.g. hads_anxiety hads_depression pcs")
    g.add_argument("--relief-from", dest="relief_from", nargs=2, metavar=("PRE", "POST"),
                   help="derive relief_pct = 100 (PRE - POST) / PRE from these rating columns")
    g.add_argument("--responder-threshold", dest="responder_threshold", type=_float(0.0),
                   default=30.0, metavar="PCT", help="responder = relief >= this (%%)")
    g.add_argument("--tsp-columns", dest="tsp_columns", nargs="+", metavar="COLUMN",
                   help="temporal summation ratings in order (or one glob such as 'tsp_*'); "
                   "derives tsp = %% change of the peak from the first rating")
    g.add_argument("--max-mean-fd", dest="max_mean_fd", type=_float(0.0, strict=True),
                   default=0.5, metavar="MM", help="exclude runs with mean FD above this")
    g.add_argument("--n-boot", dest="n_boot", type=_positive_int, default=5000, metavar="N",
                   help="bootstrap resamples (mediation, AUC)")
    g.add_argument("--all-pairs", dest="all_pairs", action="store_true",
                   help="also test every secondary pair (FDR-corrected)")
    g.add_argument("--pair", nargs=2, default=["DMN", "DeS"], metavar=("A", "B"),
                   help="the primary pair of the dFC summary")
    return parser


def _explicit_dests(argv: list[str]) -> set[str]:
    """Destinations the user gave on the command line (defaults suppressed)."""
    parser = _build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _toml_tokens(parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """Turn a TOML config file into command-line tokens, checking every key."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        parser.error(f"argument --config-file: {path} is not valid TOML ({exc})")
    options = {
        action.dest: action
        for action in parser._actions
        if action.option_strings and action.dest not in {"help", "version", "config_file"}
    }
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in {"execution", "workflow", "group"}:
            flat.update(value)
        else:
            flat[key] = value
    tokens: list[str] = []
    for key, value in flat.items():
        dest = key.replace("-", "_")
        if dest not in options:
            parser.error(
                f"argument --config-file: unknown key {key!r} in {path}; valid keys: "
                + ", ".join(sorted(k.replace("_", "-") for k in options))
            )
        action = options[dest]
        flag = action.option_strings[-1] if dest == "verbose" else action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if value is True:
                tokens.append(flag)
            elif value is not False:
                parser.error(f"argument --config-file: {key} must be true or false in {path}")
        elif isinstance(action, argparse._CountAction):
            tokens += [flag] * int(value)
        elif isinstance(value, dict):
            tokens += [flag, json.dumps(value)]
        elif isinstance(value, list):
            tokens += [flag, *map(str, value)]
        else:
            tokens += [flag, str(value)]
    return tokens


def parse_args(argv: list[str] | None = None):
    """Parse the command line (and ``--config-file``) into a :class:`bids_dfc.config.Config`."""
    import os

    from bids_dfc.config import SECTIONS, Config, section_of

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    ns = parser.parse_args(argv)
    if ns.config_file is not None:
        explicit = _explicit_dests(argv)
        cfg_parser = _build_parser()
        cfg_parser.prog = f"bids-dfc (config file {ns.config_file.name})"
        tokens = _toml_tokens(cfg_parser, ns.config_file)
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
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
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
    if values["relief_from"] is not None:
        values["relief_from"] = tuple(values["relief_from"])
    values.pop("config_file")
    sections: dict[str, dict] = {name: {} for name in SECTIONS}
    for key, value in values.items():
        sections[section_of(key)][key] = value
    return Config(**{name: SECTIONS[name](**kw) for name, kw in sections.items()})
