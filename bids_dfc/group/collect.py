"""Read the group level's inputs: every participant dFC table of the output dataset, and the
phenotype of the raw dataset (participants.tsv + phenotype/*.tsv)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bids_dfc.derivatives import OUTPUT_NAMES, parse_entities
from bids_dfc.errors import InputError
from bids_dfc.stats import table as tb

#: the entities of a participant dFC file that identify its run
_RUN_ENTITIES = ("sub", "ses", "task", "acq", "run")
_REQUIRED = ("seed_a", "seed_b", "dcc_sd")


def _read_tsv(path, source):
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                            na_values=["n/a", "NA", ""])
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: not a readable tab-separated table ({exc})") from exc
    frame.columns = [c.strip() for c in frame.columns]
    frame["_line"] = np.arange(len(frame)) + 2
    return frame


def collect_dfc(output_dir: str | os.PathLike) -> pd.DataFrame:
    """Read every participant ``*_seg-seeds_dfc.tsv`` under ``output_dir`` into one long table.

    Entities (sub, ses, task, acq, run) are parsed from the file names. Raises
    :class:`InputError` when no file exists (run the participant level first) or a file
    lacks the required columns.
    """
    output_dir = Path(output_dir)
    pattern = "sub-*/**/*" + OUTPUT_NAMES["seed_dfc"].pattern()
    files = sorted(p for p in output_dir.glob(pattern) if p.is_file())
    if not files:
        raise InputError(
            f"no participant outputs ({pattern}) found in {output_dir}; run the "
            "participant level first: bids-dfc <bids_dir> <output_dir> participant")
    frames = []
    for path in files:
        rel = str(path.relative_to(output_dir))
        ent = {k: v for k, v in parse_entities(path).items() if k in _RUN_ENTITIES}
        frame = pd.read_csv(path, sep="\t", na_values=["n/a"])
        missing = [c for c in _REQUIRED if c not in frame.columns]
        if missing or "sub" not in ent:
            raise InputError(f"{rel}: not a bids_dfc dFC table (missing columns "
                             f"{', '.join(missing) or 'none'}, entities {ent})")
        for col in ("dcc_sd", "mean_fd"):
            if col in frame.columns:
                num = pd.to_numeric(frame[col], errors="coerce")
                bad = num.isna() & frame[col].notna()
                if bad.any():
                    raise InputError(f"{rel}, line {int(np.flatnonzero(bad)[0]) + 2}, column "
                                     f"{col!r}: {frame[col][bad].iloc[0]!r} is not a number")
                frame[col] = num
        frame.insert(0, "participant_id", f"sub-{ent['sub']}")
        frame.insert(1, "session_id", f"ses-{ent['ses']}" if "ses" in ent else np.nan)
        frame.insert(2, "task", ent.get("task", np.nan))
        frame.insert(3, "acq", ent.get("acq", np.nan))
        frame.insert(4, "run", ent.get("run", np.nan))
        frame.insert(5, "file", rel)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_phenotype(bids_dir: str | os.PathLike,
                   ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, str]]:
    """participants.tsv and phenotype/*.tsv of a BIDS dataset (strings, with ``_line``).

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
        phenotypes[name] = tb.load_phenotype(_read_tsv(path, name), name)
        sidecars.append(path.with_suffix(".json"))
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
