#!/usr/bin/env bash
# Fill a wheelhouse with every pinned dependency, for builds without access to PyPI.
#
# Sites behind firewalls (and our CI, where pip inside a container build cannot verify TLS)
# build the image from a directory of wheels prepared on a machine that can reach PyPI:
#
#     docker/build-wheelhouse.sh docker/wheelhouse
#     podman build --build-arg WHEELHOUSE=docker/wheelhouse ...
#
# The wheels must match the image's interpreter: CPython 3.11 on Linux x86_64 (Debian
# bookworm's python3). Run this script with such a Python (PYTHON=..., default python3) or
# on another platform with PLATFORM_ARGS, e.g.
#     PLATFORM_ARGS="--platform manylinux_2_28_x86_64 --python-version 3.11 --only-binary=:all:"
# which then uses `pip download` (wheels only; sdist-only packages must be built on Linux).
#
# Usage: docker/build-wheelhouse.sh [WHEELHOUSE_DIR] [LOCK_FILE]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
wheelhouse="${1:-$here/wheelhouse}"
lock="${2:-$here/requirements.lock}"
python="${PYTHON:-python3}"
mkdir -p "$wheelhouse"

if [[ -n "${PLATFORM_ARGS:-}" ]]; then
    # shellcheck disable=SC2086
    "$python" -m pip download --no-deps $PLATFORM_ARGS -r "$lock" -d "$wheelhouse"
else
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [[ "$version" != "3.11" ]]; then
        echo "build-wheelhouse: $python is Python $version; the image runs Python 3.11." >&2
        echo "Use PYTHON=python3.11 or PLATFORM_ARGS (see the header of this script)." >&2
        exit 2
    fi
    # Wheels as published where they exist, built locally from sdists otherwise.
    "$python" -m pip wheel --no-deps -r "$lock" -w "$wheelhouse"
fi

# Keep only what the lock pins (an older wheelhouse may hold other versions).
"$python" - "$wheelhouse" "$lock" <<'PY'
import re
import sys
from pathlib import Path

wheelhouse, lock = Path(sys.argv[1]), Path(sys.argv[2])
def norm(name):
    return re.sub(r"[-_.]+", "_", name).lower()
pins = set()
for line in lock.read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
        name, version = line.split("==")
        pins.add((norm(name), version))
for wheel in wheelhouse.glob("*.whl"):
    name, version = wheel.name.split("-")[:2]
    if (norm(name), version) not in pins:
        print(f"build-wheelhouse: removing unpinned {wheel.name}")
        wheel.unlink()
missing = {p for p in pins if not any(
    (norm(w.name.split("-")[0]), w.name.split("-")[1]) == p for w in wheelhouse.glob("*.whl"))}
if missing:
    sys.exit(f"build-wheelhouse: no wheel for {sorted(missing)}")
print(f"build-wheelhouse: {len(pins)} wheels in {wheelhouse}")
PY
