#!/usr/bin/env bash
# Install layout, against a real server (PG* environment; the extension installed):
#   - `make install DESTDIR=D` puts the library, the control file and every SQL
#     script under D, nothing outside it;
#   - `meson install --destdir D` installs singleton-lock (and its health
#     module where the command looks for it), libsingleton_lock.a, the public
#     headers and singleton_lock.pc under D;
#   - a consumer program built only with what `pkg-config singleton_lock` says
#     takes and releases a lease on the server.
# Uses build/client (test/build_client.sh). Prints "ok ..." per check.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
WORK=$(mktemp -d /tmp/singleton_lock_install.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_file() { [ -f "$1" ] || fail "not installed: $1"; }

# --- make install DESTDIR ---------------------------------------------------
make -s install DESTDIR="$WORK/ext" >/dev/null
expect_file "$WORK/ext$(pg_config --pkglibdir)/singleton_lock.so"
expect_file "$WORK/ext$(pg_config --sharedir)/extension/singleton_lock.control"
for script in extension/singleton_lock--*.sql; do
  expect_file "$WORK/ext$(pg_config --sharedir)/extension/$(basename "$script")"
done
outside=$(find "$WORK/ext" -type f | grep -v -e "^$WORK/ext$(pg_config --pkglibdir)/" \
          -e "^$WORK/ext$(pg_config --sharedir)/extension/" || true)
[ -z "$outside" ] || fail "make install put files elsewhere: $outside"
echo "ok make install honours DESTDIR ($(find "$WORK/ext" -type f | wc -l) files)"

# --- meson install --destdir --------------------------------------------------
meson install -C build/client --quiet --destdir "$WORK/client" >/dev/null
prefix=$(meson introspect build/client --buildoptions |
         python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
D="$WORK/client$prefix"
expect_file "$D/bin/singleton-lock"
libdir=$(meson introspect build/client --buildoptions |
         python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')
expect_file "$D/$libdir/singleton-lock/singleton-lock-health.so"
grep -qaF "$prefix/$libdir/singleton-lock" "$D/bin/singleton-lock" ||
  fail "singleton-lock does not look for its health module in $prefix/$libdir/singleton-lock"
for header in client/include/singleton_lock/*.hpp; do
  expect_file "$D/include/singleton_lock/$(basename "$header")"
done
pcfile=$(find "$D" -name singleton_lock.pc)
[ -n "$pcfile" ] || fail "no singleton_lock.pc under $D"
libfile=$(find "$D" -name 'libsingleton_lock.a' -o -name 'libsingleton_lock.so')
[ -n "$libfile" ] || fail "no libsingleton_lock under $D"
echo "ok meson install --destdir: singleton-lock, its health module, $(basename "$libfile"), headers, singleton_lock.pc"

# --- a consumer built through pkg-config, run against the server ------------
export PKG_CONFIG_PATH="$(dirname "$pcfile")" PKG_CONFIG_SYSROOT_DIR="$WORK/client"
flags=$(pkg-config --cflags --libs singleton_lock) || fail "pkg-config does not resolve singleton_lock"
[ "$(pkg-config --modversion singleton_lock)" = "$(test/packaging/control_version.sh)" ] ||
  fail "singleton_lock.pc version $(pkg-config --modversion singleton_lock) differs from the control file"
# shellcheck disable=SC2086  # pkg-config output is a list of flags
g++ -std=c++17 -Wall -Wextra -Werror -o "$WORK/consumer" test/packaging/consumer.cpp $flags
name="install-test-$$"
"$WORK/consumer" "$name" >"$WORK/out" 2>&1 || { cat "$WORK/out"; fail "the consumer failed"; }
token=$(sed -n 's/^leader \([0-9][0-9]*\)$/\1/p' "$WORK/out")
[ -n "$token" ] || { cat "$WORK/out"; fail "the consumer printed no token"; }
row=$(psql -X -qAt -c "SELECT state, token, transitions, last_transition FROM singleton_leases
                       WHERE name = '$name'")
[ "$row" = "free|$token|1|released" ] || fail "server state after the consumer: '$row'"
psql -X -qc "SELECT singleton_force_release('$name')" >/dev/null
echo "ok consumer built with pkg-config flags ($flags) led with token $token and released"
