"""Logistic mixed model with a random intercept, fitted by adaptive Gauss-Hermite
quadrature (nipype-free; docs/trial.md).

statsmodels has no frequentist GLMM (its BinomialBayesMixedGLM is variational Bayes), so the
marginal likelihood is integrated here as R's ``glmer(..., nAGQ = 7)`` and Stata's
``melogit, intpoints(7)`` do: per participant i, with ``h_i(b) = sum_j log p(y_ij | x_ij beta
+ b) + log N(b; 0, sigma^2)``, the mode ``b_i`` and curvature ``s_i = (-h_i''(b_i))^(-1/2)``
centre and scale the Gauss-Hermite rule::

    L_i ~= sqrt(2) s_i sum_k w_k exp(x_k^2) exp(h_i(b_i + sqrt(2) s_i x_k))

The negative log-likelihood is minimised over (beta, log sigma) with BFGS (polished by
Nelder-Mead when BFGS stops early; convergence is judged by the gradient); standard errors
come from the numerical Hessian at the optimum (as glmer's ``vcov`` for nAGQ > 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

__all__ = ["GLMMFit", "fit_logistic_glmm"]

#: quadrature points, as glmer's nAGQ = 7 and melogit's intpoints(7)
N_POINTS = 7


@dataclass
class GLMMFit:
    """Fixed effects, their covariance, the random-intercept SD and the log-likelihood."""

    params: np.ndarray
    cov: np.ndarray
    sigma: float
    loglik: float
    converged: bool


def _modes(eta: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int,
           sigma: float, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Conditional modes b_i of h_i and their curvature scale s_i (Newton, vectorised)."""
    b = np.zeros(n_groups)
    for _ in range(iterations):
        mu = special.expit(eta + b[group])
        grad = np.bincount(group, y - mu, n_groups) - b / sigma**2
        hess = -np.bincount(group, mu * (1 - mu), n_groups) - 1.0 / sigma**2
        step = grad / hess
        b -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    mu = special.expit(eta + b[group])
    curvature = np.bincount(group, mu * (1 - mu), n_groups) + 1.0 / sigma**2
    return b, 1.0 / np.sqrt(curvature)


def _negloglik(theta: np.ndarray, X: np.ndarray, y: np.ndarray, group: np.ndarray,
               n_groups: int, nodes: np.ndarray, weights: np.ndarray) -> float:
    beta, sigma = theta[:-1], float(np.exp(theta[-1]))
    eta = X @ beta
    b, s = _modes(eta, y, group, n_groups, sigma)
    total = 0.0
    terms = np.empty((nodes.size, n_groups))
    for k, node in enumerate(nodes):
        point = b + np.sqrt(2.0) * s * node  # (n_groups,)
        lin = eta + point[group]
        # log p(y | lin) = y lin - log(1 + e^lin), summed per participant
        loglik = np.bincount(group, y * lin - np.logaddexp(0.0, lin), n_groups)
        prior = -0.5 * (point / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
        terms[k] = np.log(weights[k]) + node**2 + loglik + prior
    total = np.sum(np.log(np.sqrt(2.0) * s) + special.logsumexp(terms, axis=0))
    return -float(total)


def fit_logistic_glmm(X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> GLMMFit:
    """Fit ``logit P(y = 1) = X beta + b_participant``, b ~ N(0, sigma^2), by AGHQ(7).

    ``X``: fixed-effects design (an intercept column included), ``y``: 0/1,
    ``groups``: the participant of each row.
    """
    from statsmodels.tools.numdiff import approx_hess3

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    _, group = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group.max()) + 1
    nodes, weights = np.polynomial.hermite.hermgauss(N_POINTS)
    args = (X, y, group, n_groups, nodes, weights)
    # start: the fixed-effects logistic fit, sigma 1
    start_beta = optimize.minimize(
        lambda bt: float(np.sum(np.logaddexp(0.0, X @ bt) - y * (X @ bt))),
        np.zeros(X.shape[1]), method="BFGS").x
    theta0 = np.r_[start_beta, 0.0]
    res = optimize.minimize(_negloglik, theta0, args=args, method="BFGS",
                            options={"gtol": 1e-7, "maxiter": 1000})
    if not res.success:  # often "precision loss" at the optimum: polish, then judge by
        # the gradient itself rather than by BFGS's line search
        res = optimize.minimize(_negloglik, res.x, args=args, method="Nelder-Mead",
                                options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000})
    gradient = optimize.approx_fprime(res.x, _negloglik, 1e-6, *args)
    converged = bool(np.max(np.abs(gradient)) < 1e-3)
    hess = approx_hess3(res.x, _negloglik, args=args)
    cov = np.linalg.inv(hess)[:-1, :-1]
    return GLMMFit(params=res.x[:-1], cov=cov, sigma=float(np.exp(res.x[-1])),
                   loglik=-float(res.fun), converged=converged)
