"""bids_dfc.reports"""
