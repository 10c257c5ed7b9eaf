#!/usr/bin/env bash
# Everything that states singleton_lock's version agrees with the control
# file's default_version (written once there):
#   test/packaging/version_test.sh SINGLETON_LOCK_BINARY | --no-client
# - `singleton-lock --version` prints "singleton-lock VERSION" (unless --no-client:
#   CI's PostgreSQL 17/18 roots build the extension alone);
# - debian/changelog's newest entry is VERSION;
# - with a server (PG* environment) of PostgreSQL 18 or later: the loaded
#   library's magic block says VERSION (pg_get_loaded_modules()).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*" >&2; exit 1; }
[ $# -eq 1 ] || { echo "usage: $0 SINGLETON_LOCK_BINARY | --no-client" >&2; exit 2; }
version=$(test/packaging/control_version.sh)
[ -n "$version" ] || fail "no default_version in extension/singleton_lock.control"

if [ "$1" != --no-client ]; then
  cli=$("$1" --version)
  [ "$cli" = "singleton-lock $version" ] || fail "singleton-lock --version says '$cli', the control file '$version'"
  echo "ok singleton-lock --version: $cli"
fi

changelog=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog)
[ "$changelog" = "$version" ] || fail "debian/changelog is at '$changelog', the control file at '$version'"
echo "ok debian/changelog: $changelog"

if [ -n "${PGPORT:-}" ]; then
  server=$(psql -X -qAt -c "SHOW server_version_num")
  if [ "$server" -ge 180000 ]; then
    loaded=$(psql -X -qAt -c "LOAD 'singleton_lock'" \
                 -c "SELECT version FROM pg_get_loaded_modules() WHERE module_name = 'singleton_lock'")
    [ "$loaded" = "$version" ] || fail "the loaded library's magic block says '$loaded'"
    echo "ok magic block (PostgreSQL $server): $loaded"
  fi
fi
