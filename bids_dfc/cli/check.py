"""``bids-dfc-check OUTPUT_DIR``: are the outputs named and linked as BIDS asks?

Every file name is checked against the BIDS schema's derivative rules (bidsschematools) or,
for the kinds the specification does not cover yet, the documented convention it follows;
every ``bids:`` URI in a sidecar must resolve through DatasetLinks to an existing file.
Exit status 0 when everything passes, 1 when something does not, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bids_dfc import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bids-dfc-check", description=__doc__.split("\n\n")[0],
        epilog="example: bids-dfc-check /data/derivatives/bids_dfc",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path, help="a bids-dfc OUTPUT_DIR")
    parser.add_argument("--version", action="version", version=f"bids-dfc-check {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from bids_dfc.derivatives.validate import check_outputs, summary

    if not (args.output_dir / "dataset_description.json").is_file():
        print(f"bids-dfc-check: error: {args.output_dir} has no dataset_description.json: "
              "give the OUTPUT_DIR of a bids-dfc run", file=sys.stderr)
        return 2
    try:
        report = check_outputs(args.output_dir)
        print(summary(report))
    except RuntimeError as exc:  # bidsschematools missing
        print(f"bids-dfc-check: error: {exc}", file=sys.stderr)
        return 2
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
