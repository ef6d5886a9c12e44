"""Seed, region and network time series from BOLD data and weights (nipype-free)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import cast

import numpy as np
import pandas as pd

from bids_dfc.errors import InputError


def _check_data(data: np.ndarray) -> np.ndarray:
    if data.ndim != 4:
        raise InputError(f"Expected a 4D BOLD series, got shape {data.shape}.")
    return data


def weighted_mean_series(data: np.ndarray, weights: np.ndarray, *,
                         names: Iterable[str] | None = None) -> np.ndarray:
    """Weighted mean time series of several regions.

    Voxels whose series is constant over time (zero outside the data's brain mask, for
    instance) carry no signal and are left out; the remaining weights are renormalised.

    Parameters
    ----------
    data : ndarray (X, Y, Z, T)
        BOLD series.
    weights : ndarray (X, Y, Z) or (X, Y, Z, K)
        Non-negative weights per region on the same grid.
    names : list of str, optional
        Region names, for error messages.

    Returns
    -------
    ndarray (T, K)

    Raises
    ------
    InputError
        Grid mismatch, or a region whose weighted voxels all have constant series.
    """
    data = _check_data(data)
    weights = weights[..., None] if weights.ndim == 3 else weights
    if weights.shape[:3] != data.shape[:3]:
        raise InputError(
            f"Weight maps {weights.shape[:3]} and BOLD {data.shape[:3]} are not on one grid."
        )
    k = weights.shape[3]
    names = list(names) if names is not None else [f"region {i}" for i in range(k)]
    support = np.any(weights > 0, axis=3)
    ts = data[support].astype(np.float64)  # (V, T)
    varying = ts.std(axis=1) > 0
    w = weights[support].astype(np.float64) * varying[:, None]  # (V, K)
    total = w.sum(axis=0)
    empty = [names[i] for i in np.flatnonzero(total <= 0)]
    if empty:
        raise InputError(
            f"Regions {empty} cover no voxel with a varying BOLD signal (outside the brain "
            "mask or the field of view of this run); check the seeds and the registration."
        )
    return (ts.T @ w) / total


def label_mean_series(data: np.ndarray, labels: np.ndarray,
                      indices: Collection[int]) -> np.ndarray:
    """Mean series of each label of a discrete image (constant voxels left out).

    Parameters
    ----------
    data : ndarray (X, Y, Z, T)
    labels : ndarray (X, Y, Z) int
    indices : sequence of int
        Label values, one output column each.

    Returns
    -------
    ndarray (T, K)
    """
    data = _check_data(data)
    if labels.shape != data.shape[:3]:
        raise InputError(f"Labels {labels.shape} and BOLD {data.shape[:3]} grids differ.")
    out = np.empty((data.shape[3], len(indices)))
    for j, value in enumerate(indices):
        ts = data[labels == value].astype(np.float64)
        ts = ts[ts.std(axis=1) > 0]
        if len(ts) == 0:
            raise InputError(f"Atlas region {value} covers no voxel with a varying signal.")
        out[:, j] = ts.mean(axis=0)
    return out


def network_series(series: pd.DataFrame, networks: dict, *, weighting: str = "equal",
                   seed_weights: dict | None = None) -> pd.DataFrame:
    """Average seed series into network series.

    Parameters
    ----------
    series : pandas.DataFrame (T, seeds)
        One column per seed.
    networks : dict
        Seed name -> network name.
    weighting : {"equal", "voxel"}
        ``"equal"``: every seed of a network counts the same (the study's average of the
        seed series); ``"voxel"``: each seed weighted by its total voxel weight, so every
        voxel of the network counts the same.
    seed_weights : dict, optional
        Seed name -> total weight (needed for ``"voxel"``).

    Returns
    -------
    pandas.DataFrame (T, networks), networks in order of first appearance.
    """
    if weighting not in ("equal", "voxel"):
        raise InputError(f"network weighting must be 'equal' or 'voxel', got {weighting!r}.")
    if weighting == "voxel" and not seed_weights:
        raise InputError("'voxel' network weighting needs the seeds' total weights.")
    out = {}
    for net in dict.fromkeys(networks[s] for s in series.columns):
        members = [s for s in series.columns if networks[s] == net]
        # seed_weights is not None for "voxel" (checked above)
        w = np.array([cast(dict, seed_weights)[s] if weighting == "voxel" else 1.0
                      for s in members])
        out[net] = series[members].to_numpy() @ (w / w.sum())
    return pd.DataFrame(out, index=series.index)
