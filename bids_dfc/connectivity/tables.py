"""Per-run dFC tables (nipype-free): DCC of every pair, XCP-D-style relmat matrices, mean FD."""

from __future__ import annotations

import os
from collections.abc import Hashable

import numpy as np
import pandas as pd

from bids_dfc.connectivity.seeds import PAIR_SEP
from bids_dfc.dfc import DCCResult, bootstrap_dfc_sd, dcc, dfc_summary, pair_models
from bids_dfc.errors import InputError


def mean_fd(confounds_tsv: str | os.PathLike | None) -> float:
    """Mean framewise displacement (mm) of a confounds table (NaN if the column is absent)."""
    if not confounds_tsv:
        return float("nan")
    table = pd.read_csv(confounds_tsv, sep="\t", na_values=["n/a"])
    if "framewise_displacement" not in table:
        return float("nan")
    return float(np.nanmean(table["framewise_displacement"].to_numpy(dtype=float)))


#: the dFC table's columns of the SD's bootstrap interval (n/a when it is off)
BOOT_COLUMNS = ("dcc_sd_ci_low", "dcc_sd_ci_high", "dcc_sd_boot_n")


def _sd_interval(res: DCCResult, names: list[str], seen: set, n_boot: int | None,
                 seed: np.random.SeedSequence) -> np.ndarray:
    """(P, 3) bootstrap columns of one group's pairs: percentile 95 % interval of the SD and
    the replicates in it; n/a when off, for joint fits and for pairs of an earlier group."""
    out = np.full((len(res.pairs), 3), np.nan)
    todo = [p for p, (i, j) in enumerate(res.pairs) if (names[i], names[j]) not in seen]
    if not n_boot or res.mode != "pairwise" or not todo:
        return out
    boot = bootstrap_dfc_sd(pair_models(res).take(todo), n_boot=n_boot, seed=seed)
    out[todo] = np.column_stack([boot.ci_low, boot.ci_high, boot.n_used])
    return out


def dfc_core(series: pd.DataFrame, groups: list[tuple[str, list[str]]], *, mode: str,
             fd: float, n_boot: int | None = None,
             random_seed: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
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
    n_boot : int, optional
        Parametric-bootstrap replicates of each pairwise-fitted pair's SD
        (:func:`bids_dfc.dfc.bootstrap_dfc_sd`); None or 0: off (n/a columns).
    random_seed : int, optional
        Seed of the bootstrap; group ``g`` draws from ``SeedSequence(random_seed)``'s child
        ``g``, so a group's intervals do not depend on the groups before it.

    Returns
    -------
    summary : pandas.DataFrame
        One row per pair: ``seed_a, seed_b, level, dcc_sd, dcc_sd_ci_low, dcc_sd_ci_high,
        dcc_sd_boot_n, dcc_mean, pearson_r, a, b, converged, n_volumes, mean_fd``.
    dcc_series : pandas.DataFrame (T, pairs)
        Columns ``A__B``.
    info : dict
        Log-likelihoods per group, for the JSON sidecar.
    """

    rows, columns, info = [], {}, {}
    seen: set[tuple[str, str]] = set()
    seeds = np.random.SeedSequence(random_seed).spawn(len(groups))
    for g, (level, names) in enumerate(groups):
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
        boot = _sd_interval(res, names, seen, n_boot, seeds[g])
        for p, (i, j) in enumerate(res.pairs):
            key = f"{names[i]}{PAIR_SEP}{names[j]}"
            seen.add((names[i], names[j]))
            columns[key] = res.R[:, p]
            rows.append({
                "seed_a": names[i], "seed_b": names[j], "level": level,
                "dcc_sd": float(np.asarray(sdv)[p]), **dict(zip(BOOT_COLUMNS, boot[p])),
                "dcc_mean": float(np.asarray(meanv)[p]),
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
