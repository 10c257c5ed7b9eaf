#!/usr/bin/env bash
# Inside a Debian root of a given release, from the checkout, as root: the
# extension alone on that release's PostgreSQL (17 on Debian 13, 18 on
# testing): installs what it needs, builds with warnings as errors, installs,
# runs pg_regress and the isolation specs against a throwaway server, and
# checks the versions (on PostgreSQL 18 the library's magic block too).
set -euo pipefail
cd "$(dirname "$0")/.."
test/install_deps.sh extension
make -s SL_WERROR=1
make -s install
eval "$(test/pgserver.sh start)"
trap 'test/pgserver.sh stop >/dev/null 2>&1' EXIT
echo "PostgreSQL $(psql -X -qAt -c 'SHOW server_version')"
if ! make -s installcheck; then
  cat regression.diffs output_iso/regression.diffs 2>/dev/null
  exit 1
fi
test/packaging/version_test.sh --no-client
