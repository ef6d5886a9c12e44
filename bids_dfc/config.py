"""Settings of one bids_dfc run: small, sectioned, serialisable.

The CLI builds one :class:`Config`; workflow builders receive plain values taken from it
(they never read a global), so a workflow can be rebuilt from the ``config.toml`` written into
the work directory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bids_dfc.io import atomic_write

#: confounds regressed by default: aCompCor alone, the study's nuisance model (docs/methods-bold.md;
#: the 6 head-motion parameters are reported, and regressed only on request)
DEFAULT_CONFOUNDS = ("acompcor",)


@dataclass
class ExecutionOptions:
    """Where the data are, which data to process, and how to run."""

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    work_dir: Path
    participant_label: list[str] | None = None
    session_label: list[str] | None = None
    task: list[str] | None = None
    bids_filters: dict = field(default_factory=dict)
    skip_bids_validation: bool = False
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    plugin: str = "MultiProc"
    plugin_args: dict = field(default_factory=dict)
    random_seed: int = 0
    verbose: int = 0
    quiet: bool = False
    debug: bool = False
    sloppy: bool = False


@dataclass
class WorkflowOptions:
    """Processing choices of the participant level (defaults are the study's)."""

    dummy_scans: int | str = 4
    smoothing_fwhm: float = 4.0
    band_pass: tuple[float, float] = (0.01, 0.1)
    acompcor_components: float = 5
    confounds: list[str] = field(default_factory=lambda: list(DEFAULT_CONFOUNDS))
    fd_threshold: float | None = None
    #: denoising strategy when the input is fMRIPrep derivatives (a key of
    #: ``preproc/fmriprep_confounds.py`` STRATEGIES; the components per mask are
    #: ``acompcor_components``): the study's WM + CSF aCompCor
    fmriprep_strategy: str = "acompcor"
    seeds: Path | None = None
    atlas: Path | None = None
    atlas_labels: Path | None = None
    seed_space: str = "native"
    network_weighting: str = "equal"
    dcc_mode: str = "pairwise"
    #: parametric-bootstrap replicates of each seed pair's dFC SD (95 % interval in the dFC
    #: table; docs/dcc.md); 0: off, so that a default run costs no more (1000 recommended)
    dfc_bootstrap: int = 0
    output_spaces: list[str] = field(default_factory=lambda: ["native"])
    template: str = "auto"
    template_resolution: int = 2


@dataclass
class GroupOptions:
    """Column names and choices of the group level (defaults are documented conventions)."""

    group_column: str = "group"
    control_label: str = "HC"
    responder_label: str = "R"
    nonresponder_label: str = "NR"
    outcome: str | None = None
    predictor: str | None = None
    covariates: list[str] = field(default_factory=list)
    compare_columns: list[str] = field(default_factory=list)
    relief_from: tuple[str, str] | None = None
    responder_threshold: float = 30.0
    tsp_columns: list[str] | None = None
    max_mean_fd: float | None = 0.5
    n_boot: int = 5000
    all_pairs: bool = False
    pair: tuple[str, str] = ("DMN", "DeS")
    #: the crossover trial (docs/trial.md): the treatment every other is compared with, the
    #: AUC horizons (days after the infusion) and the days of a diary period
    trial_reference: str = "placebo"
    trial_horizons: tuple[int, ...] = (7, 15, 21, 28, 35)
    trial_days: int = 35


@dataclass
class Config:
    """All settings of a run, in three sections."""

    execution: ExecutionOptions
    workflow: WorkflowOptions = field(default_factory=WorkflowOptions)
    group: GroupOptions = field(default_factory=GroupOptions)

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable dictionary (paths as strings)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def to_json(self, path: str | Path) -> Path:
        """Write the settings as JSON (used for the work directory and provenance)."""
        return atomic_write(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))


SECTIONS = {"execution": ExecutionOptions, "workflow": WorkflowOptions, "group": GroupOptions}


def section_of(name: str) -> str:
    """Name of the :class:`Config` section that holds option ``name``."""
    for section, klass in SECTIONS.items():
        if name in {f.name for f in fields(klass)}:
            return section
    raise KeyError(name)
