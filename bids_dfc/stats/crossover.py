"""Random-effects models of a crossover trial (nipype-free; docs/trial.md).

One continuous outcome per participant and period (a diary AUC, a questionnaire score) is
modelled by a linear mixed model fitted by REML (statsmodels MixedLM): fixed effects
treatment + period + sequence + first-order carry-over (the previous period's treatment;
none in period 1), a random intercept per participant. Columns the design cannot separate
(aliased) are dropped in that order of priority, treatment never, and named in the result.

From the fit: every pairwise treatment contrast with its Wald z test and normal 95 % CI
(asymptotic, as Stata's ``mixed`` and emmeans with asymptotic df report them), the Sidak
P over the k contrasts, the effect size estimate / sqrt(var_subject + var_residual) (its
CI scaled the same way), the omnibus Wald chi-square of the treatment terms, the
sequence x treatment interaction (the same model plus that interaction), the Shapiro-Wilk
test of the residuals and the ICC. When the residuals are not normal (Shapiro-Wilk
P < .05) the outcome is refitted on the log scale (log(y + 1) when a value is 0).

statsmodels can return a zero random-intercept variance without warning when its optimiser
stops on the boundary (statsmodels issue 10239): the fit is checked (convergence, a
positive-definite Hessian of the fixed effects, the variance) and refitted from other starts
and optimisers; a variance still on the boundary is reported in ``notes``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["CrossoverFit", "design_matrix", "fit_crossover", "gls_covariance", "sidak",
           "treatment_pairs"]

#: Shapiro-Wilk P below which the outcome is refitted on the log scale
NORMALITY_ALPHA = 0.05
#: a participant variance below this share of the residual one is on its boundary (0):
#: statsmodels' optimiser stops near, not at, 0 (lme4 then reports a singular fit)
BOUNDARY = 1e-6


def sidak(p: float, k: int) -> float:
    """Sidak-adjusted P for one of ``k`` tests: 1 - (1 - p)^k.

    >>> round(sidak(0.02, 3), 6)
    0.058808
    """
    return float(1.0 - (1.0 - p) ** k) if np.isfinite(p) else float("nan")


def treatment_pairs(levels: Iterable[str], reference: str) -> list[tuple[str, str]]:
    """The pairwise contrasts ``(A, B)`` read "A - B": the other treatments in sorted order,
    the reference always second.

    >>> treatment_pairs({"placebo", "ketamine", "ketamine_mg"}, "placebo")
    [('ketamine', 'ketamine_mg'), ('ketamine', 'placebo'), ('ketamine_mg', 'placebo')]
    """
    ordered = sorted(set(levels) - {reference}) + [reference]
    return list(itertools.combinations(ordered, 2))


def _dummies(values: pd.Series, levels: list, prefix: str) -> pd.DataFrame:
    return pd.DataFrame({f"{prefix}[{level}]": (values == level).astype(float)
                         for level in levels}, index=values.index)


def design_matrix(data: pd.DataFrame, reference: str, *,
                  interaction: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Fixed-effects design of the crossover model and the aliased columns dropped.

    ``data`` has ``participant_id``, ``period``, ``treatment``, ``sequence`` and
    ``carryover`` (``"none"`` in a participant's first period). Treatment-coded: the
    reference treatment, the first period, the first sequence (sorted) and no carry-over
    are the baselines. Columns are kept in the order intercept, treatment, period,
    sequence, carry-over (then sequence x treatment with ``interaction``), each only when
    it adds to the rank of those before it.
    """
    treatments = sorted(set(data["treatment"]) - {reference})
    periods = sorted(set(data["period"]))[1:]
    sequences = sorted(set(data["sequence"]))[1:]
    carried = sorted(set(data["carryover"]) - {"none"})
    blocks = [pd.DataFrame({"Intercept": 1.0}, index=data.index),
              _dummies(data["treatment"], treatments, "treatment"),
              _dummies(data["period"], periods, "period"),
              _dummies(data["sequence"], sequences, "sequence"),
              _dummies(data["carryover"], carried, "carryover")]
    if interaction:
        treat = blocks[1]
        seq = blocks[3]
        blocks.append(pd.DataFrame({f"{s}:{t}": seq[s] * treat[t] for s in seq for t in treat},
                                   index=data.index))
    full = pd.concat(blocks, axis=1)
    kept: list[str] = []
    dropped: list[str] = []
    # a column adds to the rank when it is not in the span of the kept ones: its residual
    # after projecting on an orthonormal basis of them (Gram-Schmidt, twice for accuracy)
    basis = np.zeros((len(full), 0))
    values = full.to_numpy(dtype=float)
    for k, column in enumerate(full.columns):
        residual = values[:, k].copy()
        for _ in range(2):
            residual -= basis @ (basis.T @ residual)
        norm = np.linalg.norm(residual)
        if norm > 1e-9 * max(float(np.linalg.norm(values[:, k])), 1.0):
            kept.append(column)
            basis = np.column_stack([basis, residual / norm])
        else:
            if column.startswith("treatment["):
                raise ValueError(f"{column} is aliased with the intercept: every participant "
                                 "has the same treatment")
            dropped.append(column)
    return full[kept], dropped


@dataclass
class CrossoverFit:
    """What :func:`fit_crossover` reports for one outcome."""

    transform: str
    params: pd.Series
    cov: pd.DataFrame
    var_subject: float
    var_residual: float
    contrasts: pd.DataFrame
    omnibus: dict
    shapiro_p: float
    dropped: list[str]
    n_obs: int
    n_participants: int
    residuals: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def icc(self) -> float:
        return self.var_subject / (self.var_subject + self.var_residual)


def _add_design_columns(data: pd.DataFrame) -> pd.DataFrame:
    data = data.sort_values(["participant_id", "period"]).copy()
    by = data.groupby("participant_id", sort=False)["treatment"]
    data["sequence"] = by.transform(lambda t: "-".join(map(str, t)))
    data["carryover"] = by.shift(1).fillna("none").astype(str)
    return data


def _mixedlm(y: np.ndarray, X: pd.DataFrame, groups: np.ndarray) -> tuple[Any, list[str]]:
    """REML fit, checked: converged, positive-definite fixed-effects covariance, and the
    subject variance not silently on its boundary; other starts and optimisers otherwise.
    Returns (result, notes)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    model = MixedLM(y, X, groups=groups)
    best, notes = None, []
    starts = [None, 0.5, 2.0]  # None: statsmodels' own start; else var_subject/var_resid
    for start, method in itertools.product(starts, ("lbfgs", "bfgs", "nm")):
        kwargs = {}
        if start is not None:
            kwargs["start_params"] = np.r_[np.linalg.lstsq(X, y, rcond=None)[0],
                                           np.sqrt(start)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = model.fit(reml=True, method=method, **kwargs)
            except (np.linalg.LinAlgError, ValueError):
                continue
        cov = np.asarray(res.cov_params())[: X.shape[1], : X.shape[1]]
        pd_ok = np.all(np.isfinite(cov)) and np.all(np.linalg.eigvalsh(cov) > 0)
        if not (res.converged and pd_ok):
            continue
        if best is None or res.llf > best.llf + 1e-8:
            best = res
        if float(np.asarray(best.cov_re)[0, 0]) > BOUNDARY * best.scale:
            break  # an interior optimum: no need to try further starts
    if best is None:
        raise RuntimeError("the mixed model did not converge from any start")
    if float(np.asarray(best.cov_re)[0, 0]) <= BOUNDARY * best.scale:
        notes.append("the participant variance is on its boundary (0) from every start: "
                     "the model reduces to fixed effects")
    return best, notes


def gls_covariance(X: np.ndarray, groups: np.ndarray, var_subject: float,
                   var_residual: float) -> np.ndarray:
    """Covariance of the fixed effects, (X' V^-1 X)^-1, at the REML variances: what lme4's
    ``vcov``, Stata's ``mixed`` and emmeans report. (statsmodels' ``cov_params`` inverts
    the Hessian of every parameter together, which differs by about 1 % in small trials.)

    With a random intercept, ``V_i^-1 = (I - w_i 1 1') / var_residual`` where
    ``w_i = var_subject / (var_residual + n_i var_subject)``.
    """
    _, group = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group.max()) + 1
    sizes = np.bincount(group, minlength=n_groups).astype(float)
    weights = var_subject / (var_residual + sizes * var_subject)
    sums = np.zeros((n_groups, X.shape[1]))
    np.add.at(sums, group, X)  # X_i' 1 per participant
    information = (X.T @ X - (sums * weights[:, None]).T @ sums) / var_residual
    return np.linalg.inv(information)


def _wald(params: np.ndarray, cov: np.ndarray) -> tuple[float, int, float]:
    stat = float(params @ np.linalg.solve(cov, params))
    return stat, params.size, float(stats.chi2.sf(stat, params.size))


def _fit_once(data: pd.DataFrame, y: np.ndarray, reference: str) -> CrossoverFit:
    X, dropped = design_matrix(data, reference)
    groups = data["participant_id"].to_numpy()
    res, notes = _mixedlm(y, X, groups)
    names = list(X.columns)
    params = pd.Series(np.asarray(res.fe_params), index=names)
    var_s, var_e = float(np.asarray(res.cov_re)[0, 0]), float(res.scale)
    cov = pd.DataFrame(gls_covariance(X.to_numpy(), groups, var_s, var_e), index=names,
                       columns=names)
    treat_cols = [c for c in names if c.startswith("treatment[")]
    stat, df, p = _wald(params[treat_cols].to_numpy(), cov.loc[treat_cols, treat_cols].to_numpy())
    pairs = treatment_pairs(set(data["treatment"]), reference)
    sd_total = np.sqrt(var_s + var_e)
    rows = []
    for a, b in pairs:
        L = np.zeros(len(names))
        for level, sign in ((a, 1.0), (b, -1.0)):
            if level != reference:
                L[names.index(f"treatment[{level}]")] += sign
        est = float(L @ params.to_numpy())
        se = float(np.sqrt(L @ cov.to_numpy() @ L))
        z = est / se
        pval = float(2 * stats.norm.sf(abs(z)))
        low, high = est - 1.959963984540054 * se, est + 1.959963984540054 * se
        rows.append({"contrast": f"{a} - {b}", "estimate": est, "se": se, "z": z, "p": pval,
                     "ci_low": low, "ci_high": high, "p_sidak": sidak(pval, len(pairs)),
                     "effect_size": est / sd_total, "es_ci_low": low / sd_total,
                     "es_ci_high": high / sd_total})
    # sequence x treatment: the same model with the interaction, Wald test of its columns
    Xi, _ = design_matrix(data, reference, interaction=True)
    inter = [c for c in Xi.columns if ":" in c]
    p_inter = float("nan")
    if inter:
        res_i, _ = _mixedlm(y, Xi, groups)
        idx = [list(Xi.columns).index(c) for c in inter]
        cov_i = gls_covariance(Xi.to_numpy(), groups, float(np.asarray(res_i.cov_re)[0, 0]),
                               float(res_i.scale))[np.ix_(idx, idx)]
        p_inter = _wald(np.asarray(res_i.fe_params)[idx], cov_i)[2]
    resid = np.asarray(res.resid)
    shapiro_p = float(stats.shapiro(resid).pvalue) if resid.size >= 3 else float("nan")
    return CrossoverFit(
        transform="none", params=params, cov=cov, var_subject=var_s, var_residual=var_e,
        contrasts=pd.DataFrame(rows),
        omnibus={"statistic": stat, "df": df, "p": p, "p_seq_x_treat": p_inter},
        shapiro_p=shapiro_p, dropped=dropped, n_obs=len(y),
        n_participants=len(set(groups)), residuals=resid, notes=notes)


def fit_crossover(data: pd.DataFrame, outcome: str, reference: str,
                  *, allow_log: bool = True) -> CrossoverFit:
    """Fit the crossover model of ``outcome`` (a column of ``data``: one row per
    participant and period with ``participant_id``, ``period``, ``treatment``); rows with
    a missing outcome are left out (a participant missing a period stays in the model).

    Refitted on the log scale when the residuals are not normal (``allow_log``).
    """
    data = _add_design_columns(data[["participant_id", "period", "treatment", outcome]])
    data = data[np.isfinite(data[outcome].astype(float))].reset_index(drop=True)
    if reference not in set(data["treatment"]):
        raise ValueError(f"reference treatment {reference!r} has no observation of {outcome}")
    y = data[outcome].to_numpy(dtype=float)
    fit = _fit_once(data, y, reference)
    if allow_log and np.isfinite(fit.shapiro_p) and fit.shapiro_p < NORMALITY_ALPHA:
        if np.all(y > 0):
            logged, transform = np.log(y), "log"
        elif np.all(y >= 0):
            logged, transform = np.log(y + 1.0), "log"  # log(y + 1): said in the note
        else:
            fit.notes.append("residuals not normal, but negative values rule out a log "
                             "transform: kept on the original scale")
            return fit
        note = (f"residuals not normal (Shapiro-Wilk P = {fit.shapiro_p:.3g}): refitted on "
                f"the log scale, {'log(y)' if np.all(y > 0) else 'log(y + 1) (zeros occur)'}")
        fit = _fit_once(data, logged, reference)
        fit.transform = transform
        fit.notes.insert(0, note)
    return fit
