"""Join per-run dFC summaries with the phenotype and list every exclusion (pure pandas).

The workflow (:mod:`bids_dfc.group.run`) reads the files; this module decides which runs
and participants enter the statistics, derives the requested variables and records the reason
for each exclusion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from bids_dfc.errors import InputError
from bids_dfc.stats import phenotype as ph

__all__ = ["AnalysisTables", "EXCLUSION_COLUMNS", "assemble", "check_unique", "load_phenotype"]

EXCLUSION_COLUMNS = ["participant_id", "session_id", "file", "scope", "reason"]
ENTITY_COLUMNS = ["participant_id", "session_id", "task", "acq", "run", "file"]


@dataclass
class AnalysisTables:
    """Tables the statistics run on.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per included run: entities, phenotype columns used, ``dcc_sd``, ``mean_fd``.
    subjects : pandas.DataFrame
        One row per included participant (runs and sessions averaged).
    pairs : pandas.DataFrame
        Participant x seed pair ``dcc_sd`` (runs averaged), columns ``"A-B"``.
    exclusions : pandas.DataFrame
        ``participant_id, session_id, file, scope, reason``.
    roles : dict
        Column roles: ``group, outcome, predictor, covariates, responder, dfc, labels,
        compare`` (the ``--compare-columns``).
    notes : list of str
        Things the report should say (derived variables, relabelled groups).
    """

    runs: pd.DataFrame
    subjects: pd.DataFrame
    pairs: pd.DataFrame
    exclusions: pd.DataFrame
    roles: dict
    notes: list = field(default_factory=list)


def _with_prefix(ids, prefix):
    ids = ids.astype("string").str.strip()
    return ids.where(ids.isna() | ids.str.startswith(prefix), prefix + ids).astype(object)


def check_unique(frame: pd.DataFrame, keys: list[str], source: str) -> None:
    """Raise :class:`InputError` on duplicate key rows (quotes the file lines)."""
    dup = frame.duplicated(subset=keys, keep=False)
    if dup.any():
        first = frame.loc[dup, keys].iloc[0].tolist()
        lines = frame.loc[dup & (frame[keys] == first).all(axis=1), "_line"].tolist()
        raise InputError(
            f"{source}: duplicate rows for {', '.join(f'{k}={v}' for k, v in zip(keys, first))} "
            f"(lines {', '.join(str(int(x)) for x in lines)}); keep one row per "
            f"{' and '.join(keys)}")


def load_phenotype(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Normalise one phenotype table (read as strings with a ``_line`` column).

    Adds the ``sub-``/``ses-`` prefixes where missing and rejects duplicates.
    """
    if "participant_id" not in frame.columns:
        raise InputError(f"{source}: no participant_id column; columns: {', '.join(frame.columns)}")
    frame = frame.copy()
    frame["participant_id"] = _with_prefix(frame["participant_id"], "sub-")
    keys = ["participant_id"]
    if "session_id" in frame.columns:
        frame["session_id"] = _with_prefix(frame["session_id"], "ses-")
        keys.append("session_id")
    check_unique(frame, keys, source)
    return frame


def _looks_numeric(frame, col):
    raw = frame[col].dropna().astype(str).str.strip()
    raw = raw[raw != ""]
    parsed = pd.to_numeric(raw, errors="coerce")
    return parsed.notna().mean() >= 0.5 if len(raw) else True


class GroupOptionsLike(Protocol):
    """The group options :func:`assemble` reads (e.g. :class:`bids_dfc.config.GroupOptions`).

    ``compare_columns`` is optional (read with ``getattr``; none compared when absent).
    """

    @property
    def group_column(self) -> str: ...
    @property
    def control_label(self) -> str: ...
    @property
    def responder_label(self) -> str: ...
    @property
    def nonresponder_label(self) -> str: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def predictor(self) -> str | None: ...
    @property
    def covariates(self) -> Sequence[str] | None: ...
    @property
    def relief_from(self) -> Sequence[str] | None: ...
    @property
    def responder_threshold(self) -> float: ...
    @property
    def tsp_columns(self) -> str | Sequence[str] | None: ...
    @property
    def max_mean_fd(self) -> float | None: ...
    @property
    def pair(self) -> Sequence[str]: ...


def assemble(dfc_long: pd.DataFrame, participants: pd.DataFrame,
             phenotypes: Mapping[str, pd.DataFrame],
             options: GroupOptionsLike) -> AnalysisTables:
    """Build the analysis tables.

    Parameters
    ----------
    dfc_long : pandas.DataFrame
        Every row of every ``*_dfc.tsv``: :data:`ENTITY_COLUMNS` plus the file's columns.
    participants : pandas.DataFrame
        participants.tsv after :func:`load_phenotype`.
    phenotypes : dict
        ``source name -> table`` after :func:`load_phenotype` (phenotype/*.tsv).
    options : object
        Group options (``group_column``, labels, ``outcome``, ``predictor``, ``covariates``,
        ``compare_columns``, ``relief_from``, ``responder_threshold``, ``tsp_columns``,
        ``max_mean_fd``, ``pair``). ``compare_columns`` may be absent (none compared).

    Returns
    -------
    AnalysisTables
    """
    tables = {"participants.tsv": participants, **phenotypes}
    available, owner = _column_owners(tables)
    numeric, tsp_cols, covariates, compare = _numeric_columns(tables, available, owner, options)
    cleaned = _coerce_tables(tables, numeric)
    excl: list[tuple] = []
    notes: list[str] = []
    runs = _qc_exclusions(dfc_long, options, excl)
    runs = _join_phenotype(dfc_long, runs, cleaned, excl)
    runs, outcome, predictor, offered = _derive_variables(
        runs, available, owner, options, tsp_cols, compare, notes)
    runs, gcol, labels = _assign_groups(runs, options, outcome, offered, notes, excl)
    roles = {"group": gcol, "outcome": outcome, "predictor": predictor,
             "covariates": covariates, "responder": "responder" if outcome else None,
             "dfc": "dcc_sd", "labels": labels, "compare": compare}
    runs = _select_columns(runs, roles, options, tsp_cols)
    subjects, pairs = _per_participant(dfc_long, runs, roles, excl)
    exclusions = pd.DataFrame(excl, columns=EXCLUSION_COLUMNS)
    return AnalysisTables(runs=runs.reset_index(drop=True), subjects=subjects, pairs=pairs,
                          exclusions=exclusions, roles=roles, notes=notes)


def _column_owners(tables):
    """Every phenotype column name, and the table each non-key column comes from.

    Raises :class:`InputError` when two tables have a column of the same name.
    """
    available = [c for t in tables.values() for c in t.columns if c != "_line"]
    owner: dict[str, str] = {}
    for name, table in tables.items():
        for col in table.columns:
            if col in ("participant_id", "session_id", "_line"):
                continue
            if col in owner:
                raise InputError(f"column {col!r} appears in both {owner[col]} and {name}; "
                                 "rename one of them")
            owner[col] = name
    return available, owner


def _numeric_columns(tables, available, owner, options):
    """Columns that must be numeric; checks the named columns exist.

    Returns ``numeric``, the expanded TSP rating columns, the covariates and the
    (deduplicated) compare columns.
    """
    numeric = [c for c in (options.outcome, options.predictor) if c in owner]
    if options.relief_from:
        ph.require_columns(options.relief_from, available, what="--relief-from")
        numeric += list(options.relief_from)
    tsp_cols = (ph.expand_columns(options.tsp_columns, available)
                if options.tsp_columns else [])
    numeric += tsp_cols
    covariates = list(options.covariates or [])
    ph.require_columns([c for c in covariates if c != "mean_fd"], available, what="--covariates")
    for c in covariates:
        if c in owner and _looks_numeric(tables[owner[c]], c):
            numeric.append(c)
    compare = list(dict.fromkeys(getattr(options, "compare_columns", None) or []))
    numeric += [c for c in compare if c in owner]
    return numeric, tsp_cols, covariates, compare


def _coerce_tables(tables, numeric):
    """Each table with its ``numeric`` columns converted to float and ``_line`` dropped."""
    cleaned = {}
    for name, table in tables.items():
        cols = [c for c in numeric if c in table.columns]
        table = ph.coerce_numeric(table, cols, sources={c: name for c in cols})
        cleaned[name] = table.drop(columns="_line")
    return cleaned


def _qc_exclusions(dfc_long, options, excl):
    """Primary-pair rows of the runs passing QC; every excluded run is added to ``excl``."""
    pair_a, pair_b = options.pair
    files = dfc_long.drop_duplicates("file")[ENTITY_COLUMNS]
    prim = dfc_long[(dfc_long["seed_a"] == pair_a) & (dfc_long["seed_b"] == pair_b)]
    for f in sorted(set(files["file"]) - set(prim["file"])):
        row = files[files["file"] == f].iloc[0]
        excl.append((row.participant_id, row.session_id, f, "run",
                     f"no {pair_a}-{pair_b} row in the dFC file"))
    qc_fail = {}
    for _, r in dfc_long.drop_duplicates("file").iterrows():
        reason = None
        if options.max_mean_fd is not None and np.isfinite(r.get("mean_fd", np.nan)) \
                and r["mean_fd"] > options.max_mean_fd:
            reason = f"failed QC: mean FD {r['mean_fd']:.3f} mm > {options.max_mean_fd:g} mm"
        if reason:
            qc_fail[r["file"]] = reason
    for _, r in prim.iterrows():
        reason = qc_fail.get(r["file"])
        if reason is None and "converged" in prim.columns and \
                str(r["converged"]).strip().lower() in ("false", "0", "no"):
            reason = "DCC estimation did not converge"
        if reason is None and not np.isfinite(r["dcc_sd"]):
            reason = "dcc_sd is missing (n/a)"
        if reason:
            qc_fail.setdefault(r["file"], reason)
            excl.append((r.participant_id, r.session_id, r["file"], "run", reason))
    runs = prim[~prim["file"].isin(qc_fail)].copy()
    return runs[ENTITY_COLUMNS + ["dcc_sd"] + (["mean_fd"] if "mean_fd" in runs else [])]


def _join_phenotype(dfc_long, runs, cleaned, excl):
    """Runs of listed participants joined with every phenotype table (participant-level
    exclusions added to ``excl``)."""
    known = set(cleaned["participants.tsv"]["participant_id"])
    for pid in sorted(set(dfc_long["participant_id"]) - known):
        excl.append((pid, np.nan, "", "participant",
                     "missing phenotype: not listed in participants.tsv"))
    for pid in sorted(known - set(dfc_long["participant_id"])):
        excl.append((pid, np.nan, "", "participant",
                     "missing dFC: no *_dfc.tsv output (run the participant level for it)"))
    ran = set(dfc_long["participant_id"]) & known
    for pid in sorted(ran - set(runs["participant_id"])):
        excl.append((pid, np.nan, "", "participant", "every run excluded (see run rows)"))
    runs = runs[runs["participant_id"].isin(known)]
    for table in cleaned.values():
        keys = ["participant_id"] + (["session_id"] if "session_id" in table.columns else [])
        runs = runs.merge(table, on=keys, how="left")
    return runs


def _derive_variables(runs, available, owner, options, tsp_cols, compare, notes):
    """Add ``relief_pct``, ``tsp`` and ``responder`` as requested; check the named columns.

    Returns the runs, the outcome and predictor columns (the derived ones when not named)
    and the columns offered to the options.
    """
    outcome, predictor = options.outcome, options.predictor
    for derived, wanted in (("relief_pct", options.relief_from), ("tsp", tsp_cols)):
        if wanted and derived in owner:
            raise InputError(f"{owner[derived]} already has a column {derived!r}, which the "
                             f"derived {derived} would replace; rename that column or drop "
                             "the option that derives it")
    if options.relief_from:
        pre, post = options.relief_from
        runs["relief_pct"] = ph.relief_percent(runs[pre], runs[post])
        notes.append(f"relief_pct = 100 x ({pre} - {post}) / {pre}")
        outcome = outcome or "relief_pct"
    if tsp_cols:
        runs["tsp"] = ph.tsp_percent(runs[tsp_cols].to_numpy())
        notes.append(f"tsp = 100 x (max - first) / first of {', '.join(tsp_cols)}")
        predictor = predictor or "tsp"
    offered = list(dict.fromkeys(
        [c for c in available if c not in ("participant_id", "session_id")]
        + [c for c in ("mean_fd", "relief_pct", "tsp") if c in runs.columns]))
    for what, col in (("--outcome", outcome), ("--predictor", predictor)):
        if col is not None:
            ph.require_columns([col], offered, what=what)
    ph.require_columns(compare, offered, what="--compare-columns")
    if outcome is not None:
        runs = ph.coerce_numeric(runs, [outcome])
        runs["responder"] = ph.responder(runs[outcome], threshold=options.responder_threshold)
    return runs, outcome, predictor, offered


def _assign_groups(runs, options, outcome, offered, notes, excl):
    """Group labels of every run (derived from the outcome where absent or invalid); runs
    of participants without a valid label are dropped (added to ``excl``).

    Returns the runs, the group column and the labels (control, non-responder, responder).
    """
    gcol = options.group_column
    labels = [options.control_label, options.nonresponder_label, options.responder_label]
    if gcol not in runs.columns:
        if outcome is None:
            ph.require_columns([gcol], offered, what="--group-column")
        resp = runs["responder"]
        runs[gcol] = np.where(resp == 1, options.responder_label,
                              np.where(resp == 0, options.nonresponder_label,
                                       options.control_label))
        notes.append(f"{gcol!r} derived: {options.responder_label} if {outcome} >= "
                     f"{options.responder_threshold:g}, {options.nonresponder_label} if below, "
                     f"{options.control_label} without ratings")
    else:
        runs[gcol] = runs[gcol].astype("string").str.strip()
        if outcome is not None:
            fill = ~runs[gcol].isin(labels) & runs["responder"].notna()
            if fill.any():
                runs.loc[fill, gcol] = np.where(runs.loc[fill, "responder"] == 1,
                                                options.responder_label,
                                                options.nonresponder_label)
                notes.append(f"{int(fill.sum())} run rows with a {gcol!r} value outside "
                             f"{labels} labelled from {outcome} >= {options.responder_threshold:g}")
    bad_group = ~runs[gcol].isin(labels)
    for pid, val in runs.loc[bad_group, ["participant_id", gcol]].drop_duplicates(
            "participant_id").itertuples(index=False):
        excl.append((pid, np.nan, "", "participant",
                     f"{gcol} is {'missing' if pd.isna(val) else repr(val)}, not one of {labels}"))
    return runs[~bad_group], gcol, labels


def _select_columns(runs, roles, options, tsp_cols):
    """The entity, used phenotype, ``dcc_sd`` and ``mean_fd`` columns, sorted by run."""
    gcol, outcome, predictor = roles["group"], roles["outcome"], roles["predictor"]
    used = [c for c in ([gcol, outcome, "responder", predictor, *roles["covariates"],
                         *roles["compare"]] + list(options.relief_from or []) + tsp_cols)
            if c and c in runs]
    used = list(dict.fromkeys(used))
    runs = runs[[c for c in ENTITY_COLUMNS if c in runs] + used + ["dcc_sd"]
                + (["mean_fd"] if "mean_fd" in runs and "mean_fd" not in used else [])]
    return runs.sort_values(["participant_id", "session_id", "task", "run"],
                            na_position="first")


def _per_participant(dfc_long, runs, roles, excl):
    """One row per participant (runs and sessions averaged) and the participant x pair
    ``dcc_sd`` table; missing values of the tested variables are added to ``excl``."""
    gcol, outcome, labels = roles["group"], roles["outcome"], roles["labels"]
    num = [c for c in runs.columns if c not in ENTITY_COLUMNS
           and pd.api.types.is_numeric_dtype(runs[c])]
    agg = {c: ("mean" if c in num else "first") for c in runs.columns
           if c not in ("participant_id", "session_id", "task", "acq", "run", "file")}
    subjects = runs.groupby("participant_id", sort=True).agg(agg).reset_index()
    subjects.insert(1, "n_runs", runs.groupby("participant_id", sort=True).size().to_numpy())
    patients = subjects[gcol].isin(labels[1:])
    tested = (outcome, roles["predictor"], *roles["covariates"], *roles["compare"])
    for col in list(dict.fromkeys(c for c in tested if c)):
        # controls have no outcome by design; every other missing value loses a subject
        who = patients if col == outcome else subjects[gcol].notna()
        for pid in subjects.loc[who & subjects[col].isna(), "participant_id"]:
            excl.append((pid, np.nan, "", f"tests using {col}", f"{col} is missing"))
    pr = dfc_long[dfc_long["file"].isin(runs["file"])].copy()
    pr["pair"] = pr["seed_a"].astype(str) + "-" + pr["seed_b"].astype(str)
    pairs = pr.pivot_table(index="participant_id", columns="pair", values="dcc_sd",
                           aggfunc="mean")
    return subjects, pairs
