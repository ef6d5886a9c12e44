"""Coverage of the dFC SD's parametric-bootstrap interval (``--dfc-bootstrap``) on data with
a known model.

A bivariate DCC-GARCH(1,1) model with time-varying correlation (the model of
``tests/test_dfc_bootstrap.py``) is the truth. Its SD sampling distribution at T = 273 is
taken by brute force (``--reference`` series simulated and refitted); then ``--datasets``
further series are drawn, each is fitted like a participant run and gets its bootstrap
interval (``--n-boot`` replicates, its own seed); the script counts how often the interval
holds the median of the true sampling distribution (about 95 % when the interval is right),
and reports the intervals' median width. The simulator is ``bids_dfc.dfc.simulate_pairs``
(checked against an independent one in the tests).

Usage: ``python validation/dfc_bootstrap_coverage.py [--datasets 100] [--n-boot 200]``
(writes ``validation/results/dfc_bootstrap_coverage.txt``).
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np

from bids_dfc.dfc import PairModel, bootstrap_dfc_sd, dcc, dfc_summary, fit_garch, simulate_pairs

T = 273


def truth() -> PairModel:
    garch = np.array([[[0.05, 0.08, 0.9], [0.2, 0.1, 0.85]]])
    return PairModel(garch=garch, sigma2_0=garch[..., 0] / (1 - garch[..., 1] - garch[..., 2]),
                     qbar=np.array([[1.0, 1.0, 0.35]]), a=np.array([0.06]),
                     b=np.array([0.9]), n_t=T)


def sampling_distribution(model: PairModel, n_rep: int, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).standard_normal((n_rep, T, 1, 2))
    x = simulate_pairs(model, e)[:, :, 0]  # (n_rep, T, 2)
    cols = x.transpose(1, 0, 2).reshape(T, 2 * n_rep)
    fit = dcc(cols, pairs=[(2 * k, 2 * k + 1) for k in range(n_rep)], garch=fit_garch(cols))
    return dfc_summary(fit.R)["sd"][fit.converged]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "dfc_bootstrap_coverage.txt"))
    args = parser.parse_args(argv)
    model = truth()
    t0 = time.perf_counter()
    ref = sampling_distribution(model, args.reference, seed=1)
    median = float(np.median(ref))
    rng = np.random.default_rng(77)
    hits, widths, failed = [], [], 0
    for k in range(args.datasets):
        x = simulate_pairs(model, rng.standard_normal((1, T, 1, 2)))[0, :, 0]
        boot = bootstrap_dfc_sd(dcc(x), n_boot=args.n_boot, seed=k)
        hits.append(boot.ci_low[0] <= median <= boot.ci_high[0])
        widths.append(boot.ci_high[0] - boot.ci_low[0])
        failed += int(boot.n_failed[0])
    lines = [
        f"dfc_bootstrap_coverage.py, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}",
        f"truth: GARCH (w, alpha, beta) {model.garch[0].tolist()}, Qbar q12 0.35, "
        f"a 0.06, b 0.9, T {T}",
        f"true SD sampling distribution ({len(ref)} refits): median {median:.4f}, "
        f"2.5-97.5 % {np.quantile(ref, 0.025):.4f}-{np.quantile(ref, 0.975):.4f}",
        f"coverage of that median by the 95 % interval: {np.mean(hits):.3f} "
        f"({sum(hits)} of {args.datasets} datasets, B = {args.n_boot} each)",
        f"interval width: median {np.median(widths):.4f}; failed replicates {failed} of "
        f"{args.datasets * args.n_boot}; {time.perf_counter() - t0:.0f} s",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
