"""bids_dfc.cli"""
