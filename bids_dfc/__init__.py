"""bids_dfc: dynamic functional connectivity (DCC) between the default mode network and
the descending pain-modulatory pathway, as a BIDS-App."""

import os as _os

_os.environ.setdefault("NIPYPE_NO_ET", "1")  # nipype must never check for updates online

__version__ = "0.1.0"
__all__ = ["__version__"]
