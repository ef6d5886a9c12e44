"""The study's workflow settings, read from bids_dfc.config (imported by tests, not a test
module): the builders take every study value as a required keyword, so a test that builds a
sub-workflow on its own passes the same values the command line would."""

from __future__ import annotations

from dataclasses import fields

from bids_dfc.config import ExecutionOptions, WorkflowOptions

#: the command line's --random-seed default
RANDOM_SEED = {f.name: f.default for f in fields(ExecutionOptions)}["random_seed"]


def bold_kwargs(**overrides) -> dict:
    """Keywords of :func:`bids_dfc.workflows.bold.init_bold_wf` at the config's defaults."""
    opts = WorkflowOptions()
    kwargs = dict(dummy_scans=opts.dummy_scans, band_pass=opts.band_pass,
                  smoothing_fwhm=opts.smoothing_fwhm,
                  acompcor_components=opts.acompcor_components,
                  confound_groups=tuple(opts.confounds), fd_threshold=opts.fd_threshold,
                  random_seed=RANDOM_SEED)
    kwargs.update(overrides)
    return kwargs


def connectivity_kwargs(**overrides) -> dict:
    """Keywords of :func:`bids_dfc.workflows.connectivity.init_connectivity_wf` at the
    config's defaults."""
    opts = WorkflowOptions()
    kwargs = dict(seed_space=opts.seed_space, network_weighting=opts.network_weighting,
                  dcc_mode=opts.dcc_mode, dfc_bootstrap=opts.dfc_bootstrap,
                  random_seed=RANDOM_SEED)
    kwargs.update(overrides)
    return kwargs
