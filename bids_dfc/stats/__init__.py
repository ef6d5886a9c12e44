"""Group statistics of bids_dfc (pure pandas/scipy/statsmodels maths, no file I/O).

Modules: :mod:`.phenotype` (derived clinical variables), :mod:`.table` (join and exclusions),
:mod:`.tests_classic` (Shapiro-Wilk, ANOVA + Tukey, Kruskal-Wallis + Mann-Whitney, Spearman,
FDR), :mod:`.mediation` (PROCESS model 4 with bootstrap), :mod:`.prediction` (leave-one-out
logistic ROC AUC) and :mod:`.analysis` (runs them all on one row per participant).
"""
