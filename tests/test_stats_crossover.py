"""The crossover trial's diary AUC and mixed model, against independent implementations.

* ``diary_auc`` against ``scipy.integrate.trapezoid`` over the observed days (and by hand
  for LOCF);
* ``fit_crossover`` against R: lme4's ``lmer`` (REML) on the same design matrix gives the
  fixed effects, their covariance and the variance components; contrasts by hand from
  ``fixef``/``vcov`` (Wald z, normal CI), and ``emmeans`` pairs with asymptotic df and
  Sidak adjustment on the factor model. Agreement as the issue asks: estimates and CIs to
  1 % of the residual SD, P values to 0.01.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import trapezoid

from bids_dfc.stats.crossover import design_matrix, fit_crossover, gls_covariance, sidak
from bids_dfc.stats.diary import diary_auc, locf

RSCRIPT = shutil.which("Rscript")
R_MISSING = "R not installed (make sysdeps: r-base-core r-cran-lme4 r-cran-emmeans)"


def _r_has(*packages: str) -> bool:
    if RSCRIPT is None:
        return False
    code = "".join(f"suppressMessages(library({p}));" for p in packages)
    return subprocess.run([RSCRIPT, "-e", code], capture_output=True).returncode == 0


HAVE_R = _r_has("lme4", "emmeans")


@pytest.mark.parametrize("seed", range(20))
def test_observed_auc_is_the_trapezoid_over_observed_days(seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 10, 35)
    values[rng.random(35) < 0.2] = np.nan
    values[0], values[20] = rng.uniform(0, 10), rng.uniform(0, 10)
    days = np.arange(1, 22)
    window = values[:21]
    seen = ~np.isnan(window)
    assert diary_auc(values, 21) == pytest.approx(trapezoid(window[seen], days[seen]), rel=1e-12)
    filled = locf(window)
    assert diary_auc(values, 21, "locf") == pytest.approx(trapezoid(filled, days), rel=1e-12)


def test_auc_missing_ends():
    values = np.r_[np.nan, np.full(34, 5.0)]
    assert np.isnan(diary_auc(values, 35))  # day 1 missing: no observed AUC
    assert diary_auc(values, 35, "locf") == pytest.approx(5.0 * 34)  # day 1 takes day 2
    stopped = np.r_[np.full(10, 4.0), np.full(25, np.nan)]  # the diary stops on day 10
    assert np.isnan(diary_auc(stopped, 35)) and diary_auc(stopped, 7) == pytest.approx(24.0)
    assert diary_auc(stopped, 35, "locf") == pytest.approx(4.0 * 34)
    assert np.isnan(diary_auc(np.full(35, np.nan), 35, "locf"))


WILLIAMS = ["ABC", "ACB", "BAC", "BCA", "CAB", "CBA"]
NAMES = {"A": "ketamine", "B": "ketmag", "C": "placebo"}
EFFECT = {"ketamine": -20.0, "ketmag": -8.0, "placebo": 0.0}


def _trial(seed: int, n: int = 24, skew: bool = False) -> pd.DataFrame:
    """A 3-period crossover: Williams sequences, subject SD 40, residual SD 15, period and
    carry-over effects; two participants miss a period."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        sequence = WILLIAMS[i % 6]
        subject = rng.normal(0, 40)
        previous = None
        for period, letter in enumerate(sequence, start=1):
            treatment = NAMES[letter]
            mean = 190 + subject + EFFECT[treatment] + 6 * (period - 2)
            if previous == "ketamine":
                mean -= 5
            y = mean + rng.normal(0, 15)
            if skew:
                y = np.exp(np.log(190) + (y - 190) / 30)  # log-normal: skewed residuals
            rows.append({"participant_id": f"sub-{i + 1:02d}", "period": period,
                         "treatment": treatment, "auc": y})
            previous = treatment
    frame = pd.DataFrame(rows)
    frame.loc[(frame.participant_id == "sub-03") & (frame.period == 3), "auc"] = np.nan
    frame.loc[(frame.participant_id == "sub-10") & (frame.period == 2), "auc"] = np.nan
    return frame


def test_design_drops_aliased_columns_and_keeps_treatment():
    data = _trial(0)
    data["sequence"] = data.groupby("participant_id")["treatment"].transform("-".join)
    data["carryover"] = data.groupby("participant_id")["treatment"].shift(1).fillna("none")
    X, dropped = design_matrix(data, "placebo")
    assert np.linalg.matrix_rank(X.to_numpy()) == X.shape[1]
    assert {"treatment[ketamine]", "treatment[ketmag]"} <= set(X.columns)
    assert not [c for c in dropped if c.startswith("treatment[")]
    # two sequences (AB/BA style): carry-over is aliased with sequence x period
    two = data[data["sequence"].isin(["ketamine-ketmag-placebo", "placebo-ketmag-ketamine"])]
    _, dropped_two = design_matrix(two, "placebo")
    assert dropped_two, "a 2-sequence design cannot separate every column"


def test_sidak_matches_the_formula():
    assert sidak(0.01, 3) == pytest.approx(1 - 0.99**3)
    assert sidak(1.0, 3) == 1.0


_R_CODE = r"""
suppressMessages({library(lme4); library(emmeans); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(args[1])
X <- as.matrix(read.csv(args[2]))
m <- lmer(d$y ~ 0 + X + (1 | d$pid), REML = TRUE,
          control = lmerControl(check.conv.singular = "ignore"))
vc <- as.data.frame(VarCorr(m))
L <- as.matrix(read.csv(args[3]))
est <- as.vector(L %*% fixef(m))
se <- sqrt(diag(L %*% as.matrix(vcov(m)) %*% t(L)))
d$treatment <- relevel(factor(d$treatment), "placebo")
d$period <- factor(d$period); d$sequence <- factor(d$sequence)
d$carry <- factor(d$carry)
f <- lmer(y ~ treatment + period + sequence + carry + (1 | pid), data = d, REML = TRUE)
emm_options(lmer.df = "asymptotic")
pr <- as.data.frame(summary(pairs(emmeans(f, "treatment"), adjust = "sidak"),
                            infer = c(TRUE, TRUE), adjust = "sidak"))
pr_raw <- as.data.frame(summary(pairs(emmeans(f, "treatment"), adjust = "none"),
                                infer = c(TRUE, TRUE)))
cat(toJSON(list(fixef = unname(fixef(m)), se_fixef = unname(sqrt(diag(as.matrix(vcov(m))))),
                var_subject = vc$vcov[1], var_residual = vc$vcov[2],
                contrast_est = est, contrast_se = se,
                emm_contrast = as.character(pr$contrast), emm_est = pr$estimate,
                emm_se = pr$SE, emm_p_sidak = pr$p.value, emm_p = pr_raw$p.value,
                emm_low = pr_raw$asymp.LCL, emm_high = pr_raw$asymp.UCL,
                loglik_reml = as.numeric(logLik(m))), digits = NA, auto_unbox = TRUE))
"""


def _r_fit(tmp_path, data: pd.DataFrame, X: pd.DataFrame, L: pd.DataFrame) -> dict:
    script = tmp_path / "fit.R"
    script.write_text(_R_CODE)
    frame = pd.DataFrame({"y": data["y"], "pid": data["participant_id"],
                          "treatment": data["treatment"], "period": data["period"],
                          "sequence": data["sequence"], "carry": data["carryover"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    X.to_csv(tmp_path / "X.csv", index=False)
    L.to_csv(tmp_path / "L.csv", index=False)
    out = subprocess.run([RSCRIPT, str(script), str(tmp_path / "d.csv"), str(tmp_path / "X.csv"),
                          str(tmp_path / "L.csv")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.skipif(not HAVE_R, reason=R_MISSING)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mixed_model_matches_lme4_and_emmeans(tmp_path, seed):
    data = _trial(seed)
    fit = fit_crossover(data, "auc", "placebo", allow_log=False)
    # the same rows and design the fit used, for R
    used = data.dropna(subset=["auc"]).sort_values(["participant_id", "period"]).copy()
    full = data.sort_values(["participant_id", "period"])
    by = full.groupby("participant_id", sort=False)["treatment"]
    full = full.assign(sequence=by.transform("-".join),
                       carryover=by.shift(1).fillna("none"))
    used = full.loc[used.index].reset_index(drop=True).rename(columns={"auc": "y"})
    X, _ = design_matrix(used, "placebo")
    assert list(X.columns) == list(fit.params.index)
    L = pd.DataFrame(0.0, index=fit.contrasts["contrast"], columns=X.columns)
    for contrast in L.index:
        a, b = contrast.split(" - ")
        for level, sign in ((a, 1.0), (b, -1.0)):
            if level != "placebo":
                L.loc[contrast, f"treatment[{level}]"] += sign
    r = _r_fit(tmp_path, used, X, L)
    sd_e = np.sqrt(r["var_residual"])
    tol = 0.01 * sd_e  # the agreement: 1 % of the residual SD
    np.testing.assert_allclose(fit.params.to_numpy(), r["fixef"], atol=tol)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), r["se_fixef"], atol=tol)
    assert fit.var_residual == pytest.approx(r["var_residual"], rel=0.01)
    assert fit.var_subject == pytest.approx(r["var_subject"], rel=0.01)
    c = fit.contrasts
    np.testing.assert_allclose(c["estimate"], r["contrast_est"], atol=tol)
    np.testing.assert_allclose(c["se"], r["contrast_se"], atol=tol)
    # emmeans on the factor model: R orders its pairs and signs them its own way
    emm = {name.replace(" ", ""): k for k, name in enumerate(r["emm_contrast"])}
    for row in c.itertuples():
        a, b = row.contrast.split(" - ")
        k, sign = (emm[f"{a}-{b}"], 1) if f"{a}-{b}" in emm else (emm[f"{b}-{a}"], -1)
        assert sign * r["emm_est"][k] == pytest.approx(row.estimate, abs=tol)
        assert r["emm_se"][k] == pytest.approx(row.se, abs=tol)
        low, high = sorted([sign * r["emm_low"][k], sign * r["emm_high"][k]])
        assert (low, high) == pytest.approx((row.ci_low, row.ci_high), abs=tol)
        assert r["emm_p"][k] == pytest.approx(row.p, abs=0.01)
        assert r["emm_p_sidak"][k] == pytest.approx(row.p_sidak, abs=0.01)
    print(f"seed {seed}: max |fixef - lmer| = "
          f"{np.max(np.abs(fit.params.to_numpy() - r['fixef'])) / sd_e:.2e} residual SD")


def test_planted_effects_inside_the_ci_and_icc():
    fit = fit_crossover(_trial(11, n=60), "auc", "placebo", allow_log=False)
    row = fit.contrasts.set_index("contrast").loc["ketamine - placebo"]
    assert row.ci_low < EFFECT["ketamine"] < row.ci_high
    assert 0.75 < fit.icc < 0.95  # 40^2 / (40^2 + 15^2) = 0.877
    assert fit.omnibus["p"] < 0.05 and fit.omnibus["df"] == 2
    assert fit.transform == "none"


def test_skewed_outcome_is_refitted_on_the_log_scale():
    fit = fit_crossover(_trial(5, n=60, skew=True), "auc", "placebo")
    assert fit.transform == "log" and "log(y)" in fit.notes[0]


_R_GLMM = r"""
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(args[1])
X <- as.matrix(read.csv(args[2]))
m <- glmer(d$y ~ 0 + X + (1 | d$pid), family = binomial, nAGQ = 7)
cat(toJSON(list(fixef = unname(fixef(m)), se = unname(sqrt(diag(as.matrix(vcov(m))))),
                sigma = as.data.frame(VarCorr(m))$sdcor[1],
                loglik = as.numeric(logLik(m))), digits = NA, auto_unbox = TRUE))
"""


@pytest.mark.skipif(not HAVE_R, reason=R_MISSING)
@pytest.mark.parametrize("seed", [4, 5])
def test_logistic_glmm_matches_glmer_nagq7(tmp_path, seed):
    """AGHQ(7) against lme4's glmer(nAGQ = 7) on the same design: odds ratios to 2 %
    (the issue's agreement), their standard errors, the random-intercept SD and the
    log-likelihood."""
    from bids_dfc.stats.glmm import fit_logistic_glmm

    rng = np.random.default_rng(seed)
    n, periods = 40, 3
    pid = np.repeat(np.arange(n), periods)
    period = np.tile(np.arange(1, periods + 1), n)
    treatment = np.concatenate([rng.permutation(3) for _ in range(n)])
    X = np.column_stack([np.ones(n * periods), treatment == 1, treatment == 2,
                         period == 2, period == 3]).astype(float)
    eta = X @ np.array([-1.0, 1.2, 0.6, 0.2, -0.3]) + rng.normal(0, 1.0, n)[pid]
    y = (rng.random(n * periods) < 1 / (1 + np.exp(-eta))).astype(float)
    fit = fit_logistic_glmm(X, y, pid)
    assert fit.converged
    pd.DataFrame({"y": y, "pid": pid}).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame(X, columns=["i", "t1", "t2", "p2", "p3"]).to_csv(tmp_path / "X.csv",
                                                                 index=False)
    (tmp_path / "glmm.R").write_text(_R_GLMM)
    out = subprocess.run([RSCRIPT, str(tmp_path / "glmm.R"), str(tmp_path / "d.csv"),
                          str(tmp_path / "X.csv")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    np.testing.assert_allclose(np.exp(fit.params), np.exp(r["fixef"]), rtol=0.02)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), r["se"], rtol=0.02)
    assert fit.sigma == pytest.approx(r["sigma"], rel=0.02)
    assert fit.loglik == pytest.approx(r["loglik"], abs=0.01)
    print(f"seed {seed}: max OR ratio - 1 = "
          f"{np.max(np.abs(np.exp(fit.params - np.array(r['fixef'])) - 1)):.1e}, "
          f"loglik {fit.loglik:.4f} vs glmer {r['loglik']:.4f}")


def test_a_boundary_variance_is_reported_not_silent():
    """No subject effect at all, and less between-participant spread than the residual
    noise implies: REML's subject variance is 0 (lme4 calls such a fit singular); the
    fit says so instead of returning a quiet zero (statsmodels issue 10239)."""
    data = _trial(7)
    means = data.groupby("participant_id")["auc"].transform("mean")
    data["auc"] = data["auc"] - means + data["auc"].mean()  # every participant's mean equal
    fit = fit_crossover(data, "auc", "placebo", allow_log=False)
    assert fit.var_subject < 1e-6 * fit.var_residual
    assert any("boundary" in note for note in fit.notes), fit.notes
    assert fit.icc < 1e-6


def test_gls_covariance_is_the_dense_formula():
    """The per-participant formula of (X' V^-1 X)^-1 against V built and inverted densely
    (numpy), unbalanced groups (a participant with one period, one with four)."""
    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(7), [3, 3, 1, 4, 2, 3, 3])
    X = np.column_stack([np.ones(groups.size), rng.normal(size=(groups.size, 3))])
    var_s, var_e = 2.5, 0.7
    V = var_e * np.eye(groups.size) + var_s * (groups[:, None] == groups[None, :])
    dense = np.linalg.inv(X.T @ np.linalg.solve(V, X))
    np.testing.assert_allclose(gls_covariance(X, groups, var_s, var_e), dense, rtol=1e-10)
