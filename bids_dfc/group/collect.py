"""Read the group level's inputs: every participant dFC table of the output dataset, and the
phenotype of the raw dataset (participants.tsv + phenotype/*.tsv)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bids_dfc.derivatives import OUTPUT_NAMES
from bids_dfc.errors import InputError
from bids_dfc.group.trial_inputs import TRIAL_INPUTS
from bids_dfc.group.validate import check_dfc_files
from bids_dfc.stats import table as tb


def _read_tsv(path, source):
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                            na_values=["n/a", "NA", ""])
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: not a readable tab-separated table ({exc})") from exc
    frame.columns = [c.strip() for c in frame.columns]
    frame["_line"] = np.arange(len(frame)) + 2
    return frame


def dfc_files(output_dir: str | os.PathLike) -> list[Path]:
    """Every participant ``*_seg-seeds_dfc.tsv`` under ``output_dir`` (sorted)."""
    pattern = "sub-*/**/*" + OUTPUT_NAMES["seed_dfc"].pattern()
    return sorted(p for p in Path(output_dir).glob(pattern) if p.is_file())


def collect_dfc(output_dir: str | os.PathLike, *, pair: Sequence[str],
                fd_needed_by: str | None = None) -> pd.DataFrame:
    """Read every participant ``*_seg-seeds_dfc.tsv`` under ``output_dir`` into one long table.

    Every file is checked first (:func:`bids_dfc.group.validate.check_dfc_files`: complete,
    the participant level's columns and types, one row per seed pair with ``pair`` among
    them, one file per run; ``mean_fd`` required when ``fd_needed_by`` names what needs it).
    Entities (sub, ses, task, acq, run) are parsed from the file names. Raises
    :class:`InputError` when no file exists (run the participant level first) or listing
    every problem of every file.
    """
    output_dir = Path(output_dir)
    files = dfc_files(output_dir)
    if not files:
        pattern = "sub-*/**/*" + OUTPUT_NAMES["seed_dfc"].pattern()
        raise InputError(
            f"no participant outputs ({pattern}) found in {output_dir}; run the "
            "participant level first: bids-dfc <bids_dir> <output_dir> participant")
    frames = []
    for table in check_dfc_files(output_dir, files, pair=pair, fd_needed_by=fd_needed_by):
        frame, ent = table.frame, table.entities
        frame.insert(0, "participant_id", f"sub-{ent['sub']}")
        frame.insert(1, "session_id", f"ses-{ent['ses']}" if "ses" in ent else np.nan)
        frame.insert(2, "task", ent.get("task", np.nan))
        frame.insert(3, "acq", ent.get("acq", np.nan))
        frame.insert(4, "run", ent.get("run", np.nan))
        frame.insert(5, "file", table.rel)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_phenotype(bids_dir: str | os.PathLike,
                   ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, str]]:
    """participants.tsv and phenotype/*.tsv of a BIDS dataset (strings, with ``_line``);
    the crossover trial's files (one row per participant and period or day,
    :data:`~bids_dfc.group.trial_inputs.TRIAL_INPUTS`) are read by the trial analysis
    instead, their sidecars' column descriptions are kept.

    Returns
    -------
    participants : pandas.DataFrame
    phenotypes : dict
        ``"phenotype/<name>.tsv" -> DataFrame``.
    descriptions : dict
        Column -> description from the JSON sidecars.
    """
    bids_dir = Path(bids_dir)
    ppath = bids_dir / "participants.tsv"
    if not ppath.is_file():
        raise InputError(f"{ppath} not found: the group level needs participants.tsv "
                         "(participant_id plus the group and phenotype columns)")
    participants = tb.load_phenotype(_read_tsv(ppath, "participants.tsv"), "participants.tsv")
    phenotypes, descriptions = {}, {}
    sidecars = [ppath.with_suffix(".json")]
    for path in sorted((bids_dir / "phenotype").glob("*.tsv")):
        name = f"phenotype/{path.name}"
        sidecars.append(path.with_suffix(".json"))
        if name in TRIAL_INPUTS.values():
            continue
        phenotypes[name] = tb.load_phenotype(_read_tsv(path, name), name)
    for side in sidecars:
        if side.is_file():
            try:
                meta = json.loads(side.read_text())
            except json.JSONDecodeError as exc:
                raise InputError(f"{side}: invalid JSON ({exc})") from exc
            for col, val in meta.items():
                if isinstance(val, dict) and "Description" in val:
                    descriptions[col] = str(val["Description"])
    return participants, phenotypes, descriptions
