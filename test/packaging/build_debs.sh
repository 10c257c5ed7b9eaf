#!/usr/bin/env bash
# Builds the Debian packages of the committed HEAD with the standard tooling
# (dpkg-buildpackage, debhelper, pg_buildext) and copies them to OUTDIR:
#   postgresql-NN-singleton-lock (each PostgreSQL major the release supports),
#   singleton-lock, libsingleton-lock-dev.
#   test/packaging/build_debs.sh OUTDIR
# Build dependencies: test/install_deps.sh packaging. On a release other than
# the one debian/control was generated for, PG_UPDATECONTROL=1 regenerates it
# from debian/control.in (pg_buildext's convention).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
WORK=$(mktemp -d /tmp/singleton_lock_debs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
git clone -q --no-hardlinks "$ROOT" "$WORK/singleton-lock"
git -C "$WORK/singleton-lock" -c advice.detachedHead=false checkout -q "$(git -C "$ROOT" rev-parse HEAD)"
cd "$WORK/singleton-lock"
dpkg-buildpackage -us -uc -b
cp "$WORK"/*.deb "$OUT"/
ls "$OUT"/*.deb
