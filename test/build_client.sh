#!/usr/bin/env bash
# Builds the client library, the `singleton-lock` command and their tests with
# Meson: build/client (release with debug info) and build/asan (ASan + UBSan).
# SL_WERROR=1: warnings are errors (CI).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
werror=()
[ "${SL_WERROR:-0}" = 1 ] && werror=(--werror)
[ -f build/client/build.ninja ] || meson setup build/client --buildtype=debugoptimized "${werror[@]}" >/dev/null
meson compile -C build/client
if [ "${SL_SKIP_ASAN:-0}" != 1 ]; then
  [ -f build/asan/build.ninja ] || meson setup build/asan --buildtype=debug "${werror[@]}" \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
  meson compile -C build/asan
fi
