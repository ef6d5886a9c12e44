"""Simple mediation X -> M -> Y (Hayes PROCESS model 4) with a vectorised bootstrap.

Models (both with the same optional covariates C, as in PROCESS)::

    M = i1 + a X + C            (path a)
    Y = i2 + c' X + b M + C     (paths c' and b)
    Y = i3 + c X + C            (total effect c = c' + a b)

Paths get ordinary least-squares estimates, standard errors, two-sided t-test p-values and
95 % t-intervals. The indirect effect a b gets a nonparametric bootstrap (resampling subjects
with replacement) with two intervals: percentile, and bias-corrected (BC; Efron 1987, the
interval PROCESS offers and pingouin uses). All resamples are fitted at once with a batched
QR decomposition.

References: Hayes AF (2022) Introduction to Mediation, Moderation, and Conditional Process
Analysis, 3rd ed.; Efron B (1987) JASA 82:171-185.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ["MediationResult", "bootstrap_indices", "mediation_model4", "ols_fit"]


def ols_fit(design: ArrayLike, y: ArrayLike) -> dict[str, Any]:
    """OLS with intercept-containing ``design`` (n, k): coefficients, SE, t, p, 95 % CI.

    Returns
    -------
    dict
        ``coef``, ``se``, ``t``, ``p``, ``ci_low``, ``ci_high`` (arrays of length k), ``df``.
    """
    design = np.asarray(design, dtype=float)
    y = np.asarray(y, dtype=float)
    n, k = design.shape
    q, r = np.linalg.qr(design)
    coef = np.linalg.solve(r, q.T @ y)
    resid = y - design @ coef
    dof = n - k
    sigma2 = resid @ resid / dof
    r_inv = np.linalg.inv(r)
    se = np.sqrt(sigma2 * np.sum(r_inv**2, axis=1))
    t = coef / se
    p = 2 * stats.t.sf(np.abs(t), dof)
    crit = stats.t.ppf(0.975, dof)
    return {"coef": coef, "se": se, "t": t, "p": p, "ci_low": coef - crit * se,
            "ci_high": coef + crit * se, "df": dof}


def bootstrap_indices(n: int, n_boot: int, *, random_seed: int | None) -> np.ndarray:
    """Resample indices (n_boot, n) from ``numpy.random.default_rng(random_seed)``."""
    return np.random.default_rng(random_seed).integers(0, n, size=(n_boot, n))


def _batched_coef(design, y):
    """Least-squares coefficients of B stacked problems: design (B, n, k), y (B, n)."""
    q, r = np.linalg.qr(design)
    qty = np.einsum("bnk,bn->bk", q, y)
    diag = np.abs(np.diagonal(r, axis1=1, axis2=2))
    bad = diag.min(axis=1) <= 1e-10 * np.maximum(diag.max(axis=1), 1e-300)
    coef = np.empty(qty.shape)
    good = ~bad
    if good.any():
        coef[good] = np.linalg.solve(r[good], qty[good][..., None])[..., 0]
    if bad.any():  # rank-deficient resample (e.g. a constant covariate): minimum-norm solution
        coef[bad] = np.einsum("bkn,bn->bk", np.linalg.pinv(design[bad]), y[bad])
    return coef


@dataclass
class MediationResult:
    """Output of :func:`mediation_model4`.

    Attributes
    ----------
    paths : pandas.DataFrame
        One row per path (``a``, ``b``, ``c``, ``c_prime``, ``indirect``) with columns
        ``path, estimate, se, statistic, df, p, ci_low, ci_high, ci_bc_low, ci_bc_high,
        ci_method, n, n_boot``.
    boot : numpy.ndarray
        Bootstrap distribution of the indirect effect (n_boot,).
    """

    paths: pd.DataFrame
    boot: np.ndarray

    @property
    def indirect(self) -> dict[str, Any]:
        """The ``indirect`` row as a dict."""
        return cast("dict[str, Any]", self.paths.set_index("path").loc["indirect"].to_dict())


def _percentile_ci(boot, alpha):
    return np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])


def _bias_corrected_ci(boot, estimate, alpha):
    prop = np.mean(boot < estimate)
    if prop in (0.0, 1.0):
        return np.array([np.nan, np.nan])
    z0 = stats.norm.ppf(prop)
    lo = stats.norm.cdf(2 * z0 + stats.norm.ppf(alpha / 2))
    hi = stats.norm.cdf(2 * z0 + stats.norm.ppf(1 - alpha / 2))
    return np.percentile(boot, [100 * lo, 100 * hi])


def _path_row(name: str, fit: dict[str, Any], j: int, n: int) -> dict[str, Any]:
    """Row of the paths table for coefficient ``j`` of an :func:`ols_fit` result."""
    return {"path": name, "estimate": fit["coef"][j], "se": fit["se"][j],
            "statistic": fit["t"][j], "df": fit["df"], "p": fit["p"][j],
            "ci_low": fit["ci_low"][j], "ci_high": fit["ci_high"][j],
            "ci_bc_low": np.nan, "ci_bc_high": np.nan, "ci_method": "OLS t interval",
            "n": n, "n_boot": 0}


def mediation_model4(x: ArrayLike, m: ArrayLike, y: ArrayLike,
                     covariates: ArrayLike | None = None, *, n_boot: int,
                     random_seed: int | None, boot_indices: ArrayLike | None = None,
                     alpha: float = 0.05, batch: int = 2000) -> MediationResult:
    """Mediation X -> M -> Y with a bootstrap CI of the indirect effect (PROCESS model 4).

    Parameters
    ----------
    x, m, y : array-like, shape (n,)
        Predictor, mediator, outcome (complete cases only: remove NaN beforehand).
    covariates : array-like, shape (n, p), optional
        Numeric covariates (dummy-code categorical ones) entered in the M and Y models.
    n_boot : int
        Bootstrap resamples (ignored when ``boot_indices`` is given); the study's value is
        ``bids_dfc.config.GroupOptions.n_boot``.
    random_seed : int or None
        Seed of ``numpy.random.default_rng`` drawing the resamples (None: fresh entropy;
        ignored when ``boot_indices`` is given).
    boot_indices : array-like of int, shape (n_boot, n), optional
        Explicit resamples (used to compare with other software on identical resamples).
    alpha : float
        1 - confidence level.
    batch : int
        Resamples fitted per batched QR call (bounds memory).

    Returns
    -------
    MediationResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=40); m = 0.6 * x + rng.normal(size=40)
    >>> y = 0.5 * m + rng.normal(size=40)
    >>> res = mediation_model4(x, m, y, n_boot=500, random_seed=1)
    >>> list(res.paths["path"])
    ['a', 'b', 'c', 'c_prime', 'indirect']
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    y = np.asarray(y, dtype=float)
    n = x.size
    cov = np.empty((n, 0)) if covariates is None else np.asarray(covariates, float).reshape(n, -1)
    if np.isnan(np.column_stack([x, m, y, cov])).any():
        raise ValueError("mediation_model4: inputs contain NaN; pass complete cases only")
    ones = np.ones((n, 1))
    design_m = np.column_stack([ones, x, cov])
    design_y = np.column_stack([ones, x, m, cov])
    design_c = np.column_stack([ones, x, cov])
    fit_m, fit_y, fit_c = ols_fit(design_m, m), ols_fit(design_y, y), ols_fit(design_c, y)
    a, b = fit_m["coef"][1], fit_y["coef"][2]
    ab = a * b

    idx = (bootstrap_indices(n, n_boot, random_seed=random_seed) if boot_indices is None
           else np.asarray(boot_indices, dtype=int))
    boot = np.empty(idx.shape[0])
    for start in range(0, idx.shape[0], batch):
        sl = idx[start:start + batch]
        a_b = _batched_coef(design_m[sl], m[sl])[:, 1]
        b_b = _batched_coef(design_y[sl], y[sl])[:, 2]
        boot[start:start + batch] = a_b * b_b
    pct = _percentile_ci(boot, alpha)
    bc = _bias_corrected_ci(boot, ab, alpha)
    rows = [_path_row("a", fit_m, 1, n), _path_row("b", fit_y, 2, n),
            _path_row("c", fit_c, 1, n), _path_row("c_prime", fit_y, 1, n)]
    rows.append({"path": "indirect", "estimate": ab, "se": boot.std(ddof=1),
                 "statistic": np.nan, "df": np.nan, "p": np.nan,
                 "ci_low": pct[0], "ci_high": pct[1], "ci_bc_low": bc[0], "ci_bc_high": bc[1],
                 "ci_method": "bootstrap percentile (ci_low/ci_high), bias-corrected (ci_bc_*)",
                 "n": n, "n_boot": idx.shape[0]})
    return MediationResult(paths=pd.DataFrame(rows), boot=boot)
