#!/usr/bin/env bash
# Make a local Debian bookworm base image for hosts that cannot pull from a registry.
#
# The Dockerfile's default base is the public docker.io/library/debian:bookworm-slim. Where no
# registry is reachable (air-gapped clusters, our CI), build an equivalent base from the Debian
# mirror apt already uses, and pass it to the build:
#
#     docker/build-base.sh                       # -> localhost/debian:bookworm-slim
#     podman build --pull=never --build-arg BASE_IMAGE=localhost/debian:bookworm-slim ...
#
# Usage: docker/build-base.sh [--force] [TAG]
#   TAG      image name to create (default localhost/debian:bookworm-slim)
#   --force  rebuild even if TAG already exists
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), ENGINE (default podman).
# Needs root, debootstrap and podman (or docker).
set -euo pipefail

force=0
if [[ "${1:-}" == "--force" ]]; then force=1; shift; fi
tag="${1:-localhost/debian:bookworm-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
engine="${ENGINE:-podman}"
here=$(cd "$(dirname "$0")" && pwd)
if [[ "$engine" == podman ]]; then
    # shellcheck source=podman-env.sh
    . "$here/podman-env.sh"
fi

if [[ $force -eq 0 ]] && "$engine" image exists "$tag" 2>/dev/null; then
    echo "build-base: $tag already exists (use --force to rebuild)"
    exit 0
fi
for tool in debootstrap "$engine"; do
    if ! command -v "$tool" >/dev/null; then
        echo "build-base: '$tool' not found; install it (apt-get install -y debootstrap podman)" >&2
        exit 2
    fi
done

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/bids_dfc_rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase bookworm "$rootfs" "$mirror"

# Same sources and space-saving dpkg rules as the official slim image.
cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim-excludes" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/usr/share/doc/*/changelog* "$rootfs"/usr/share/man/* "$rootfs"/var/log/*.log

tar --numeric-owner -C "$rootfs" -c . | "$engine" import --change 'CMD ["bash"]' - "$tag"
echo "build-base: created $tag"
