#!/usr/bin/env bash
# One session that calls every function for as long as a leader or a standby
# lives (months) must not grow: memory the extension keeps across
# transactions (its session binding, waiter registrations, plans, caught
# errors, prepared-transaction guards) must come back. One psql session runs
# the same mix of calls in three rounds (1x, 1x, then 3x as many) and reads
# its own backend's memory contexts after each; from round 2 to round 3 the
# backend may grow by at most one 8 KiB block (a leak of 2 bytes per
# iteration would show).
#
# Runs its own throwaway server (port 25363); the extension must be installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export SL_PGPORT=25363
# Its own cluster directory too: an inherited SL_PGDIR names the caller's, which
# stopping this server would delete.
export SL_PGDIR=/tmp/singleton_lock_pg.$SL_PGPORT
WORK=$(mktemp -d /tmp/sl-memory.XXXXXX)
cleanup() { set +e; "$ROOT/test/pgserver.sh" stop; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
eval "$("$ROOT/test/pgserver.sh" start)"  # (on failure it evaluates to `false`: set -e stops here)
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION IF NOT EXISTS singleton_lock"
# A lease someone else holds, for waits that run out.
q "SET singleton_lock.bind_session = off; SELECT acquired FROM singleton_acquire('mem-busy', '1 day', 'someone-else')" >/dev/null

# One iteration: a new tenure (bound to the session; the last iteration on
# this name released it), a heartbeat with a new ttl, a bind, an assert in a
# transaction, a release; every 10th also a wait that runs out (a waiter
# registered and gone), a watch, the view, an error caught inside a function
# call (a subtransaction rolled back), a wait cancelled by statement_timeout,
# and a pause, resume and force release. (Written with printf, a builtin:
# a `cat` per iteration forked 5,000 times and took most of the run.)
iteration() {
  local i=$1 n="mem-$(($1 % 50))"
  printf '%s\n' "SELECT token FROM singleton_acquire('$n', '1 minute', 'holder') \\gset
SELECT singleton_heartbeat('$n', :token, '1 hour') IS NOT NULL AS ok \\gset
SELECT singleton_bind('$n', :token) AS ok \\gset
BEGIN;
SELECT singleton_assert('$n', :token) AS ok \\gset
COMMIT;
SELECT singleton_release('$n', :token) AS ok \\gset"
  [ $((i % 10)) = 0 ] || return 0
  cancelled_call "$n" "$i"
  printf '%s\n' "SELECT acquired FROM singleton_acquire('mem-busy', '1 min', 'waiter', '1 ms') \\gset
SELECT token FROM singleton_acquire('$n', '1 hour', 'holder') \\gset
SELECT singleton_watch('$n', :token, '1 ms') AS ok \\gset
SELECT set_config('sl_test.token', :'token', false) AS ok \\gset
SET statement_timeout = '20ms';
DO \$\$ BEGIN PERFORM $call; EXCEPTION WHEN query_canceled THEN
  PERFORM set_config('sl_test.cancels', (current_setting('sl_test.cancels')::int + 1)::text, false); END \$\$;
RESET statement_timeout;
SELECT count(*) AS ok FROM singleton_leases \\gset
DO \$\$ BEGIN PERFORM singleton_acquire('', '1 s'); EXCEPTION WHEN invalid_parameter_value THEN NULL; END \$\$;
SELECT singleton_pause('$n', 'maintenance') AS ok \\gset
SELECT singleton_resume('$n') AS ok \\gset
SELECT singleton_force_release('$n') AS ok \\gset"
}
# A wait cancelled by statement_timeout, caught (alternately a waiting
# acquire of a busy lease and a holder's watch): its registration and its
# subtransaction must go; every one is counted as cancelled. (psql does not
# substitute variables inside the DO block: the token goes through a setting.)
# Sets `call`.
cancelled_call() {
  if [ $(($2 % 20)) = 0 ]; then call="singleton_acquire('mem-busy', '1 min', 'waiter', '10 s')"
  else call="singleton_watch('$1', current_setting('sl_test.token')::bigint, '10 s')"; fi
}
memory="SELECT sum(total_bytes) AS bytes FROM pg_backend_memory_contexts \\gset"
{
  echo "\\set QUIET on"
  echo "SELECT set_config('sl_test.cancels', '0', false) AS ok \\gset"
  for round in 1 2 3; do
    count=1000; [ "$round" = 3 ] && count=3000
    for i in $(seq 1 "$count"); do iteration "$i"; done
    echo "$memory"
    echo "\\echo round $round :bytes"
    echo "SELECT current_setting('sl_test.cancels') AS cancels \\gset"
    echo "\\echo cancels :cancels"
    echo "SELECT name, sum(total_bytes) FROM pg_backend_memory_contexts GROUP BY name ORDER BY name \\g $WORK/contexts.$round"
  done
} >"$WORK/calls.sql"

psql -X -v ON_ERROR_STOP=1 -f "$WORK/calls.sql" >"$WORK/out" 2>&1 || fail "the calls failed: $(tail -5 "$WORK/out")"
bytes() { sed -n "s/^round $1 \\([0-9]*\\)$/\\1/p" "$WORK/out"; }
r2=$(bytes 2); r3=$(bytes 3)
[ -n "$r2" ] && [ -n "$r3" ] || fail "no memory figures: $(cat "$WORK/out")"
grep -q "client has disconnected\|ERROR" "$WORK/out" && fail "an error reached the session: $(cat "$WORK/out")"
cancels=$(sed -n 's/^cancels //p' "$WORK/out" | tail -n1)
[ "$cancels" = 500 ] || fail "$cancels of 500 waits were cancelled by statement_timeout"
echo "backend memory after round 1: $(bytes 1) bytes; round 2 (1000 iterations): $r2; round 3 (3000 more): $r3"
if [ $((r3 - r2)) -gt 8192 ]; then
  diff "$WORK/contexts.2" "$WORK/contexts.3" >&2 || true
  fail "the session's backend grew by $((r3 - r2)) bytes over 3000 iterations"
fi
echo "ok: the session's backend did not grow over 3000 iterations ($((r3 - r2)) bytes)"
echo "1 passed, 0 failed"
