"""Denoising strategies on fMRIPrep's confounds table (nipype-free).

The strategies carry the names the field uses for them (Ciric et al. 2017; XCP-D and
nilearn's ``load_confounds`` use the same vocabulary). :func:`load_strategy` turns one
``desc-confounds_timeseries.tsv`` (``_regressors.tsv`` before fMRIPrep 20.2) and its JSON
sidecar into the regressor matrix that :func:`bids_dfc.preproc.signal.denoise` filters
together with the data and regresses out (Lindquist et al. 2019), the FD censoring vector
and a description of what was chosen. :func:`check_columns` says, in one plain line per
missing group, why a file cannot serve a strategy.

Column names by fMRIPrep version:

* 1.2-1.3: ``a_comp_cor_00..05`` of a combined WM+CSF mask, no ``Mask`` metadata;
* 1.4-20.2: ``a_comp_cor_NN`` of three masks numbered one after another (combined, CSF,
  WM), each component's mask in the JSON (``Mask``: "combined", "CSF", "WM");
* 21.0 and later: ``a_comp_cor_*`` (combined), ``c_comp_cor_*`` (CSF), ``w_comp_cor_*`` (WM).

Every version keeps the components that explain 50 % of a mask's variance by default,
numbered by decreasing variance; the JSON lists its keys alphabetically
(``a_comp_cor_100`` before ``a_comp_cor_11``), so components are ordered here by number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bids_dfc.errors import InputError
from bids_dfc.preproc.signal import censor_mask

MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
TISSUE = ("white_matter", "csf", "global_signal")
#: the Friston/Satterthwaite expansion of a base column: itself, its backward difference,
#: and the squares of both (fMRIPrep's own suffixes)
EXPANSION = ("", "_derivative1", "_power2", "_derivative1_power2")
_COMPONENT = re.compile(r"^([acw])_comp_cor_(\d+)$")


@dataclass(frozen=True)
class Strategy:
    """One denoising strategy: what it regresses, from which BOLD series."""

    name: str
    #: the column groups it needs, in regressor order
    parts: tuple[str, ...]
    #: what is regressed, in plain words (docs, methods text)
    regresses: str
    #: ``desc-`` of the fMRIPrep BOLD series to denoise
    bold_desc: str
    #: bibliography keys (``bids_dfc/data/references.json``) of the method
    citations: tuple[str, ...]


_ACOMPCOR = ("aCompCor components of the eroded white-matter and CSF masks, taken "
             "separately, {n} per mask (Behzadi et al. 2007; Muschelli et al. 2014), with "
             "fMRIPrep's discrete-cosine drift regressors, after whose high-pass the "
             "components were computed")
_P24 = ("the 6 head-motion parameters, their temporal derivatives and the squares of "
        "both (24 regressors; Friston et al. 1996; Satterthwaite et al. 2013)")
STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("acompcor", ("compcor", "cosine"), _ACOMPCOR, "preproc",
             ("behzadi2007", "muschelli2014")),
    Strategy("24P", ("motion24",), _P24, "preproc", ("friston1996", "satterthwaite2013")),
    Strategy("36P", ("motion24", "tissue36"),
             _P24[:-1] + "), and the mean white-matter, CSF and global signals with their "
             "derivatives and the squares of all (36 regressors; Satterthwaite et al. "
             "2013; Ciric et al. 2017)", "preproc",
             ("friston1996", "satterthwaite2013", "ciric2017")),
    Strategy("acompcor+24P", ("compcor", "cosine", "motion24"),
             _ACOMPCOR + ", and " + _P24, "preproc",
             ("behzadi2007", "muschelli2014", "friston1996", "satterthwaite2013")),
    Strategy("aroma", ("aroma", "tissue2"),
             "the mean white-matter and CSF signals, from the BOLD series that fMRIPrep "
             "(1.x-23.0, --use-aroma) denoised non-aggressively with ICA-AROMA "
             "(desc-smoothAROMAnonaggr; Pruim et al. 2015; Ciric et al. 2017); the "
             "aroma_motion_* components are already removed from it and are not "
             "regressed again", "smoothAROMAnonaggr", ("pruim2015", "ciric2017")),
)}


def read_confounds(confounds_tsv: str | Path) -> tuple[pd.DataFrame, dict | None]:
    """The confounds table (``n/a`` as NaN) and its JSON sidecar (None when absent)."""
    path = Path(confounds_tsv)
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path.name}: cannot read the confounds table ({err})") from err
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return table, None
    try:
        return table, json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{sidecar.name}: cannot read the confounds sidecar ({err})") from err


def _components(columns: Iterable[str], prefix: str) -> list[str]:
    """``<prefix>_comp_cor_NN`` columns present, by component number."""
    found = [(int(m.group(2)), c) for c in columns
             if (m := _COMPONENT.match(c)) and m.group(1) == prefix]
    return [c for _, c in sorted(found)]


def _by_mask(table: pd.DataFrame, meta: dict | None) -> tuple[dict[str, list[str]], str]:
    """WM and CSF component columns (all retained ones, by number) and where they came from."""
    wm, csf = _components(table.columns, "w"), _components(table.columns, "c")
    if wm or csf:
        return {"WM": wm, "CSF": csf}, "w_comp_cor_*/c_comp_cor_* (fMRIPrep >= 21.0)"
    masks: dict[str, list[str]] = {"WM": [], "CSF": []}
    for col in _components(table.columns, "a"):
        entry = (meta or {}).get(col, {})
        if entry.get("Mask") in masks and entry.get("Retained", True):
            masks[entry["Mask"]].append(col)
    return masks, "a_comp_cor_* selected by the JSON's Mask (fMRIPrep 1.4-20.2)"


def _first(cols: list[str], meta: dict | None, n: float) -> list[str]:
    """The first ``n`` components, or for 0 < n < 1 the fewest reaching that variance."""
    if n >= 1:
        return cols[:int(n)]
    for k, col in enumerate(cols):
        if (meta or {}).get(col, {}).get("CumulativeVarianceExplained", 0.0) >= n:
            return cols[:k + 1]
    return list(cols)


def _compcor_problem(table: pd.DataFrame, meta: dict | None, json_name: str) -> str | None:
    masks, _ = _by_mask(table, meta)
    if masks["WM"] and masks["CSF"]:
        return None
    if any(masks.values()):
        have, lack = ("WM", "CSF") if masks["WM"] else ("CSF", "WM")
        return f"has {have} aCompCor components but none of the {lack} mask"
    combined = _components(table.columns, "a")
    if combined and meta is None:
        return (f"has a_comp_cor_* but no sidecar {json_name} to tell their masks apart")
    if combined:
        return ("has a_comp_cor_* but the JSON gives no WM or CSF Mask for them (fMRIPrep "
                "< 1.4 computed them from one combined WM+CSF mask only)")
    return ("needs w_comp_cor_* and c_comp_cor_* (or a_comp_cor_* with Mask metadata in "
            "the JSON); none found")


def _missing(table: pd.DataFrame, names: Iterable[str]) -> list[str]:
    return [c for c in names if c not in table.columns]


def _part_problem(part: str, table: pd.DataFrame, meta: dict | None,
                  json_name: str) -> str | None:
    """Why ``table`` cannot give the regressors of ``part`` (None when it can)."""
    if part == "compcor":
        return _compcor_problem(table, meta, json_name)
    if part == "cosine":
        if any(c.startswith("cosine") for c in table.columns):
            return None
        return ("needs fMRIPrep's cosine* drift regressors (the high-pass the aCompCor "
                "components were computed after); none found")
    if part == "aroma":
        if any(c.startswith("aroma_motion_") for c in table.columns):
            return None
        return ("needs aroma_motion_* columns, written only by fMRIPrep 1.x-23.0 run with "
                "--use-aroma (later versions no longer run ICA-AROMA; its successor "
                "fMRIPost-AROMA is not read yet); none found")
    names = {"motion24": MOTION, "tissue36": TISSUE, "tissue2": TISSUE[:2],
             "fd": ("framewise_displacement",)}[part]
    lost = _missing(table, names)
    if not lost:
        return None
    what = {"motion24": "the 6 head-motion parameters", "tissue36": "the mean tissue signals",
            "tissue2": "the mean WM and CSF signals",
            "fd": "framewise displacement (censoring, mean FD)"}[part]
    return f"needs {what} ({', '.join(names)}); missing: {', '.join(lost)}"


def describe(strategy: str, n_compcor: float) -> str:
    """What ``strategy`` regresses, in words, with the number of aCompCor components."""
    n = (f"the first {n_compcor:g}" if n_compcor >= 1
         else f"as many as explain {n_compcor:.0%} of the variance")
    return _strategy(strategy).regresses.format(n=n)


def _strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise InputError(f"unknown denoising strategy {name!r}; choose from "
                         f"{', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def check_columns(confounds_tsv: str | Path, strategy: str) -> list[str]:
    """One plain-English line per column group ``strategy`` needs and the file lacks.

    An empty list means the file serves the strategy.

    >>> check_columns("sub-01_task-rest_desc-confounds_timeseries.tsv", "24P")  # doctest: +SKIP
    ["sub-01_task-rest_desc-confounds_timeseries.tsv: strategy '24P' needs ..."]
    """
    spec = _strategy(strategy)
    path = Path(confounds_tsv)
    head = f"{path.name}: strategy {strategy!r}"
    try:
        table, meta = read_confounds(path)
    except InputError as err:
        return [f"{head} cannot be checked: {err}"]
    lines = []
    if any(re.fullmatch(r"[A-Z][a-z]+[A-Z]\w*", c) for c in table.columns):
        lines.append(f"{head}: the columns are CamelCase (fMRIPrep < 1.2, not supported)")
    for part in (*spec.parts, "fd"):
        problem = _part_problem(part, table, meta, path.with_suffix(".json").name)
        if problem:
            lines.append(f"{head} {problem}")
    return lines


def expand(table: pd.DataFrame, bases: Iterable[str]) -> pd.DataFrame:
    """Each base column with its backward difference and the squares of both.

    Recomputed from the base columns of the rows given (after the non-steady-state
    volumes are dropped), so the first difference never spans a dropped volume; the first
    row's difference, undefined, takes the second row's (a forward difference, as nilearn
    fills fMRIPrep's empty first row). Where defined, the values equal fMRIPrep's
    ``*_derivative1``, ``*_power2`` and ``*_derivative1_power2`` columns.
    """
    out = {}
    for base in bases:
        x = table[base].to_numpy(dtype=float)
        d = np.diff(x, prepend=np.nan)
        if len(d) > 1:
            d[0] = d[1]
        out.update({base: x, f"{base}_derivative1": d, f"{base}_power2": x ** 2,
                    f"{base}_derivative1_power2": d ** 2})
    return pd.DataFrame(out, index=table.index)


def non_steady_state(table: pd.DataFrame, name: str) -> int:
    """Leading volumes fMRIPrep flagged in its ``non_steady_state_outlier*`` columns."""
    cols = [c for c in table.columns if c.startswith("non_steady_state_outlier")]
    if not cols:
        return 0
    flagged = np.flatnonzero(table[cols].fillna(0).to_numpy().sum(1) > 0)
    if not np.array_equal(flagged, np.arange(len(flagged))):
        raise InputError(f"{name}: non_steady_state_outlier columns flag volumes "
                         f"{flagged.tolist()}, not a run of leading volumes")
    return len(flagged)


def _dummies(table: pd.DataFrame, name: str, dummy_scans: int | str | None) -> tuple[int, str]:
    flagged = non_steady_state(table, name)
    if dummy_scans in (None, "auto"):
        return flagged, "fMRIPrep's non_steady_state_outlier columns"
    n = int(dummy_scans)
    if n < 0 or n > len(table) - 3:
        raise InputError(f"{name}: --dummy-scans {n} does not fit a run of {len(table)} "
                         "volumes")
    if n < flagged:
        raise InputError(f"{name}: --dummy-scans {n} keeps volumes fMRIPrep flagged as "
                         f"non-steady-state (the first {flagged}; its CompCor and cosine "
                         f"columns are 0 there); use at least {flagged} or 'auto'")
    return n, "--dummy-scans"


def _regressors(spec: Strategy, table: pd.DataFrame, meta: dict | None,
                n_compcor: float, info: dict) -> pd.DataFrame:
    blocks = []
    for part in spec.parts:
        if part == "compcor":
            masks, source = _by_mask(table, meta)
            chosen = {m: _first(cols, meta, n_compcor) for m, cols in masks.items()}
            info["CompCor"] = {"Source": source, "RequestedPerMask": n_compcor,
                               "WM": chosen["WM"], "CSF": chosen["CSF"]}
            short = [f"{m}: {len(c)}" for m, c in chosen.items()
                     if n_compcor >= 1 and len(c) < n_compcor]
            if short:
                info["Warnings"].append(
                    f"fewer aCompCor components than the {n_compcor:g} requested "
                    f"({', '.join(short)}): fMRIPrep keeps those explaining 50 % of the "
                    "variance (its --return-all-components writes them all)")
            blocks.append(table[chosen["WM"] + chosen["CSF"]])
        elif part == "cosine":
            blocks.append(table[[c for c in table.columns if c.startswith("cosine")]])
        elif part in ("motion24", "tissue36"):
            blocks.append(expand(table, MOTION if part == "motion24" else TISSUE))
        elif part == "tissue2":
            blocks.append(table[list(TISSUE[:2])])
    return pd.concat(blocks, axis=1).astype(float)


def load_strategy(confounds_tsv: str | Path, strategy: str, *, n_compcor: float,
                  fd_threshold: float | None,
                  dummy_scans: int | str | None) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The regressors of a denoising ``strategy`` from an fMRIPrep confounds table.

    Parameters
    ----------
    confounds_tsv : path
        ``*_desc-confounds_timeseries.tsv`` (or ``_regressors.tsv``); its ``.json`` sidecar
        is read from beside it (needed for ``a_comp_cor_*`` before fMRIPrep 21).
    strategy : str
        A key of :data:`STRATEGIES`.
    n_compcor : float
        aCompCor components per mask (WM, CSF): a number, or a fraction in (0, 1) = the
        fewest whose cumulative variance (JSON) reaches it.
    fd_threshold : float or None
        Volumes with framewise displacement above it (mm) are censored; None: none.
    dummy_scans : int, "auto" or None
        Leading volumes to drop; "auto"/None: those fMRIPrep flagged as non-steady-state.

    Returns
    -------
    regressors : DataFrame (T - n_dummy rows, index = volume number in the run)
        To be band-passed with the data and regressed (``preproc.signal.denoise``); the
        first ``info["NonSteadyStateVolumes"]`` volumes of the BOLD run are to be dropped.
    keep : bool ndarray (T - n_dummy,)
        False for the volumes censored by FD.
    info : dict
        JSON-ready description (strategy, columns, dummy volumes, censoring, warnings).
    """
    spec = _strategy(strategy)
    path = Path(confounds_tsv)
    problems = check_columns(path, strategy)
    if problems:
        raise InputError("\n".join(problems))
    table, meta = read_confounds(path)
    n_dummy, dummy_source = _dummies(table, path.name, dummy_scans)
    kept = table.iloc[n_dummy:]
    info: dict = {"Strategy": spec.name, "Regresses": describe(strategy, n_compcor),
                  "BoldDesc": spec.bold_desc, "ConfoundsFile": path.name,
                  "NonSteadyStateVolumes": n_dummy, "NonSteadyStateSource": dummy_source,
                  "Warnings": []}
    regressors = _regressors(spec, kept, meta, n_compcor, info)
    keep = censor_mask(kept["framewise_displacement"].to_numpy(dtype=float), fd_threshold)
    dof = int(keep.sum()) - regressors.shape[1]
    if dof <= 0:
        info["Warnings"].append(f"{regressors.shape[1]} regressors for {int(keep.sum())} "
                                "kept volumes: the fit leaves no degrees of freedom")
    info.update({"Regressors": list(regressors.columns),
                 "NumberOfRegressors": int(regressors.shape[1]),
                 "FramewiseDisplacementThreshold": fd_threshold,
                 "CensoredVolumes": kept.index[~keep].tolist(),
                 "DegreesOfFreedomLeft": dof,
                 "Derivatives": "recomputed from the base columns after the non-steady-state "
                                "volumes are dropped (first row: forward difference)"})
    return regressors, keep, info
