#!/usr/bin/env bash
# Inside a Debian root of another release, from the checkout, as root: PostgreSQL
# 17 on Debian 13, 18 on Debian testing.
#   .ci/release_check.sh extension   the extension from source: builds with warnings as
#                                    errors, pg_regress + isolation specs on a throwaway
#                                    server, versions agree (on 18: the magic block's too);
#                                    test/python/test_within.py on the release's Python
#   .ci/release_check.sh packages    the Debian packages built there (pg_buildext makes
#                                    postgresql-NN-singleton-lock for the release's major;
#                                    the client with that release's compiler), installed
#                                    with apt; pg_regress + isolation against the packaged
#                                    extension, the packaged singleton-lock's version
#   .ci/release_check.sh clients     the clients on that release's compiler, Python and
#                                    PostgreSQL (against the packaged extension): the C++
#                                    library's and the command's integration tests, the
#                                    Python library's tests of the library and server limits
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}

regress() {  # pg_regress and the isolation specs against the installed extension
  eval "$(test/pgserver.sh start)"
  trap 'test/pgserver.sh stop >/dev/null 2>&1' EXIT
  echo "PostgreSQL $(psql -X -qAt -c 'SHOW server_version')"
  if ! make -s installcheck; then
    cat regression.diffs output_iso/regression.diffs 2>/dev/null
    exit 1
  fi
}

case "$mode" in
  extension)
    test/install_deps.sh extension
    make -s SL_WERROR=1
    make -s install
    regress
    test/packaging/version_test.sh --no-client
    # The Python library's timeout helper on this release's Python: asyncio's
    # cancellation changed in 3.12, and Debian 12 (the host phase) has 3.11.
    apt-get install -y -q --no-install-recommends python3 >/tmp/apt-python.log 2>&1 ||
      { cat /tmp/apt-python.log; exit 1; }
    python3 test/python/test_within.py
    ;;
  packages)
    test/install_deps.sh packaging
    PG=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
    # debian/control lists the packages for Debian 12's major: regenerate it (pg_buildext's way).
    PG_UPDATECONTROL=1 SL_WERROR=1 test/packaging/build_debs.sh /root/debs
    make -s uninstall  # the extension from the "extension" step: only the package's is left
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /root/debs/postgresql-"$PG"-singleton-lock_*.deb /root/debs/singleton-lock_*.deb >/tmp/apt.log 2>&1 ||
      { cat /tmp/apt.log; exit 1; }
    echo "ok installed with apt: postgresql-$PG-singleton-lock, singleton-lock"
    regress
    test/packaging/version_test.sh /usr/bin/singleton-lock
    ;;
  clients)
    test/install_deps.sh clients
    SL_SKIP_ASAN=1 SL_WERROR=1 test/build_client.sh >/tmp/build-client.log 2>&1 ||
      { tail -n 40 /tmp/build-client.log; exit 1; }
    eval "$(test/pgserver.sh start)"
    trap 'test/pgserver.sh stop >/dev/null 2>&1' EXIT
    echo "PostgreSQL $(psql -X -qAt -c 'SHOW server_version')"
    psql -X -q -c "CREATE EXTENSION IF NOT EXISTS singleton_lock"
    build/client/test/integration/elector_integration
    meson test -C build/client --suite integration --print-errorlogs
    python3 -m pytest -q -p no:cacheprovider test/python/test_library.py test/python/test_server_limits.py
    ;;
  *) echo "usage: $0 extension|packages|clients" >&2; exit 2 ;;
esac
