"""Shared fixtures and the test tiers.

Tiers are pytest markers (registered in setup.cfg, ``--strict-markers``):

``slow``
    runs a real pipeline step (registration, a participant run, a group run) or builds a
    demo dataset: more than about 10 s on 2 cores;
``container``
    builds or runs the podman image (docs/docker.md);
``slurm``
    submits jobs to a real slurmctld (docs/hpc.md);
``browser``
    renders a report in headless Chromium and checks every figure loaded.

``make test-fast`` (the edit loop, under 3 minutes) deselects all four; ``make test`` (the
README's command, what ``.ci/run`` calls) runs everything. A module's tier is its
``pytestmark``; a single slow test in a fast module carries its own mark.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests/_*.py helpers

from _demo_data import demo_dataset  # noqa: E402


@pytest.fixture(scope="session")
def shared_demo_bids(tmp_path_factory) -> Path:
    """The small demo dataset (2 subjects, 64 volumes, seed 3) of the container, SLURM and
    fault tests: built once per test session, only read."""
    return demo_dataset(tmp_path_factory)
