"""bids_dfc.stats"""
