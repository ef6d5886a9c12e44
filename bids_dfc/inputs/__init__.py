"""Input datasets: raw BIDS (raw.py); fMRIPrep derivatives come next."""
