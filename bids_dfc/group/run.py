"""Group level: collect participant dFC outputs, join the phenotype, run and write statistics.

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
from pathlib import Path
from typing import Protocol

import pandas as pd

from bids_dfc import __version__
from bids_dfc.derivatives import GROUP_FILES, software_versions
from bids_dfc.errors import BidsDfcError, InputError
from bids_dfc.group.collect import collect_dfc, read_phenotype
from bids_dfc.io import atomic_write, dir_replacement, remove_stale_temp_dirs, write_json
from bids_dfc.reports.group import build_group_report
from bids_dfc.stats import table as tb
from bids_dfc.stats.analysis import run_group_statistics
from bids_dfc.stats.tests_classic import STATS_COLUMNS

__all__ = ["run_group_level", "write_tsv"]

PathLike = str | os.PathLike


class _GroupOptionsLike(tb.GroupOptionsLike, Protocol):
    """What :func:`run_group_level` reads of ``bids_dfc.config.GroupOptions``."""

    @property
    def n_boot(self) -> int: ...
    @property
    def all_pairs(self) -> bool: ...


SIDECARS = {
    "group_dfc": {
        "participant_id": "BIDS participant label", "session_id": "BIDS session label",
        "task": "task entity of the run", "acq": "acq entity", "run": "run entity",
        "file": "participant-level dFC file (relative to output_dir)",
        "responder": "1 if the outcome >= the responder threshold, 0 if below",
        "relief_pct": "pain relief %, 100 x (pre - post) / pre",
        "tsp": "temporal summation of pain, 100 x (max - first) / first rating",
        "dcc_sd": "SD over time of the DCC correlation of the primary seed pair",
        "mean_fd": "mean framewise displacement of the run (mm)",
    },
    "stats": {
        "test": "exact test performed", "variable": "dependent variable (or x of a correlation)",
        "contrast": "groups compared, pair (second - first), or 'x ~ y'",
        "statistic": "test statistic (W, F, q, H, U, rho, a*b or AUC, see test)",
        "df": "degrees of freedom ('num, den' for F)", "p": "two-sided p-value (unadjusted)",
        "effect_size": "effect size (type in effect_size_type)",
        "ci_low": "lower bound of the 95 % CI of effect_size",
        "ci_high": "upper bound of the 95 % CI of effect_size", "n": "subjects in the test",
        "effect_size_type": "name of the effect size",
        "p_adj": "adjusted p (method in p_adj_method)", "p_adj_method": "adjustment",
        "note": "population, settings or 'skipped: <reason>'",
    },
    "mediation": {
        "path": "a (X->M), b (M->Y | X), c (total X->Y), c_prime (direct), indirect (a*b)",
        "x": "predictor X", "m": "mediator M", "y": "outcome Y",
        "estimate": "unstandardised coefficient", "se": "OLS SE, bootstrap SD for indirect",
        "statistic": "t value", "df": "residual df", "p": "two-sided t-test p",
        "ci_low": "95 % CI low (OLS t interval; bootstrap percentile for indirect)",
        "ci_high": "95 % CI high", "ci_bc_low": "bias-corrected bootstrap CI low (indirect)",
        "ci_bc_high": "bias-corrected bootstrap CI high (indirect)",
        "ci_method": "CI method", "n": "patients", "n_boot": "bootstrap resamples",
        "covariates": "covariates in the M and Y models",
    },
    "prediction": {
        "model": "feature set", "features": "feature columns", "n": "patients",
        "n_positive": "responders", "auc": "leave-one-out ROC AUC",
        "auc_ci_low": "stratified bootstrap 95 % CI low", "auc_ci_high": "CI high",
        "accuracy": "accuracy at probability 0.5", "sensitivity": "at probability 0.5",
        "specificity": "at probability 0.5", "l2": "ridge penalty on standardised features",
    },
    "prediction_scores": {
        "participant_id": "BIDS participant label", "model": "feature set",
        "observed": "1 responder, 0 non-responder",
        "probability": "held-out (leave-one-out) predicted probability of response",
    },
    "exclusions": {
        "participant_id": "BIDS participant label", "session_id": "session (if any)",
        "file": "run file concerned (if any)",
        "scope": "run, participant, or the tests that lost the subject",
        "reason": "why the subject or run was excluded",
    },
    "descriptives": {
        "variable": "variable", "group": "group label", "n": "subjects",
        "mean": "mean", "sd": "standard deviation (ddof 1)", "median": "median",
        "q1": "25th percentile", "q3": "75th percentile",
    },
}


def write_tsv(path: PathLike, frame: pd.DataFrame, description: str,
              extra: Mapping[str, str] | None = None) -> None:
    """Atomic TSV (``n/a`` for missing) plus a JSON sidecar describing every column."""
    path = Path(path)
    atomic_write(path, frame.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.10g",
                                  lineterminator="\n"))
    known = {**SIDECARS.get(path.stem, {}), **(extra or {})}
    side: dict[str, object] = {"Description": description}
    side.update({c: {"Description": known.get(c, "phenotype column (see its BIDS sidecar)")}
                 for c in frame.columns})
    write_json(path.with_suffix(".json"), side)


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
    say("group: checking the participant dFC files and the phenotype")
    dfc_long = collect_dfc(output_dir, pair=tuple(options.pair),
                           fd_needed_by=_fd_needed_by(options))
    participants, phenotypes, descriptions = read_phenotype(bids_dir)
    tables = tb.assemble(dfc_long, participants, phenotypes, options)
    say(f"group: statistics of {len(tables.subjects)} participants ({int(options.n_boot)} "
        f"bootstrap resamples)  {time.monotonic() - start:.0f}s")
    results = run_group_statistics(tables, n_boot=int(options.n_boot), random_seed=random_seed,
                                   all_pairs=bool(options.all_pairs), pair=tuple(options.pair))
    _require_a_test(tables, results, gdir)
    say(f"group: tables, figures and report  {time.monotonic() - start:.0f}s")
    try:
        with dir_replacement(gdir) as tmp:
            out = _write_outputs(tmp, tables, results, options, random_seed, descriptions)
    except OSError as exc:
        raise BidsDfcError(
            f"writing the group outputs failed ({exc}); {gdir} was left as it was: free space "
            "or fix the permissions of output_dir and rerun") from exc
    return {key: gdir / Path(path).relative_to(tmp) for key, path in out.items()}


def _fd_needed_by(options: _GroupOptionsLike) -> str | None:
    """What needs the participant files' ``mean_fd`` (FD QC, a covariate...), if anything."""
    if options.max_mean_fd is not None:
        return f"FD QC (--max-mean-fd {options.max_mean_fd:g})"
    for option in ("covariates", "compare_columns"):
        if "mean_fd" in (getattr(options, option, None) or []):
            return f"--{option.replace('_', '-')} mean_fd"
    return None


def _require_a_test(tables: tb.AnalysisTables, results: dict, gdir: Path) -> None:
    """Refuse a run in which every test was skipped (normality checks do not count)."""
    done = [r for r in results["stats"].to_dict(orient="records")
            if r["test"] != "Shapiro-Wilk" and not str(r["note"]).startswith("skipped")]
    if done:
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


def _write_outputs(gdir: Path, tables: tb.AnalysisTables, results: dict,
                   options: _GroupOptionsLike, random_seed: int | None,
                   descriptions: Mapping[str, str]) -> dict[str, Path]:
    """Every group table, the report and ``group_results.json`` in ``gdir``."""
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
    out["report"] = build_group_report(gdir, tables, results, options, random_seed=random_seed)
    out["results"] = gdir / GROUP_FILES["results"]
    write_json(out["results"], _summary(tables, results, options, random_seed, out))
    return out


def _summary(tables, results, options, random_seed, out):
    opts = {k: getattr(options, k) for k in (
        "group_column", "control_label", "responder_label", "nonresponder_label", "outcome",
        "predictor", "covariates", "compare_columns", "relief_from", "responder_threshold",
        "tsp_columns", "max_mean_fd", "n_boot", "all_pairs", "pair") if hasattr(options, k)}
    subj = tables.subjects
    return {
        "GeneratedBy": {"Name": "bids_dfc", "Version": __version__},
        "software": software_versions("numpy", "pandas", "scipy", "statsmodels"),
        "options": opts, "random_seed": random_seed, "roles": tables.roles,
        "notes": tables.notes,
        "n_by_group": subj[tables.roles["group"]].value_counts().to_dict(),
        "n_runs": len(tables.runs), "n_participants": len(subj),
        "descriptives": results["descriptives"], "stats": results["stats"],
        "mediation": results["mediation"] if results["mediation"] is not None else [],
        "prediction": results["prediction"], "prediction_scores": results["prediction_scores"],
        "skipped": results["skipped"], "exclusions": tables.exclusions,
        "files": {k: str(Path(v).name) for k, v in out.items()},
    }
