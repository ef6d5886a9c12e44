#!/usr/bin/env python
"""Record tests/data/pinned.json: the pinned tests run against the pre-refactor package.

    python scripts/record_pinned.py [--commit bc20aec]

Record again only for a deliberate change of result (the commit that makes it), never to
make a refactor pass.

The package at ``--commit`` is checked out into a temporary git worktree and imported from
there (the editable install's import hook is bypassed); the test modules are today's, so
the inputs and calls are the ones the tests make. Run it on a new machine or numerical stack;
the file records the environment, and the tests require bit-identity only on a machine that
matches it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_pinned_dfc.py", "tests/test_pinned_stats.py"]

# run with -S: no site, so no .pth file and no editable-install hook; site-packages by hand
_RUNNER = """
import sys
sys.path[:0] = [{tree!r}, {tests!r}]
sys.path.append({site!r})
import bids_dfc
assert bids_dfc.__file__.startswith({tree!r}), bids_dfc.__file__
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", {repo!r}, *{tests_files!r}]))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="bc20aec",
                        help="the recording commit (tests/_pinned.py RECORD_COMMIT)")
    args = parser.parse_args()
    reference = REPO / "tests" / "data" / "pinned.json"
    reference.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree = str(Path(tmp) / "tree")
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", tree,
                        args.commit], check=True, capture_output=True)
        try:
            code = _RUNNER.format(tree=tree, tests=str(REPO / "tests"),
                                  site=sysconfig.get_paths()["purelib"], repo=str(REPO),
                                  tests_files=[str(REPO / t) for t in TESTS])
            env = {**os.environ, "BIDS_DFC_PINNED_RECORD": args.commit}
            result = subprocess.run([sys.executable, "-S", "-c", code], env=env, cwd=tmp)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", tree],
                           check=False, capture_output=True)
    if result.returncode:
        reference.unlink(missing_ok=True)
        print("recording failed: the pinned tests did not run on the pre-refactor code",
              file=sys.stderr)
        return 1
    print(f"wrote {reference.relative_to(REPO)} from commit {args.commit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
