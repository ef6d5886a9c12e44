"""The group level's crossover-trial step (docs/trial.md): run the analysis on the checked
inputs (:mod:`bids_dfc.group.trial_inputs`), write ``group/trial/`` through the one writer,
and offer the diary response to the imaging analysis as a phenotype table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bids_dfc.derivatives import GROUP_FILES
from bids_dfc.group.writer import TRIAL_SIDECARS, write_tsv
from bids_dfc.stats import table as tb
from bids_dfc.stats.diary import ANALYSES
from bids_dfc.stats.trial import TRIAL_COLUMNS, TrialResults, response_column

__all__ = ["response_phenotype", "trial_summary", "write_trial_tables"]

_DESCRIPTIONS = {
    "auc": "Diary AUC per participant, period, outcome, horizon and analysis",
    "contrasts": "Pairwise treatment contrasts of the crossover mixed models",
    "omnibus": "Omnibus treatment test and diagnostics per model",
    "icc": "Intraclass correlation per model",
    "binary": "Odds ratios of the logistic mixed models",
}


def write_trial_tables(gdir: Path, trial: TrialResults) -> dict[str, Path]:
    """The tables of ``group/trial/`` (each with its sidecar); output key -> path."""
    out = {}
    for name, description in _DESCRIPTIONS.items():
        key = f"trial_{name}"
        out[key] = gdir / GROUP_FILES[key]
        write_tsv(out[key], getattr(trial, name)[TRIAL_COLUMNS[name]], description,
                  extra=TRIAL_SIDECARS[name])
    out["trial_response"] = gdir / GROUP_FILES["trial_response"]
    outcome, horizon, _ = trial.primary
    ref = trial.reference
    columns = {"participant_id": "BIDS participant label"}
    for treatment in trial.treatments[1:]:
        for analysis in ANALYSES:
            columns[response_column(treatment, analysis)] = (
                f"pain relief % of {treatment} against {ref}, 100 (AUC_{ref} - AUC_"
                f"{treatment}) / AUC_{ref}, {outcome} over {horizon} days, {analysis}")
    write_tsv(out["trial_response"], trial.response,
              "Per-participant diary response (usable as --outcome)", extra=columns)
    return out


def response_phenotype(trial: TrialResults) -> tuple[str, pd.DataFrame]:
    """The diary response as a phenotype table (strings with ``_line``, as phenotype
    tables are read), named after its output file, so ``--outcome`` can name a column."""
    frame = trial.response
    text = pd.DataFrame({"participant_id": frame["participant_id"].astype(str)})
    for column in frame.columns[1:]:
        text[column] = [None if pd.isna(v) else f"{float(v):.10g}" for v in frame[column]]
    text["_line"] = range(2, len(frame) + 2)
    source = GROUP_FILES["trial_response"]
    return source, tb.load_phenotype(text, source)


def trial_summary(trial: TrialResults) -> dict:
    """The trial's part of ``group_results.json``."""
    return {"reference": trial.reference, "treatments": trial.treatments,
            "horizons": trial.horizons,
            "primary": dict(zip(("outcome", "horizon", "analysis"), trial.primary)),
            "notes": trial.notes, "models": trial.models, "descriptives": trial.descriptives,
            "missing": trial.missing}
