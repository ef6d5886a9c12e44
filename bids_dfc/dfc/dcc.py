"""Dynamic conditional correlation (DCC(1,1), Engle 2002; Lindquist et al. 2014).

Conventions
-----------
* Stage 1: every column is demeaned and fitted with a Gaussian GARCH(1,1)
  (:func:`bids_dfc.dfc.garch.fit_garch`); ``z`` are its standardised residuals.
* ``Qbar`` is the second-moment matrix of ``z``, ``mean_t(z_t z_t')`` (Engle's unconditional
  covariance of the standardised residuals; not re-centred, not rescaled to a correlation).
* ``Q_1 = Qbar`` (so ``R_1`` is the correlation implied by ``Qbar``) and for ``t >= 2``
  ``Q_t = (1 - a - b) Qbar + a z_{t-1} z_{t-1}' + b Q_{t-1}``;
  ``R_t = diag(Q_t)^(-1/2) Q_t diag(Q_t)^(-1/2)``.
* ``(a, b)`` maximise Engle's correlation log-likelihood
  ``L_C = -1/2 sum_{t=1..T} (log|R_t| + z_t' R_t^(-1) z_t - z_t' z_t)`` subject to
  ``a, b >= 0`` and ``a + b <= max_persistence`` (default ``1 - 1e-4``). The ``z'z`` term does
  not depend on ``(a, b)``; it is subtracted so that ``L_C = 0`` for a constant zero
  correlation. The reported ``loglik`` is this ``L_C``.
* ``a = 0`` gives a constant ``R_t`` whatever ``b``; it is then reported as ``b = 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from . import _bivariate as bv
from ._checks import check_memory, check_pairs, check_series
from ._joint import fit_joint, joint_correlations
from ._pairwise import fit_pairs
from .garch import GarchResult, fit_garch

#: Default upper bound of a + b.
DCC_MAX_PERSISTENCE = 1.0 - 1e-4


@dataclass
class DCCResult:
    """Output of :func:`dcc`.

    Attributes
    ----------
    R : ndarray, shape (T, P)
        Conditional correlation series, one column per pair (shape (T, 0) when :func:`dcc`
        was given ``reduce``: the series were summarised chunk by chunk and not kept).
    pairs : list of tuple of int
        ``(i, j)`` column indices of each pair (``i < j``, row-major order by default).
    a, b : ndarray, shape (P,)
        DCC parameters (identical for every pair in joint mode).
    loglik : ndarray, shape (P,)
        Engle's correlation log-likelihood ``L_C`` of each bivariate model at its (a, b)
        (in joint mode: of each pair evaluated at the shared (a, b)).
    converged : ndarray of bool, shape (P,)
        Optimiser convergence flags.
    garch : GarchResult
        The first-stage univariate fits.
    mode : str
        ``"pairwise"`` or ``"joint"``.
    loglik_joint : float or None
        Joint mode only: ``L_C`` of the N-variate model.
    n_iter : ndarray of int, shape (P,)
        Newton iterations per pair (pairwise mode; zeros in joint mode).
    reduced : dict of str to ndarray, shape (P,)
        What ``reduce`` returned for every chunk, joined (empty without ``reduce``).
    """

    R: np.ndarray
    pairs: list[tuple[int, int]]
    a: np.ndarray
    b: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    garch: GarchResult
    mode: str = "pairwise"
    loglik_joint: float | None = None
    n_iter: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    reduced: dict[str, np.ndarray] = field(default_factory=dict)


def all_pairs(n: int) -> list[tuple[int, int]]:
    """All ``(i, j)`` with ``i < j < n`` in row-major order."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _check_distinct(z, pairs, names, block=8192):
    """Raise ValueError on a pair of (almost) perfectly correlated series. In blocks of
    pairs: (T, block) temporaries, not (T, P) ones (``tsum`` is per pair: same bits)."""
    for lo in range(0, pairs.shape[0], block):
        sub = pairs[lo : lo + block]
        zi, zj = z[:, sub[:, 0]], z[:, sub[:, 1]]
        r = bv.tsum(zi * zj) / np.sqrt(bv.tsum(zi * zi) * bv.tsum(zj * zj))
        bad = np.abs(r) > 1.0 - 1e-9
        if bad.any():
            i, j = sub[np.flatnonzero(bad)[0]]
            lab = (names[i], names[j]) if names is not None else (i, j)
            raise ValueError(
                f"series {lab[0]!r} and {lab[1]!r} are (almost) perfectly correlated "
                f"(r = {r[bad][0]:.10f}); their DCC is undefined: drop one of them"
            )


def dcc(
    x: ArrayLike,
    *,
    mode: str = "pairwise",
    pairs: Sequence[tuple[int, int]] | None = None,
    names: Sequence[str] | None = None,
    max_persistence: float = DCC_MAX_PERSISTENCE,
    max_memory_gb: float = 4.0,
    chunk_size: int = 8192,
    n_jobs: int = 1,
    garch: GarchResult | None = None,
    progress: Callable[[int], object] | None = None,
    reduce: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
) -> DCCResult:
    """Estimate DCC(1,1) conditional correlations between the columns of ``x``.

    Parameters
    ----------
    x : array_like, shape (T, N)
        Time points in rows, one region/network series per column (N >= 2, T >= 50).
    mode : {"pairwise", "joint"}
        ``"pairwise"``: each pair gets its own bivariate model and (a, b) (default; the
        usual choice for seed/network analyses and the only one that scales to atlases).
        ``"joint"``: one (a, b) for all series, maximising the N-variate likelihood
        (requires N < T).
    pairs : sequence of (int, int), optional
        Column pairs to estimate; all ``i < j`` pairs in row-major order when omitted.
    names : sequence of str, optional
        Column names for error messages.
    max_persistence : float
        Upper bound of ``a + b``.
    max_memory_gb : float
        Memory budget; a ValueError is raised when the (T, P) outputs would not fit.
    chunk_size : int
        Pairs per batch (pairwise mode). Does not change the results.
    n_jobs : int
        Worker processes (threads where processes cannot be started) working on different
        batches. Does not change the results.
    garch : GarchResult, optional
        Pre-computed first stage (must come from the same ``x``).
    progress : callable, optional
        Pairwise mode: called with the number of pairs done after every batch (see
        :func:`bids_dfc.dfc._pairwise.fit_pairs`). Does not change the results.
    reduce : callable, optional
        Pairwise mode: ``reduce(R_chunk)`` (T, m) -> dict of per-pair arrays (m,), applied
        to each batch of ``chunk_size`` pairs where it was fitted (the worker process), so
        that the (T, P) series is never held; ``R`` is then empty and ``reduced`` holds them.

    Returns
    -------
    DCCResult

    Raises
    ------
    ValueError
        On invalid input (see :func:`bids_dfc.dfc._checks.check_series`), duplicated
        series, an unknown mode, or outputs larger than the memory budget.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> res = dcc(rng.standard_normal((150, 3)))
    >>> res.R.shape, res.pairs
    ((150, 3), [(0, 1), (0, 2), (1, 2)])
    """
    _check_options(mode, chunk_size, n_jobs, max_persistence)
    arr = check_series(x, names=names, min_series=2)
    n_t, n_s = arr.shape
    pair_arr = check_pairs(all_pairs(n_s) if pairs is None else pairs, n_s)
    if reduce is not None and mode != "pairwise":
        raise ValueError("reduce= applies to mode='pairwise' only")
    check_memory(n_t, pair_arr.shape[0], max_memory_gb, chunk_size=chunk_size, n_jobs=n_jobs,
                 series=reduce is None)
    if garch is None:
        garch = fit_garch(arr, names=names)
    _check_distinct(garch.std_resid, pair_arr, names)
    if mode == "pairwise":
        return _dcc_pairwise(garch, pair_arr, max_persistence, chunk_size, n_jobs, progress,
                             reduce)
    return _dcc_joint(garch, pair_arr, (n_t, n_s), max_persistence, max_memory_gb)


def _check_options(mode, chunk_size, n_jobs, max_persistence):
    """Raise ValueError on an unknown mode or an invalid numeric option of :func:`dcc`."""
    if mode not in ("pairwise", "joint"):
        raise ValueError(f"mode must be 'pairwise' or 'joint'; got {mode!r}")
    for label, val in (("chunk_size", chunk_size), ("n_jobs", n_jobs)):
        if isinstance(val, bool) or int(val) != val or val < 1:
            raise ValueError(f"{label} must be a positive integer; got {val!r}")
    if not 0.0 < max_persistence < 1.0:
        raise ValueError(f"max_persistence must lie in (0, 1); got {max_persistence}")


def _dcc_pairwise(garch, pair_arr, max_persistence, chunk_size, n_jobs, progress=None,
                  reduce=None):
    """Pairwise mode: one bivariate model and (a, b) per pair."""
    out = fit_pairs(
        garch.std_resid,
        pair_arr,
        max_persistence=max_persistence,
        chunk_size=chunk_size,
        n_jobs=n_jobs,
        progress=progress,
        reduce=reduce,
    )
    return DCCResult(
        R=out["R"] if "R" in out else np.empty((garch.std_resid.shape[0], 0)),
        reduced=out.get("reduced", {}),
        pairs=[(int(i), int(j)) for i, j in pair_arr],
        a=out["a"],
        b=out["b"],
        loglik=out["loglik"],
        converged=out["converged"],
        garch=garch,
        mode="pairwise",
        n_iter=out["n_iter"],
    )


def _dcc_joint(garch, pair_arr, shape, max_persistence, max_memory_gb):
    """Joint mode: one (a, b) for all series, from the N-variate likelihood.

    ``shape`` is (T, N) of the input series; raises ValueError when N >= T (singular
    ``Qbar``) or when the (T, N, N) working arrays would exceed the memory budget.
    """
    n_t, n_s = shape
    z = garch.std_resid
    if n_s >= n_t:
        raise ValueError(
            f"joint mode needs fewer series than time points (got {n_s} series, {n_t} "
            "time points: Qbar would be singular); use mode='pairwise'"
        )
    need = 4.0 * n_t * n_s * n_s * 8 / 1e9
    if need > max_memory_gb:
        raise ValueError(
            f"joint mode with {n_s} series needs about {need:.1f} GB (> {max_memory_gb:g} GB); "
            "use mode='pairwise' or fewer series"
        )
    a, b, negll, conv = fit_joint(z, max_persistence=max_persistence)
    r_full = joint_correlations(z, a, b)
    r_pairs = r_full[:, pair_arr[:, 0], pair_arr[:, 1]]
    data = bv.PairData(np.take(z, pair_arr[:, 0], axis=1), np.take(z, pair_arr[:, 1], axis=1))
    n_p = pair_arr.shape[0]
    av, bvec = np.full(n_p, a), np.full(n_p, b)
    return DCCResult(
        R=r_pairs,
        pairs=[(int(i), int(j)) for i, j in pair_arr],
        a=av,
        b=bvec,
        loglik=-bv.value(data, av, bvec),
        converged=np.full(n_p, conv),
        garch=garch,
        mode="joint",
        loglik_joint=-negll,
        n_iter=np.zeros(n_p, dtype=int),
    )
