"""Fill TEMPLATEFLOW_HOME at image build time so the container never downloads at run time.

Run inside the image build. With network access it fetches the MNI152 files bids_dfc uses
(brain template, brain mask and tissue probability maps at 2 mm) into TEMPLATEFLOW_HOME;
without it, only TemplateFlow's local file index is written and bids_dfc falls back to the
MNI152 2009a template that nilearn bundles. ``FETCH_TEMPLATES`` selects the behaviour:
``auto`` (try, fall back), ``1`` (fail the build if the download fails) or ``0`` (do not try).

Usage::

    FETCH_TEMPLATES=auto TEMPLATEFLOW_HOME=/opt/templateflow python fetch_templates.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: (template, query) pairs to fetch; the study registered to MNI152 (FSL's, 2 mm).
QUERIES = [
    ("MNI152NLin6Asym", {"resolution": 2, "desc": None, "suffix": "T1w"}),
    ("MNI152NLin6Asym", {"resolution": 2, "desc": "brain", "suffix": "mask"}),
    ("MNI152NLin6Asym", {"resolution": 2, "label": "GM", "suffix": "probseg"}),
    ("MNI152NLin6Asym", {"resolution": 2, "label": "WM", "suffix": "probseg"}),
    ("MNI152NLin6Asym", {"resolution": 2, "label": "CSF", "suffix": "probseg"}),
]


def main() -> int:
    """Fetch the templates; return the process exit code."""
    mode = os.environ.get("FETCH_TEMPLATES", "auto").strip().lower()
    if mode not in {"auto", "0", "1"}:
        print(f"fetch_templates: FETCH_TEMPLATES must be auto, 0 or 1, not {mode!r}")
        return 2
    # Importing the API writes TemplateFlow's file index (no network) into TEMPLATEFLOW_HOME,
    # so that importing it at run time from a read-only image never needs to write.
    import templateflow.api as tflow

    home = Path(tflow.TF_LAYOUT.root)
    status = 0 if mode == "0" else _fetch(tflow, home, required=mode == "1")
    # TemplateFlow's index holds an empty stub for every file it could download; a stub left
    # in the image would make a later get() download at run time. Keep only real files.
    stubs = [path for path in home.rglob("*") if path.is_file() and path.stat().st_size == 0]
    for stub in stubs:
        stub.unlink()
    real = sorted(str(p.relative_to(home)) for p in home.rglob("*.nii.gz"))
    print(f"fetch_templates: removed {len(stubs)} empty stubs; images in {home}: {real}")
    if not real:
        print("fetch_templates: the image uses the MNI152 2009a template bundled with nilearn")
    return status


def _fetch(tflow, home: Path, *, required: bool) -> int:
    """Download ``QUERIES``; all or nothing. Return 1 on failure when *required*."""
    fetched = []
    try:
        for template, query in QUERIES:
            found = tflow.get(template, raise_empty=True, **query)
            fetched.append(found)
            print(f"fetch_templates: {found}")
    except Exception as err:  # noqa: BLE001 - any network or server failure means "offline"
        # All or nothing: a partial set would make bids_dfc pick TemplateFlow and then miss
        # a tissue map; remove what came.
        for path in fetched:
            Path(path).unlink(missing_ok=True)
        print(f"fetch_templates: no template download ({type(err).__name__}: {err})")
        if required:
            print("fetch_templates: FETCH_TEMPLATES=1 requires the download; failing")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
