"""Generative model of the demo cohort: groups, TSP, true dFC and pain relief.

The chain follows the study (docs/demo.md): temporal summation of pain (TSP) is drawn first,
the true DMN-DeS dFC is generated from TSP plus noise, and pain relief from dFC plus noise,
so TSP acts on relief only through dFC (full mediation). Responders (R) are patients with
relief >= 30 %, non-responders (NR) the others; healthy controls (HC) have TSP and dFC but
no pain ratings. All parameters are in :data:`COHORT_PARAMS` and ``docs/demo.md``.

Psychological scores (:func:`simulate_psych`, :data:`PSYCH_PARAMS`) are drawn afterwards from
their own random stream and depend on the group only (patients more anxious, depressed and
catastrophizing and less resilient than controls; R and NR alike), so adding them leaves every
other value of the demo unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COHORT_PARAMS = {
    # TSP: log(peak / first rating) = max(0.02, tsp_log_ratio_mean + tsp_log_ratio_sd * x),
    # x ~ N(mu, 1) (patients: median TSP = 100 %)
    "tsp_log_ratio_mean": float(np.log(2.0)),
    "tsp_log_ratio_sd": 0.45,
    "tsp_latent_mean_patients": 0.0,
    "tsp_latent_mean_controls": -0.5,
    # dFC latent m = a x + sqrt(1 - a^2) e1; true dFC = dfc_mean + dfc_sd * m
    "path_a": 0.85,
    # true dFC = SD of the DCC series of the planted signals (see signals.planted_dfc):
    # DCC on band-limited signals gives >= ~0.3 even for a constant correlation
    "dfc_mean": 0.48,
    "dfc_sd": 0.08,
    "dfc_min": 0.36,
    "dfc_max": 0.64,
    # relief latent y = b m + sqrt(1 - b^2) e2; relief % = relief_mid + relief_sd * y
    "path_b": 0.95,
    "relief_mid": 30.0,
    "relief_sd": 25.0,
    "relief_min": -40.0,
    "relief_max": 95.0,
    "responder_threshold": 30.0,
    "pain_pre_range": (4.0, 9.0),
    "rho_mean_range": (0.15, 0.45),
    "age_mean": 52.0,
    "age_sd": 11.0,
    "female_fraction": 0.6,
}


#: Psychological scores: ``score = clip(round(mean + sd (loading d + sqrt(1 - loading^2) e)),
#: low, high)`` with a shared distress latent ``d ~ N(0, 1)`` and ``e ~ N(0, 1)`` per score;
#: ``mean`` is ``hc_mean`` for controls and ``patient_mean`` for R and NR alike.
PSYCH_PARAMS = {
    # HADS subscales (Zigmond & Snaith 1983), 7 items scored 0-3 each
    "hads_anxiety": {"hc_mean": 5.0, "patient_mean": 9.0, "sd": 3.5, "loading": 0.8,
                     "range": (0, 21)},
    "hads_depression": {"hc_mean": 3.5, "patient_mean": 8.0, "sd": 3.5, "loading": 0.8,
                        "range": (0, 21)},
    # Pain Catastrophizing Scale (Sullivan et al. 1995), 13 items scored 0-4
    "pcs": {"hc_mean": 10.0, "patient_mean": 24.0, "sd": 10.0, "loading": 0.7,
            "range": (0, 52)},
    # Connor-Davidson Resilience Scale, 10-item version (CD-RISC-10), 10 items scored 0-4
    "resilience": {"hc_mean": 30.0, "patient_mean": 25.0, "sd": 6.5, "loading": -0.6,
                   "range": (0, 40)},
}


def simulate_psych(cohort: pd.DataFrame, rng: np.random.Generator,
                   params=None) -> pd.DataFrame:
    """Draw the psychological scores of a cohort (integers, one row per participant).

    Parameters
    ----------
    cohort : pandas.DataFrame
        ``participant_id`` and ``group`` (HC, R, NR), e.g. from :func:`simulate_cohort`.
    rng : numpy.random.Generator
        A stream of its own (the demo uses ``default_rng([seed, 2])``), so that the draws
        of the cohort, images and truth do not depend on whether the scores are made.
    params : dict, optional
        Replaces entries of :data:`PSYCH_PARAMS`.

    Returns
    -------
    pandas.DataFrame
        participant_id, hads_anxiety, hads_depression (0-21), pcs (0-52), resilience (0-40).

    Examples
    --------
    >>> table = pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "group": ["HC", "R"]})
    >>> list(simulate_psych(table, np.random.default_rng(0)).columns)
    ['participant_id', 'hads_anxiety', 'hads_depression', 'pcs', 'resilience']
    """
    params = dict(PSYCH_PARAMS, **(params or {}))
    groups = cohort["group"].to_numpy()
    unknown = sorted(set(groups) - {"HC", "R", "NR"})
    if unknown:
        raise ValueError(f"simulate_psych: unknown group label(s) {unknown}; expected HC, R, NR")
    patient = groups != "HC"
    distress = rng.standard_normal(len(groups))
    unique = rng.standard_normal((len(groups), len(params)))
    out = pd.DataFrame({"participant_id": cohort["participant_id"].to_numpy()})
    for k, (name, p) in enumerate(params.items()):
        load = p["loading"]
        z = load * distress + np.sqrt(1.0 - load * load) * unique[:, k]
        mean = np.where(patient, p["patient_mean"], p["hc_mean"])
        out[name] = np.clip(np.rint(mean + p["sd"] * z), *p["range"]).astype(int)
    return out


def group_counts(n_subjects: int) -> dict:
    """Balanced numbers of HC, R and NR for ``n_subjects`` (patients first when small)."""
    if n_subjects < 1:
        raise ValueError(f"the demo needs at least 1 subject, got {n_subjects}")
    n_hc = n_subjects // 3
    n_patients = n_subjects - n_hc
    n_r = (n_patients + 1) // 2
    return {"HC": n_hc, "R": n_r, "NR": n_patients - n_r}


def tsp_ratings(rng: np.random.Generator, log_ratio: float) -> np.ndarray:
    """Ten heat-pulse ratings (integers 0-100, first >= 1) whose peak / first rating is
    close to ``exp(log_ratio)``."""
    ratio = float(np.exp(log_ratio))
    first = int(rng.integers(8, 31))
    first = max(2, min(first, int(np.floor(100.0 / ratio))))
    peak = int(min(100, max(first, round(first * ratio))))
    peak_at = int(rng.integers(5, 10))
    tau = rng.uniform(1.5, 4.0)
    rise = (1.0 - np.exp(-np.arange(10) / tau)) / (1.0 - np.exp(-peak_at / tau))
    curve = first + (peak - first) * np.minimum(rise, 1.0)
    curve[peak_at + 1:] = peak - (peak - first) * 0.04 * np.arange(1, 10 - peak_at)
    curve[1:] += rng.normal(0.0, 1.5, 9)
    ratings = np.clip(np.rint(curve), 0, peak).astype(int)
    ratings[0] = first
    ratings[peak_at] = peak
    return ratings


def _subject(rng, group, params):
    patient = group != "HC"
    mu = params["tsp_latent_mean_patients" if patient else "tsp_latent_mean_controls"]
    x = rng.normal(mu, 1.0)
    log_ratio = max(0.02, params["tsp_log_ratio_mean"] + params["tsp_log_ratio_sd"] * x)
    ratings = tsp_ratings(rng, log_ratio)
    tsp = 100.0 * (ratings.max() - ratings[0]) / ratings[0]
    realised = np.log(ratings.max() / ratings[0])
    x_real = (realised - params["tsp_log_ratio_mean"]) / params["tsp_log_ratio_sd"]
    a = params["path_a"]
    m = a * x_real + np.sqrt(1.0 - a * a) * rng.standard_normal()
    dfc = float(np.clip(params["dfc_mean"] + params["dfc_sd"] * m, params["dfc_min"],
                        params["dfc_max"]))
    row = {"group": group, "tsp": tsp, "tsp_latent": x_real, "dfc_latent": m,
           "true_dfc": dfc, **{f"tsp_{k + 1:02d}": int(v) for k, v in enumerate(ratings)}}
    if patient:
        b = params["path_b"]
        y = b * m + np.sqrt(1.0 - b * b) * rng.standard_normal()
        target = np.clip(params["relief_mid"] + params["relief_sd"] * y, params["relief_min"],
                         params["relief_max"])
        pre = round(float(rng.uniform(*params["pain_pre_range"])), 1)
        post = round(float(np.clip(pre * (1.0 - target / 100.0), 0.0, 10.0)), 1)
        relief = 100.0 * (pre - post) / pre
        row.update(pain_pre=pre, pain_post=post, relief=relief,
                   group="R" if relief >= params["responder_threshold"] else "NR")
    else:
        row.update(pain_pre=np.nan, pain_post=np.nan, relief=np.nan)
    return row


def simulate_cohort(n_subjects: int, rng: np.random.Generator, params=None) -> pd.DataFrame:
    """Draw the cohort: one row per subject, in a shuffled group order.

    Patients are drawn from the generative model until the quotas of R and NR from
    :func:`group_counts` are filled (a draw whose group is already full is discarded).

    Returns
    -------
    pandas.DataFrame
        participant_id, group, age, sex, tsp_01..tsp_10, tsp (% change of the peak from the
        first rating), tsp_latent, dfc_latent, true_dfc, rho_mean, pain_pre, pain_post,
        relief (%).
    """
    params = dict(COHORT_PARAMS, **(params or {}))
    counts = group_counts(n_subjects)
    order = rng.permutation(np.repeat(["HC", "R", "NR"], [counts["HC"], counts["R"],
                                                          counts["NR"]]))
    pools = {"HC": [], "R": [], "NR": []}
    for _ in range(counts["HC"]):
        pools["HC"].append(_subject(rng, "HC", params))
    for _ in range(100000):
        if len(pools["R"]) >= counts["R"] and len(pools["NR"]) >= counts["NR"]:
            break
        row = _subject(rng, "patient", params)
        if len(pools[row["group"]]) < counts[row["group"]]:
            pools[row["group"]].append(row)
    else:  # pragma: no cover - the quotas fill within a few dozen draws
        raise RuntimeError("could not fill the R/NR quotas of the demo cohort")
    rows = []
    for number, group in enumerate(order, start=1):
        row = pools[group].pop(0)
        row["participant_id"] = f"sub-{number:02d}"
        row["age"] = int(np.clip(round(rng.normal(params["age_mean"], params["age_sd"])),
                                 22, 79))
        row["sex"] = "F" if rng.random() < params["female_fraction"] else "M"
        row["rho_mean"] = float(rng.uniform(*params["rho_mean_range"]))
        rows.append(row)
    columns = (["participant_id", "group", "age", "sex"]
               + [f"tsp_{k:02d}" for k in range(1, 11)]
               + ["tsp", "tsp_latent", "dfc_latent", "true_dfc", "rho_mean", "pain_pre",
                  "pain_post", "relief"])
    return pd.DataFrame(rows)[columns]
