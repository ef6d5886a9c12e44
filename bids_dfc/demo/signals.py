"""Time courses of the demo BOLD runs: planted network signals with a fluctuating
correlation (and a known dFC), physiological noise, head motion."""

from __future__ import annotations

import numpy as np

from bids_dfc.dfc import dcc, dfc_summary


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


def planted_dfc(dmn: np.ndarray, des: np.ndarray, steady: slice) -> float:
    """The method's dFC of planted signals: SD of the DCC series of the steady volumes.

    Exactly what the pipeline computes for the DMN-DeS pair (z-scored series,
    :func:`bids_dfc.dfc.dcc`, then the ``sd`` of :func:`bids_dfc.dfc.dfc_summary`), applied
    to the noise-free planted network signals: the value a perfect preprocessing would give.
    """

    x = np.column_stack([dmn, des])[steady]
    x = (x - x.mean(0)) / x.std(0)
    return float(dfc_summary(dcc(x).R)["sd"][0])


def planted_dynamics(rng: np.random.Generator, n: int, tr: float, rho_mean: float,
                     target_dfc: float, steady: slice, *, band=(0.01, 0.1),
                     max_freq: float = 0.01, tol: float = 0.005, max_draws: int = 8) -> dict:
    """DMN and DeS signals whose planted dFC (:func:`planted_dfc`) is ``target_dfc``.

    The correlation time course is ``rho_t = tanh(atanh(rho_mean) + s g_t)``, with ``g`` a
    slow unit-variance process (frequencies up to ``max_freq`` Hz, or the lowest frequency
    of the run if that is higher); ``dmn = z1`` and ``des = rho_t z1 + sqrt(1 - rho_t^2) z2``
    with ``z1``, ``z2`` unit-variance series band-limited to ``band`` (``z2`` orthogonalised
    against ``z1``). For one draw of ``(g, z1, z2)`` the scale ``s`` is searched (a grid,
    then bisection inside the first bracket) until the DCC SD of the planted signals is
    within ``tol`` of the target. A draw whose reachable range misses the target (DCC on
    band-limited signals shows some SD even for a constant correlation) is replaced by a
    new one, up to ``max_draws`` times.

    Returns
    -------
    dict
        ``rho``, ``dmn``, ``des`` (arrays of length ``n``), ``scale`` (``s``), ``dfc``
        (the achieved planted dFC: within ``tol`` of the target unless no draw reached it,
        then the closest found) and ``rho_sd`` (SD of ``rho`` over the steady volumes).
    """
    base = np.arctanh(rho_mean)
    grid = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2, 3.0])
    best = None

    def closer(cand):
        return best is None or abs(cand["dfc"] - target_dfc) < abs(best["dfc"] - target_dfc)

    for _ in range(max_draws):
        g = bandlimited(rng, n, tr, 0.0, max(max_freq, 1.01 / (n * tr)))
        z1 = bandlimited(rng, n, tr, *band)
        z2 = bandlimited(rng, n, tr, *band)
        z2 = z2 - (z2 @ z1) / (z1 @ z1) * z1
        z2 /= z2.std()

        def make(scale, g=g, z1=z1, z2=z2):
            rho = np.tanh(base + scale * g)
            des = rho * z1 + np.sqrt(1.0 - rho ** 2) * z2
            return {"rho": rho, "dmn": z1, "des": des, "scale": float(scale),
                    "dfc": planted_dfc(z1, des, steady), "rho_sd": float(rho[steady].std())}

        trials = [make(s) for s in grid]
        for cand in trials:
            if closer(cand):
                best = cand
        if abs(best["dfc"] - target_dfc) <= tol:
            return best
        brackets = [(lo, hi) for lo, hi in zip(trials[:-1], trials[1:])
                    if (lo["dfc"] - target_dfc) * (hi["dfc"] - target_dfc) < 0]
        if not brackets:
            continue
        lo, hi = brackets[0]
        for _ in range(12):
            mid = make(0.5 * (lo["scale"] + hi["scale"]))
            if closer(mid):
                best = mid
            if abs(mid["dfc"] - target_dfc) <= tol:
                return mid
            if (mid["dfc"] - target_dfc) * (lo["dfc"] - target_dfc) < 0:
                hi = mid
            else:
                lo = mid
    return best


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
