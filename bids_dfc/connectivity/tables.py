"""Per-run dFC tables (nipype-free): DCC of every pair, XCP-D-style relmat matrices, mean FD."""

from __future__ import annotations

import os
from collections.abc import Hashable

import numpy as np
import pandas as pd

from bids_dfc.connectivity.seeds import PAIR_SEP
from bids_dfc.dfc import dcc, dfc_summary
from bids_dfc.errors import InputError


def mean_fd(confounds_tsv: str | os.PathLike | None) -> float:
    """Mean framewise displacement (mm) of a confounds table (NaN if the column is absent)."""
    if not confounds_tsv:
        return float("nan")
    table = pd.read_csv(confounds_tsv, sep="\t", na_values=["n/a"])
    if "framewise_displacement" not in table:
        return float("nan")
    return float(np.nanmean(table["framewise_displacement"].to_numpy(dtype=float)))


def dfc_core(series: pd.DataFrame, groups: list[tuple[str, list[str]]], *, mode: str,
             fd: float) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """DCC of every pair within each group of columns.

    Parameters
    ----------
    series : pandas.DataFrame (T, columns)
        Time series (seeds, regions, networks).
    groups : list of (level, columns)
        E.g. ``[("network", ["DMN", "DeS"]), ("seed", ["PCC", "mPFC", "PAG", "RVM"])]``;
        pairs are formed within each group, row-major, in this order.
    mode : {"pairwise", "joint"}
        Passed to :func:`bids_dfc.dfc.dcc`.
    fd : float
        Mean framewise displacement, copied into every row.

    Returns
    -------
    summary : pandas.DataFrame
        One row per pair: ``seed_a, seed_b, level, dcc_sd, dcc_mean, pearson_r, a, b,
        converged, n_volumes, mean_fd``.
    dcc_series : pandas.DataFrame (T, pairs)
        Columns ``A__B``.
    info : dict
        Log-likelihoods per group, for the JSON sidecar.
    """

    rows, columns, info = [], {}, {}
    for level, names in groups:
        if len(names) < 2:
            continue
        x = series[names].to_numpy(dtype=float)
        x = (x - x.mean(axis=0)) / x.std(axis=0)  # DCC is scale-free; keep the fit well scaled
        res = dcc(x, mode=mode if len(names) > 2 else "pairwise", names=names)
        summ = dfc_summary(res.R)
        sdv, meanv = summ["sd"], summ["mean"]
        n_pairs = len(res.pairs)
        a = np.broadcast_to(np.asarray(res.a, dtype=float), (n_pairs,))
        b = np.broadcast_to(np.asarray(res.b, dtype=float), (n_pairs,))
        conv = np.broadcast_to(np.asarray(res.converged, dtype=bool), (n_pairs,))
        pearson = np.corrcoef(x, rowvar=False)
        for p, (i, j) in enumerate(res.pairs):
            key = f"{names[i]}{PAIR_SEP}{names[j]}"
            columns[key] = res.R[:, p]
            rows.append({
                "seed_a": names[i], "seed_b": names[j], "level": level,
                "dcc_sd": float(np.asarray(sdv)[p]), "dcc_mean": float(np.asarray(meanv)[p]),
                "pearson_r": float(pearson[i, j]), "a": float(a[p]), "b": float(b[p]),
                "converged": bool(conv[p]), "n_volumes": int(x.shape[0]), "mean_fd": fd,
            })
        info[level] = {"mode": mode if len(names) > 2 else "pairwise",
                       "loglik": np.asarray(res.loglik, dtype=float).round(4).tolist()}
    if not rows:
        raise InputError("Fewer than two series to correlate: give at least two seeds.")
    return pd.DataFrame(rows), pd.DataFrame(columns), info


def relmat(summary: pd.DataFrame, names: list[str], column: str, diag: float) -> pd.DataFrame:
    """Square region x region matrix of one summary column (XCP-D ``relmat`` layout)."""
    pos: dict[Hashable, int] = {n: k for k, n in enumerate(names)}
    values = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(values, diag)
    for row in summary.itertuples():
        if row.seed_a in pos and row.seed_b in pos:
            i, j = pos[row.seed_a], pos[row.seed_b]
            values[i, j] = values[j, i] = getattr(row, column)
    mat = pd.DataFrame(values, index=pd.Index(names, name="Node"), columns=names)
    return mat
