"""The derivatives dataset's own files (nipype-free): dataset_description.json (BIDS-
Derivatives keys only, SourceDatasets, DatasetLinks for the ``bids:raw:`` URIs of the
sidecars, the input's License), README.md (what was run, each command line, the version) and
the input's LICENSE file, written under the output lock by every participant and group run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bids_dfc import __version__
from bids_dfc.derivatives import CODE_URL, RAW_LINK
from bids_dfc.io import atomic_write, output_lock


def container_info() -> dict | None:
    """How the app is packaged: from BIDS_DFC_CONTAINER (set in our image) or the runtime."""
    kind = os.environ.get("BIDS_DFC_CONTAINER")
    if kind:
        return {"Type": kind, "Tag": os.environ.get("BIDS_DFC_IMAGE", f"bids_dfc:{__version__}")}
    if Path("/.singularity.d").exists() or os.environ.get("APPTAINER_CONTAINER"):
        return {"Type": "apptainer"}
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return {"Type": "docker"}
    return None


#: the BIDS version the outputs follow (dataset_description.json's BIDSVersion)
BIDS_VERSION = "1.9.0"

def _raw_description(bids_dir: Path) -> dict:
    try:
        raw = json.loads((bids_dir / "dataset_description.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return raw if isinstance(raw, dict) else {}


def doi_uri(value: str) -> str:
    """A DOI in the form BIDS asks for, ``doi:10.xxxx/...``.

    >>> doi_uri("https://doi.org/10.18112/openneuro.ds002748.v1.0.5")
    'doi:10.18112/openneuro.ds002748.v1.0.5'
    """
    value = value.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:"):
        if value.lower().startswith(prefix):
            value = value[len(prefix):]
            break
    return f"doi:{value}"


def raw_location(bids_dir: Path, output_dir: Path) -> str:
    """The raw dataset's path relative to the derivatives dataset (``../bids``, ``../..``
    for ``bids/derivatives/bids_dfc``): the link keeps resolving when both folders are
    moved or mounted together, unlike an absolute path of one machine."""
    return Path(os.path.relpath(bids_dir.resolve(), output_dir.resolve())).as_posix()


def dataset_description(bids_dir: Path, output_dir: Path) -> dict:
    """Content of the derivatives' dataset_description.json (BIDS-Derivatives keys only).

    ``SourceDatasets`` names the input by its DOI when its dataset_description declares
    one (``DatasetDOI``), else by its location relative to ``output_dir``; ``DatasetLinks``
    resolves the ``bids:raw:`` URIs of every sidecar to that location; ``License`` is the
    input's, carried over.
    """
    generated: dict[str, str | dict] = {"Name": "bids_dfc", "Version": __version__,
                                        "CodeURL": CODE_URL}
    container = container_info()
    if container:
        generated["Container"] = container
    raw = _raw_description(bids_dir)
    location = raw_location(bids_dir, output_dir)
    source: dict[str, str] = {}
    if isinstance(raw.get("DatasetDOI"), str) and raw["DatasetDOI"].strip():
        source["DOI"] = doi_uri(raw["DatasetDOI"])
    else:
        source["URL"] = location
    description = {
        "Name": "bids_dfc: dynamic functional connectivity derivatives",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [source],
        "DatasetLinks": {RAW_LINK: location},
    }
    if isinstance(raw.get("License"), str) and raw["License"].strip():
        description["License"] = raw["License"].strip()
    return description


def _licence_text(bids_dir: Path, raw: dict) -> str:
    if raw.get("License"):
        return (f"The input dataset is shared under {raw['License']}"
                + (" (its LICENSE file is copied here)" if (bids_dir / "LICENSE").is_file()
                   else "") + "; these derivatives of its data carry the same licence.")
    if (bids_dir / "LICENSE").is_file():
        return ("The input dataset's LICENSE file is copied here; these derivatives of its "
                "data carry the same terms.")
    return ("The input dataset states no licence (no `License` in its "
            "dataset_description.json, no LICENSE file): ask its owners before sharing these "
            "derivatives, which are derived from its data.")


_RUNS_HEADING = "## Commands that wrote into this folder"


def readme_text(bids_dir: Path, output_dir: Path, runs: list[str]) -> str:
    """The derivatives' README.md: what is here, how it was made, the licence, the runs."""
    raw = _raw_description(bids_dir)
    name = raw.get("Name") or bids_dir.name
    lines = [
        "# bids_dfc derivatives",
        "",
        f"Written by bids_dfc {__version__} ({CODE_URL}) from the BIDS dataset "
        f"\"{name}\" at `{raw_location(bids_dir, output_dir)}` (relative to this folder; "
        "`DatasetLinks` in dataset_description.json).",
        "",
        "Per participant: the preprocessed T1w and resting-state BOLD (or fMRIPrep's), the "
        "seed time series of the default mode network (DMN) and the descending "
        "pain-modulatory pathway (DeS), their dynamic conditional correlation (DCC) and its "
        "summary (`*_seg-seeds_dfc.tsv`), and a report (`sub-<label>.html`) whose methods "
        "section describes every step with its parameters and references. `group/` holds the "
        "group statistics and their report when the group level was run. Every data file has "
        "a JSON sidecar; `Sources` in it name the input files as `bids:raw:<path>` URIs.",
        "",
        "## Licence",
        "",
        _licence_text(bids_dir, raw),
        "",
        _RUNS_HEADING,
        "",
        *runs,
        "",
    ]
    return "\n".join(lines)


def _readme_runs(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    if _RUNS_HEADING not in text:
        return []
    return [line for line in text.split(_RUNS_HEADING, 1)[1].splitlines()
            if line.startswith("- ")]


def write_dataset_description(output_dir: Path, bids_dir: Path,
                              command: str | None = None) -> list[Path]:
    """Write dataset_description.json, README.md and (when the input has one) LICENSE
    into ``output_dir`` under the output lock, each replaced atomically and only when its
    content changed; ``command`` (the command line) is added once to the README's runs.

    Concurrent participant jobs serialise on the lock, so readers never see a partial file
    and no job's command line is lost.
    """
    desc_path = output_dir / "dataset_description.json"
    content = json.dumps(dataset_description(bids_dir, output_dir), indent=2,
                         sort_keys=True) + "\n"
    readme = output_dir / "README.md"
    written = [desc_path, readme]
    with output_lock(output_dir):
        if not (desc_path.is_file() and desc_path.read_text() == content):
            atomic_write(desc_path, content)
        runs = _readme_runs(readme)
        entry = (f"- bids_dfc {__version__}: `{command}`" if command else
                 f"- bids_dfc {__version__} (called from Python)")
        if entry not in runs:
            runs.append(entry)
        text = readme_text(bids_dir, output_dir, runs)
        if not (readme.is_file() and readme.read_text(encoding="utf-8") == text):
            atomic_write(readme, text)
        licence = bids_dir / "LICENSE"
        if licence.is_file():
            data = licence.read_bytes()
            target = output_dir / "LICENSE"
            if not (target.is_file() and target.read_bytes() == data):
                atomic_write(target, data)
            written.append(target)
    return written
