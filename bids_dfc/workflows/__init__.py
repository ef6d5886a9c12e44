"""bids_dfc.workflows"""
