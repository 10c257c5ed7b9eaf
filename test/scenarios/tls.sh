#!/usr/bin/env bash
# `singleton-lock run` over TLS (sslmode=require), as against a managed
# database: every session of the wrappers is checked encrypted
# (pg_stat_ssl), then a graceful handover (SIGTERM) and a kill -9 takeover
# each start the new COMMAND only after the old one is gone, with a larger
# token; `status` and the release work the same.
#
# Runs its own throwaway server (port 25364) with TLS on; the extension must
# be installed. SL_CLI: the singleton-lock binary (default build/client).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLI="${SL_CLI:-$ROOT/build/client/client/singleton-lock}"
export SL_PGPORT=25364 SL_PG_TLS=1
export SL_PGDIR=/tmp/singleton_lock_pg.$SL_PGPORT
WORK=$(mktemp -d /tmp/sl-tls.XXXXXX)
cleanup() {
  set +e
  kill -KILL $(jobs -p) 2>/dev/null; wait 2>/dev/null
  "$ROOT/test/pgserver.sh" stop; rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -5 "$f" >&2; done; exit 1; }
checks=0
ok() { echo "ok: $*"; checks=$((checks + 1)); }
eval "$("$ROOT/test/pgserver.sh" start)"  # (on failure it evaluates to `false`: set -e stops here)
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }  # (over the Unix socket)
q "CREATE EXTENSION IF NOT EXISTS singleton_lock"
wait_for() {  # SECONDS CMD...: until CMD succeeds
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.05; done
}

# COMMAND: records "pid token" and any earlier COMMAND still running at its
# first instruction, then runs until SIGTERM (exit 0).
cat >"$WORK/command.sh" <<'SH'
#!/bin/sh
for f in "$WORK"/*.pid; do
  [ -e "$f" ] && read -r pid _ <"$f" && kill -0 "$pid" 2>/dev/null && echo "$f $pid" >>"$WORK/overlap"
done
echo "$$ $SINGLETON_LOCK_TOKEN" >"$WORK/$1.pid"
trap 'exit 0' TERM
while :; do sleep 0.05; done
SH
chmod +x "$WORK/command.sh"
export WORK

# The wrappers connect over TCP and require TLS (libpq's environment).
run() {  # LABEL: a singleton-lock run in the background; PID_LABEL its pid
  PGHOST=127.0.0.1 PGSSLMODE=require "$CLI" run --name tls --ttl 5s -- "$WORK/command.sh" "$1" \
    2>"$WORK/$1.log" &
  eval "PID_$1=$!"
}
started() { [ -s "$WORK/$1.pid" ]; }
token_of() { cut -d' ' -f2 <"$WORK/$1.pid"; }
sessions() {  # "count encrypted" of the wrappers' sessions
  q "SELECT count(*) || ' ' || count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a
     JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'singleton-lock'"
}

run a
wait_for 20 started a || fail "a never led"
run b; run c
standby() { grep -q "standby, held by" "$WORK/$1.log"; }
wait_for 20 standby b && wait_for 20 standby c || fail "b and c never waited as standbys"
# Every session of the three wrappers (the leader's two, the standbys') is encrypted.
read -r total encrypted <<<"$(sessions)"
[ "$total" -ge 4 ] && [ "$encrypted" = "$total" ] ||
  fail "sessions of the wrappers: $total, over TLS: $encrypted (expected all, and at least 4)"
ok "all $total sessions of the leader and both standbys are encrypted ($(q "SELECT DISTINCT version FROM pg_stat_ssl WHERE ssl"))"
PGHOST=127.0.0.1 PGSSLMODE=require "$CLI" status --name tls >"$WORK/status.out" 2>"$WORK/status.log" ||
  fail "status over TLS failed"
grep -q "held" "$WORK/status.out" || fail "status over TLS: $(cat "$WORK/status.out")"
ok "status over TLS: $(head -n1 "$WORK/status.out")"

# Graceful: SIGTERM to a; b or c leads after a's COMMAND has ended.
kill -TERM "$PID_a"; wait "$PID_a" && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "a exited $rc after SIGTERM, expected its COMMAND's 0"
next() { started b || started c; }
wait_for 20 next || fail "no standby led after a's SIGTERM"
if started b; then second=b third=c; else second=c third=b; fi
[ ! -s "$WORK/overlap" ] || fail "overlap after SIGTERM: $(cat "$WORK/overlap")"
[ "$(token_of "$second")" -gt "$(token_of a)" ] || fail "the token did not grow: $(token_of a) -> $(token_of "$second")"
ok "graceful handover over TLS: a -> $second, no overlap, token $(token_of a) -> $(token_of "$second")"

# kill -9 of the new leader's wrapper: the last standby leads only after the
# killed one's COMMAND has gone.
eval "victim=\$PID_$second"
read -r victim_command _ <"$WORK/$second.pid"
kill -KILL "$victim"
{ wait "$victim"; } 2>/dev/null && rc=0 || rc=$?
[ "$rc" = 137 ] || fail "$second's wrapper exited $rc, not killed by SIGKILL"
wait_for 20 started "$third" || fail "$third never led after kill -9 of $second"
kill -0 "$victim_command" 2>/dev/null && fail "$second's COMMAND outlived its wrapper's kill -9"
[ ! -s "$WORK/overlap" ] || fail "overlap after kill -9: $(cat "$WORK/overlap")"
[ "$(token_of "$third")" -gt "$(token_of "$second")" ] || fail "the token did not grow after kill -9"
ok "kill -9 takeover over TLS: $second -> $third, no overlap, token $(token_of "$second") -> $(token_of "$third")"

eval "last=\$PID_$third"
kill -TERM "$last"; wait "$last" && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "$third exited $rc after SIGTERM"
[ "$(q "SELECT state FROM singleton_leases WHERE name = 'tls'")" = free ] || fail "the lease was not released"
ok "the last leader released over TLS"
echo "$checks passed, 0 failed"
