"""Group level: collect participant dFC outputs, join the phenotype, run and write statistics;
and the crossover trial's analysis when the dataset has one (:mod:`bids_dfc.group.trial`,
docs/trial.md), with or without imaging outputs.

``bids-dfc bids_dir output_dir group`` calls :func:`run_group_level`. Every participant dFC
file is checked before any statistics (:mod:`bids_dfc.group.validate`). ``output_dir/group/``
is replaced as a whole: built in a temporary folder beside it and swapped in at the end
(:func:`bids_dfc.io.dir_replacement`), so a failed or interrupted run leaves the previous
one as it was; nothing is written into ``bids_dir``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from bids_dfc import __version__
from bids_dfc.derivatives import GROUP_FILES, software_versions
from bids_dfc.errors import BidsDfcError, InputError
from bids_dfc.group.collect import collect_dfc, dfc_files, read_phenotype
from bids_dfc.group.trial import response_phenotype, trial_summary, write_trial_tables
from bids_dfc.group.trial_inputs import TRIAL_INPUTS, read_trial
from bids_dfc.group.writer import write_tsv
from bids_dfc.io import dir_replacement, remove_stale_temp_dirs, write_json
from bids_dfc.reports.group import build_group_report
from bids_dfc.stats import table as tb
from bids_dfc.stats.analysis import run_group_statistics
from bids_dfc.stats.tests_classic import STATS_COLUMNS
from bids_dfc.stats.trial import TrialData, TrialResults, run_trial

__all__ = ["run_group_level", "write_tsv"]

PathLike = str | os.PathLike


class _GroupOptionsLike(tb.GroupOptionsLike, Protocol):
    """What :func:`run_group_level` reads of ``bids_dfc.config.GroupOptions``."""

    @property
    def n_boot(self) -> int: ...
    @property
    def all_pairs(self) -> bool: ...
    @property
    def trial_reference(self) -> str: ...
    @property
    def trial_horizons(self) -> tuple[int, ...]: ...
    @property
    def trial_days(self) -> int: ...


def run_group_level(bids_dir: PathLike, output_dir: PathLike, options: _GroupOptionsLike, *,
                    random_seed: int | None,
                    progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Run the whole group level and write ``output_dir/group/``.

    Every participant dFC file is checked before anything is computed; the outputs are built
    in a temporary folder beside ``group/`` that replaces it as a whole at the end, so a run
    that fails (bad input, no test computable, a write error, an interrupt) leaves the
    previous ``group/`` exactly as it was.

    Parameters
    ----------
    bids_dir : path-like
        BIDS dataset (read only): participants.tsv and phenotype/.
    output_dir : path-like
        Derivatives folder holding the participant-level outputs.
    options : object
        Group options (see ``docs/group.md``).
    random_seed : int or None
        Seeds every bootstrap and the report's jitter (reproducible outputs); ``None`` draws
        fresh entropy (numpy's meaning). The CLI always passes an int (``--random-seed``).

    Returns
    -------
    dict
        Output name -> path written.

    Raises
    ------
    InputError
        A bad input (every bad participant file listed, one line each), or no test could be
        computed (the reasons listed).
    BidsDfcError
        The outputs could not be written (``group/`` unchanged).
    """

    bids_dir, output_dir = Path(bids_dir).resolve(), Path(output_dir).resolve()
    if output_dir == bids_dir:
        raise InputError("output_dir must not be bids_dir: use e.g. bids_dir/derivatives/bids_dfc")
    if int(options.n_boot) < 100:
        raise InputError(f"--n-boot {options.n_boot} is too small; use at least 100 (default 5000)")
    gdir = output_dir / "group"
    say = progress or (lambda line: None)
    start = time.monotonic()
    remove_stale_temp_dirs(gdir)  # what a killed group run left behind
    inputs = _read_inputs(bids_dir, output_dir, options, say)
    trial = _analyse_trial(inputs, options, output_dir, say, start)
    tables = results = None
    if inputs.dfc_long is not None and inputs.participants is not None:
        phenotypes = dict(inputs.phenotypes)
        if trial is not None:  # the diary response can be the imaging analysis' outcome
            name, table = response_phenotype(trial)
            phenotypes[name] = table
        tables = tb.assemble(inputs.dfc_long, inputs.participants, phenotypes, options)
        say(f"group: statistics of {len(tables.subjects)} participants ({int(options.n_boot)} "
            f"bootstrap resamples)  {time.monotonic() - start:.0f}s")
        results = run_group_statistics(tables, n_boot=int(options.n_boot),
                                       random_seed=random_seed,
                                       all_pairs=bool(options.all_pairs),
                                       pair=tuple(options.pair))
        if trial is None:
            _require_a_test(tables, results, gdir)
        elif not _tests_done(results):  # the trial's results are still worth writing
            say(f"group: no statistical test of dFC could be computed from "
                f"{len(tables.subjects)} participants (every one skipped; the report lists "
                "why); the crossover trial's results are written")
    say(f"group: tables, figures and report  {time.monotonic() - start:.0f}s")
    try:
        with dir_replacement(gdir) as tmp:
            out = _write_outputs(tmp, tables, results, options, random_seed,
                                 inputs.descriptions, trial)
    except OSError as exc:
        raise BidsDfcError(
            f"writing the group outputs failed ({exc}); {gdir} was left as it was: free space "
            "or fix the permissions of output_dir and rerun") from exc
    return {key: gdir / Path(path).relative_to(tmp) for key, path in out.items()}


@dataclass
class _Inputs:
    """The group level's inputs, all checked; ``dfc_long`` is None for a trial-only run."""

    trial: TrialData | None
    dfc_long: pd.DataFrame | None
    participants: pd.DataFrame | None
    phenotypes: dict[str, pd.DataFrame]
    descriptions: dict[str, str]


def _read_inputs(bids_dir: Path, output_dir: Path, options: _GroupOptionsLike,
                 say: Callable[[str], None]) -> _Inputs:
    """Read and check every input before anything is computed, reporting the problems of
    every input at once. The imaging part is skipped when there is a trial and no
    participant dFC output (a trial-only run, said so)."""
    has_trial = (bids_dir / TRIAL_INPUTS["allocation"]).is_file()
    imaging = bool(dfc_files(output_dir)) or not has_trial
    checked = ((["the participant dFC files", "the phenotype"] if imaging else [])
               + (["the crossover trial's files"] if has_trial else []))
    say("group: checking " + " and ".join([", ".join(checked[:-1]), checked[-1]]
                                          if len(checked) > 1 else checked))
    problems: list[str] = []
    inputs = _Inputs(None, None, None, {}, {})
    try:
        inputs.trial = read_trial(bids_dir, reference=options.trial_reference,
                                  horizons=options.trial_horizons, n_days=options.trial_days)
    except InputError as exc:
        problems.append(str(exc))
    if imaging:
        try:
            inputs.dfc_long = collect_dfc(output_dir, pair=tuple(options.pair),
                                          fd_needed_by=_fd_needed_by(options))
        except InputError as exc:
            problems.append(str(exc))
        try:
            inputs.participants, inputs.phenotypes, inputs.descriptions = \
                read_phenotype(bids_dir)
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError("\n".join(problems))
    if not imaging:
        say(f"group: no participant dFC outputs in {output_dir}: only the crossover trial "
            "is analysed")
    return inputs


def _fd_needed_by(options: _GroupOptionsLike) -> str | None:
    """What needs the participant files' ``mean_fd`` (FD QC, a covariate...), if anything."""
    if options.max_mean_fd is not None:
        return f"FD QC (--max-mean-fd {options.max_mean_fd:g})"
    for option in ("covariates", "compare_columns"):
        if "mean_fd" in (getattr(options, option, None) or []):
            return f"--{option.replace('_', '-')} mean_fd"
    return None


def _analyse_trial(inputs: _Inputs, options: _GroupOptionsLike, output_dir: Path,
                   say: Callable[[str], None], start: float) -> TrialResults | None:
    """The crossover trial's analysis, when the dataset has one."""
    if inputs.trial is None:
        return None
    say(f"group: crossover trial of {inputs.trial.allocation['participant_id'].nunique()} "
        f"participants  {time.monotonic() - start:.0f}s")
    trial = run_trial(inputs.trial, reference=options.trial_reference,
                      horizons=options.trial_horizons, progress=say)
    if inputs.dfc_long is None:
        trial.notes.insert(0, f"no participant dFC outputs in {output_dir}: only the "
                              "crossover trial was analysed")
    return trial


def _tests_done(results: dict) -> bool:
    """Whether any test ran (normality checks do not count)."""
    return any(r["test"] != "Shapiro-Wilk" and not str(r["note"]).startswith("skipped")
               for r in results["stats"].to_dict(orient="records"))


def _require_a_test(tables: tb.AnalysisTables, results: dict, gdir: Path) -> None:
    """Refuse a run in which every test was skipped (normality checks do not count)."""
    if _tests_done(results):
        return
    subj, gcol = tables.subjects, tables.roles["group"]
    counts = subj[gcol].value_counts() if len(subj) else pd.Series(dtype=int)
    groups = ", ".join(f"{g} {int(counts.get(g, 0))}" for g in tables.roles["labels"])
    lines = [f"no statistical test could be computed from {len(subj)} participants "
             f"({groups}), so {gdir} was not written (a previous one is kept); every test "
             "was skipped:"]
    lines += [f"  {s['test']}" + (f" of {s['variable']}" if s["variable"] else "")
              + (f" ({s['contrast']})" if s["contrast"] else "") + f": {s['reason']}"
              for s in results["skipped"]]
    excl = tables.exclusions
    if len(excl):
        first = excl.iloc[0]
        where = first["file"] if isinstance(first["file"], str) and first["file"] else \
            first["participant_id"]
        lines.append(f"  {len(excl)} exclusion(s), e.g. {where} ({first['scope']}): "
                     f"{first['reason']}")
    lines.append("  -> add participants, or give the options the skipped tests need")
    raise InputError("\n".join(lines))


def _write_outputs(gdir: Path, tables: tb.AnalysisTables | None, results: dict | None,
                   options: _GroupOptionsLike, random_seed: int | None,
                   descriptions: Mapping[str, str],
                   trial: TrialResults | None = None) -> dict[str, Path]:
    """Every group table, the report and ``group_results.json`` in ``gdir``."""
    out = write_trial_tables(gdir, trial) if trial is not None else {}
    if tables is not None and results is not None:
        out.update(_write_imaging(gdir, tables, results, options, descriptions))
    out["report"] = build_group_report(gdir, tables, results, options, random_seed=random_seed,
                                       trial=trial)
    out["results"] = gdir / GROUP_FILES["results"]
    write_json(out["results"], _summary(tables, results, options, random_seed, out, trial))
    return out


def _write_imaging(gdir: Path, tables: tb.AnalysisTables, results: dict,
                   options: _GroupOptionsLike,
                   descriptions: Mapping[str, str]) -> dict[str, Path]:
    """The imaging analysis' tables."""
    out = {}
    pair = "-".join(options.pair)
    out["group_dfc"] = gdir / GROUP_FILES["group_dfc"]
    write_tsv(out["group_dfc"], tables.runs,
              f"One row per included run: phenotype columns used and the {pair} dcc_sd",
              extra={**descriptions, "dcc_sd": f"SD over time of the DCC series of {pair}"})
    out["stats"] = gdir / GROUP_FILES["stats"]
    write_tsv(out["stats"], results["stats"][STATS_COLUMNS], "One row per statistical test")
    if results["mediation"] is not None:
        out["mediation"] = gdir / GROUP_FILES["mediation"]
        write_tsv(out["mediation"], results["mediation"],
                  "Mediation X -> M -> Y, PROCESS model 4 (patients)")
    if len(results["prediction"]):
        out["prediction"] = gdir / GROUP_FILES["prediction"]
        write_tsv(out["prediction"], results["prediction"],
                  "Leave-one-out logistic prediction of responder status")
        out["prediction_scores"] = gdir / GROUP_FILES["prediction_scores"]
        write_tsv(out["prediction_scores"], results["prediction_scores"],
                  "Held-out predicted probabilities per patient and model")
    out["exclusions"] = gdir / GROUP_FILES["exclusions"]
    write_tsv(out["exclusions"], tables.exclusions, "Every excluded run or participant")
    out["descriptives"] = gdir / GROUP_FILES["descriptives"]
    write_tsv(out["descriptives"], results["descriptives"], "Descriptive statistics by group")
    return out


def _summary(tables, results, options, random_seed, out, trial=None):
    opts = {k: getattr(options, k) for k in (
        "group_column", "control_label", "responder_label", "nonresponder_label", "outcome",
        "predictor", "covariates", "compare_columns", "relief_from", "responder_threshold",
        "tsp_columns", "max_mean_fd", "n_boot", "all_pairs", "pair", "trial_reference",
        "trial_horizons", "trial_days") if hasattr(options, k)}
    head = {
        "GeneratedBy": {"Name": "bids_dfc", "Version": __version__},
        "software": software_versions("numpy", "pandas", "scipy", "statsmodels"),
        "options": opts, "random_seed": random_seed,
        "files": {k: str(Path(v).relative_to(Path(out["results"]).parent))
                  for k, v in out.items()},
        "trial": trial_summary(trial) if trial is not None else None,
    }
    if tables is None:
        return {**head, "imaging": None}
    subj = tables.subjects
    return {
        **head, "roles": tables.roles,
        "notes": tables.notes,
        "n_by_group": subj[tables.roles["group"]].value_counts().to_dict(),
        "n_runs": len(tables.runs), "n_participants": len(subj),
        "descriptives": results["descriptives"], "stats": results["stats"],
        "mediation": results["mediation"] if results["mediation"] is not None else [],
        "prediction": results["prediction"], "prediction_scores": results["prediction_scores"],
        "skipped": results["skipped"], "exclusions": tables.exclusions,
    }
