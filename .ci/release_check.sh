#!/usr/bin/env bash
# Inside a Debian root of another release, from the checkout, as root: PostgreSQL
# 17 on Debian 13, 18 on Debian testing. Builds the Debian packages there
# (pg_buildext makes postgresql-NN-singleton-lock for the release's major; the
# extension with warnings as errors, SL_WERROR=1), installs them with apt, and
# runs pg_regress and the isolation specs against the packaged extension on a
# throwaway server; then checks the versions (and the library's magic block on 18).
set -euo pipefail
cd "$(dirname "$0")/.."
test/install_deps.sh packaging
PG=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
# debian/control lists the packages for Debian 12's major: regenerate it (pg_buildext's way).
PG_UPDATECONTROL=1 SL_WERROR=1 test/packaging/build_debs.sh /root/debs
ls /root/debs/postgresql-$PG-singleton-lock_*.deb >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  /root/debs/postgresql-$PG-singleton-lock_*.deb /root/debs/singleton-lock_*.deb >/tmp/apt.log 2>&1 ||
  { cat /tmp/apt.log; exit 1; }
echo "ok installed with apt: postgresql-$PG-singleton-lock, singleton-lock"
eval "$(test/pgserver.sh start)"
trap 'test/pgserver.sh stop >/dev/null 2>&1' EXIT
echo "PostgreSQL $(psql -X -qAt -c 'SHOW server_version')"
if ! make -s installcheck; then
  cat regression.diffs output_iso/regression.diffs 2>/dev/null
  exit 1
fi
test/packaging/version_test.sh /usr/bin/singleton-lock
