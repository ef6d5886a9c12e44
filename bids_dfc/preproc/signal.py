"""Signal maths of the functional workflow: pure numpy/scipy, no files.

Time series are arrays of shape ``(n_volumes, n_voxels)`` (time first, as in nilearn);
volumes are ``(X, Y, Z, T)`` arrays as stored in NIfTI.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from scipy import signal as sps
from scipy.interpolate import CubicSpline

from bids_dfc.errors import InputError

#: minimum number of volumes left after the non-steady-state ones are dropped
MIN_VOLUMES = 50
#: order of the Butterworth filter (nilearn's default; applied forward and backward)
BUTTER_ORDER = 5


def sanitise_bold(data: np.ndarray, source: str, max_fraction: float = 0.01) -> tuple:
    """Replace NaN/inf voxels of a 4-D run by 0, or refuse the run if there are many.

    Parameters
    ----------
    data : ndarray (X, Y, Z, T)
    source : str
        File name, for the messages.
    max_fraction : float
        Largest tolerated fraction of non-finite values (of the whole 4-D array).

    Returns
    -------
    data : ndarray (float32, a copy when values were replaced)
    n_bad : int
        Number of values replaced.
    """
    data = np.asarray(data, dtype=np.float32)
    bad = ~np.isfinite(data)
    n_bad = int(bad.sum())
    if not n_bad:
        return data, 0
    whole = np.flatnonzero(bad.reshape(-1, data.shape[-1]).all(0))
    if whole.size or n_bad > max_fraction * data.size:
        raise InputError(
            f"{source}: {n_bad} of {data.size} values are NaN or infinite"
            + (f" (volumes {whole.tolist()[:10]} entirely)" if whole.size else "")
            + "; fix the conversion of this run or exclude it.")
    warnings.warn(f"{source}: {n_bad} NaN/inf values were set to 0 before preprocessing.",
                  stacklevel=2)
    data = np.where(bad, np.float32(0), data)
    return data, n_bad


def detect_nonsteady(data: np.ndarray, max_check: int = 50, threshold: float = 3.5) -> int:
    """Number of leading non-steady-state volumes (bright, before T1 saturation).

    The global signal of the first ``max_check`` volumes (mean over voxels brighter than
    the run's average) is robustly z-scored (median / MAD); leading volumes above
    ``threshold`` are counted, as fMRIPrep does.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> run = 100 + rng.normal(0, 1, (4, 5, 6, 60))
    >>> run[..., :3] *= 1.5
    >>> detect_nonsteady(run)
    3
    """
    n = min(max_check, data.shape[-1])
    first = np.asarray(data[..., :n], dtype=np.float64).reshape(-1, n)
    mean_img = first.mean(1)
    inside = mean_img > mean_img.mean()
    glob = first[inside].mean(0)
    med = np.median(glob)
    mad = np.median(np.abs(glob - med))
    if mad == 0:
        return 0
    z = 0.6745 * (glob - med) / mad
    count = 0
    while count < n and z[count] > threshold:
        count += 1
    return count


def check_enough_volumes(n_left: int, n_dummy: int, source: str,
                         minimum: int = MIN_VOLUMES) -> None:
    """Raise :class:`InputError` when fewer than ``minimum`` volumes remain."""
    if n_left < minimum:
        raise InputError(
            f"{source}: only {n_left} volumes remain after dropping {n_dummy} non-steady-state "
            f"volumes; at least {minimum} are needed for band-pass filtering and dynamic "
            "connectivity. Exclude this run (e.g. with a BIDS filter) or lower --dummy-scans.")


def framewise_displacement(params: np.ndarray, radius: float = 50.0) -> np.ndarray:
    """Power et al. (2012) framewise displacement; the first value is NaN (no predecessor).

    ``params`` are ``(T, 6)``: three translations (mm) then three rotations (radians);
    rotations become arc lengths on a sphere of ``radius`` mm.
    """
    diff = np.abs(np.diff(np.asarray(params, dtype=float), axis=0))
    fd = diff[:, :3].sum(1) + radius * diff[:, 3:].sum(1)
    return np.concatenate([[np.nan], fd])


def dvars(series: np.ndarray, scale_to: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """DVARS (Power 2012) and standardised DVARS (Nichols 2013) of in-brain time series.

    Parameters
    ----------
    series : ndarray (T, V)
        Motion-corrected signals of the brain voxels.
    scale_to : float
        The series are first scaled so that their median value equals this (fMRIPrep's
        intensity normalisation), making DVARS comparable across runs.

    Returns
    -------
    dvars, std_dvars : ndarray (T,)
        RMS over voxels of the backward temporal difference (first value NaN), and the same
        divided by its expectation under temporal stationarity,
        ``mean_v( sqrt(2 (1 - ar1_v)) * sd_v )`` with a robust (IQR) ``sd_v``.
    """
    y = np.asarray(series, dtype=np.float64)
    med = np.median(y)
    if med > 0:
        y = y * (scale_to / med)
    diff = np.diff(y, axis=0)
    dv = np.sqrt((diff ** 2).mean(1))
    t = np.arange(y.shape[0], dtype=float)
    design = np.column_stack([np.ones_like(t), t - t.mean()])
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    q75, q25 = np.percentile(resid, [75, 25], axis=0)
    sd = (q75 - q25) / 1.349
    var = (resid ** 2).sum(0)
    ar1 = np.divide((resid[1:] * resid[:-1]).sum(0), var, out=np.zeros_like(var),
                    where=var > 0)
    expected = np.mean(np.sqrt(2.0 * (1.0 - np.clip(ar1, -1.0, 1.0))) * sd)
    std = dv / expected if expected > 0 else np.full_like(dv, np.nan)
    return np.concatenate([[np.nan], dv]), np.concatenate([[np.nan], std])


def cosine_drifts(n: int, tr: float, cutoff: float) -> np.ndarray:
    """DCT-II regressors of all frequencies below ``cutoff`` Hz (excluding the constant)."""
    order = int(np.floor(2.0 * n * tr * cutoff))
    t = np.arange(n)
    if order < 1:
        return np.empty((n, 0))
    return np.column_stack([np.cos(np.pi * (t + 0.5) * k / n) for k in range(1, order + 1)])


def acompcor(series: np.ndarray, tr: float, *, high_pass: float | None,
             n_components: float) -> tuple[np.ndarray, np.ndarray]:
    """Anatomical CompCor (Behzadi et al. 2007): principal components of noise-ROI signals.

    Each voxel series has its mean, linear trend and cosine drifts below ``high_pass`` Hz
    removed, is scaled to unit variance, and the left singular vectors of the
    ``(T, V)`` matrix are the components.

    Parameters
    ----------
    series : ndarray (T, V)
        Signals of the eroded WM + CSF voxels.
    tr : float
        Repetition time (s).
    high_pass : float or None
        Cut-off of the cosine high-pass (Hz), normally the band-pass's lower edge.
    n_components : int or float
        A number of components (>= 1), or a fraction in (0, 1): the smallest number whose
        cumulative variance explained reaches it.

    Returns
    -------
    components : ndarray (T, k)
        Unit-variance component time series.
    explained : ndarray (k,)
        Fraction of the ROI variance each component explains.
    """
    y = np.asarray(series, dtype=np.float64)
    scale = float(np.abs(y).max(initial=0.0))
    n = y.shape[0]
    t = np.arange(n, dtype=float)
    design = np.column_stack([np.ones(n), (t - t.mean()) / n]
                             + ([cosine_drifts(n, tr, high_pass)] if high_pass else []))
    y = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    sd = y.std(0)
    keep = sd > 1e-8 * max(scale, 1e-30)
    if keep.sum() < 2:
        raise InputError("aCompCor needs at least 2 voxels with signal in the WM/CSF mask; "
                         "the eroded masks are (almost) empty in BOLD space.")
    y = y[:, keep] / sd[keep]
    u, s, _ = np.linalg.svd(y, full_matrices=False)
    var = s ** 2
    frac = var / var.sum()
    if 0 < n_components < 1:
        k = int(np.searchsorted(np.cumsum(frac), n_components) + 1)
    else:
        k = int(n_components)
    if k < 1:
        raise InputError(f"--acompcor-components must be >= 1 or a fraction in (0, 1), "
                         f"got {n_components}")
    k = min(k, u.shape[1])
    comps = u[:, :k]
    comps = (comps - comps.mean(0)) / comps.std(0)
    return comps, frac[:k]


def butterworth(x: np.ndarray, tr: float, band: tuple[float | None, float | None],
                order: int = BUTTER_ORDER) -> np.ndarray:
    """Zero-phase Butterworth band-pass of ``(T, ...)`` series along time.

    ``band = (low, high)`` in Hz; ``low`` None/0 makes it a low-pass, ``high`` None or at or
    above Nyquist a high-pass (with a warning in the latter case).
    """
    low, high = band
    nyq = 0.5 / tr
    if high is not None and high >= nyq:
        warnings.warn(f"low-pass cut-off {high} Hz is at or above the Nyquist frequency "
                      f"{nyq:.3f} Hz of TR {tr} s: only the high-pass is applied.",
                      stacklevel=2)
        high = None
    low = low if low else None
    if low is None and high is None:
        return np.asarray(x, dtype=np.float64)
    # never None (both edges None returned above), which mypy cannot tell
    wn: tuple[float, float] | float | None
    if low is not None and high is not None:
        if low >= high:
            raise InputError(f"--band-pass low edge {low} Hz must be below the high edge "
                             f"{high} Hz")
        wn, btype = (low, high), "bandpass"
    elif low is not None:
        wn, btype = low, "highpass"
    else:
        wn, btype = high, "lowpass"
    sos = sps.butter(order, wn, btype=btype, output="sos", fs=1.0 / tr)
    return sps.sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=0)


def _interpolate_censored(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Cubic spline through the kept volumes inside their span; before the first / after
    the last kept volume the nearest kept value is held (no wild extrapolation)."""
    times = np.arange(x.shape[0], dtype=float)
    kept = np.flatnonzero(keep)
    spline = CubicSpline(times[kept], x[kept], axis=0, extrapolate=False)
    out = np.array(x, dtype=np.float64, copy=True)
    inner = ~keep & (times > kept[0]) & (times < kept[-1])
    out[inner] = spline(times[inner])
    out[: kept[0]] = out[kept[0]]
    out[kept[-1] + 1:] = out[kept[-1]]
    return out


def _detrend(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    t = np.arange(n, dtype=float)
    design = np.column_stack([np.ones(n), (t - t.mean()) / n])
    return x - design @ np.linalg.lstsq(design, x, rcond=None)[0]


def denoise(series: np.ndarray, confounds: np.ndarray | None, tr: float,
            band: tuple[float | None, float | None] | None, keep: np.ndarray | None = None,
            chunk: int = 20000) -> np.ndarray:
    """Confound regression with the band-pass applied to data and confounds alike.

    Order (Lindquist et al. 2019; the same as ``nilearn.signal.clean``):
    1. censored volumes (``keep`` False) are replaced in data and confounds by a cubic
       spline through the kept volumes (nearest kept value at the run's ends), so no
       motion spike enters the filter;
    2. data and confounds are linearly detrended and band-passed with the same zero-phase
       Butterworth filter;
    3. the mean-centred filtered confounds are fitted to the filtered data by least squares
       on the kept volumes only, and the fit is subtracted from every volume.
    Because the confound projection and the filter are the same linear operators for
    every voxel, a later spatial smoothing commutes with all of this.

    Parameters
    ----------
    series : ndarray (T, V)
    confounds : ndarray (T, C) or None
    tr : float
    band : (low, high) or None
        Hz; None only detrends.
    keep : bool ndarray (T,), optional
        Volumes to keep (False = censored).
    chunk : int
        Voxels processed at a time (bounds the memory of float64 copies).

    Returns
    -------
    ndarray (T, V) float32
        Denoised series; censored volumes hold interpolated, filtered, denoised values.
    """
    y_all = np.asarray(series)
    n = y_all.shape[0]
    keep = np.ones(n, bool) if keep is None else np.asarray(keep, bool)
    if keep.sum() < 3:
        raise InputError(f"only {int(keep.sum())} volumes survive censoring: raise "
                         "--fd-threshold or drop the run")
    censored = not keep.all()
    proj = None
    if confounds is not None and np.asarray(confounds).size:
        x = np.asarray(confounds, dtype=np.float64)
        if censored:
            x = _interpolate_censored(x, keep)
        x = _detrend(x)
        x = butterworth(x, tr, band) if band is not None else x
        x = x - x[keep].mean(0)
        scale = np.abs(x[keep]).max(0)
        x = x[:, scale > 0] / scale[scale > 0]
        # least squares on the kept volumes; pinv drops collinear directions
        proj = (x, np.linalg.pinv(x[keep], rcond=1e-10))
    out = np.empty(y_all.shape, np.float32)
    for start in range(0, y_all.shape[1], chunk):
        y = np.asarray(y_all[:, start:start + chunk], dtype=np.float64)
        if censored:
            y = _interpolate_censored(y, keep)
        y = _detrend(y)
        y = butterworth(y, tr, band) if band is not None else y
        if proj is not None:
            design, pinv = proj
            y = y - design @ (pinv @ y[keep])
        out[:, start:start + chunk] = y
    return out


def censor_mask(fd: np.ndarray, threshold: float | None) -> np.ndarray:
    """Volumes to keep: FD at or below ``threshold`` mm (the first volume's NaN FD is kept)."""
    fd = np.asarray(fd, dtype=float)
    if threshold is None or threshold <= 0:
        return np.ones(fd.shape, bool)
    return ~(np.nan_to_num(fd, nan=0.0) > threshold)


def smooth_within_mask(data: np.ndarray, mask: np.ndarray, zooms: npt.ArrayLike,
                       fwhm: float) -> np.ndarray:
    """Gaussian smoothing restricted to a mask (normalised convolution).

    Each volume is smoothed together with the mask and divided by the smoothed mask, so
    voxels near the edge average only in-mask neighbours and nothing leaks in from outside.
    Voxels outside the mask are set to 0.

    Parameters
    ----------
    data : ndarray (X, Y, Z) or (X, Y, Z, T)
    mask : bool ndarray (X, Y, Z)
    zooms : sequence of 3 floats
        Voxel sizes (mm) along the array axes.
    fwhm : float
        Kernel full width at half maximum (mm); 0 returns the masked data.
    """
    mask = np.asarray(mask, bool)
    out = np.zeros(data.shape, np.float32)
    if not fwhm:
        out[mask] = np.asarray(data)[mask]
        return out
    sigma = np.asarray(fwhm, float) / np.sqrt(8 * np.log(2)) / np.asarray(zooms, float)[:3]
    weight = ndi.gaussian_filter(mask.astype(np.float64), sigma, mode="constant")
    norm = np.where(mask, weight, 1.0)
    vols = data[..., None] if data.ndim == 3 else data
    target = out[..., None] if data.ndim == 3 else out
    for t in range(vols.shape[-1]):
        vol = np.where(mask, vols[..., t], 0.0).astype(np.float64)
        sm = ndi.gaussian_filter(vol, sigma, mode="constant") / norm
        target[..., t] = np.where(mask, sm, 0.0)
    return out
