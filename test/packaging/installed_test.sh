#!/usr/bin/env bash
# The Debian packages as a user gets them. Run as root in a pristine Debian
# root (CI copies this script, the .deb files and consumer.cpp into one):
#   installed_test.sh DEBDIR VERSION CONSUMER_CPP
# 1. apt installs the packages in DEBDIR (dependencies from the archive);
# 2. a new cluster (pg_createcluster, port SL_PGPORT or 25329): CREATE EXTENSION
#    singleton_lock gives VERSION;
# 3. singleton-lock --version says VERSION, and the packaged command leads
#    with a token against the packaged extension, its health endpoint (a module
#    in the package's libdir) answering;
# 4. a program built against libsingleton-lock-dev through pkg-config leads
#    and releases.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 DEBDIR VERSION CONSUMER_CPP" >&2; exit 2; }
DEBDIR=$1 VERSION=$2 CONSUMER=$3
PORT=${SL_PGPORT:-25329}
fail() { echo "FAIL: $*" >&2; exit 1; }
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/tmp/apt.log 2>&1 ||
    { tail -n 30 /tmp/apt.log; fail "apt-get install $*"; }
}

apt-get update -q >/tmp/apt.log 2>&1 || { tail -n 30 /tmp/apt.log; fail "apt-get update"; }
mapfile -t debs < <(ls "$DEBDIR"/*.deb | grep -v -- -dbgsym_)
apt_install "${debs[@]}"
echo "ok apt installed: $(for d in "${debs[@]}"; do basename "$d" .deb; done | tr '\n' ' ')"

PG=$(ls /usr/lib/postgresql)
[ "$(echo "$PG" | wc -w)" = 1 ] || fail "expected one PostgreSQL major, found: $PG"
pg_createcluster "$PG" pkgtest -p "$PORT" --start >/tmp/cluster.log 2>&1 || { cat /tmp/cluster.log; fail "pg_createcluster"; }
trap 'pg_dropcluster --stop "$PG" pkgtest >/dev/null 2>&1 || true' EXIT
as_postgres() { (cd / && runuser -u postgres -- env PGPORT="$PORT" PGHOST=/var/run/postgresql "$@"); }

as_postgres psql -X -q -c "CREATE EXTENSION singleton_lock" || fail "CREATE EXTENSION singleton_lock"
ext=$(as_postgres psql -X -qAt -c "SELECT extversion FROM pg_extension WHERE extname = 'singleton_lock'")
[ "$ext" = "$VERSION" ] || fail "extension version '$ext', expected '$VERSION'"
echo "ok CREATE EXTENSION singleton_lock on PostgreSQL $PG: version $ext"

cli=$(singleton-lock --version)
[ "$cli" = "singleton-lock $VERSION" ] || fail "singleton-lock --version says '$cli'"
echo "ok $cli"

out=$(as_postgres singleton-lock run --name packaged --ttl 5s -- sh -c 'echo "token $SINGLETON_LOCK_TOKEN"' 2>/tmp/run.log) ||
  { cat /tmp/run.log; fail "singleton-lock run"; }
token=$(echo "$out" | sed -n 's/^token \([0-9][0-9]*\)$/\1/p')
[ -n "$token" ] || { cat /tmp/run.log; fail "the command ran without a token: '$out'"; }
row=$(as_postgres psql -X -qAt -c "SELECT state, token, last_transition FROM singleton_leases WHERE name = 'packaged'")
[ "$row" = "free|$token|released" ] || fail "lease after singleton-lock run: '$row'"
echo "ok singleton-lock run led with token $token and released"

# The health endpoint's module, from the directory the package installed it to.
as_postgres singleton-lock run --name packaged-health --ttl 5s --health-addr 127.0.0.1:0 -- sleep 3 \
  2>/tmp/health.log &
run_pid=$!
for _ in $(seq 50); do grep -q "started COMMAND" /tmp/health.log && break; sleep 0.1; done
port=$(sed -n 's|.*health endpoint on http://127.0.0.1:\([0-9]*\).*|\1|p' /tmp/health.log)
[ -n "$port" ] || { cat /tmp/health.log; fail "no health endpoint (its module not installed?)"; }
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to the health endpoint on :$port"
printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
reply=$(cat <&3); exec 3<&-
head -n1 <<<"$reply" | grep -q " 200 " && tail -n1 <<<"$reply" | grep -qx "leader" ||
  fail "/readyz of the packaged leader said: $reply"
wait "$run_pid" || { cat /tmp/health.log; fail "singleton-lock run --health-addr"; }
echo "ok the packaged health endpoint (its module) answered /readyz 200 leader on :$port"

apt_install g++ pkg-config
flags=$(pkg-config --cflags --libs singleton_lock) || fail "pkg-config singleton_lock"
# shellcheck disable=SC2086  # a list of flags
g++ -std=c++17 -Wall -Wextra -Werror -o /tmp/consumer "$CONSUMER" $flags
chmod 755 /tmp/consumer
out=$(as_postgres /tmp/consumer packaged-dev 2>&1) || { echo "$out"; fail "the consumer failed"; }
echo "$out" | grep -qE '^leader [0-9]+$' || fail "the consumer did not lead: $out"
echo "ok a program built with 'pkg-config singleton_lock' ($flags) led and released"
