"""Standard-space templates: TemplateFlow files when present locally, else nilearn's bundle.

Resolution order for ``name="auto"``:

1. ``MNI152NLin6Asym`` (FSL's MNI152 -- the study's "MNI152 2 mm") from ``TEMPLATEFLOW_HOME``
   when its T1w and brain mask at the requested resolution are already on disk (or when
   ``allow_download=True``, through ``templateflow.api.get``);
2. otherwise ``MNI152NLin2009aSym``, the MNI152 2009a symmetric template that nilearn ships
   (T1w, brain mask, GM and WM maps; CSF = mask - GM - WM, clipped to [0, 1]).  It is written
   once, atomically, as NIfTI files into a cache folder.

Nothing is downloaded unless ``allow_download=True``.  TemplateFlow is not even imported in
the offline path: importing it creates a skeleton in ``TEMPLATEFLOW_HOME`` and may try to
update it, so local files are looked up by their TemplateFlow names directly.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bids_dfc.errors import InputError
from bids_dfc.io import atomic_save, check_writable

if TYPE_CHECKING:
    import nibabel as nib

__all__ = ["TemplateSpec", "get_template", "templateflow_home", "cache_root"]

#: The template used when ``name="auto"`` and TemplateFlow files are available.
DEFAULT_TEMPLATEFLOW = "MNI152NLin6Asym"
#: The template nilearn bundles.
BUNDLED = "MNI152NLin2009aSym"


@dataclass(frozen=True)
class TemplateSpec:
    """Files of one template at one resolution.

    Attributes
    ----------
    name : str
        TemplateFlow identifier, e.g. ``MNI152NLin6Asym``.
    resolution : int
        Voxel size in mm (1 or 2).
    t1w : str
        T1w image (with or without skull; registration masks it with ``brain_mask``).
    brain_mask : str
        Binary brain mask.
    gm, wm, csf : str or None
        Tissue probability maps (``None`` when the template has none, e.g. MNI152NLin6Asym:
        tissue segmentation then uses intensity only).
    source : str
        ``"templateflow"`` or ``"nilearn-bundled"``.
    """

    name: str
    resolution: int
    t1w: str
    brain_mask: str
    gm: str | None
    wm: str | None
    csf: str | None
    source: str

    @property
    def has_tissue_priors(self) -> bool:
        """True if GM, WM and CSF probability maps are available."""
        return None not in (self.gm, self.wm, self.csf)

    def metadata(self) -> dict:
        """Entries recorded in every output sidecar that depends on the template."""
        return {
            "Template": self.name,
            "TemplateResolution": self.resolution,
            "TemplateSource": self.source,
        }

    def to_dict(self) -> dict:
        """All fields as a plain dict (JSON-serialisable)."""
        return asdict(self)


def templateflow_home() -> Path:
    """``TEMPLATEFLOW_HOME`` as TemplateFlow itself resolves it (without importing it)."""
    env = os.environ.get("TEMPLATEFLOW_HOME")
    if env:
        return Path(env).absolute()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("templateflow")).absolute()


def _usable(path: Path) -> bool:
    """A real, non-empty gzip NIfTI (TemplateFlow skeletons hold 0-byte placeholders and
    DataLad clones hold broken symlinks)."""
    try:
        if not path.is_file() or path.stat().st_size < 100:
            return False
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except OSError:
        return False
    return magic == b"\x1f\x8b" or path.suffix == ".nii"


def _tf_local(name: str, resolution: int) -> TemplateSpec | None:
    """Find a template's files in ``TEMPLATEFLOW_HOME`` by name; None if incomplete."""
    folder = templateflow_home() / f"tpl-{name}"
    if not folder.is_dir():
        return None
    for res in (f"{resolution:02d}", f"{resolution}"):
        prefix = folder / f"tpl-{name}_res-{res}"
        t1w = Path(f"{prefix}_T1w.nii.gz")
        mask = Path(f"{prefix}_desc-brain_mask.nii.gz")
        if not (_usable(t1w) and _usable(mask)):
            continue
        tissues = [Path(f"{prefix}_label-{t}_probseg.nii.gz") for t in ("GM", "WM", "CSF")]
        priors = [str(p) for p in tissues] if all(_usable(p) for p in tissues) else [None] * 3
        # mypy cannot count a list's items: priors always holds the 3 tissue maps
        return TemplateSpec(name, resolution, str(t1w), str(mask), *priors,  # type: ignore[misc]
                            source="templateflow")
    return None


def _tf_download(name: str, resolution: int) -> TemplateSpec:
    """Fetch a template through ``templateflow.api.get`` (network)."""
    try:
        from templateflow import api
    except ImportError as exc:  # pragma: no cover - templateflow is a dependency
        raise InputError("templateflow is not installed; cannot download templates") from exc

    def _one(**query):
        try:
            out = api.get(name, resolution=resolution, extension=".nii.gz", **query)
        except Exception as exc:  # noqa: BLE001 - network/S3 errors come in many types
            raise InputError(
                f"Downloading {name} (res {resolution}) from TemplateFlow failed: {exc}. "
                "Check the network or pre-fill TEMPLATEFLOW_HOME."
            ) from exc
        if isinstance(out, list):
            out = out[0] if len(out) == 1 else None
        return str(out) if out else None

    t1w = _one(desc=None, suffix="T1w")
    mask = _one(desc="brain", suffix="mask")
    if t1w is None or mask is None:
        raise InputError(f"TemplateFlow has no T1w and brain mask for {name} at res {resolution}")
    priors = [_one(label=t, suffix="probseg", desc=None) for t in ("GM", "WM", "CSF")]
    if None in priors:
        priors = [None] * 3
    # mypy cannot count a list's items: priors always holds the 3 tissue maps
    return TemplateSpec(name, resolution, t1w, mask, *priors,  # type: ignore[misc]
                        source="templateflow")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Writable cache folder: ``cache_dir``, ``$BIDS_DFC_CACHE``, ``~/.cache/bids_dfc``, or a
    folder under the system temporary directory when HOME is not writable (containers run
    under arbitrary UIDs)."""
    candidates = []
    if cache_dir is not None:
        candidates.append(Path(cache_dir))
    elif os.environ.get("BIDS_DFC_CACHE"):
        candidates.append(Path(os.environ["BIDS_DFC_CACHE"]))
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        candidates.append(Path(xdg) / "bids_dfc" if xdg else Path.home() / ".cache" / "bids_dfc")
    candidates.append(Path(tempfile.gettempdir()) / f"bids_dfc-cache-{os.getuid()}")
    for folder in candidates:
        try:
            check_writable(folder)
        except OSError:
            continue
        return folder.absolute()
    raise InputError(
        f"No writable cache folder among {[str(c) for c in candidates]}; "
        "set BIDS_DFC_CACHE to a writable folder."
    )


def _atomic_save(img: nib.Nifti1Image, dst: Path) -> None:
    import nibabel as nib

    atomic_save(dst, lambda tmp: nib.save(img, tmp), suffix=".nii.gz")


def _bundled(resolution: int, cache_dir: str | os.PathLike | None) -> TemplateSpec:
    """Write nilearn's MNI152 2009a symmetric template into the cache (once) and return it."""
    import nibabel as nib
    import nilearn
    import numpy as np
    from nilearn import datasets

    if resolution not in (1, 2):
        raise InputError(
            f"The bundled template exists at 1 or 2 mm only, got resolution={resolution}."
        )
    folder = cache_root(cache_dir) / "templates" / f"nilearn-{nilearn.__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"tpl-{BUNDLED}_res-{resolution}"
    names = {
        "t1w": f"{prefix}_T1w.nii.gz",
        "brain_mask": f"{prefix}_desc-brain_mask.nii.gz",
        "gm": f"{prefix}_label-GM_probseg.nii.gz",
        "wm": f"{prefix}_label-WM_probseg.nii.gz",
        "csf": f"{prefix}_label-CSF_probseg.nii.gz",
    }
    paths = {key: folder / fname for key, fname in names.items()}
    if not all(_usable(p) for p in paths.values()):
        t1 = datasets.load_mni152_template(resolution=resolution)
        mask_img = datasets.load_mni152_brain_mask(resolution=resolution)
        affine = t1.affine
        mask = np.asarray(mask_img.dataobj) > 0
        gm = np.clip(datasets.load_mni152_gm_template(resolution=resolution).get_fdata(), 0, 1)
        wm = np.clip(datasets.load_mni152_wm_template(resolution=resolution).get_fdata(), 0, 1)
        csf = np.clip(mask - gm - wm, 0, 1)
        t1_data = t1.get_fdata() * mask  # drop resampling residue outside the brain

        def _img(data, dtype):
            out = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
            out.header.set_xyzt_units("mm")
            out.set_qform(affine, code=4)
            out.set_sform(affine, code=4)
            return out

        arrays = {"t1w": (t1_data, np.float32), "brain_mask": (mask, np.uint8),
                  "gm": (gm, np.float32), "wm": (wm, np.float32), "csf": (csf, np.float32)}
        for key, (data, dtype) in arrays.items():
            _atomic_save(_img(data, dtype), paths[key])
    # mypy cannot count a generator's items: one path per field, t1w to csf
    return TemplateSpec(BUNDLED, resolution, *(str(paths[k]) for k in names),  # type: ignore[misc]
                        source="nilearn-bundled")


def get_template(
    name: str = "auto",
    resolution: int = 2,
    *,
    allow_download: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> TemplateSpec:
    """Resolve a template to files on disk.

    Parameters
    ----------
    name : str
        ``"auto"`` (MNI152NLin6Asym from TemplateFlow if present locally, else the bundled
        MNI152NLin2009aSym), ``"MNI152NLin2009aSym"`` (always the bundled copy) or any
        TemplateFlow identifier with a T1w and a brain mask (e.g. ``"MNI152NLin6Asym"``).
    resolution : int
        Voxel size in mm.
    allow_download : bool
        Let TemplateFlow download missing files (needs the network).
    cache_dir : path, optional
        Where the bundled template is written (default ``$BIDS_DFC_CACHE`` or
        ``~/.cache/bids_dfc``).

    Returns
    -------
    TemplateSpec

    Raises
    ------
    InputError
        If an explicitly named TemplateFlow template is not available.

    Examples
    --------
    >>> spec = get_template("MNI152NLin2009aSym", 2)
    >>> spec.source
    'nilearn-bundled'
    """
    if int(resolution) != resolution or resolution < 1:
        raise InputError(f"Template resolution must be a positive integer (mm), got {resolution}")
    resolution = int(resolution)
    if name == BUNDLED:
        return _bundled(resolution, cache_dir)
    wanted = DEFAULT_TEMPLATEFLOW if name == "auto" else name
    spec = _tf_local(wanted, resolution)
    if spec is None and allow_download:
        spec = _tf_download(wanted, resolution)
    if spec is not None:
        return spec
    if name == "auto":
        return _bundled(resolution, cache_dir)
    raise InputError(
        f"Template {name} at {resolution} mm is not in TEMPLATEFLOW_HOME ({templateflow_home()})"
        f" and downloads are off. Pre-fill TEMPLATEFLOW_HOME, allow downloads, or use "
        f"'{BUNDLED}' (bundled, works offline)."
    )
