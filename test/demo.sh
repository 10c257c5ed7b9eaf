#!/usr/bin/env bash
# `make demo`: build everything, start a throwaway PostgreSQL, and show a
# rolling deploy handing over: instance A leads, instance B starts beside it
# and waits as a healthy standby, A is told to stop (SIGTERM) and takes a
# moment to finish, B leads within milliseconds of A's release. Then B's
# process is killed outright (SIGKILL) and C takes over through session binding.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export SL_PGPORT=${SL_DEMO_PGPORT:-54339}
WORK=$(mktemp -d /tmp/singleton_lock_demo.XXXXXX)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

test/install_deps.sh
say "building the extension and the client"
make -s && make -s install >/dev/null
SL_SKIP_ASAN=1 test/build_client.sh >/dev/null
CLI="$ROOT/build/client/client/singleton-lock"

say "starting a throwaway PostgreSQL on port $SL_PGPORT"
eval "$(test/pgserver.sh start)"
pids=()
cleanup() {
  set +e  # best effort: a process already gone must not fail the run
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  test/pgserver.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql -X -qc "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS singleton_lock"

# The service: reports when it starts leading; on SIGTERM it takes a moment to
# finish its work (as a real service does), then exits.
cat >"$WORK/service.sh" <<'EOF'
#!/usr/bin/env bash
me=$1
exec 2>/dev/null
echo "[$me] service running as leader, fencing token $SINGLETON_LOCK_TOKEN"
trap 'echo "[$me] SIGTERM: finishing the current job (0.5 s)"; sleep 0.5; echo "[$me] done, exiting"; exit 0' TERM
while :; do sleep 0.05; done
EOF
chmod +x "$WORK/service.sh"

start_instance() {
  local me=$1 port=$2
  "$CLI" run --name chat-bot --ttl 3s --health-addr "127.0.0.1:$port" \
    -- "$WORK/service.sh" "$me" 2> >(sed -u "s/^/[$me wrapper] /" >&2) &
  pids+=($!)
}
health() { printf '%s /healthz: %s   ' "$1" "$(curl -s "http://127.0.0.1:$2/healthz" || echo down)"; }

say "instance A starts"
start_instance A 18181
sleep 1
say "rolling deploy: instance B starts while A still runs"
start_instance B 18182
sleep 1
health A 18181; health B 18182; echo
psql -X -c "SELECT name, holder, state, transitions FROM singleton_leases"

say "the platform sends SIGTERM to A"
kill -TERM "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
sleep 0.3
health B 18182; echo
psql -X -c "SELECT name, holder, state, transitions, last_transition FROM singleton_leases"

say "instance C starts as standby; then B's wrapper is killed with SIGKILL (a crash)"
start_instance C 18183
sleep 1
kill -KILL "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
sleep 0.5
health C 18183; echo
psql -X -c "SELECT name, holder, state, transitions, last_transition FROM singleton_leases"

say "stopping C"
kill -TERM "${pids[2]}"
wait "${pids[2]}" 2>/dev/null || true
psql -X -c "SELECT name, state, transitions, last_transition FROM singleton_leases"
say "demo finished: every handover went to exactly one leader, each with a higher token"
