"""Simulated randomized double-blind crossover trial of the demo's patients.

The study mimicked: ketamine, ketamine + magnesium and placebo, one infusion on day 1 of each
of three 35-day periods, in patients with neuropathic pain who keep a daily pain diary
(0-10 numeric rating scale). The published 35-day AUCs (185 +- 100, 196 +- 92 and 187 +- 90
pain score-days) show no effect; the demo plants a clear one so that the analysis has
something to find. Every parameter is in :data:`TRIAL_PARAMS` and ``docs/demo.md``.

Daily latent pain of participant ``i`` in period ``p`` on day ``d`` (1..35)::

    m = baseline + u_i + period_effect[p]
        + gain_i * treatment_effect[t] * exp(-(d - 1) / effect_tau_days)
        + carryover_effect[t_prev] * exp(-(d - 1) / carryover_tau_days)
    pain_avg = round(clip(m + e, 0, 10), 1)        e: AR(1) over days (noise_phi, noise_sd)

``t`` is the period's treatment, ``t_prev`` the previous period's (none in period 1) and
``gain_i`` the responder gain (R larger than NR; 1 without responder status). ``pain_max``
adds a positive offset to the latent ``pain_avg``; ``pain_night`` adds a participant shift
and independent daily noise, and scales the treatment part by ``outcome_effect_scale``.

The draws do not depend on ``responder`` (it only changes the means), and the demo gives the
trial a random stream of its own, so adding the trial leaves every other draw unchanged.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd

#: the diary outcomes (long-format columns of pain_diary.tsv)
OUTCOMES = ("pain_avg", "pain_max", "pain_night")
#: the AUC horizons (days after the infusion) of the truth's planted contrasts
HORIZONS = (7, 15, 21, 28, 35)

TRIAL_PARAMS = {
    # treatment labels; the last one is the reference of every contrast. Sequences are all
    # orders of the labels (6 for 3: balanced for first-order carry-over, Williams-type),
    # given to the participants in shuffled blocks of one of each order.
    "treatments": ("ketamine", "ketamine_mg", "placebo"),
    "reference": "placebo",
    "n_days": 35,  # diary days 1..35 per period; day 1 = infusion day
    # pain_avg: baseline + participant intercept u_i ~ N(0, participant_sd) + period effect
    # (periods 1, 2, 3); participant_sd gives an ICC of the 35-day AUC of ~icc_target
    "baseline": 5.8,
    "participant_sd": 0.9,
    "icc_target": 0.85,
    "period_effect": (0.0, -0.1, -0.2),
    # direct treatment effect (NRS) on day 1, waning as exp(-(d - 1) / effect_tau_days),
    # times the participant's gain: responder_gain[R or NR], or 1 without responder status
    "treatment_effect": {"ketamine": -1.25, "ketamine_mg": -0.8, "placebo": 0.0},
    "effect_tau_days": 14.0,
    "responder_gain": {"R": 1.4, "NR": 0.6},
    # first-order carry-over: the previous period's treatment adds this (NRS, not scaled by
    # the gain) on day 1 of the next period, waning as exp(-(d - 1) / carryover_tau_days)
    "carryover_effect": {"ketamine": -0.2, "ketamine_mg": -0.2, "placebo": 0.0},
    "carryover_tau_days": 5.0,
    # daily noise of pain_avg: stationary AR(1) over the days of a period, marginal SD
    "noise_sd": 0.8,
    "noise_phi": 0.6,
    # treatment and carry-over part of each outcome relative to pain_avg
    "outcome_effect_scale": {"pain_avg": 1.0, "pain_max": 1.0, "pain_night": 0.8},
    # pain_max = latent pain_avg + o_i * lognormal(daily SD max_offset_log_sd, mean 1),
    # o_i = max(max_offset_min, N(max_offset_mean, max_offset_sd))
    "max_offset_mean": 1.2,
    "max_offset_sd": 0.3,
    "max_offset_min": 0.3,
    "max_offset_log_sd": 0.3,
    # pain_night = latent pain_avg + N(night_shift_mean, night_shift_sd) per participant
    # + N(0, night_noise_sd) per day
    "night_shift_mean": -0.3,
    "night_shift_sd": 0.5,
    "night_noise_sd": 0.7,
    # a diary day (days 2..35; day 1 is recorded at the infusion visit) is missing at random
    # with this probability: n/a in all three outcome columns of that row
    "missing_day_probability": 0.08,
    # round(n * early_stop_fraction) participants (at least 1 when n >= 6) stop their diary
    # in one random period after a last entry on a day in early_stop_last_day (no rows after)
    "early_stop_fraction": 0.125,
    "early_stop_last_day": (24, 31),
    # any adverse event in a period: logit P = logit(p_treatment) + v_i, v_i ~ N(0, sd)
    "adverse_event_probability": {"ketamine": 0.55, "ketamine_mg": 0.5, "placebo": 0.15},
    "adverse_event_participant_sd": 1.0,
    # end-of-period questionnaires (0-10, one decimal): baseline + participant effect (SD
    # participant_sd, correlation pain_loading with u_i) + gain * effect + N(0, residual_sd)
    "questionnaires": {
        # Brief Pain Inventory interference (mean of 7 items 0-10, higher = worse)
        "bpi_interference": {"baseline": 5.5, "participant_sd": 1.5, "pain_loading": 0.6,
                             "residual_sd": 0.8, "range": (0.0, 10.0),
                             "effect": {"ketamine": -1.0, "ketamine_mg": -0.7,
                                        "placebo": 0.0}},
        # sleep quality numeric rating scale (0-10, higher = better)
        "sleep_quality": {"baseline": 4.5, "participant_sd": 1.5, "pain_loading": -0.5,
                          "residual_sd": 0.9, "range": (0.0, 10.0),
                          "effect": {"ketamine": 0.8, "ketamine_mg": 0.6, "placebo": 0.0}},
    },
}


def sequences(treatments) -> list[tuple[str, ...]]:
    """Every order of ``treatments`` (the trial's sequences), in a fixed order."""
    return list(itertools.permutations(treatments))


def allocate(n: int, rng: np.random.Generator, treatments) -> np.ndarray:
    """Treatments of ``n`` participants, shape (n, periods): participants 1-6 get the six
    sequences in a random order, 7-12 in another, and so on (permuted blocks)."""
    seqs = np.array(sequences(treatments), dtype=object)
    n_blocks = -(-n // len(seqs))
    order = np.concatenate([rng.permutation(len(seqs)) for _ in range(n_blocks)])[:n]
    return seqs[order]


def _curves(params) -> tuple[np.ndarray, np.ndarray]:
    days = np.arange(params["n_days"], dtype=float)
    return (np.exp(-days / params["effect_tau_days"]),
            np.exp(-days / params["carryover_tau_days"]))


def _trapezoid(values: np.ndarray, horizon: int) -> float:
    """Trapezoid over days 1..horizon (unit spacing) along the last axis."""
    part = values[..., :horizon]
    return part[..., 1:-1].sum(-1) + 0.5 * (part[..., 0] + part[..., -1])


def _gains(responder, n, params) -> np.ndarray:
    if responder is None:
        return np.ones(n)
    responder = np.asarray(responder, dtype=bool)
    if responder.shape != (n,):
        raise ValueError(f"simulate_trial: responder has shape {responder.shape}, expected "
                         f"({n},) (one value per participant)")
    gain = params["responder_gain"]
    return np.where(responder, gain["R"], gain["NR"])


def _lookup(table: dict, alloc: np.ndarray) -> np.ndarray:
    """``table[treatment]`` for every cell of ``alloc``, as floats."""
    return np.array([[float(table[t]) for t in row] for row in alloc]).reshape(alloc.shape)


def _effect_part(alloc, gains, params) -> np.ndarray:
    """Treatment + carry-over part of the latent pain_avg, shape (n, periods, days)."""
    wane, carry = _curves(params)
    prev = np.zeros(alloc.shape)
    prev[:, 1:] = _lookup(params["carryover_effect"], alloc[:, :-1])
    direct = _lookup(params["treatment_effect"], alloc)
    return gains[:, None, None] * direct[..., None] * wane + prev[..., None] * carry


def _ar1(rng, shape, phi, sd) -> np.ndarray:
    z = rng.standard_normal(shape)
    out = np.empty(shape)
    out[..., 0] = sd * z[..., 0]
    step = sd * np.sqrt(1.0 - phi * phi)
    for d in range(1, shape[-1]):
        out[..., d] = phi * out[..., d - 1] + step * z[..., d]
    return out


def _latent_diary(rng, n, alloc, gains, params) -> tuple[dict, np.ndarray, np.ndarray]:
    """Unclipped daily latent of each outcome, the participant intercepts, the effect part."""
    shape = (n, alloc.shape[1], params["n_days"])
    u = rng.normal(0.0, params["participant_sd"], n)
    effect = _effect_part(alloc, gains, params)
    period = np.asarray(params["period_effect"], dtype=float)[None, :, None]
    avg = params["baseline"] + u[:, None, None] + period + effect
    avg = avg + _ar1(rng, shape, params["noise_phi"], params["noise_sd"])
    offset = np.maximum(params["max_offset_min"],
                        rng.normal(params["max_offset_mean"], params["max_offset_sd"], n))
    log_sd = params["max_offset_log_sd"]
    daily = np.exp(log_sd * rng.standard_normal(shape) - 0.5 * log_sd ** 2)
    shift = rng.normal(params["night_shift_mean"], params["night_shift_sd"], n)
    night_noise = rng.normal(0.0, params["night_noise_sd"], shape)
    scale = params["outcome_effect_scale"]
    latent = {
        "pain_avg": avg + (scale["pain_avg"] - 1.0) * effect,
        "pain_max": avg + (scale["pain_max"] - 1.0) * effect + offset[:, None, None] * daily,
        "pain_night": (avg + (scale["pain_night"] - 1.0) * effect + shift[:, None, None]
                       + night_noise),
    }
    return latent, u, effect


def _missing(rng, n, n_periods, params) -> tuple[np.ndarray, np.ndarray, list]:
    """Missing-at-random days (n, periods, days) and the last diary day of each period."""
    n_days = params["n_days"]
    missing = rng.random((n, n_periods, n_days)) < params["missing_day_probability"]
    missing[..., 0] = False
    n_stop = int(np.floor(n * params["early_stop_fraction"] + 0.5))
    n_stop = min(n, max(n_stop, 1 if n >= 6 else 0))
    who = np.sort(rng.choice(n, n_stop, replace=False))
    periods = rng.integers(0, n_periods, n_stop)
    low, high = params["early_stop_last_day"]
    lasts = np.minimum(rng.integers(low, high + 1, n_stop), n_days)
    last_day = np.full((n, n_periods), n_days)
    stops = []
    for i, p, last in zip(who, periods, lasts):
        last_day[i, p] = last
        missing[i, p, last - 1] = False  # the last entry is there
        stops.append((int(i), int(p) + 1, int(last)))
    return missing, last_day, stops


def _diary_table(ids, latent, missing, last_day) -> pd.DataFrame:
    n, n_periods, n_days = missing.shape
    i, p, d = np.meshgrid(np.arange(n), np.arange(n_periods), np.arange(n_days),
                          indexing="ij")
    keep = (d < last_day[..., None]).ravel()
    table = pd.DataFrame({"participant_id": np.asarray(ids, dtype=object)[i.ravel()],
                          "period": p.ravel() + 1, "day": d.ravel() + 1})
    for name in OUTCOMES:
        values = np.round(np.clip(latent[name], 0.0, 10.0), 1)
        table[name] = np.where(missing, np.nan, values).ravel()
    return table[keep].reset_index(drop=True)


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _adverse(rng, n, alloc, params) -> np.ndarray:
    v = rng.normal(0.0, params["adverse_event_participant_sd"], n)
    base = _logit(_lookup(params["adverse_event_probability"], alloc))
    p = 1.0 / (1.0 + np.exp(-(base + v[:, None])))
    return (rng.random(alloc.shape) < p).astype(int)


def _questionnaires(rng, u, alloc, gains, params) -> dict:
    out = {}
    z_u = u / params["participant_sd"] if params["participant_sd"] > 0 else np.zeros(len(u))
    for name, q in params["questionnaires"].items():
        r = q["pain_loading"]
        person = q["participant_sd"] * (r * z_u + np.sqrt(1.0 - r * r)
                                        * rng.standard_normal(len(u)))
        effect = _lookup(q["effect"], alloc)
        resid = rng.normal(0.0, q["residual_sd"], alloc.shape)
        value = q["baseline"] + person[:, None] + gains[:, None] * effect + resid
        out[name] = np.round(np.clip(value, *q["range"]), 1)
    return out


def simulate_trial(participant_ids, rng: np.random.Generator, *, responder=None,
                   params=None) -> dict:
    """Simulate the crossover trial of ``participant_ids`` (with the ``sub-`` prefix).

    Parameters
    ----------
    participant_ids : sequence of str
        One or more participant labels.
    rng : numpy.random.Generator
        The trial's own stream (the demo uses ``default_rng([seed, 3])``).
    responder : array of bool, optional
        Aligned with ``participant_ids``: True for responders (R; gain
        ``responder_gain["R"]`` on every treatment effect), False for non-responders (NR).
        None: every participant has gain 1 (the average of R and NR). The random draws do
        not depend on it.
    params : dict, optional
        Replaces entries of :data:`TRIAL_PARAMS`.

    Returns
    -------
    dict
        ``allocation`` (participant_id, period, treatment), ``diary`` (participant_id,
        period, day, pain_avg, pain_max, pain_night; n/a for a missing day, no rows after an
        early stop), ``adverse_events`` (participant_id, period, any_adverse_event 0/1),
        ``questionnaires`` (participant_id, period, bpi_interference, sleep_quality) and
        ``truth`` (JSON-serialisable planted values, see ``docs/demo.md``).

    Examples
    --------
    >>> trial = simulate_trial(["sub-01", "sub-02"], np.random.default_rng(0))
    >>> trial["allocation"].groupby("participant_id")["treatment"].nunique().tolist()
    [3, 3]
    """
    params = dict(TRIAL_PARAMS, **(params or {}))
    ids = [str(p) for p in participant_ids]
    n = len(ids)
    if n < 1:
        raise ValueError("simulate_trial needs at least 1 participant")
    treatments = tuple(params["treatments"])
    if len(treatments) < 2 or params["reference"] not in treatments:
        raise ValueError(f"simulate_trial: reference {params['reference']!r} is not one of "
                         f"the treatments {treatments}")
    if len(params["period_effect"]) != len(treatments):
        raise ValueError("simulate_trial: period_effect needs one value per period "
                         f"({len(treatments)})")
    gains = _gains(responder, n, params)
    alloc = allocate(n, rng, treatments)
    latent, u, effect = _latent_diary(rng, n, alloc, gains, params)
    missing, last_day, stops = _missing(rng, n, alloc.shape[1], params)
    adverse = _adverse(rng, n, alloc, params)
    scores = _questionnaires(rng, u, alloc, gains, params)
    pid = np.repeat(np.asarray(ids, dtype=object), alloc.shape[1])
    period = np.tile(np.arange(1, alloc.shape[1] + 1), n)
    tables = {"allocation": {"treatment": alloc}, "adverse_events": {
        "any_adverse_event": adverse}, "questionnaires": scores}
    trial = {key: pd.DataFrame({"participant_id": pid, "period": period,
                                **{k: v.ravel() for k, v in columns.items()}})
             for key, columns in tables.items()}
    trial["diary"] = diary = _diary_table(ids, latent, missing, last_day)
    truth = _truth(params, alloc, gains, effect)
    truth["early_stops"] = [{"participant_id": ids[i], "period": p, "last_day": d}
                            for i, p, d in stops]
    truth["participant_gain"] = dict(zip(ids, gains.tolist()))
    truth["missing_fraction"] = float(diary["pain_avg"].isna().mean())
    truth["clipped_fraction"] = {k: float(np.mean((v < 0.0) | (v > 10.0)))
                                 for k, v in latent.items()}
    trial["truth"] = truth
    return trial


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: v.tolist()))


def _truth(params, alloc, gains, effect) -> dict:
    """The planted values: parameters, AUC contrasts (deterministic part, before clipping),
    questionnaire contrasts, adverse-event log odds ratios and the model's ICC."""
    ref = params["reference"]

    def versus(values: dict, factor: float = 1.0) -> dict:
        return {f"{t} - {ref}": factor * (values[t] - values[ref])
                for t in params["treatments"] if t != ref}

    wane, carry = _curves(params)
    gain = float(np.mean(gains))
    scale = params["outcome_effect_scale"]
    horizons = [h for h in HORIZONS if h <= params["n_days"]]
    auc = {name: {str(h): versus(params["treatment_effect"],
                                 scale[name] * gain * _trapezoid(wane, h)) for h in horizons}
           for name in OUTCOMES}
    carry_auc = {name: {str(h): versus(params["carryover_effect"],
                                       scale[name] * _trapezoid(carry, h)) for h in horizons}
                 for name in OUTCOMES}
    full = _trapezoid(wane, params["n_days"])
    by_group = {group: versus(params["treatment_effect"], g * full)
                for group, g in params["responder_gain"].items()}
    questionnaire = {name: versus(q["effect"], gain)
                     for name, q in params["questionnaires"].items()}
    prob = params["adverse_event_probability"]
    log_or = versus({t: float(_logit(prob[t])) for t in prob})
    return _jsonable({
        "params": params,
        "n_participants": int(alloc.shape[0]),
        "sequence_counts": {"-".join(s): int(np.sum(np.all(alloc == np.array(s), axis=1)))
                            for s in sequences(params["treatments"])},
        "mean_gain": gain,
        "auc_contrasts": auc,
        "pain_avg_auc_contrasts_35_by_responder": by_group,
        "carryover_auc_contrasts": carry_auc,
        "questionnaire_contrasts": questionnaire,
        "adverse_log_odds_ratio": log_or,
        "adverse_marginal_probability": {t: _marginal(prob[t], params) for t in prob},
        "icc_target": params["icc_target"],
        "icc_model": _icc_model(params, effect),
        "notes": [
            "auc_contrasts: direct effect vs the reference, trapezoid over days 1..horizon "
            "of the planted mean effect curve (mean responder gain), before clipping to 0-10 "
            "and rounding, which attenuate it slightly (clipped_fraction)",
            "carry-over and period effects are separate terms; balanced sequences make them "
            "cancel on average",
            "adverse_log_odds_ratio is conditional on the participant (random intercept)",
            "missing_fraction: n/a share of the written diary rows (no rows after an early "
            "stop)"],
    })


def _marginal(p: float, params) -> float:
    """Population-average probability of a logit-normal random intercept (Gauss-Hermite)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    eta = _logit(p) + params["adverse_event_participant_sd"] * nodes
    return float(np.sum(weights / (1.0 + np.exp(-eta))) / np.sqrt(2.0 * np.pi))


def _icc_model(params, effect) -> float:
    """Expected one-way ICC of the full-period AUC of pain_avg across periods (no clipping,
    no missing days): between-participant variance (intercepts and mean planted effects)
    over it + the within-participant variance (AR(1) noise, period, treatment and carry-over
    terms)."""
    n_days = params["n_days"]
    weights = np.ones(n_days)
    weights[[0, -1]] = 0.5
    lag = np.abs(np.subtract.outer(np.arange(n_days), np.arange(n_days)))
    noise = params["noise_sd"] ** 2 * weights @ (params["noise_phi"] ** lag) @ weights
    fixed = (_trapezoid(effect, n_days)
             + weights.sum() * np.asarray(params["period_effect"], dtype=float))
    within = noise + float(np.mean(np.var(fixed, axis=1, ddof=1)))
    between = ((weights.sum() * params["participant_sd"]) ** 2
               + float(np.var(fixed.mean(axis=1))))
    return float(between / (between + within))
