#!/usr/bin/env bash
# Builds the client library, the `singleton-lock` command and their tests with
# Meson: build/client (release with debug info) and build/asan (ASan + UBSan).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
[ -f build/client/build.ninja ] || meson setup build/client --buildtype=debugoptimized >/dev/null
meson compile -C build/client
if [ "${SL_SKIP_ASAN:-0}" != 1 ]; then
  [ -f build/asan/build.ninja ] || meson setup build/asan --buildtype=debug \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
  meson compile -C build/asan
fi
