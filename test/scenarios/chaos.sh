#!/usr/bin/env bash
# Chaos run with a fencing checker: `test/scenarios/chaos.sh [SECONDS]` (default 45).
#
# N instances of `singleton-lock run` (each restarted by a "platform" loop when
# it exits) wrap a worker that, while leader, keeps writing (token, instance)
# to a downstream table through a fencing check that rejects any write whose
# token is below the highest already seen. A fault injector, only on this
# machine (loopback / unix sockets), picks at random: SIGKILL the leader's
# wrapper; SIGKILL only its COMMAND; SIGSTOP the leader (wrapper and COMMAND)
# for longer than the TTL, then SIGCONT; pg_terminate_backend of one of the
# leader's two sessions; restart PostgreSQL (fast, immediate). Every fault is
# verified as applied (the process is gone / stopped, the backend is gone, the
# server's start time changed); a fault that cannot be applied fails the run.
# No procps needed: processes are found through pid files and /proc.
#
# The checker works from the downstream table's commit order (a single
# sequence assigned under the fence's row lock), not from processes' clocks:
#   - leadership intervals (first..last write of a token that passed
#     singleton_assert) never interleave, a token belongs to one instance, and
#     tokens strictly increase: the extension's own guarantees, checked against
#     the commit order;
#   - singleton_assert never let through a token below the highest one the
#     downstream fence had already seen; stale leaders' writes are counted;
#   - after each fault a leader was writing again within the limit;
#   - processes: every worker checks as it starts that no earlier worker
#     process still runs (never two COMMANDs, not even for an instant).
# It runs its own throwaway server so it may restart it freely, on a port below
# the kernel's ephemeral range (32768-60999 here), which no client socket can
# be holding when the server comes back.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DURATION=${1:-45}
INSTANCES=${SL_CHAOS_INSTANCES:-4}
TTL_MS=${SL_CHAOS_TTL_MS:-2000}
RECOVERY_LIMIT_S=${SL_CHAOS_RECOVERY_LIMIT_S:-15}
CLI="${SL_CLI:-$ROOT/build/client/client/singleton-lock}"
export SL_PGPORT=25540
# Its own cluster directory too: an inherited SL_PGDIR names the caller's, which
# stopping this server would delete.
export SL_PGDIR=/tmp/singleton_lock_pg.$SL_PGPORT
WORK=$(mktemp -d /tmp/singleton_lock_chaos.XXXXXX)
[ "$(id -u)" = 0 ] && chmod 755 "$WORK"
mkdir "$WORK/workers"
SLOTS=()

fail() { echo "FAIL: $*" >&2; exit 1; }
# pid files hold "PID STARTTIME": a pid is signalled only while it still names
# the process that wrote it.
starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
state_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1; }
same() { [ -n "$2" ] && [ "$(starttime "$1")" = "$2" ]; }  # PID START
running() { same "$1" "$2" && case "$(state_of "$1")" in Z | X) false ;; *) true ;; esac; }
cleanup() {
  set +e  # best effort: a process already gone must not fail the cleanup
  touch "$WORK/stop"
  for p in "${SLOTS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for f in "$WORK"/slot-*.pid "$WORK"/workers/*.pid; do
    [ -f "$f" ] || continue
    read -r pid start <"$f"
    same "$pid" "$start" && { kill -CONT "$pid"; kill -KILL "$pid"; } 2>/dev/null
  done
  "$ROOT/test/pgserver.sh" stop >/dev/null 2>&1
  [ -n "${SL_CHAOS_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
"$ROOT/test/pgserver.sh" stop >/dev/null 2>&1 || :  # (none may be running)
eval "$("$ROOT/test/pgserver.sh" start)"  # (on failure it evaluates to `false`: set -e stops here)
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

q "CREATE EXTENSION singleton_lock"
q "CREATE TABLE chaos_fence (id int PRIMARY KEY, max_token bigint NOT NULL, next_ord bigint NOT NULL)"
q "INSERT INTO chaos_fence VALUES (1, 0, 1)"
q "CREATE TABLE chaos_writes (ord bigint PRIMARY KEY, token bigint, instance text,
                              lease_ok boolean, fence_ok boolean, at timestamptz DEFAULT clock_timestamp())"
# A write is checked twice, independently: singleton_assert (the lease, inside
# this transaction, held until commit) and the downstream system's own fence
# (the highest token seen). The fence row lock serializes writes and assigns
# the commit order the checker reads.
q "CREATE FUNCTION chaos_write(p_token bigint, p_instance text) RETURNS boolean LANGUAGE plpgsql AS \$\$
DECLARE f chaos_fence; lease_ok boolean := true; fence_ok boolean;
BEGIN
  BEGIN
    PERFORM singleton_assert('chaos', p_token);
  EXCEPTION WHEN object_not_in_prerequisite_state THEN
    lease_ok := false;
  END;
  SELECT * INTO f FROM chaos_fence WHERE id = 1 FOR UPDATE;
  fence_ok := p_token >= f.max_token;
  UPDATE chaos_fence SET next_ord = f.next_ord + 1,
         max_token = CASE WHEN lease_ok AND fence_ok THEN p_token ELSE f.max_token END WHERE id = 1;
  INSERT INTO chaos_writes (ord, token, instance, lease_ok, fence_ok)
  VALUES (f.next_ord, p_token, p_instance, lease_ok, fence_ok);
  RETURN lease_ok AND fence_ok;
END \$\$"

cat >"$WORK/worker.sh" <<WORKER
#!/usr/bin/env bash
# The leader's work: one fenced write every 20 ms. First the process check:
# no earlier worker may still run.
instance=\$1
for f in "$WORK"/workers/*.pid; do
  [ -f "\$f" ] || continue
  read -r pid start <"\$f"
  st=\$(sed 's/.*) //' "/proc/\$pid/stat" 2>/dev/null) || continue
  [ "\$(echo "\$st" | cut -d' ' -f20)" = "\$start" ] || continue
  case "\${st:0:1}" in Z | X) ;; *) echo "\$instance \$\$ started while \$f (\$pid) ran" >>"$WORK/overlaps" ;; esac
done
me="\$\$ \$(sed 's/.*) //' /proc/\$\$/stat | cut -d' ' -f20)"
echo "\$me" >"$WORK/workers/\$instance-\$\$.pid"
echo "\$me" >"$WORK/\$instance.worker"
while :; do
  psql -X -qAt -c "SELECT chaos_write(\$SINGLETON_LOCK_TOKEN, '\$instance')" >/dev/null 2>&1
  sleep 0.02
done
WORKER
cat >"$WORK/slot.sh" <<SLOT
#!/usr/bin/env bash
# The platform: keeps one instance running in this slot, restarting it when it exits.
slot=\$1
while [ ! -f "$WORK/stop" ]; do
  "$CLI" run --name chaos --ttl ${TTL_MS}ms --holder "slot-\$slot-\$RANDOM" \\
     -- "$WORK/worker.sh" "slot-\$slot" 2>>"$WORK/slot-\$slot.log" &
  pid=\$!
  echo "\$pid \$(sed 's/.*) //' /proc/\$pid/stat | cut -d' ' -f20)" >"$WORK/slot-\$slot.pid"
  wait \$pid || :  # its exit code is the platform's business; faults are verified elsewhere
  sleep 0.1
done
SLOT
chmod +x "$WORK/worker.sh" "$WORK/slot.sh"

for i in $(seq 1 "$INSTANCES"); do
  "$WORK/slot.sh" "$i" &
  SLOTS+=($!)
done

leader_slot() {
  q "SELECT holder FROM singleton_leases WHERE name = 'chaos' AND state = 'held'" 2>/dev/null \
    | sed -n 's/^slot-\([0-9]*\)-.*/\1/p'
}
wait_for_leader() {
  for _ in $(seq 1 200); do
    slot=$(leader_slot); [ -n "$slot" ] && return 0; sleep 0.05
  done
  return 1
}
wait_until() {  # wait_until SECONDS COMMAND...
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  until "$@"; do [ "$(date +%s%N)" -lt "$deadline" ] || return 1; sleep 0.01; done
}
gone() { ! running "$1" "$2"; }
is_stopped() { same "$1" "$2" && [ "$(state_of "$1")" = T ]; }
not_stopped() { ! is_stopped "$1" "$2"; }
backend_gone() { [ -z "$(q "SELECT 1 FROM pg_stat_activity WHERE pid = $1")" ]; }
server_started() { q "SELECT pg_postmaster_start_time()"; }
wait_for_leader || fail "no leader within 10 s of starting"

# --- the faults: each one verified as applied, or the run fails ----------------------
kill_process() {  # kill_process WHAT PID START
  kill -KILL "$2" || fail "$1 ($2): SIGKILL could not be sent"
  wait_until 10 gone "$2" "$3" || fail "$1 ($2) still runs 10 s after SIGKILL"
}
stop_cont() {  # the leader's wrapper and COMMAND hang for longer than the TTL
  kill -STOP "$wrapper" || fail "wrapper $wrapper: SIGSTOP could not be sent"
  kill -STOP "$worker" || fail "COMMAND $worker: SIGSTOP could not be sent"
  wait_until 5 is_stopped "$wrapper" "$wrapper_start" || fail "wrapper $wrapper did not stop"
  # (COMMAND may be gone already: the supervising process's watchdog kills it.)
  wait_until 5 is_stopped "$worker" "$worker_start" || gone "$worker" "$worker_start" ||
    fail "COMMAND $worker did not stop"
  sleep "$(awk -v t="$TTL_MS" 'BEGIN { printf "%.2f", t / 1000 + 0.7 }')"
  if running "$worker" "$worker_start"; then kill -CONT "$worker" || fail "COMMAND $worker: SIGCONT failed"; fi
  kill -CONT "$wrapper" || fail "wrapper $wrapper: SIGCONT could not be sent"
  wait_until 5 not_stopped "$wrapper" "$wrapper_start" || fail "wrapper $wrapper did not resume"
}
terminate_backend() {  # one of the leader's two sessions, at random
  local which=$((RANDOM % 2 + 1)) backend
  backend=$(grep 'leader, token' "$WORK/slot-$slot.log" | tail -n1 |
            sed -n 's/.*(backends \([0-9, ]*\)).*/\1/p' | cut -d, -f"$which" | tr -d ' ')
  [ -n "$backend" ] || fail "no backend of slot $slot's leader in its log"
  [ "$(q "SELECT pg_terminate_backend($backend)")" = t ] || fail "could not terminate backend $backend"
  wait_until 10 backend_gone "$backend" || fail "backend $backend still exists after pg_terminate_backend"
}
restart_server() {  # restart_server fast|immediate
  local before; before=$(server_started) || fail "server not reachable before the restart"
  "$ROOT/test/pgserver.sh" restart "$1" || fail "restart $1 failed"
  [ "$(server_started)" != "$before" ] || fail "the server did not restart ($1)"
}

declare -A fault_counts=()
KINDS=(kill_wrapper kill_child stop_cont terminate_backend restart_fast restart_immediate)
end=$((SECONDS + DURATION))
: >"$WORK/faults"
while [ $SECONDS -lt $end ]; do
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 1.5 + (r % 150) / 100 }')"
  wait_for_leader || continue
  slot=$(leader_slot); [ -n "$slot" ] || continue
  # The target: the leader's wrapper and COMMAND, both running right now (else pick again).
  read -r wrapper wrapper_start <"$WORK/slot-$slot.pid" || continue
  read -r worker worker_start <"$WORK/slot-$slot.worker" 2>/dev/null || continue
  running "$wrapper" "$wrapper_start" && running "$worker" "$worker_start" || continue
  kind=${KINDS[$((RANDOM % ${#KINDS[@]}))]}
  echo "$kind $(date +%s%N)" >>"$WORK/faults"
  case $kind in
    kill_wrapper) kill_process wrapper "$wrapper" "$wrapper_start" ;;
    kill_child) kill_process COMMAND "$worker" "$worker_start" ;;
    stop_cont) stop_cont ;;
    terminate_backend) terminate_backend ;;
    restart_fast) restart_server fast ;;
    restart_immediate) restart_server immediate ;;
  esac
  fault_counts[$kind]=$(( ${fault_counts[$kind]:-0} + 1 ))
done
sleep 3   # let the last fault settle
touch "$WORK/stop"
for p in "${SLOTS[@]}"; do kill -TERM "$p" 2>/dev/null || :; done  # (a slot loop may have ended)
for f in "$WORK"/slot-*.pid; do
  read -r pid start <"$f"
  if running "$pid" "$start"; then kill -TERM "$pid"; fi
done
sleep 1

if [ -s "$WORK/overlaps" ]; then
  SL_CHAOS_KEEP=1
  fail "two COMMANDs ran at once: $(cat "$WORK/overlaps") (kept $WORK)"
fi
echo "process check: $(ls "$WORK"/workers | wc -l) workers started, none while an earlier one ran"

q "SELECT ord, token, instance, lease_ok::int, fence_ok::int, (extract(epoch FROM at) * 1e9)::bigint
   FROM chaos_writes ORDER BY ord" | tr '|' ' ' >"$WORK/writes"
[ -s "$WORK/writes" ] || fail "no downstream writes at all"

# One pass over the commit order.
gawk -v faults="$WORK/faults" -v limit_ns=$((RECOVERY_LIMIT_S * 1000000000)) '
  BEGIN {
    while ((getline line < faults) > 0) { split(line, f, " "); nf++; fkind[nf] = f[1]; fat[nf] = f[2] }
  }
  {
    ord = $1; tok = $2; inst = $3; lease_ok = $4; fence_ok = $5; at = $6
    # The lease check must never pass for a token below one the fence has seen.
    if (lease_ok && tok < maxtok) lease_passed_stale++
    if (lease_ok) {
      # Tenures as the lease check saw them, independent of the fence.
      if ((tok in owner) && owner[tok] != inst) shared++
      owner[tok] = inst
      if (!(tok in first)) { first[tok] = ord; ntok++; order[ntok] = tok }
      last[tok] = ord
    }
    if (!(lease_ok && fence_ok)) { stale++; next }
    if (tok > maxtok) maxtok = tok
    if (prev_at) { gap = at - prev_at; gaps[++ngaps] = gap; if (gap > maxgap) maxgap = gap }
    prev_at = at
    acc_at[++nacc] = at; acc_tok[nacc] = tok
    prefix_max[nacc] = (nacc > 1 && prefix_max[nacc - 1] > tok) ? prefix_max[nacc - 1] : tok
  }
  END {
    for (i = 2; i <= ntok; i++) {
      if (order[i] <= order[i-1]) nonincreasing++
      if (first[order[i]] < last[order[i-1]]) overlaps++
    }
    # Time from each fault to the first accepted write of a newer tenure:
    # the time it took to have a working leader again.
    j = 1; worst = 0; unrecovered = 0
    for (k = 1; k <= nf; k++) {
      while (j <= nacc && acc_at[j] <= fat[k]) j++
      before = j > 1 ? prefix_max[j - 1] : 0
      for (i = j; i <= nacc && acc_tok[i] <= before; i++) ;
      if (i > nacc) { unrecovered++; printf "no new leader after fault %d (%s)\n", k, fkind[k]; continue }
      d = acc_at[i] - fat[k]; rec[fkind[k]] = rec[fkind[k]] " " d
      if (d > worst) worst = d
      if (d > limit_ns) unrecovered++
    }
    n = asort(gaps)
    p99 = n ? gaps[int(n * 0.99) > 0 ? int(n * 0.99) : 1] : 0
    printf "writes accepted: %d, stale writes rejected: %d, stale tokens the lease check let through: %d\n", nacc, stale, lease_passed_stale
    printf "leadership tenures (tokens): %d, takeovers: %d\n", ntok, ntok - 1
    printf "overlapping leaders: %d, non-increasing tokens: %d, tokens shared by two instances: %d\n", overlaps, nonincreasing, shared
    printf "time without a writing leader: max %.0f ms, p99 of gaps between writes %.0f ms\n", maxgap / 1e6, p99 / 1e6
    printf "faults: %d; worst time from a fault to a new leader writing: %.0f ms\n", nf, worst / 1e6
    for (kind in rec) {
      m = split(rec[kind], xs, " "); asort(xs); printf "  after %-18s n=%-3d median %6.0f ms  max %6.0f ms\n", kind, m, xs[int((m + 1) / 2)] / 1e6, xs[m] / 1e6
    }
    ok = (lease_passed_stale == 0 && overlaps == 0 && nonincreasing == 0 && shared == 0 && unrecovered == 0 && ntok >= 2)
    printf "verdict: %s\n", ok ? "PASS" : "FAIL"
    exit ok ? 0 : 1
  }' "$WORK/writes" | tee "$WORK/summary" || { SL_CHAOS_KEEP=1; fail "checker failed (see above; kept $WORK)"; }

echo -n "faults injected by kind:"
for k in "${!fault_counts[@]}"; do echo -n " $k=${fault_counts[$k]}"; done; echo
echo "1 passed, 0 failed"
