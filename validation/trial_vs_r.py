"""Every model of a crossover trial, refitted in R: how closely bids_dfc agrees with lme4.

For each linear mixed model of the trial analysis (every diary outcome x horizon x analysis
and every questionnaire score) the same values (on the same scale: the log when bids_dfc
used it) are refitted with lme4's ``lmer`` (REML) on factors treatment + period + sequence +
carry-over with a random participant intercept (R drops the aliased columns itself); the
pairwise contrasts come from ``emmeans`` with asymptotic df (unadjusted and Sidak), the
omnibus Wald chi-square and the ICC from ``fixef``/``vcov``/``VarCorr``. Each binary
outcome is refitted with ``glmer(..., family = binomial, nAGQ = 7)`` on treatment + period.

Reported: the largest difference over all models of estimates and CI bounds (in units of
the model's residual SD), of P values (raw and Sidak, omnibus), of the ICC, and the largest
relative difference of the odds ratios and their CIs. The issue's tolerances: 1 % of the
residual SD, 0.01 for P values, 2 % for odds ratios.

The trial is ``make demo``'s (24 participants), or a simulated one of ``--participants``
participants (seed ``--seed``), or the one of ``--bids DIR``.

Needs R with lme4, emmeans and jsonlite (``make sysdeps``). Writes
``validation/results/trial_vs_r.txt``.

Usage: ``.venv/bin/python validation/trial_vs_r.py [--participants N --seed S | --bids DIR]
[--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

R_LMER = r"""
suppressMessages({library(lme4); library(emmeans); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
ref <- args[2]
d$treatment <- relevel(factor(d$treatment), ref = ref)
d$period <- factor(d$period)
d$sequence <- factor(d$sequence)
d$carry <- relevel(factor(d$carry), ref = "none")
f <- lmer(y ~ treatment + period + sequence + carry + (1 | pid), data = d, REML = TRUE,
          control = lmerControl(check.conv.singular = "ignore"))
emm_options(lmer.df = "asymptotic")
raw <- as.data.frame(summary(pairs(emmeans(f, "treatment"), adjust = "none"),
                             infer = c(TRUE, TRUE)))
sid <- as.data.frame(summary(pairs(emmeans(f, "treatment"), adjust = "sidak"),
                             infer = c(TRUE, TRUE)))
b <- fixef(f); V <- as.matrix(vcov(f))
idx <- grep("^treatment", names(b))
chi <- as.numeric(t(b[idx]) %*% solve(V[idx, idx], b[idx]))
vc <- as.data.frame(VarCorr(f))
out <- list(contrast = as.character(raw$contrast), estimate = raw$estimate, se = raw$SE,
            ci_low = raw$asymp.LCL, ci_high = raw$asymp.UCL, p = raw$p.value,
            p_sidak = sid$p.value, chi = chi, df = length(idx),
            var_subject = vc$vcov[vc$grp == "pid"], var_residual = vc$vcov[vc$grp == "Residual"])
cat(toJSON(out, digits = NA, auto_unbox = TRUE))
"""

R_GLMER = r"""
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
d$treatment <- relevel(factor(d$treatment), ref = args[2])
d$period <- factor(d$period)
f <- glmer(y ~ treatment + period + (1 | pid), data = d, family = binomial, nAGQ = 7)
b <- fixef(f); V <- as.matrix(vcov(f))
cat(toJSON(list(names = names(b), beta = unname(b), vcov = unname(V)), digits = NA))
"""


def _rscript(script: str, csv: Path, reference: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as handle:
        handle.write(script)
    proc = subprocess.run(["Rscript", handle.name, str(csv), reference], capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(proc.stdout)


def _rows(table: pd.DataFrame, outcome, horizon, analysis) -> pd.DataFrame:
    """The rows of one model (a questionnaire score has no horizon)."""
    rows = table[table["outcome"] == outcome]
    if pd.isna(horizon):
        return rows[rows["horizon"].isna()]
    return rows[(rows["horizon"] == horizon) & (rows["analysis"] == analysis)]


def _flip(contrast: str) -> tuple[str, str]:
    a, b = contrast.split(" - ")
    return a.strip(), b.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=0,
                        help="simulate a trial of this many participants instead of make "
                        "demo's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bids", type=Path)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "validation" / "results" / "trial_vs_r.txt")
    args = parser.parse_args(argv)
    from bids_dfc.config import GroupOptions
    from bids_dfc.demo.bids_io import write_trial
    from bids_dfc.demo.dataset import write_cohort_trial
    from bids_dfc.demo.phenotype import simulate_cohort
    from bids_dfc.demo.trial import simulate_trial
    from bids_dfc.group.trial_inputs import read_trial
    from bids_dfc.stats.trial import run_trial

    options = GroupOptions()
    reference = options.trial_reference
    tmp = Path(tempfile.mkdtemp())
    bids = args.bids
    source = f"the dataset {bids}"
    if bids is None and args.participants:
        bids = tmp / "bids"
        ids = [f"sub-{i:02d}" for i in range(1, args.participants + 1)]
        write_trial(bids, simulate_trial(ids, np.random.default_rng([args.seed, 3])))
        source = (f"a simulated trial (bids_dfc.demo.trial), {args.participants} "
                  f"participants, seed {args.seed}")
    elif bids is None:  # exactly make demo's trial: bids-dfc-demo --n-subjects 12 --seed 1
        bids = tmp / "bids"
        (tmp / "truth").mkdir()
        cohort = simulate_cohort(12, np.random.default_rng([1, 1]))
        write_cohort_trial(bids, tmp / "truth", cohort, 1)
        source = "make demo's trial (bids-dfc-demo --n-subjects 12 --seed 1)"
    data = read_trial(bids, reference=reference, horizons=options.trial_horizons,
                      n_days=options.trial_days)
    res = run_trial(data, reference=reference, horizons=options.trial_horizons)
    design = data.allocation.sort_values(["participant_id", "period"]).copy()
    by = design.groupby("participant_id")["treatment"]
    design["sequence"] = by.transform(lambda t: "-".join(t))
    design["carry"] = by.shift(1).fillna("none")
    quest = (design.merge(data.questionnaires, on=["participant_id", "period"], how="left")
             if data.questionnaires is not None else None)
    worst = {"estimate/CI (x residual SD)": 0.0, "P": 0.0, "Sidak P": 0.0, "omnibus P": 0.0,
             "ICC": 0.0, "odds ratio and CI (relative)": 0.0}
    where = dict.fromkeys(worst, "")
    n_models = 0
    for model in res.models.itertuples(index=False):
        if model.transform == "n/a":
            continue
        if pd.isna(model.horizon):
            values = quest[["participant_id", "period", model.outcome]].rename(
                columns={model.outcome: "y"})
            key_h, key_a = pd.NA, None
        else:
            auc = res.auc[(res.auc["outcome"] == model.outcome)
                          & (res.auc["horizon"] == model.horizon)
                          & (res.auc["analysis"] == model.analysis)]
            values = auc[["participant_id", "period", "auc"]].rename(columns={"auc": "y"})
            key_h, key_a = model.horizon, model.analysis
        frame = design.merge(values, on=["participant_id", "period"])
        frame = frame[np.isfinite(frame["y"].astype(float))]
        y = frame["y"].astype(float)
        if model.transform == "log":
            y = np.log(y) if (y > 0).all() else np.log(y + 1.0)
        csv = tmp / "model.csv"
        frame.assign(y=y, pid=frame["participant_id"]).to_csv(csv, index=False)
        r = _rscript(R_LMER, csv, reference)
        n_models += 1
        mine = _rows(res.contrasts, model.outcome, key_h, key_a)
        sd = float(np.sqrt(r["var_residual"]))
        label = f"{model.outcome} {'' if pd.isna(key_h) else key_h} {key_a or ''}".strip()
        for k, contrast in enumerate(r["contrast"]):
            a, b = _flip(contrast)
            row = mine[mine["contrast"] == f"{a} - {b}"]
            sign = 1.0
            if row.empty:
                row, sign = mine[mine["contrast"] == f"{b} - {a}"], -1.0
            row = row.iloc[0]
            ours = sign * np.array([row["estimate"], row["ci_low"], row["ci_high"]])
            theirs = np.array([r["estimate"][k], r["ci_low"][k], r["ci_high"][k]])
            if sign < 0:
                ours = ours[[0, 2, 1]]
            for name, diff in (("estimate/CI (x residual SD)",
                                float(np.max(np.abs(ours - theirs))) / sd),
                               ("P", abs(row["p"] - r["p"][k])),
                               ("Sidak P", abs(row["p_sidak"] - r["p_sidak"][k]))):
                if diff > worst[name]:
                    worst[name], where[name] = diff, f"{label}, {a} - {b}"
        omni = _rows(res.omnibus, model.outcome, key_h, key_a).iloc[0]
        p_r = float(stats.chi2.sf(r["chi"], r["df"]))
        if abs(float(omni["p"]) - p_r) > worst["omnibus P"]:
            worst["omnibus P"], where["omnibus P"] = abs(float(omni["p"]) - p_r), label
        icc_r = r["var_subject"] / (r["var_subject"] + r["var_residual"])
        icc = _rows(res.icc, model.outcome, key_h, key_a)
        if abs(float(icc["icc"].iloc[0]) - icc_r) > worst["ICC"]:
            worst["ICC"], where["ICC"] = abs(float(icc["icc"].iloc[0]) - icc_r), label
    n_binary = 0
    if data.binary is not None:
        frame = design.merge(data.binary, on=["participant_id", "period"])
        for outcome in data.binary_outcomes:
            sub = frame[frame[outcome].notna()]
            csv = tmp / "binary.csv"
            sub.assign(y=sub[outcome].astype(int), pid=sub["participant_id"]).to_csv(
                csv, index=False)
            r = _rscript(R_GLMER, csv, reference)
            n_binary += 1
            names = r["names"]
            beta, vcov = np.array(r["beta"]), np.array(r["vcov"])
            for row in res.binary[res.binary["outcome"] == outcome].itertuples(index=False):
                a, b = _flip(row.contrast)
                L = np.zeros(len(names))
                for level, s in ((a, 1.0), (b, -1.0)):
                    if level != reference:
                        L[names.index(f"treatment{level}")] += s
                est, se = L @ beta, np.sqrt(L @ vcov @ L)
                theirs = np.exp([est, est - 1.959963984540054 * se,
                                 est + 1.959963984540054 * se])
                ours = np.array([row.odds_ratio, row.ci_low, row.ci_high])
                diff = float(np.max(np.abs(ours / theirs - 1.0)))
                if diff > worst["odds ratio and CI (relative)"]:
                    worst["odds ratio and CI (relative)"] = diff
                    where["odds ratio and CI (relative)"] = f"{outcome}, {row.contrast}"
    tolerance = {"estimate/CI (x residual SD)": 0.01, "P": 0.01, "Sidak P": 0.01,
                 "omnibus P": 0.01, "ICC": 0.01, "odds ratio and CI (relative)": 0.02}
    lines = [f"bids_dfc crossover trial vs R (lme4 {_r_version('lme4')}, emmeans "
             f"{_r_version('emmeans')}): {source}",
             f"{n_models} linear mixed models (lmer REML + emmeans, asymptotic df), "
             f"{n_binary} logistic (glmer nAGQ = 7)",
             "largest difference over every model and contrast (tolerance):"]
    failed = False
    for name, value in worst.items():
        ok = value <= tolerance[name]
        failed |= not ok
        lines.append(f"  {name}: {value:.2e} ({tolerance[name]:g}) {'ok' if ok else 'FAIL'}"
                     f"  [{where[name]}]")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 1 if failed else 0


def _r_version(package: str) -> str:
    proc = subprocess.run(["Rscript", "-e", f"cat(as.character(packageVersion('{package}')))"],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
