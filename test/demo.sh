#!/usr/bin/env bash
# `make demo`: build everything, start a throwaway PostgreSQL and show a
# rolling deploy handing over, then a crash:
#   A leads; B starts beside it as a healthy standby; the platform sends A
#   SIGTERM, A's service takes 0.5 s to finish its job, and B leads within
#   milliseconds of A's exit (graceful handover). C starts as standby; B's
#   singleton-lock is killed with SIGKILL (its service dies with it) and C
#   takes over at once through session binding.
# Prints when each fault happened, who leads and each handover's duration in
# milliseconds; the wrappers' logs and the lease table go to build/demo.log.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export SL_PGPORT=${SL_DEMO_PGPORT:-25339}
# Its own cluster directory too: an inherited SL_PGDIR names the caller's, which
# stopping this server would delete.
export SL_PGDIR=/tmp/singleton_lock_pg.$SL_PGPORT
mkdir -p build
LOG="$ROOT/build/demo.log"
: >"$LOG"
WORK=$(mktemp -d /tmp/singleton_lock_demo.XXXXXX)
EVENTS="$WORK/events"
: >"$EVENTS"

test/install_deps.sh demo
echo "building the extension and the client (log: build/demo.log)"
{ make -s && make -s install && SL_SKIP_ASAN=1 test/build_client.sh; } >>"$LOG" 2>&1 ||
  { tail -n 30 "$LOG"; exit 1; }
CLI="$ROOT/build/client/client/singleton-lock"

eval "$(test/pgserver.sh start)"
pids=()
cleanup() {
  set +e  # best effort: a process already gone must not fail the run
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  test/pgserver.sh stop >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
psql -X -qc "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS singleton_lock" >>"$LOG" 2>&1

# The service: records when it starts leading and when it exits; on SIGTERM
# it takes 0.5 s to finish its current job, as a real service does.
cat >"$WORK/service.sh" <<'EOF'
#!/usr/bin/env bash
me=$1 events=$2
# Timestamps in microseconds from bash itself (no process to start for them).
echo "${EPOCHREALTIME/./} $me leads $SINGLETON_LOCK_TOKEN" >>"$events"
trap 'sleep 0.5; echo "${EPOCHREALTIME/./} $me exited" >>"$events"; exit 0' TERM
while :; do sleep 0.05; done
EOF
chmod +x "$WORK/service.sh"

now_us() { echo "${EPOCHREALTIME/./}"; }
T0=$(now_us)
ms_between() { local d=$(($2 - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
at() { awk -v d=$(($1 - T0)) 'BEGIN { printf "  %+8.3f s  ", d / 1e6 }'; }

# Waits (up to 30 s) for the line "<microseconds> WHO WHAT ..." and prints it.
wait_event() {
  local who=$1 what=$2 line
  for _ in $(seq 600); do
    line=$(grep -m1 " $who $what" "$EVENTS" || true)
    [ -n "$line" ] && { echo "$line"; return 0; }
    sleep 0.05
  done
  echo "demo: $who never reported '$what' (log: $LOG)" >&2
  return 1
}
field() { echo "$1" | cut -d' ' -f"$2"; }

health() {  # GET /healthz without curl: the body, or "down"
  local body
  body=$(exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /healthz HTTP/1.0\r\nConnection: close\r\n\r\n' >&3 && tail -n1 <&3) ||
    body=down
  echo "$body"
}
# Waits (up to 30 s) until the instance on PORT answers /healthz with standby.
wait_standby() {
  for _ in $(seq 300); do [ "$(health "$1" 2>/dev/null)" = standby ] && return 0; sleep 0.1; done
  echo "demo: the instance on port $1 never became a healthy standby (log: $LOG)" >&2
  return 1
}

start_instance() {
  local me=$1 port=$2
  "$CLI" run --name chat-bot --ttl 3s --health-addr "127.0.0.1:$port" \
    -- "$WORK/service.sh" "$me" "$EVENTS" 2> >(sed -u "s/^/[$me wrapper] /" >>"$LOG") &
  pids+=($!)
  disown $!  # no "Killed" notice from bash for the instance killed on purpose
}
wait_gone() { for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
lease_table() { psql -X -c "SELECT name, holder, state, token, transitions, last_transition FROM singleton_leases" >>"$LOG" 2>&1; }

echo "lease \"chat-bot\", ttl 3 s, PostgreSQL $(psql -X -qAt -c 'SHOW server_version') on port $SL_PGPORT"
start_instance A 18181
a=$(wait_event A leads)
at "$(field "$a" 1)"; echo "A leads (token $(field "$a" 4))"

start_instance B 18182
wait_standby 18182
at "$(now_us)"; echo "B started beside A (rolling deploy): /healthz says standby"
lease_table

fault=$(now_us)
kill -TERM "${pids[0]}"
at "$fault"; echo "fault: SIGTERM to A; A's service finishes its job"
a_exit=$(wait_event A exited)
b=$(wait_event B leads)
wait_gone "${pids[0]}"
at "$(field "$b" 1)"
echo "B leads (token $(field "$b" 4)): graceful handover $(ms_between "$(field "$a_exit" 1)" "$(field "$b" 1)") ms after A's service exited"
lease_table

start_instance C 18183
wait_standby 18183
at "$(now_us)"; echo "C started: /healthz says standby"
fault=$(now_us)
kill -KILL "${pids[1]}"
at "$fault"; echo "fault: kill -9 of B's singleton-lock (B's service dies with it)"
c=$(wait_event C leads)
at "$(field "$c" 1)"
echo "C leads (token $(field "$c" 4)): takeover $(ms_between "$fault" "$(field "$c" 1)") ms after the kill"
lease_table

kill -TERM "${pids[2]}"
wait_gone "${pids[2]}"
lease_table
[ "$(field "$a" 4)" -lt "$(field "$b" 4)" ] && [ "$(field "$b" 4)" -lt "$(field "$c" 4)" ] ||
  { echo "demo: tokens did not grow (log: $LOG)" >&2; exit 1; }
state=$(psql -X -qAt -c "SELECT state || ' after ' || transitions || ' tenures' FROM singleton_leases WHERE name = 'chat-bot'")
at "$(now_us)"; echo "C stopped (SIGTERM) and released: lease $state"
echo "one leader at a time, each with a higher fencing token (details: build/demo.log)"
