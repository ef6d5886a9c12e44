"""bids_dfc.demo"""
