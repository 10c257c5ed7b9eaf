#!/usr/bin/env bash
# Chaos run with a fencing checker: `test/scenarios/chaos.sh [SECONDS]` (default 45).
#
# N instances of `singleton-lock run` (each restarted by a "platform" loop when
# it exits) wrap a worker that, while leader, keeps writing (token, instance)
# to a downstream table through a fencing check that rejects any write whose
# token is below the highest already seen. A fault injector, only on this
# machine (loopback / unix sockets), picks at random: SIGKILL the leader's
# wrapper; SIGKILL only its child; SIGSTOP the leader (wrapper and child) for
# longer than the TTL, then SIGCONT; pg_terminate_backend of the leader's
# connection; restart PostgreSQL (fast, immediate).
#
# The checker works from the downstream table's commit order (a single
# sequence assigned under the fence's row lock), not from processes' clocks:
#   - leadership intervals (first..last write of a token that passed
#     singleton_assert) never interleave, a token belongs to one instance, and
#     tokens strictly increase: the extension's own guarantees, checked against
#     the commit order;
#   - singleton_assert never let through a token below the highest one the
#     downstream fence had already seen; stale leaders' writes are counted;
#   - after each fault a leader was writing again within the limit.
# It runs its own throwaway server (port 54370) so it may restart it freely.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DURATION=${1:-45}
INSTANCES=${SL_CHAOS_INSTANCES:-4}
TTL_MS=${SL_CHAOS_TTL_MS:-2000}
RECOVERY_LIMIT_S=${SL_CHAOS_RECOVERY_LIMIT_S:-15}
CLI="${SL_CLI:-$ROOT/build/client/client/singleton-lock}"
export SL_PGPORT=54370
WORK=$(mktemp -d /tmp/singleton_lock_chaos.XXXXXX)
[ "$(id -u)" = 0 ] && chmod 755 "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
  set +e  # best effort: a process already gone must not fail the run
  touch "$WORK/stop"
  pkill -CONT -f "$WORK/" 2>/dev/null || true
  pkill -KILL -f "$WORK/slot.sh" 2>/dev/null || true
  pkill -KILL -f "$WORK/worker.sh" 2>/dev/null || true
  for f in "$WORK"/slot-*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true; done
  "$ROOT/test/pgserver.sh" stop >/dev/null 2>&1 || true
  [ -n "${SL_CHAOS_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
"$ROOT/test/pgserver.sh" stop >/dev/null 2>&1 || true
eval "$("$ROOT/test/pgserver.sh" start)"
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

cat >"$WORK/worker.sh" <<EOF
#!/usr/bin/env bash
# The leader's work: one fenced write every 20 ms.
instance=\$1
while :; do
  psql -X -qAt -c "SELECT chaos_write(\$SINGLETON_LOCK_TOKEN, '\$instance')" >/dev/null 2>&1
  sleep 0.02
done
EOF
cat >"$WORK/slot.sh" <<EOF
#!/usr/bin/env bash
# The platform: keeps one instance running in this slot, restarting it when it exits.
slot=\$1
while [ ! -f "$WORK/stop" ]; do
  "$CLI" run --name chaos --ttl ${TTL_MS}ms --holder "slot-\$slot-\$RANDOM" \\
     -- "$WORK/worker.sh" "slot-\$slot" 2>>"$WORK/slot-\$slot.log" &
  echo \$! >"$WORK/slot-\$slot.pid"
  wait \$! || true
  sleep 0.1
done
EOF
chmod +x "$WORK/worker.sh" "$WORK/slot.sh"

for i in $(seq 1 "$INSTANCES"); do "$WORK/slot.sh" "$i" & done

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
wait_for_leader || fail "no leader within 10 s of starting"

declare -A fault_counts=()
KINDS=(kill_wrapper kill_child stop_cont terminate_backend restart_fast restart_immediate)
end=$((SECONDS + DURATION))
: >"$WORK/faults"
while [ $SECONDS -lt $end ]; do
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 1.5 + (r % 150) / 100 }')"
  wait_for_leader || continue
  slot=$(leader_slot); [ -n "$slot" ] || continue
  wrapper=$(cat "$WORK/slot-$slot.pid" 2>/dev/null) || continue
  kind=${KINDS[$((RANDOM % ${#KINDS[@]}))]}
  echo "$kind $(date +%s%N)" >>"$WORK/faults"
  case $kind in
    kill_wrapper) kill -KILL "$wrapper" 2>/dev/null || true ;;
    kill_child) pkill -KILL -f "$WORK/worker.sh slot-$slot\$" || true ;;
    stop_cont)
      kill -STOP "$wrapper" 2>/dev/null || true
      pkill -STOP -f "$WORK/worker.sh slot-$slot\$" || true
      sleep "$(awk -v t=$TTL_MS 'BEGIN { printf "%.2f", t / 1000 + 0.7 }')"
      pkill -CONT -f "$WORK/worker.sh slot-$slot\$" || true
      kill -CONT "$wrapper" 2>/dev/null || true ;;
    terminate_backend)
      q "SELECT pg_terminate_backend(holder_pid) FROM singleton_leases WHERE name = 'chaos' AND holder_pid IS NOT NULL" >/dev/null 2>&1 || true ;;
    restart_fast) "$ROOT/test/pgserver.sh" restart fast ;;
    restart_immediate) "$ROOT/test/pgserver.sh" restart immediate ;;
  esac
  fault_counts[$kind]=$(( ${fault_counts[$kind]:-0} + 1 ))
done
sleep 3   # let the last fault settle
touch "$WORK/stop"
pkill -TERM -f "$WORK/slot.sh" 2>/dev/null || true
for f in "$WORK"/slot-*.pid; do kill -TERM "$(cat "$f")" 2>/dev/null || true; done
sleep 1

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
