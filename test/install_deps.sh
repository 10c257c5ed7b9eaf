#!/usr/bin/env bash
# Installs what building and testing singleton_lock needs on Debian 12.
#   test/install_deps.sh          only what is missing (used by make demo/test)
#   test/install_deps.sh --all    apt-get update + install the whole list (CI, fresh machines)
# Needs root (or sudo) for apt-get.
set -euo pipefail
PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libpq-dev g++ make
          meson ninja-build pkg-config libgtest-dev libcli11-dev libcpp-httplib-dev curl
          pgbouncer gnuplot-nox gawk python3-psycopg python3-pytest python3-pip nodejs
          patroni etcd-server etcd-client)
# Debian's npm conflicts with a nodejs that bundles npm (e.g. NodeSource's).
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
missing=()
if [ "${1:-}" = --all ]; then
  missing=("${PACKAGES[@]}")
else
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# Debian would otherwise create and start a default cluster on port 5432.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/singleton-lock.conf >/dev/null
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
