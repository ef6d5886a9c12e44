"""Built-in demo dataset: synthetic BIDS heads with planted DMN-DeS dynamic connectivity.

See ``docs/demo.md`` for the generative model, the truth files and the knobs.
"""

from bids_dfc.demo.dataset import SIZES, make_demo_dataset
from bids_dfc.demo.trial import TRIAL_PARAMS, simulate_trial
from bids_dfc.demo.truth import load_truth, mni_to_bold, mni_to_t1w, motion_matrices

__all__ = ["SIZES", "TRIAL_PARAMS", "load_truth", "make_demo_dataset", "mni_to_bold",
           "mni_to_t1w", "motion_matrices", "simulate_trial"]
