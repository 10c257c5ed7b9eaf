#!/usr/bin/env bash
# Installs with apt-get what singleton_lock needs, on Debian 12 (PostgreSQL 15),
# Debian 13 (17) or Debian testing (18). Needs root (or sudo). Installs only
# what is missing; prints one line when it installs anything, and apt's output
# only when apt fails.
#
#   test/install_deps.sh [test]     everything `make test` and `make bench` call (the default)
#   test/install_deps.sh demo       what `make demo` needs
#   test/install_deps.sh extension  what building and testing the extension alone needs
#   test/install_deps.sh packaging  what building the Debian packages needs (dpkg-buildpackage)
#   test/install_deps.sh clients    the clients' tests against a server: the C++ library's and
#                                   the command's integration tests, the Python library's
#   test/install_deps.sh --list [PROFILE]   print the packages, install nothing
#
# SL_PG_MAJOR picks another PostgreSQL major than the release's own.
set -euo pipefail

release_pg_major() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  case "$codename" in
    bookworm) echo 15 ;;
    trixie) echo 17 ;;
    forky) echo 18 ;;
    *) echo "unsupported release '$codename': supported are Debian 12, 13 and testing (set SL_PG_MAJOR to try another)" >&2
       return 1 ;;
  esac
}

list=0
[ "${1:-}" = --list ] && { list=1; shift; }
profile=${1:-test}
PG=${SL_PG_MAJOR:-$(release_pg_major)}

# The extension: server (+ contrib: dblink for the SQL tests), headers and PGXS, a C++ compiler.
EXTENSION=(postgresql-$PG postgresql-contrib postgresql-server-dev-$PG make g++)
# The client library and `singleton-lock` (meson), GoogleTest for their tests.
CLIENT=(libpq-dev meson ninja-build pkg-config libcli11-dev libmicrohttpd-dev libgtest-dev)
# Commands the test scripts call besides those: pgrep/pkill/ps (procps), ss/ip
# (iproute2), curl (health endpoints), awk, git; Python tests and examples
# (psycopg, pytest; pip for the offline install test), Node examples (node, npm
# fetching `pg` over https), a real PgBouncer, Patroni + etcd for the failover
# tests, HAProxy (PgBouncer in front of Patroni), gnuplot for the benchmark plot,
# openssl (the TLS tests' certificate).
TOOLS=(procps iproute2 curl gawk git ca-certificates python3 python3-psycopg python3-pytest
       python3-pip nodejs npm pgbouncer patroni etcd-server etcd-client haproxy gnuplot-nox openssl)
# Debian packages: dpkg-buildpackage (dpkg-dev, build-essential), debhelper, pg_buildext.
PACKAGING=(build-essential debhelper dpkg-dev postgresql-server-dev-all)

case "$profile" in
  test) PACKAGES=("${EXTENSION[@]}" "${CLIENT[@]}" "${TOOLS[@]}") ;;
  demo) PACKAGES=("${EXTENSION[@]}" "${CLIENT[@]}" procps) ;;
  extension) PACKAGES=("${EXTENSION[@]}") ;;
  packaging) PACKAGES=("${EXTENSION[@]}" "${CLIENT[@]}" "${PACKAGING[@]}") ;;
  clients) PACKAGES=("${EXTENSION[@]}" "${CLIENT[@]}" procps iproute2 curl python3 python3-psycopg
                     python3-pytest) ;;
  *) echo "usage: $0 [--list] [test|demo|extension|packaging|clients]" >&2; exit 2 ;;
esac
if [ $list = 1 ]; then echo "${PACKAGES[*]}"; exit 0; fi

installed() {
  case "$1" in
    # NodeSource's nodejs bundles npm (and conflicts with Debian's): a working
    # command is what the tests need.
    npm) command -v npm >/dev/null && return 0 ;;
    nodejs) command -v node >/dev/null && return 0 ;;
  esac
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "missing packages (${missing[*]}): run as root" >&2; exit 1; }
  SUDO=(sudo)
fi
if [[ " ${missing[*]} " == *" postgresql-$PG "* ]]; then
  # Debian would otherwise create and start a default cluster on port 5432;
  # the tests start throwaway clusters of their own.
  "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" |
    "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/singleton-lock.conf >/dev/null
fi
echo "installing with apt-get: ${missing[*]}" >&2
log=$(mktemp /tmp/singleton_lock_apt.XXXXXX)
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q)
if ! { "${APT[@]}" update && "${APT[@]}" install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "apt-get failed (full output: $log)" >&2
  exit 1
fi
rm -f "$log"
