#!/usr/bin/env bash
# Fencing tokens never go backwards: across fast and immediate restarts, and
# across promotion of a streaming replica that lost the primary's last commits.
#
# Runs its own throwaway clusters (ports 54360 primary, 54361 replica); the
# extension must be installed (make install).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PRIMARY_PORT=54360
REPLICA_PORT=54361
REPLICA_DIR=/tmp/singleton_lock_replica.$REPLICA_PORT
BINDIR="$(pg_config --bindir)"
export SL_PGPORT=$PRIMARY_PORT

as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  set +e  # best effort: a process already gone must not fail the run
  as_owner "$BINDIR/pg_ctl" -D "$REPLICA_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$REPLICA_DIR"
  "$ROOT/test/pgserver.sh" stop
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
eval "$("$ROOT/test/pgserver.sh" start)"
q() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$1" -c "$2"; }

# Take a new tenure of lease $2 on the server at port $1 and print its token.
new_token() {
  q "$1" "SET singleton_lock.bind_session = off;
          SELECT token FROM singleton_acquire('$2', '1 min', 'restart-test-' || clock_timestamp()::text);
          SELECT singleton_force_release('$2');" | head -1
}

q $PRIMARY_PORT "CREATE EXTENSION IF NOT EXISTS singleton_lock"
checks=0
last=0
check_increases() {
  local token="$1" what="$2"
  [ -n "$token" ] || fail "no token after $what"
  [ "$token" -gt "$last" ] || fail "token $token after $what is not above $last"
  echo "ok: token $token after $what (previous $last)"
  last="$token"
  checks=$((checks + 1))
}

for i in 1 2 3; do check_increases "$(new_token $PRIMARY_PORT fenced)" "acquire $i"; done

"$ROOT/test/pgserver.sh" restart fast
check_increases "$(new_token $PRIMARY_PORT fenced)" "fast restart"
"$ROOT/test/pgserver.sh" restart immediate
check_increases "$(new_token $PRIMARY_PORT fenced)" "immediate restart (crash recovery)"

# A session-bound lease does not survive its session's end in a restart.
q $PRIMARY_PORT "SELECT acquired FROM singleton_acquire('bound', '1 h', 'holder')" >/dev/null
"$ROOT/test/pgserver.sh" restart immediate
state=$(q $PRIMARY_PORT "SELECT state FROM singleton_leases WHERE name = 'bound'")
[ "$state" = orphaned ] || fail "bound lease is '$state' after its session died in a crash"
echo "ok: bound lease is orphaned after a crash"; checks=$((checks + 1))

# Streaming replica; then the primary issues tokens the replica never receives.
rm -rf "$REPLICA_DIR"; mkdir -p "$REPLICA_DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$REPLICA_DIR"
as_owner "$BINDIR/pg_basebackup" -h /tmp -p $PRIMARY_PORT -U "$PGUSER" -D "$REPLICA_DIR/data" -R -X stream
echo "port = $REPLICA_PORT" | as_owner tee -a "$REPLICA_DIR/data/postgresql.conf" >/dev/null
as_owner "$BINDIR/pg_ctl" -D "$REPLICA_DIR/data" -l "$REPLICA_DIR/server.log" -w start >/dev/null
check_increases "$(new_token $PRIMARY_PORT fenced)" "acquire with a replica attached"
for _ in $(seq 1 50); do
  replayed=$(q $REPLICA_PORT "SELECT token FROM singleton_lock_leases WHERE name = 'fenced'")
  [ "$replayed" = "$last" ] && break; sleep 0.1
done
[ "$replayed" = "$last" ] || fail "replica did not replay token $last"
as_owner "$BINDIR/pg_ctl" -D "$REPLICA_DIR/data" -m fast -w stop >/dev/null
for i in 1 2 3; do check_increases "$(new_token $PRIMARY_PORT fenced)" "acquire $i the replica never saw"; done
lost_on_primary=$last
# The primary dies; the stale replica is promoted (asynchronous replication lost commits).
as_owner "$BINDIR/pg_ctl" -D "/tmp/singleton_lock_pg.$PRIMARY_PORT/data" -m immediate -w stop >/dev/null
as_owner "$BINDIR/pg_ctl" -D "$REPLICA_DIR/data" -l "$REPLICA_DIR/server.log" -w start >/dev/null
as_owner "$BINDIR/pg_ctl" -D "$REPLICA_DIR/data" -w promote >/dev/null
seen=$(q $REPLICA_PORT "SELECT token FROM singleton_lock_leases WHERE name = 'fenced'")
[ "$seen" -lt "$lost_on_primary" ] || fail "the replica was expected to miss the last tokens"
echo "ok: promoted replica last saw token $seen, the old primary had issued up to $lost_on_primary"
check_increases "$(new_token $REPLICA_PORT fenced)" "promotion of a replica that lost commits"

echo "$checks passed, 0 failed"
