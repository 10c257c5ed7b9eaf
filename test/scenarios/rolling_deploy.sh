#!/usr/bin/env bash
# The incident, end to end, with real processes.
#
# A rolling deploy: instance A leads under `singleton-lock run`; instance B
# starts while A still runs and must answer its health check as a standby; A
# gets SIGTERM and takes a while to shut down (its child ignores SIGTERM for
# 2 s); B must lead after A's child is gone. Asserted: the order, exactly one
# leader at every moment, a higher token for B. Printed: the handover latency.
#
# Then the same deploy under the incident's own policy (advisory lock plus a
# heartbeat row, lease TTL 30 s, 3 tries 2 s apart), emulated: B gives up and
# stays passive, and once A is gone no instance is active.
#
# Needs a running server (PG* environment) and the built client (build/client).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLI="${SL_CLI:-$ROOT/build/client/client/singleton-lock}"
WORK=$(mktemp -d /tmp/singleton_lock_deploy.XXXXXX)
EVENTS="$WORK/events"
checks=0
pids=()
ok() { echo "ok: $*"; checks=$((checks + 1)); }
fail() { echo "FAIL: $*" >&2; cat "$EVENTS" "$WORK"/*.log >&2 2>/dev/null || true; exit 1; }
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
now_ns() { date +%s%N; }
psql -X -qc "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS singleton_lock"
psql -X -qc "DELETE FROM singleton_lock_leases WHERE name = 'deploy'"

# The service: logs when it starts leading and when it exits; ignores SIGTERM
# for 2 s (a slow shutdown), then exits by itself.
cat >"$WORK/service.sh" <<'EOF'
#!/usr/bin/env bash
me=$1 events=$2
echo "start $me $SINGLETON_LOCK_TOKEN $(date +%s%N)" >>"$events"
trap 'echo "sigterm $me - $(date +%s%N)" >>"$events"; sleep 2; echo "exit $me - $(date +%s%N)" >>"$events"; exit 0' TERM
while :; do sleep 0.02; done
EOF
chmod +x "$WORK/service.sh"

run_instance() {
  local me=$1 port=$2
  "$CLI" run --name deploy --ttl 10s --grace 3s --health-addr "127.0.0.1:$port" \
    -- "$WORK/service.sh" "$me" "$EVENTS" 2>"$WORK/$me.log" &
  pids+=($!)
}
wait_for() {  # wait_for DESCRIPTION SECONDS COMMAND...
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do [ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"; sleep 0.02; done
}
has_event() { grep -q "^$1 $2 " "$EVENTS" 2>/dev/null; }
. "$ROOT/test/integration/http_get.sh"  # http_get: bash's /dev/tcp, no curl needed
health() { http_get "$1" "$2"; echo "$HTTP_CODE $HTTP_BODY"; }  # "CODE BODY"
answers() { http_get "$1" "$2" && [ "$HTTP_CODE" = 200 ]; }

run_instance A 18281
wait_for "A to lead" 15 has_event start A
run_instance B 18282
wait_for "B's health endpoint" 10 answers 18282 /healthz
[ "$(health 18282 /healthz)" = "200 standby" ] || fail "B /healthz: $(health 18282 /healthz)"
[ "$(health 18282 /livez)" = "200 alive" ] || fail "B /livez: $(health 18282 /livez)"
[ "$(health 18282 /readyz)" = "503 standby" ] || fail "B /readyz should be 503 while standby"
[ "$(health 18282 /leader)" = "503 standby" ] || fail "B /leader should be 503 while standby"
ok "B answers its health check as a standby while A leads"
sleep 0.5
has_event start B && fail "B's service started while A was leader"
ok "B's service did not start while A led"

kill -TERM "${pids[0]}" || fail "could not send SIGTERM to A"
wait_for "B to lead" 30 has_event start B
wait "${pids[0]}" && a_status=0 || a_status=$?
[ "$a_status" = 0 ] || fail "A's wrapper exited $a_status, expected its service's status 0"
ok "A's wrapper exited with its service's status (0)"

a_exit=$(awk '$1 == "exit" && $2 == "A" {print $4}' "$EVENTS")
b_start=$(awk '$1 == "start" && $2 == "B" {print $4}' "$EVENTS")
a_token=$(awk '$1 == "start" && $2 == "A" {print $3}' "$EVENTS")
b_token=$(awk '$1 == "start" && $2 == "B" {print $3}' "$EVENTS")
[ -n "$a_exit" ] || fail "A's service never exited"
[ "$b_start" -gt "$a_exit" ] || fail "B started before A's service exited: two leaders"
ok "B started only after A's service had exited (never two leaders)"
[ "$b_token" -gt "$a_token" ] || fail "B's token $b_token is not above A's $a_token"
ok "B's fencing token $b_token is above A's $a_token"
[ "$(health 18282 /leader)" = "200 leader" ] || fail "B /leader: $(health 18282 /leader)"
[ "$(health 18282 /readyz)" = "200 leader" ] || fail "B /readyz: $(health 18282 /readyz)"
ok "B reports leader on /leader"
handover_ms=$(( (b_start - a_exit) / 1000000 ))
echo "handover: A's service exited -> B's service started in ${handover_ms} ms" \
     "(A was told to stop at SIGTERM and took 2 s; the incident's fix took ~12 s, the original never)"
kill -TERM "${pids[1]}" || fail "could not send SIGTERM to B"
wait "${pids[1]}" || fail "B's wrapper exited $? after SIGTERM, expected its service's 0"

# --- The incident's policy, emulated: advisory lock + heartbeat row (TTL 30 s,
# heartbeat every 10 s); the new instance tries 3 times, 2 s apart, then stays passive.
psql -X -qc "DROP TABLE IF EXISTS incident_heartbeat; CREATE TABLE incident_heartbeat (name text PRIMARY KEY, beat_at timestamptz)"
psql -X -qc "INSERT INTO incident_heartbeat VALUES ('bot', now()) ON CONFLICT (name) DO UPDATE SET beat_at = now()"
# Old instance A: holds the advisory lock and has just heartbeaten; the
# platform stops it about a second after B started (it shuts down cleanly).
psql -X -q -c "SELECT pg_advisory_lock(4242)" \
     -c "UPDATE incident_heartbeat SET beat_at = now() WHERE name = 'bot'" \
     -c "SELECT pg_sleep(1.5)" >/dev/null 2>&1 &
old_a=$!; pids+=($old_a)
sleep 0.5
new_b_policy() {
  for try in 1 2 3; do
    got=$(psql -X -qAt -c "SELECT pg_try_advisory_lock(4242)")
    stale=$(psql -X -qAt -c "SELECT now() - beat_at > interval '30 s' FROM incident_heartbeat WHERE name = 'bot'")
    # Active only with the lock and a stale heartbeat (the old instance may still be alive).
    if [ "$got" = t ] && [ "$stale" = t ]; then echo active; return; fi
    echo "try $try: lock free: $got, old heartbeat stale: $stale" >&2
    [ $try -lt 3 ] && sleep 2
  done
  echo passive
}
outcome=$(new_b_policy 2>"$WORK/incident.log")
wait $old_a || fail "the emulated old instance (psql) failed"
free_now=$(psql -X -qAt -c "SELECT pg_try_advisory_lock(4242)")
[ "$outcome" = passive ] || fail "the emulated incident policy was expected to give up"
[ "$free_now" = t ] || fail "the old instance should be gone"
ok "incident policy: B gave up after 3 tries x 2 s and stayed passive; A is gone: no active instance"
sed 's/^/    incident policy /' "$WORK/incident.log"
psql -X -qc "DROP TABLE incident_heartbeat"

echo "$checks passed, 0 failed"
