"""The maths of dynamic functional connectivity (pure numpy/scipy, no file I/O).

Public API
----------
fit_garch
    Univariate Gaussian GARCH(1,1) of every column (first DCC stage).
dcc
    DCC(1,1) conditional correlations, ``mode="pairwise"`` or ``"joint"``.
dfc_summary
    SD (primary dFC measure), mean and threshold fractions of correlation series.
bootstrap_dfc_sd, pair_models, simulate_pairs
    Parametric-bootstrap percentile interval of the dFC SD of pairwise DCC fits.
sliding_window_correlation, pearson_correlation
    Comparison estimators.
"""

from ._checks import MIN_TIMEPOINTS
from .bootstrap import BootstrapResult, PairModel, bootstrap_dfc_sd, pair_models, simulate_pairs
from .dcc import DCC_MAX_PERSISTENCE, DCCResult, all_pairs, dcc
from .garch import GarchResult, fit_garch
from .sliding import pearson_correlation, sliding_window_correlation, taper_weights
from .summary import dfc_summary

__all__ = [
    "BootstrapResult",
    "DCCResult",
    "DCC_MAX_PERSISTENCE",
    "GarchResult",
    "MIN_TIMEPOINTS",
    "PairModel",
    "all_pairs",
    "bootstrap_dfc_sd",
    "dcc",
    "dfc_summary",
    "fit_garch",
    "pair_models",
    "pearson_correlation",
    "simulate_pairs",
    "sliding_window_correlation",
    "taper_weights",
]
