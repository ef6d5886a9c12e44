"""bids_dfc.interfaces"""
