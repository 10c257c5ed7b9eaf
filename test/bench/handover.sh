#!/usr/bin/env bash
# `make bench`, handover part: real `singleton-lock run` processes on a throwaway
# server; handover latency after SIGTERM (graceful), kill -9 and SIGSTOP of the
# leader, and the same graceful and kill -9 handovers of peers in the same run
# (ours in-process through the C++ and Python libraries and one SQL call, a raw
# pg_advisory_lock, npm advisory-lock, npm @imqueue/pg-pubsub: node and npm
# needed, packages pinned in test/bench/peers/package-lock.json); --warm vs
# cold start of a service that needs 1 s to boot; priority preemption; the
# incident's fixed policy emulated as the baseline; standby memory.
#
#   test/bench/handover.sh [RESULTS]
#
# Appends key=value lines to RESULTS (default: a temporary file, printed at the
# end); sample files go next to it. test/bench/run.sh calls it and report.py
# turns the results into BENCHMARKS.md. Settings: see handover.py;
# SL_PGPORT (default 25350), BENCH_SKIP_BUILD=1 (use the existing client build).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export SL_PGPORT="${SL_PGPORT:-25350}"
export SL_PG_FSYNC=on
# The cluster lives on disk (a sandbox's /tmp may be a tmpfs, where an fsync costs nothing).
export SL_PGDIR="${SL_PGDIR:-$HERE/out/pgdata}"
RES="${1:-}"
if [ -z "$RES" ]; then
  RES="$(mktemp -d /tmp/sl_handover.XXXXXX)/results.txt"
  STANDALONE=1
fi
WORK="$(dirname "$RES")/handover"
rm -rf "$WORK"; mkdir -p "$WORK"
log() { printf '[handover %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  "$ROOT/test/pgserver.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  SL_SKIP_ASAN=1 "$ROOT/test/build_client.sh" >/dev/null
fi
CLI="$ROOT/build/client/client/singleton-lock"
[ -x "$CLI" ] || { log "no client at $CLI (test/build_client.sh)"; exit 1; }
cc -O2 -Wall -o "$WORK/handover_service" "$HERE/handover_service.c"
cc -O2 -Wall -o "$WORK/peer_advisory" "$HERE/peer_advisory.c" -I"$(pg_config --includedir)" -lpq
cc -O2 -Wall -o "$WORK/peer_sql" "$HERE/peer_sql.c" -I"$(pg_config --includedir)" -lpq
export BENCH_PEER_LIBRARY="$ROOT/build/client/test/bench/peer_library"
[ -x "$BENCH_PEER_LIBRARY" ] || { log "no $BENCH_PEER_LIBRARY (test/build_client.sh)"; exit 1; }
# The Python peer needs psycopg (Debian: python3-psycopg), maybe not in the first python3 on PATH.
BENCH_PYTHON=""
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import psycopg' 2>/dev/null; then BENCH_PYTHON="$(command -v "$py")"; break; fi
done
export BENCH_PYTHON
[ -n "$BENCH_PYTHON" ] || log "no python3 with psycopg: no Python peer"
# The peer libraries, pinned by test/bench/peers/package-lock.json (installed
# once; again when the lock file changes).
P="$HERE/peers"
if [ ! -f "$P/node_modules/.package-lock.json" ] || [ "$P/package-lock.json" -nt "$P/node_modules/.package-lock.json" ]; then
  if ! (cd "$P" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1); then
    log "npm ci failed in test/bench/peers (see $WORK/npm.log): no npm peers"
    export BENCH_HO_PEERS="${BENCH_HO_PEERS:-lib py sql raw}"
  fi
fi

"$ROOT/test/pgserver.sh" stop >/dev/null 2>&1 || true
"$ROOT/test/pgserver.sh" start >/dev/null
eval "$("$ROOT/test/pgserver.sh" env)"
psql -X -qc "CREATE EXTENSION IF NOT EXISTS singleton_lock"
# TCP to 127.0.0.1: the same network path a service on another host would use, minus the wire
DSN="host=127.0.0.1 port=$SL_PGPORT user=$PGUSER dbname=$PGDATABASE"
printf 'ho.client=%s\n' "$("$CLI" --version 2>/dev/null | head -n1 || true)" >>"$RES"
printf 'ho.cli_size=%s\n' "$(stat -c %s "$CLI")" >>"$RES"
printf 'ho.libpq=%s\n' "$(dpkg-query -W -f='${Version}' libpq5 2>/dev/null || echo '?')" >>"$RES"
python3 "$HERE/handover.py" "$CLI" "$WORK/handover_service" "$DSN" "$WORK" "$RES"
log "done"
[ "${STANDALONE:-0}" = 1 ] && cat "$RES"
exit 0
