"""Parametric bootstrap of the dFC SD of pairwise DCC fits (how precise is one run's value?).

For every pair, the fitted bivariate DCC-GARCH(1,1) model is the data-generating process:
``n_boot`` series of the fitted length are simulated from it, each is refitted with the same
estimator (:func:`bids_dfc.dfc.garch.fit_garch`, then pairwise :func:`bids_dfc.dfc.dcc.dcc`;
the replicates of all pairs are fitted together, as batches of ``block`` pairs), and the SD
over time of each replicate's ``R_t`` (ddof = 1, :func:`bids_dfc.dfc.summary.dfc_summary`)
is taken. The percentile interval of these SDs (Efron & Tibshirani 1993, ch. 13) is the
interval reported.

Simulation conventions (those of the estimator, ``docs/dcc.md``): zero mean (the fit
demeans); ``s2[0]`` = the fitted first conditional variance ``w + (alpha + beta) bc`` of the
observed series (the backcast of the data: the simulation starts where the fit did) and
``s2[t] = w + alpha x[t-1]^2 + beta s2[t-1]``; ``Q_1 = Qbar`` (the second-moment matrix of the
observed standardised residuals) and ``Q_t = (1 - a - b) Qbar + a z_{t-1} z_{t-1}' + b Q_{t-1}``;
``z_t ~ N(0, R_t)``, ``R_t`` the correlation of ``Q_t``; ``x_t = sqrt(s2_t) z_t``.

Determinism: ``numpy.random.default_rng`` streams, one per pair, spawned from one
``SeedSequence(seed)``; pair ``p`` draws its ``(n_boot, T, 2)`` standard normals at once, so
replicate ``k`` of a pair is the same whatever ``n_boot`` (beyond ``k``), the other pairs,
``block`` or ``n_jobs``: the fits are batch-invariant (``docs/dcc.md``), and the result is
the same bit for bit.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .dcc import DCC_MAX_PERSISTENCE, DCCResult, dcc
from .garch import GarchResult, fit_garch
from .summary import dfc_summary

__all__ = ["BootstrapResult", "PairModel", "bootstrap_dfc_sd", "pair_models", "refit_sd",
           "simulate_pairs"]

#: residual correlation beyond which a pair is left out (``dcc`` refuses |r| > 1 - 1e-9)
_MAX_ABS_R = 1.0 - 2e-9
#: largest simulated value refitted (squares and their sums stay far from overflow)
_MAX_ABS_X = 1e100
#: fewest usable replicates for an interval
_MIN_USED = 2


@dataclass
class PairModel:
    """Fitted bivariate DCC-GARCH(1,1) models of P pairs.

    Attributes
    ----------
    garch : ndarray, shape (P, 2, 3)
        ``w, alpha, beta`` of the two series of each pair (squared units of the fitted input).
    sigma2_0 : ndarray, shape (P, 2)
        First conditional variance of each series, ``s2[0] = w + (alpha + beta) bc``.
    qbar : ndarray, shape (P, 3)
        ``Qbar`` of each pair as ``(q11, q22, q12)``.
    a, b : ndarray, shape (P,)
        DCC parameters.
    n_t : int
        Length of the fitted series (of every simulated series).
    """

    garch: np.ndarray
    sigma2_0: np.ndarray
    qbar: np.ndarray
    a: np.ndarray
    b: np.ndarray
    n_t: int

    def take(self, rows: ArrayLike) -> PairModel:
        """The models of the pairs ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=int)
        return PairModel(self.garch[rows], self.sigma2_0[rows], self.qbar[rows],
                         self.a[rows], self.b[rows], self.n_t)


@dataclass
class BootstrapResult:
    """Parametric-bootstrap distribution and percentile interval of the dFC SD of P pairs.

    Attributes
    ----------
    sd : ndarray, shape (n_boot, P)
        SD over time (ddof = 1) of each replicate's refitted ``R_t``; NaN where the refit
        failed (see ``n_used``).
    ci_low, ci_high : ndarray, shape (P,)
        Percentile interval at ``level`` of the usable replicates (NaN with fewer than 2).
    n_used : ndarray of int, shape (P,)
        Replicates in the interval: both GARCH fits and the DCC fit converged, the
        simulated series finite and fittable.
    n_boot : int
        Replicates simulated per pair.
    level : float
        Coverage of the interval.
    """

    sd: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_used: np.ndarray
    n_boot: int
    level: float

    @property
    def n_failed(self) -> np.ndarray:
        """Replicates left out of the interval, per pair."""
        return self.n_boot - self.n_used


def pair_models(fit: DCCResult) -> PairModel:
    """The fitted model of every pair of a pairwise :func:`~bids_dfc.dfc.dcc.dcc` result."""
    if fit.mode != "pairwise":
        raise ValueError("the dFC SD bootstrap simulates bivariate models: it needs a "
                         f"pairwise DCC fit, got mode {fit.mode!r}")
    g: GarchResult = fit.garch
    idx = np.asarray(fit.pairs, dtype=int).reshape(-1, 2)
    z = g.std_resid
    zi, zj = z[:, idx[:, 0]], z[:, idx[:, 1]]
    qbar = np.stack([np.mean(zi * zi, axis=0), np.mean(zj * zj, axis=0),
                     np.mean(zi * zj, axis=0)], axis=1)
    n_p = idx.shape[0]
    return PairModel(garch=g.params[idx], sigma2_0=g.sigma2[0][idx], qbar=qbar,
                     a=np.broadcast_to(np.asarray(fit.a, dtype=float), (n_p,)).copy(),
                     b=np.broadcast_to(np.asarray(fit.b, dtype=float), (n_p,)).copy(),
                     n_t=int(z.shape[0]))


def simulate_pairs(model: PairModel, innovations: ArrayLike) -> np.ndarray:
    """Series of the pairs' DCC-GARCH(1,1) models driven by given standard normal draws.

    Parameters
    ----------
    model : PairModel
        P pairs (the conventions of the module docstring).
    innovations : array_like, shape (R, T, P, 2)
        Independent standard normal draws; ``z_t = (e1, rho_t e1 + sqrt(1 - rho_t^2) e2)``.

    Returns
    -------
    ndarray, shape (R, T, P, 2)
        The simulated series ``x`` (R replicates of each pair).
    """
    e = np.asarray(innovations, dtype=float)
    n_rep, n_t, n_p, two = e.shape
    if two != 2 or n_p != model.a.shape[0]:
        raise ValueError(f"innovations must be (R, T, {model.a.shape[0]}, 2); got {e.shape}")
    w, alpha, beta = (model.garch[..., k] for k in range(3))  # (P, 2) each
    qbar = model.qbar
    a, b = model.a[:, None], model.b[:, None]
    s2 = np.repeat(model.sigma2_0[None], n_rep, axis=0)
    q = np.repeat(qbar[None], n_rep, axis=0)
    x = np.empty_like(e)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: the refit leaves it out
        for t in range(n_t):
            rho = q[..., 2] / np.sqrt(q[..., 0] * q[..., 1])
            z1 = e[:, t, :, 0]
            z2 = rho * z1 + np.sqrt(np.maximum(1.0 - rho * rho, 0.0)) * e[:, t, :, 1]
            x[:, t, :, 0] = np.sqrt(s2[..., 0]) * z1
            x[:, t, :, 1] = np.sqrt(s2[..., 1]) * z2
            s2 = w + alpha * x[:, t] ** 2 + beta * s2
            zz = np.stack([z1 * z1, z2 * z2, z1 * z2], axis=-1)
            q = (1.0 - a - b) * qbar + a * zz + b * q
    return x


def _usable_columns(cols: np.ndarray) -> np.ndarray:
    """Columns the estimator accepts: finite, of a size whose squares sum without overflow
    (an exploding simulated variance), and not (numerically) constant."""
    with np.errstate(invalid="ignore"):
        big = np.abs(cols).max(axis=0)
    ok = np.isfinite(big) & (big <= _MAX_ABS_X)
    safe = np.where(ok, cols, 0.0)
    return ok & (safe.std(axis=0) > 1e-8 * np.abs(safe).max(axis=0))


def _subset(g: GarchResult, keep: np.ndarray) -> GarchResult:
    return GarchResult(params=g.params[keep], sigma2=g.sigma2[:, keep],
                       std_resid=g.std_resid[:, keep], loglik=g.loglik[keep],
                       converged=g.converged[keep], mean=g.mean[keep])


def _sd(r: np.ndarray) -> np.ndarray:
    """``dfc_summary(r)["sd"]``, the same bits whatever the number of columns: numpy sums
    a lone column (or a column-major array) pairwise, the columns of a row-major one in
    time order, so a lone column is duplicated (as ``_bivariate.tsum`` does)."""
    n = r.shape[1]
    wide = np.concatenate([r, r], axis=1) if n == 1 else np.ascontiguousarray(r)
    return dfc_summary(wide)["sd"][:n]


def refit_sd(x: np.ndarray, *, max_persistence: float = DCC_MAX_PERSISTENCE,
             n_jobs: int = 1) -> np.ndarray:
    """Refit GARCH + pairwise DCC on simulated pairs and return each one's SD of ``R_t``.

    Parameters
    ----------
    x : ndarray, shape (R, T, P, 2)
        Simulated pairs (:func:`simulate_pairs`), fitted as ``R * P`` pairs in one batch.
    max_persistence, n_jobs
        As :func:`bids_dfc.dfc.dcc.dcc` (``n_jobs`` does not change the result).

    Returns
    -------
    ndarray, shape (R, P)
        SD over time (ddof = 1); NaN where a series is not fittable, the two residual
        series are (almost) perfectly correlated, or a fit did not converge.
    """
    n_rep, n_t, n_p, _ = x.shape
    m = n_rep * n_p
    cols = x.transpose(1, 0, 2, 3).reshape(n_t, 2 * m)  # column (r * P + p) * 2 + s
    ok = _usable_columns(cols).reshape(m, 2).all(axis=1)
    keep = np.repeat(ok, 2)
    out = np.full(m, np.nan)
    if not ok.any():
        return out.reshape(n_rep, n_p)
    g = fit_garch(cols[:, keep])
    z = g.std_resid
    zi, zj = z[:, 0::2], z[:, 1::2]
    r = np.sum(zi * zj, axis=0) / np.sqrt(np.sum(zi * zi, axis=0) * np.sum(zj * zj, axis=0))
    fine = np.isfinite(z).all(axis=0)
    good = ((np.abs(r) <= _MAX_ABS_R) & g.converged[0::2] & g.converged[1::2]
            & fine[0::2] & fine[1::2])
    rows = np.flatnonzero(good)
    if rows.size:
        pairs = [(2 * int(k), 2 * int(k) + 1) for k in rows]
        fit = dcc(cols[:, keep], pairs=pairs, garch=g, max_persistence=max_persistence,
                  n_jobs=n_jobs)
        sd = _sd(fit.R)
        placed = np.full(int(ok.sum()), np.nan)
        placed[rows] = np.where(fit.converged, sd, np.nan)
        out[ok] = placed
    return out.reshape(n_rep, n_p)


def _children(seed: int | np.random.SeedSequence | None,
              n: int) -> list[np.random.SeedSequence]:
    """The first ``n`` children of ``seed``, as ``SeedSequence.spawn`` of a fresh sequence
    gives them (a given sequence is not advanced: the same seed, the same streams)."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, k),
                                   pool_size=seq.pool_size) for k in range(n)]


def _innovations(seeds: list[np.random.SeedSequence], n_boot: int, n_t: int) -> np.ndarray:
    """(n_boot, T, P, 2) standard normals, pair p from its own stream ``seeds[p]``."""
    draws = [np.random.default_rng(s).standard_normal((n_boot, n_t, 2)) for s in seeds]
    return np.stack(draws, axis=2)


def _check_options(n_boot, level, block, n_jobs):
    for label, val in (("n_boot", n_boot), ("block", block), ("n_jobs", n_jobs)):
        if isinstance(val, bool) or int(val) != val or val < 1:
            raise ValueError(f"{label} must be a positive integer; got {val!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1); got {level}")


def bootstrap_dfc_sd(
    fit: DCCResult | PairModel,
    *,
    n_boot: int,
    seed: int | np.random.SeedSequence | None,
    level: float = 0.95,
    max_persistence: float = DCC_MAX_PERSISTENCE,
    block: int = 1000,
    n_jobs: int = 1,
) -> BootstrapResult:
    """Parametric-bootstrap percentile interval of the dFC SD of every pair of a fit.

    Parameters
    ----------
    fit : DCCResult or PairModel
        A pairwise :func:`~bids_dfc.dfc.dcc.dcc` result (its models are taken with
        :func:`pair_models`), or the models themselves.
    n_boot : int
        Replicates per pair (1000 gives stable 2.5 % and 97.5 % percentiles).
    seed : int, SeedSequence or None
        Seed of the simulation (None: fresh entropy, not reproducible).
    level : float
        Coverage of the percentile interval.
    max_persistence : float
        Bound of ``a + b`` of the refits (use the one of the original fit).
    block : int
        Simulated pairs fitted per batch: memory (about 0.25 MB each at T = 273) against
        speed (larger batches fit faster per pair); does not change the result.
    n_jobs : int
        Threads over batches; does not change the result.

    Returns
    -------
    BootstrapResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> res = bootstrap_dfc_sd(dcc(rng.standard_normal((100, 2))), n_boot=20, seed=1)
    >>> res.sd.shape, bool(res.ci_low[0] <= res.ci_high[0])
    ((20, 1), True)
    """
    _check_options(n_boot, level, block, n_jobs)
    model = fit if isinstance(fit, PairModel) else pair_models(fit)
    n_p = model.a.shape[0]
    seeds = _children(seed, n_p)
    e = _innovations(seeds, n_boot, model.n_t)  # (n_boot, T, P, 2)
    units = np.arange(n_p * n_boot)  # simulated pairs, pair-major: unit = p * n_boot + r
    sd = np.full(n_p * n_boot, np.nan)

    def work(lo: int) -> None:
        pp, rr = np.divmod(units[lo : lo + block], n_boot)
        x = simulate_pairs(model.take(pp), e[rr, :, pp][None].transpose(0, 2, 1, 3))
        sd[lo : lo + block] = refit_sd(x, max_persistence=max_persistence)[0]

    starts = range(0, units.size, block)
    if n_jobs > 1 and len(starts) > 1:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            list(pool.map(work, starts))
    else:
        for lo in starts:
            work(lo)
    sd = sd.reshape(n_p, n_boot).T
    return _interval(sd, n_boot, level)


def _interval(sd: np.ndarray, n_boot: int, level: float) -> BootstrapResult:
    """Percentile interval of the finite replicates of each column of ``sd``."""
    n_p = sd.shape[1]
    used = np.isfinite(sd).sum(axis=0)
    lo, hi = np.full(n_p, np.nan), np.full(n_p, np.nan)
    tail = (1.0 - level) / 2.0
    for p in np.flatnonzero(used >= _MIN_USED):
        col = sd[np.isfinite(sd[:, p]), p]
        lo[p], hi[p] = np.quantile(col, [tail, 1.0 - tail])
    return BootstrapResult(sd=sd, ci_low=lo, ci_high=hi, n_used=used.astype(int),
                           n_boot=int(n_boot), level=float(level))
