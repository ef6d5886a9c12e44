"""The BIDS-Derivatives dataset itself: dataset_description.json, written safely."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from bids_dfc import __version__
from bids_dfc.interfaces.bids import atomic_write_text

CODE_URL = "https://github.com/bids-dfc/bids_dfc"


@contextmanager
def output_lock(output_dir: Path):
    """Exclusive lock on ``output_dir`` shared by every bids_dfc process writing into it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / ".bids_dfc.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def dataset_description(bids_dir: Path) -> dict:
    """Content of the derivatives' dataset_description.json."""
    generated = {"Name": "bids_dfc", "Version": __version__, "CodeURL": CODE_URL}
    container = container_info()
    if container:
        generated["Container"] = container
    source = {"URL": f"file://{bids_dir.resolve()}"}
    try:
        raw = json.loads((bids_dir / "dataset_description.json").read_text())
        if raw.get("DatasetDOI"):
            source = {"DOI": raw["DatasetDOI"], "URL": source["URL"]}
        if raw.get("Name"):
            source["Name"] = raw["Name"]
    except (OSError, json.JSONDecodeError):
        pass
    return {
        "Name": "bids_dfc: dynamic functional connectivity derivatives",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [source],
    }


def write_dataset_description(output_dir: Path, bids_dir: Path) -> Path:
    """Write (or keep, if identical) dataset_description.json under the output lock.

    Concurrent participant jobs serialise on the lock, and the file is replaced atomically,
    so readers never see a partial file.
    """
    path = output_dir / "dataset_description.json"
    content = json.dumps(dataset_description(bids_dir), indent=2, sort_keys=True) + "\n"
    with output_lock(output_dir):
        if not (path.is_file() and path.read_text() == content):
            atomic_write_text(path, content)
    return path
