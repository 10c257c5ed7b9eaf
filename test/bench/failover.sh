#!/usr/bin/env bash
# `make bench-failover`: database failover with real `singleton-lock run`
# instances: primary crash -> new primary accepts writes -> new leader's COMMAND
# runs, p50/max over several rounds, for plain streaming replication (pg_ctl
# promote) and a real Patroni cluster (kill -9 of the postmaster; switchover).
#
#   test/bench/failover.sh [OUT.md]     (default test/bench/out/failover.md)
#
# Prints the figures and writes them as a markdown fragment for BENCHMARKS.md.
# Settings (environment): BENCH_FO_ROUNDS (per kind, default 8), BENCH_FO_KINDS
# (default "plain patroni switchover"), BENCH_SKIP_INSTALL=1 (no make install),
# BENCH_SKIP_BUILD=1 (use the existing client build). Needs patroni,
# etcd-server, etcd-client and python3-psycopg (test/install_deps.sh).
# Takes about 5 minutes with the defaults. Loopback only; throwaway servers.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:-$HERE/out/failover.md}"
mkdir -p "$(dirname "$OUT")"
log() { printf '[failover %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
  make -C "$ROOT" -s >/dev/null && make -C "$ROOT" -s install >/dev/null \
    || { log "make install failed"; exit 1; }
fi
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  SL_SKIP_ASAN=1 "$ROOT/test/build_client.sh" >/dev/null
fi
/usr/bin/python3 "$HERE/failover.py" "$OUT"
log "written: $OUT"
