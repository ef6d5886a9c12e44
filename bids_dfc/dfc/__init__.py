"""bids_dfc.dfc"""
