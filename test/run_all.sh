#!/usr/bin/env bash
# `make test`: every test, against a real throwaway PostgreSQL (the release's
# major: 15 on Debian 12, 17 on 13, 18 on testing).
#
#   extension   pg_regress (sql/, expected/) and isolation specs (test/specs/)
#   unit        lease rules (no server), client policy (fake clock)
#   client      integration tests of the library and `singleton-lock` (real server, processes)
#   asan        the client's unit and integration tests under AddressSanitizer + UBSan
#   install     make install / meson install with DESTDIR, a pkg-config consumer; versions agree
#   scenarios   restart/promotion tokens, the rolling-deploy incident, a rolling upgrade with
#               priorities, PgBouncer, a short chaos run
#
# Prints one line per suite and "N passed, M failed" at the end; exits non-zero
# on any failure. SL_WERROR=1 builds with warnings as errors (CI).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
LOGDIR="${SL_TEST_LOGS:-$ROOT/build/test-logs}"
mkdir -p "$LOGDIR"

"$ROOT/test/install_deps.sh" test || { echo "could not install dependencies" >&2; exit 1; }

# Every command a test calls must exist: a missing one fails here, loudly,
# instead of making some check silently vacuous.
missing_commands=()
for c in make g++ meson pkg-config psql pg_config pgrep pkill ps ss curl awk git python3 node npm \
         pgbouncer patroni etcd etcdctl haproxy runuser setsid timeout openssl; do
  command -v "$c" >/dev/null || missing_commands+=("$c")
done
if [ ${#missing_commands[@]} -gt 0 ]; then
  echo "missing commands: ${missing_commands[*]} (test/install_deps.sh installs them)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

export SL_PGPORT="${SL_PGPORT:-25329}"
passed=0
failed=0
failed_names=()

run_suite() {
  local name="$1"; shift
  local log="$LOGDIR/$name.log" start=$SECONDS
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); echo "ok      $name ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failed_names+=("$name")
    echo "FAILED  $name ($((SECONDS - start)) s) — last lines of $log:"
    tail -n 40 "$log" | sed 's/^/    /'
  fi
}

make -s >"$LOGDIR/build.log" 2>&1 && make -s install >>"$LOGDIR/build.log" 2>&1 \
  || { cat "$LOGDIR/build.log"; echo "0 passed, 1 failed"; exit 1; }
"$ROOT/test/build_client.sh" >"$LOGDIR/build-client.log" 2>&1 \
  || { tail -n 60 "$LOGDIR/build-client.log"; echo "0 passed, 1 failed"; exit 1; }

"$ROOT/test/pgserver.sh" stop >/dev/null 2>&1
eval "$("$ROOT/test/pgserver.sh" start)" || { echo "0 passed, 1 failed"; exit 1; }
trap '"$ROOT/test/pgserver.sh" stop >/dev/null 2>&1' EXIT

# meson marks a test skipped (exit 77) when it finds no server: here the server
# is ours, so a skip means something is broken.
meson_no_skips() {
  local out
  out=$(meson test "$@" 2>&1); local rc=$?
  echo "$out"
  [ $rc -eq 0 ] && echo "$out" | grep -Eq '^Skipped: +0 *$'
}

extension_checks() {
  make -s installcheck || { cat regression.diffs output_iso/regression.diffs 2>/dev/null; return 1; }
}
export SL_IT_RESTART="$ROOT/test/pgserver.sh restart fast"

# One line per suite (name, then the command); add new suites here.
run_suite extension-regress-isolation extension_checks
run_suite unit-lease-rules make -s unit-extension
# Two tests at a time: most wait on the server, not a core; the ones that load
# every core, restart or stop the server run alone (is_parallel in meson.build).
run_suite client-unit-integration meson_no_skips -C build/client --print-errorlogs --num-processes 2
# (the 30-round kill -9 exclusion test runs in full above; under the sanitizers
# 5 rounds exercise the same code and keep the suite's time down)
SL_IT_ROUNDS=5 run_suite client-asan-ubsan meson_no_skips -C build/asan --print-errorlogs --num-processes 2
run_suite install-and-pkg-config test/packaging/install_test.sh
run_suite versions-agree test/packaging/version_test.sh build/client/client/singleton-lock
run_suite restart-and-promotion-tokens test/scenarios/restart_tokens.sh
run_suite abandoned-calls test/scenarios/abandoned_calls.sh
run_suite tls test/scenarios/tls.sh
run_suite session-memory test/scenarios/session_memory.sh
run_suite rolling-deploy test/scenarios/rolling_deploy.sh
run_suite rolling-upgrade-priorities test/scenarios/rolling_upgrade.sh
run_suite pgbouncer test/scenarios/pgbouncer.sh
run_suite python-library-and-bot test/python/run.sh
run_suite node-worker test/node/run.sh
run_suite failover-streaming-async test/scenarios/failover_streaming.sh async
run_suite failover-streaming-sync test/scenarios/failover_streaming.sh sync
run_suite failover-patroni test/scenarios/failover_patroni.sh
run_suite chaos-short test/scenarios/chaos.sh "${SL_CHAOS_SECONDS:-45}"

echo
[ "$failed" -eq 0 ] || echo "failed suites: ${failed_names[*]} (logs in $LOGDIR)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
