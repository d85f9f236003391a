#!/usr/bin/env bash
# Makes a Debian bookworm base image locally, for machines that reach Debian's archive but no
# image registry: `debootstrap --variant=minbase` into a temporary folder, piped into
# `docker import`. The images of docker/Dockerfile build FROM it with
# `--build-arg BASE_IMAGE=monosweep-base:bookworm` (docker/build-images.sh does that when the
# public base cannot be pulled). Elsewhere, build from the public `debian:bookworm-slim`.
#   docker/make-base-image.sh [TAG]          (default monosweep-base:bookworm; needs root)
set -euo pipefail
tag=${1:-monosweep-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" > /dev/null 2>&1; then
    echo "make-base-image: $tag exists"
    exit 0
fi
command -v debootstrap > /dev/null || {
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
}
root=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$root" "$log"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
# The archive this machine reads may be a dated snapshot: apt in the image accepts its
# Release files as the host's apt does. The security suite as in debian:bookworm-slim.
cp /etc/apt/apt.conf.d/99artifact-registry "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$tag" > /dev/null
echo "make-base-image: made $tag"
