"""Leave-one-out logistic prediction of a binary outcome (responder status) with ROC AUC.

Each left-out subject is scored by a logistic regression fitted on the other subjects, with
features standardised on the training subjects only, so the area under the ROC curve (AUC)
estimates how well the markers would classify a new patient. The fit is an L2-penalised
(ridge) logistic regression solved by Newton-Raphson (IRLS) with an unpenalised intercept;
the default penalty ``l2 = 1`` on standardised features equals scikit-learn's default
``C = 1`` and keeps the fit finite when the classes are separable in a training fold.
The AUC CI is a stratified percentile bootstrap over subjects of the held-out scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = ["auc_bootstrap_ci", "fit_logistic", "loo_logistic", "roc_auc", "roc_curve",
           "evaluate_feature_sets"]

#: ROC curve: (false-positive rates, true-positive rates)
Curve = tuple[np.ndarray, np.ndarray]


def fit_logistic(features: ArrayLike, y: ArrayLike, *, l2: float = 1.0, max_iter: int = 100,
                 tol: float = 1e-10) -> np.ndarray:
    """Logistic regression by Newton-Raphson; intercept first, unpenalised.

    Parameters
    ----------
    features : array-like, shape (n, p)
    y : array-like of 0/1, shape (n,)
    l2 : float
        Ridge penalty ``l2 / 2 * ||beta||^2`` on the slopes (0: maximum likelihood).

    Returns
    -------
    numpy.ndarray, shape (p + 1,)
        ``[intercept, slopes...]``.
    """
    y = np.asarray(y, dtype=float)
    xmat = np.column_stack([np.ones(len(y)), np.asarray(features, dtype=float)])
    pen = np.full(xmat.shape[1], float(l2))
    pen[0] = 0.0
    beta = np.zeros(xmat.shape[1])
    for _ in range(max_iter):
        eta = np.clip(xmat @ beta, -35, 35)
        prob = 1.0 / (1.0 + np.exp(-eta))
        grad = xmat.T @ (y - prob) - pen * beta
        hess = (xmat * (prob * (1 - prob))[:, None]).T @ xmat + np.diag(pen)
        step = np.linalg.solve(hess + 1e-12 * np.eye(len(beta)), grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    return beta


def loo_logistic(features: ArrayLike, y: ArrayLike, *, l2: float = 1.0) -> np.ndarray:
    """Held-out probability of each subject from a model fitted on all the others."""
    y = np.asarray(y, dtype=float)
    features = np.asarray(features, dtype=float).reshape(len(y), -1)
    n = len(y)
    prob = np.empty(n)
    for i in range(n):
        train = np.arange(n) != i
        mu = features[train].mean(axis=0)
        sd = features[train].std(axis=0, ddof=1)
        sd[sd == 0] = 1.0
        beta = fit_logistic((features[train] - mu) / sd, y[train], l2=l2)
        eta = beta[0] + ((features[i] - mu) / sd) @ beta[1:]
        prob[i] = 1.0 / (1.0 + np.exp(-eta))
    return prob


def _pair_matrix(y, score):
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=float)
    pos, neg = score[y], score[~y]
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties 1/2.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    return float(_pair_matrix(y, score).mean())


def roc_curve(y: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve points (false-positive rate, true-positive rate), from (0, 0) to (1, 1)."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=float)
    thresholds = np.unique(score)[::-1]
    tpr = [0.0] + [float(np.mean(score[y] >= t)) for t in thresholds]
    fpr = [0.0] + [float(np.mean(score[~y] >= t)) for t in thresholds]
    return np.array(fpr), np.array(tpr)


def auc_bootstrap_ci(y: ArrayLike, score: ArrayLike, *, n_boot: int, random_seed: int | None,
                     alpha: float = 0.05) -> np.ndarray:
    """Stratified percentile bootstrap CI of the AUC (positives and negatives resampled apart).

    Every resample's AUC is ``c_pos' M c_neg / (n_pos n_neg)`` where ``M`` is the pairwise
    comparison matrix and ``c`` the multinomial resample counts, so no loop is needed.
    """
    mat = _pair_matrix(y, score)
    n_pos, n_neg = mat.shape
    rng = np.random.default_rng(random_seed)
    c_pos = rng.multinomial(n_pos, np.full(n_pos, 1 / n_pos), size=n_boot)
    c_neg = rng.multinomial(n_neg, np.full(n_neg, 1 / n_neg), size=n_boot)
    boot = np.einsum("bi,ij,bj->b", c_pos, mat, c_neg) / (n_pos * n_neg)
    return np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])


def evaluate_feature_sets(frame: pd.DataFrame, outcome: str,
                          feature_sets: Mapping[str, Sequence[str]], *,
                          id_column: str = "participant_id", n_boot: int,
                          random_seed: int | None, l2: float = 1.0,
                          ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Curve]]:
    """LOO logistic prediction of ``outcome`` (0/1) from each named set of feature columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per subject.
    outcome : str
        0/1 column (1 = responder).
    feature_sets : dict
        Model name -> list of feature columns.
    n_boot : int
        Bootstrap resamples of the AUC CI (the study's: ``GroupOptions.n_boot``).
    random_seed : int or None
        Seed of the AUC bootstraps (None: fresh entropy).

    Returns
    -------
    summary : pandas.DataFrame
        One row per model: ``model, features, n, n_positive, auc, auc_ci_low, auc_ci_high,
        accuracy, sensitivity, specificity, l2`` (classification at probability 0.5).
    scores : pandas.DataFrame
        ``participant_id, model, observed, probability`` (held-out probabilities).
    curves : dict
        Model name -> (fpr, tpr) arrays.
    """
    rows, score_rows, curves = [], [], {}
    for name, cols in feature_sets.items():
        data = frame[[id_column, outcome, *cols]].dropna()
        y = data[outcome].to_numpy(dtype=float)
        prob = loo_logistic(data[cols].to_numpy(dtype=float), y, l2=l2)
        auc = roc_auc(y, prob)
        lo, hi = auc_bootstrap_ci(y, prob, n_boot=n_boot, random_seed=random_seed)
        pred = prob >= 0.5
        rows.append({
            "model": name, "features": ", ".join(cols), "n": len(y),
            "n_positive": int(y.sum()), "auc": auc, "auc_ci_low": lo, "auc_ci_high": hi,
            "accuracy": float(np.mean(pred == y)),
            "sensitivity": float(np.mean(pred[y == 1])),
            "specificity": float(np.mean(~pred[y == 0])), "l2": l2,
        })
        score_rows.append(pd.DataFrame({id_column: data[id_column].to_numpy(), "model": name,
                                        "observed": y.astype(int), "probability": prob}))
        curves[name] = roc_curve(y, prob)
    scores = pd.concat(score_rows, ignore_index=True) if score_rows else pd.DataFrame()
    return pd.DataFrame(rows), scores, curves
