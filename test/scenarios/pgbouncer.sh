#!/usr/bin/env bash
# Leases through a real PgBouncer in transaction pooling mode (the README's
# "Behind a transaction pooler" section, shown):
#  - the application role runs with singleton_lock.bind_session = off and must
#    pass an explicit holder; leases then end by TTL alone (a client that
#    disconnects does not free its lease; expiry does);
#  - heartbeat and release work from any pooled connection (token only);
#  - a waiting acquire occupies a pooled server connection for its whole wait;
#  - NOTIFY reaches a LISTEN on a direct connection;
#  - the unnamed extended-protocol statements a driver uses work (no
#    server-side prepared statements);
#  - `singleton-lock run`, and the library with one session, through the
#    pooler warn when the role's leases are session-bound (bind_session on),
#    and only then.
# Needs a running server (PG* environment, superuser) with the extension installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BOUNCER_PORT=${SL_BOUNCER_PORT:-64329}
DIR=$(mktemp -d /tmp/singleton_lock_bouncer.XXXXXX)
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"
checks=0
ok() { echo "ok: $*"; checks=$((checks + 1)); }
fail() { echo "FAIL: $*" >&2; exit 1; }
admin() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
pooled() { psql -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$BOUNCER_PORT" -U regress_pooled_app -d "$PGDATABASE" -c "$1"; }

cleanup() {
  set +e  # best effort: a process already gone must not fail the run
  [ -f "$DIR/pgbouncer.pid" ] && kill "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null
  sleep 0.2
  for role in regress_pooled_app regress_bound_app; do
    admin "DROP OWNED BY $role; DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT

admin "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS singleton_lock"
for role in regress_pooled_app regress_bound_app; do
  admin "DROP OWNED BY $role" >/dev/null 2>&1 || true
  admin "SET client_min_messages = warning; DROP ROLE IF EXISTS $role"
  admin "CREATE ROLE $role LOGIN"
  admin "GRANT EXECUTE ON FUNCTION
      singleton_acquire(text, interval, text, interval, integer), singleton_heartbeat(text, bigint, interval),
      singleton_release(text, bigint), singleton_assert(text, bigint), singleton_bind(text, bigint),
      singleton_watch(text, bigint, interval) TO $role"
done
admin "ALTER ROLE regress_pooled_app SET singleton_lock.bind_session = off"
admin "DELETE FROM singleton_lock_leases WHERE name LIKE 'pooled-%'"

cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
* = host=${PGHOST} port=${PGPORT}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/users.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 50
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
printf '"regress_pooled_app" ""\n"regress_bound_app" ""\n' >"$DIR/users.txt"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"/*
as_owner pgbouncer -d "$DIR/pgbouncer.ini"
for _ in $(seq 50); do pooled "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done

# No session to derive a holder from: refused with a clear error.
out=$(pooled "SELECT acquired FROM singleton_acquire('pooled-a', '2s')" 2>&1 || true)
[[ "$out" == *'"holder" must not be NULL when singleton_lock.bind_session is off'* ]] \
  || fail "NULL holder through the pooler: $out"
ok "a NULL holder is refused behind the pooler"

token=$(pooled "SELECT token FROM singleton_acquire('pooled-a', '2s', 'client-1:9f2c')")
[ -n "$token" ] || fail "no token through the pooler"
[ -z "$(admin "SELECT holder_pid FROM singleton_leases WHERE name = 'pooled-a'")" ] \
  || fail "a pooled lease must not be session-bound"
ok "acquired through the pooler, unbound (token $token)"

# The client that acquired is gone; another pooled connection renews by token.
[ -n "$(pooled "SELECT singleton_heartbeat('pooled-a', $token)")" ] || fail "pooled heartbeat"
[ "$(admin "SELECT state FROM singleton_leases WHERE name = 'pooled-a'")" = held ] \
  || fail "the lease should outlive the acquiring client"
ok "heartbeat from another pooled connection; the lease outlives the client that took it"

# The extended protocol with unnamed statements (what drivers use) works.
echo "SELECT singleton_heartbeat('pooled-a', $token) IS NOT NULL;" >"$DIR/heartbeat.sql"
pgbench -n -M extended -t 5 -h 127.0.0.1 -p "$BOUNCER_PORT" -U regress_pooled_app \
  -f "$DIR/heartbeat.sql" "$PGDATABASE" >"$DIR/pgbench.log" 2>&1 \
  || { cat "$DIR/pgbench.log"; fail "extended-protocol heartbeats through the pooler"; }
ok "extended-protocol (unnamed statement) heartbeats through the pooler"

# TTL alone ends an unbound lease.
sleep 2.2
[ "$(admin "SELECT state FROM singleton_leases WHERE name = 'pooled-a'")" = expired ] \
  || fail "unbound lease should expire by its ttl"
[ -z "$(pooled "SELECT singleton_heartbeat('pooled-a', $token)")" ] || fail "lapsed heartbeat"
ok "the unbound lease ended by its ttl; the late heartbeat returned NULL"

# A waiting acquire holds the single pooled server connection for its whole wait.
pooled "SELECT acquired FROM singleton_acquire('pooled-b', '1 min', 'client-2:77aa')" >/dev/null
start=$(date +%s%N)
pooled "SELECT acquired FROM singleton_acquire('pooled-b', '1 min', 'client-3:1b2b', '1.5s')" >/dev/null &
sleep 0.3
pooled "SELECT 1" >/dev/null
waited_ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait
[ "$waited_ms" -ge 1400 ] || fail "a second client got the only pooled connection during a wait"
ok "with pool size 1 another client waited ${waited_ms} ms behind a waiting acquire (size the pool above the standbys)"

# LISTEN on a direct connection hears a release made through the pooler.
token_b=$(admin "SELECT token FROM singleton_leases WHERE name = 'pooled-b'")
notices=$(psql -X -qAt -c "LISTEN singleton_lock" -c "SELECT pg_sleep(0.8)" 2>&1 &
          sleep 0.3; pooled "SELECT singleton_release('pooled-b', $token_b)" >/dev/null; wait)
[[ "$notices" == *'"singleton_lock" with payload "pooled-b"'* ]] || fail "no NOTIFY seen: $notices"
ok "NOTIFY of a pooled release reached a direct LISTEN"

# Through the pooler, a role whose leases are bound to server sessions
# (bind_session on, the default) gets a warning; the pooled role and a direct
# connection do not. Twice: `singleton-lock run` (its second session's warm-up
# tells) and the library with one session, its default (the acquire's reply tells).
CLI="${SL_CLI:-$ROOT/build/client/client/singleton-lock}"
LIB="${SL_CONSUMER:-$ROOT/build/client/test/integration/consumer}"
[ -x "$LIB" ] || fail "$LIB is not built (test/build_client.sh)"
client_once() {  # cli|lib ROLE-or-empty LEASE: the client's output (it must lead, exit 0)
  local kind=$1 role=$2 lease=$3 out led="started COMMAND"
  local env=()
  [ -n "$role" ] && env=(PGHOST=127.0.0.1 PGPORT="$BOUNCER_PORT" PGUSER="$role")
  if [ "$kind" = cli ]; then
    out=$(env "${env[@]}" "$CLI" run --name "$lease" --ttl 5s -- true 2>&1)
  else
    out=$(env "${env[@]}" "$LIB" "$lease" 2>&1) led="leader "
  fi || fail "$kind as ${role:-the direct superuser} failed: $out"
  [[ "$out" == *"$led"* ]] || fail "$kind did not lead as ${role:-direct}: $out"
  echo "$out"
}
for kind in cli lib; do
  out=$(client_once $kind regress_bound_app pooled-$kind-bound)
  [[ "$out" == *"goes through a connection pooler or proxy (the server says backend "* ]] \
    || fail "no pooler warning from $kind for a session-bound role through PgBouncer: $out"
  ok "$kind through the pooler with session-bound leases: warned"
  out=$(client_once $kind regress_pooled_app pooled-$kind-unbound)
  [[ "$out" != *"pooler"* ]] || fail "pooler warning from $kind for the pooled role: $out"
  out=$(client_once $kind "" pooled-$kind-direct)
  [[ "$out" != *"pooler"* ]] || fail "pooler warning from $kind over a direct connection: $out"
  ok "$kind: no such warning for the pooled role (bind_session off) or over a direct connection"
done

echo "$checks passed, 0 failed"
