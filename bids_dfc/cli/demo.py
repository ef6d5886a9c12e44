"""``bids-dfc-demo``: write the built-in demo BIDS dataset and its ground truth."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bids_dfc import __version__
from bids_dfc.cli.types import positive_int


def _default_jobs() -> int:
    from bids_dfc.cli.resources import usable_cpus

    return max(1, min(2, usable_cpus()))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bids-dfc-demo",
        description="Write a synthetic BIDS dataset (T1w + resting BOLD made from the MNI152 "
                    "template, with planted DMN-DeS dynamic connectivity and phenotype) and "
                    "its ground truth in a sibling folder. See docs/demo.md.")
    parser.add_argument("out_dir", type=Path, help="BIDS root to create (must be empty)")
    parser.add_argument("--version", action="version", version=f"bids-dfc-demo {__version__}")
    size = parser.add_argument_group("size")
    size.add_argument("--n-subjects", type=positive_int, default=12,
                      help="participants, balanced HC / R / NR (default: 12)")
    size.add_argument("--n-volumes", type=positive_int, default=None,
                      help="BOLD volumes per run incl. 4 non-steady-state ones "
                           "(default: 277, the study's run length)")
    size.add_argument("--full-size", action="store_true",
                      help="T1w 1 mm 256x256x180 and BOLD 3.125x3.125x4 mm 64x64x36 "
                           "(default: T1w 2 mm, BOLD 4 mm)")
    size.add_argument("--sessions", type=positive_int, default=1, dest="n_sessions",
                      help="sessions per subject (default: 1, no ses- entity)")
    size.add_argument("--runs", type=positive_int, default=1, dest="n_runs",
                      help="resting runs per session (default: 1, no run- entity)")
    other = parser.add_argument_group("other")
    other.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    other.add_argument("--truth-dir", type=Path, default=None,
                       help="where to write the ground truth (default: <OUT_DIR>_truth)")
    other.add_argument("--overwrite", action="store_true",
                       help="replace an earlier demo output in OUT_DIR and the truth folder")
    other.add_argument("--n-jobs", type=positive_int, default=_default_jobs(),
                       help="subjects generated in parallel; the output does not depend on "
                            "it (default: min(2, available CPUs))")
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 ok, 1 the folder cannot be written, 2 bad input
    or usage)."""
    args = _build_parser().parse_args(argv)
    from bids_dfc.demo import make_demo_dataset

    start = time.perf_counter()
    try:
        paths = make_demo_dataset(
            args.out_dir, n_subjects=args.n_subjects, seed=args.seed,
            n_volumes=args.n_volumes, full_size=args.full_size, n_sessions=args.n_sessions,
            n_runs=args.n_runs, truth_dir=args.truth_dir, overwrite=args.overwrite,
            n_jobs=args.n_jobs)
    except (ValueError, FileExistsError) as exc:
        print(f"bids-dfc-demo: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file where a folder should be, permissions, a full disk
        print(f"bids-dfc-demo: error: cannot write {exc.filename or args.out_dir} "
              f"({exc.strerror or exc}); choose a writable OUT_DIR", file=sys.stderr)
        return 1
    print(f"wrote {len(paths['subjects'])} subject(s) to {paths['bids_dir']} and the truth "
          f"to {paths['truth_dir']} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
