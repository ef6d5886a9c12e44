"""Demo data shared by the container, SLURM and fault tests through conftest's
``shared_demo_bids`` fixture (imported, not a test module)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

#: BOLD volumes per run of the shared test dataset: short runs keep the container, SLURM and
#: fault tests quick (the DCC needs 50 volumes after the 4 dummies).
N_VOLUMES = 64


def demo_dataset(tmp_path_factory, n_subjects: int = 2, seed: int = 3) -> Path:
    """The demo dataset, generated once per test session and shared by the modules that use
    the same size and seed (it is only read)."""
    base = tmp_path_factory.getbasetemp() / f"bids_dfc_demo_n{n_subjects}_s{seed}_v{N_VOLUMES}"
    if not (base / "complete").exists():
        subprocess.run([str(Path(sys.executable).with_name("bids-dfc-demo")), str(base / "bids"),
                        "--n-subjects", str(n_subjects), "--seed", str(seed), "--n-jobs", "2",
                        "--n-volumes", str(N_VOLUMES), "--overwrite"],
                       check=True, capture_output=True, timeout=900)
        (base / "complete").touch()
    return base / "bids"


def dmn_des_sd(table: Path) -> float:
    """The DMN-DeS dFC value (SD of the DCC series) of a participant's ``*_dfc.tsv``."""
    header, *rows = (line.split("\t") for line in table.read_text().splitlines())
    for row in rows:
        values = dict(zip(header, row))
        if (values["seed_a"], values["seed_b"]) == ("DMN", "DeS"):
            return float(values["dcc_sd"])
    raise AssertionError(f"no DMN-DeS row in {table}")


def copy_tree(src: Path, dst: Path) -> Path:
    """A private copy of a test dataset, for a test that must change its modes or files."""
    shutil.copytree(src, dst, symlinks=True)
    return dst
