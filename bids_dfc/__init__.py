"""bids_dfc: dynamic functional connectivity (DCC) between the default mode network and
the descending pain-modulatory pathway, as a BIDS-App."""

__version__ = "0.1.0"
__all__ = ["__version__"]
