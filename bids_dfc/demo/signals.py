"""Time courses of the demo BOLD runs: planted network signals with a fluctuating
correlation, physiological noise, head motion."""

from __future__ import annotations

import numpy as np


def bandlimited(rng: np.random.Generator, n: int, tr: float, low: float,
                high: float) -> np.ndarray:
    """Unit-variance, zero-mean Gaussian series with power only in ``[low, high]`` Hz.

    White noise is filtered with an ideal (FFT) band-pass; ``low`` > 0 removes the mean.
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, d=tr)
    keep = (freqs >= low) & (freqs <= high) & (freqs > 0)
    if not keep.any():
        raise ValueError(f"no frequency of a {n}-volume run with TR {tr} s lies in "
                         f"[{low}, {high}] Hz: use more volumes")
    spectrum[~keep] = 0.0
    series = np.fft.irfft(spectrum, n)
    series -= series.mean()
    return series / series.std()


def rho_series(rng: np.random.Generator, n: int, tr: float, rho_mean: float,
               target_sd: float, steady: slice, max_freq: float = 0.015):
    """Correlation time course ``rho_t = tanh(atanh(rho_mean) + a g_t)``.

    ``g`` is a slow unit-variance process (frequencies up to ``max_freq`` Hz, or the lowest
    frequency of the run if that is higher); ``a`` is found
    by bisection so that the SD of ``rho_t`` over the ``steady`` volumes equals
    ``target_sd`` (the subject's true dFC).

    Returns
    -------
    rho : ndarray (n,)
    scale : float
        The multiplier ``a``.
    """
    g = bandlimited(rng, n, tr, 0.0, max(max_freq, 1.01 / (n * tr)))
    base = np.arctanh(rho_mean)

    def sd(scale):
        return np.tanh(base + scale * g)[steady].std()

    lo, hi = 0.0, 50.0
    if sd(hi) < target_sd:
        raise ValueError(f"a correlation SD of {target_sd} cannot be reached around a mean "
                         f"of {rho_mean}: lower the target dFC")
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if sd(mid) < target_sd else (lo, mid)
    scale = 0.5 * (lo + hi)
    return np.tanh(base + scale * g), scale


def network_signals(rng: np.random.Generator, rho: np.ndarray, tr: float,
                    band=(0.01, 0.1)):
    """DMN and DeS signals band-limited to ``band`` with instantaneous correlation ``rho``.

    ``dmn = z1`` and ``des = rho_t z1 + sqrt(1 - rho_t^2) z2``, where ``z1`` and ``z2`` are
    unit-variance band-limited series and ``z2`` is orthogonalised against ``z1``.
    """
    n = rho.shape[0]
    z1 = bandlimited(rng, n, tr, *band)
    z2 = bandlimited(rng, n, tr, *band)
    z2 = z2 - (z2 @ z1) / (z1 @ z1) * z1
    z2 /= z2.std()
    return z1, rho * z1 + np.sqrt(1.0 - rho ** 2) * z2


def physio_series(rng: np.random.Generator, n: int, tr: float) -> np.ndarray:
    """One physiological-noise time course (unit variance).

    A 1/f ("pink") background plus an aliased cardiac/respiratory-like oscillation at a
    random frequency in 0.02-0.2 Hz whose amplitude wanders slowly.
    """
    freqs = np.fft.rfftfreq(n, d=tr)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    weights = np.zeros_like(freqs)
    weights[1:] = 1.0 / np.sqrt(freqs[1:] / freqs[1])
    pink = np.fft.irfft(spectrum * weights, n)
    pink /= pink.std()
    t = np.arange(n) * tr
    freq = rng.uniform(0.02, 0.2)
    envelope = 1.0 + 0.5 * bandlimited(rng, n, tr, 0.0, max(0.01, 1.01 / (n * tr)))
    osc = envelope * np.cos(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    osc /= osc.std()
    series = 0.7 * pink + 0.7 * osc
    series -= series.mean()
    return series / series.std()


def motion_parameters(rng: np.random.Generator, n: int, tr: float, reference: int,
                      drift_mm: float = 0.15, drift_deg: float = 0.15,
                      n_jerks: int = 2) -> np.ndarray:
    """Rigid head-motion parameters of every volume relative to volume ``reference``.

    Slow random-walk drift (SD ``drift_mm`` / ``drift_deg``), ``n_jerks`` sudden moves of
    0.2-0.6 mm / 0.1-0.4 deg (half of them return after 1-3 volumes) and a small
    respiratory oscillation.

    Returns
    -------
    ndarray (n, 6)
        ``trans_x, trans_y, trans_z`` (mm) and ``rot_x, rot_y, rot_z`` (rad); the row
        ``reference`` is all zeros.
    """
    scale = np.array([drift_mm] * 3 + [np.deg2rad(drift_deg)] * 3)
    walk = np.cumsum(rng.standard_normal((n, 6)), axis=0)
    kernel = np.hanning(7) / np.hanning(7).sum()
    walk = np.stack([np.convolve(walk[:, k], kernel, mode="same") for k in range(6)], 1)
    walk -= walk.mean(0)
    walk *= scale / np.maximum(walk.std(0), 1e-12)
    params = walk
    lo = min(reference + 5, n - 1)
    hi = max(lo + 1, n - 5)
    for _ in range(n_jerks):
        when = int(rng.integers(lo, hi))
        step = np.concatenate([rng.uniform(0.2, 0.6, 3) * rng.choice([-1, 1], 3),
                               np.deg2rad(rng.uniform(0.1, 0.4, 3)) * rng.choice([-1, 1], 3)])
        step *= rng.random(6) < 0.6
        stop = when + int(rng.integers(1, 4)) if rng.random() < 0.5 else n
        params[when:stop] += step
    t = np.arange(n) * tr
    resp = np.sin(2 * np.pi * 0.27 * t + rng.uniform(0, 2 * np.pi))
    params[:, 1] += 0.02 * resp
    params[:, 2] += 0.03 * resp
    params[:, 3] += np.deg2rad(0.03) * resp
    return params - params[reference]


def framewise_displacement(params: np.ndarray, radius: float = 50.0) -> np.ndarray:
    """Power et al. (2012) framewise displacement of ``(n, 6)`` parameters (mm, rad)."""
    diff = np.abs(np.diff(params, axis=0))
    fd = diff[:, :3].sum(1) + radius * diff[:, 3:].sum(1)
    return np.concatenate([[0.0], fd])
