#!/usr/bin/env bash
# Process exclusion of `singleton-lock run`: never two COMMANDs, descendants
# included, whatever happens to the leader. Against a REAL server (PG* env).
#
#   test/integration/exclusion.sh SINGLETON_LOCK IT_COMMAND CASE
#
# IT_COMMAND (it_command.cpp) is the COMMAND: its first action checks that no
# process of an earlier COMMAND (its main process, a child in its group, a
# setsid daemon that ignores SIGTERM) still runs, and records the verdict.
# Cases (each fault is verified as applied; a fault that cannot be applied fails):
#   kill9               SIGKILL of the leader's singleton-lock, SL_IT_ROUNDS (30) rounds,
#                       with busy loops on every core
#   terminate_backend   pg_terminate_backend of the leader's main session, then of its
#                       second session; COMMANDs that honour and that ignore SIGTERM; loaded
#   restart             server restarts (fast, immediate) under a leader; both COMMAND kinds
#                       (needs SL_IT_RESTART, e.g. "test/pgserver.sh restart fast")
#   abandoned_query     a standby's acquire blocked on the lease row by an open
#                       singleton_assert transaction times out and reconnects; when the
#                       lock goes, exactly one new tenure starts and it keeps its lease
# Exit 77 (skipped) when no server answers. Latencies are printed, never asserted.
set -uo pipefail

SL="$1"
CMD="$2"
CASE="$3"
ROUNDS="${SL_IT_ROUNDS:-30}"
TMP="$(mktemp -d /tmp/sl-excl.XXXXXX)"
NAME="ex_${CASE}_$$_${RANDOM}"
PIDS=()
LOAD=()

cleanup() {
    for p in "${LOAD[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for f in "$TMP"/*.ids; do  # whatever a failed run left behind
        [ -f "$f" ] && while read -r pid _; do kill -KILL "$pid" 2>/dev/null; done <"$f"
    done
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

fail() {
    echo "FAIL [$CASE]: $*"
    for f in "$TMP"/*.log "$TMP"/*.check; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
    exit 1
}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

require_extension

MODE=honour
# start LABEL [singleton-lock run options...]: an instance whose sessions carry
# application_name=LABEL-of-this-test, so its backends can be found.
start() {
    local label="$1"; shift
    "$SL" run --name "$NAME" --dsn "application_name=${NAME}_$label" "$@" \
        -- "$CMD" "$TMP" "$label" "$MODE" 2>"$TMP/$label.log" 7>&- &  # (7: the fence's pipe)
    local pid=$!
    PIDS+=("$pid")
    eval "PID_$label=$pid"
}
started() { [ -s "$TMP/$1.started" ]; }
logged() { grep -q "$2" "$TMP/$1.log" 2>/dev/null; }
gone() { ! kill -0 "$1" 2>/dev/null; }
started_real_ns() { cut -d' ' -f3 "$TMP/$1.started"; }
ms_until_started() { echo $(( ($(started_real_ns "$2") - $1) / 1000000 )); }  # T0_NS LABEL
token_of() { cut -d' ' -f1 "$TMP/$1.started"; }

# Every process LABEL's COMMAND recorded (main, group child, setsid daemon) is gone.
none_runs() {
    local pid start st
    while read -r pid start; do
        st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        [ "$(echo "$st" | cut -d' ' -f20)" = "$start" ] || continue  # pid reused
        case "${st:0:1}" in Z | X) ;; *) return 1 ;; esac
    done <"$TMP/$1.ids"
}

# After a handover from OLD to NEW: NEW's COMMAND found no process of OLD's
# (checked at its first instruction), and none survives now.
check_handover() {
    local old="$1" new="$2"
    [ -s "$TMP/$new.check" ] || fail "$new wrote no check"
    [ "$(cat "$TMP/$new.check")" = clean ] ||
        fail "$new's COMMAND started while old processes ran: $(cat "$TMP/$new.check")"
    [ -s "$TMP/$old.ids" ] || fail "$old recorded no processes"
    none_runs "$old" || fail "a process of $old's COMMAND survived: $(cat "$TMP/$old.ids")"
    [ "$(token_of "$new")" -gt "$(token_of "$old")" ] ||
        fail "token did not increase: $(token_of "$old") -> $(token_of "$new")"
}

# lost_then_handover OLD NEW WHAT: OLD's singleton-lock exits 3 (lease lost) after
# WHAT, then check_handover OLD NEW.
lost_then_handover() {
    local wpid rc; eval "wpid=\$PID_$1"
    wait "$wpid"; rc=$?
    [ "$rc" = 3 ] || fail "$1 exited $rc after $3, expected 3"
    check_handover "$1" "$2"
}

# stop_leader LABEL: SIGTERM to LABEL's singleton-lock; it exits 0, or 137 when
# its COMMAND ignores SIGTERM (MODE=ignore: killed at the end of the grace).
stop_leader() {
    local wpid rc expected=0; eval "wpid=\$PID_$1"
    kill -TERM "$wpid" || fail "could not stop $1"
    wait "$wpid"; rc=$?
    [ "$MODE" = ignore ] && expected=137
    [ "$rc" = "$expected" ] || fail "$1 exited $rc after SIGTERM, expected $expected"
}

standby() {  # standby LABEL OPTIONS...: start LABEL and wait until it waits as a standby
    local label="$1"; shift
    start "$label" "$@"
    wait_for 30 logged "$label" "standby, held by" || fail "$label never reported standby"
    started "$label" && fail "$label's COMMAND started while another instance leads"
}

load_cpus() {  # busy loops on every core for the rest of the test
    local n; n=$(nproc)
    for _ in $(seq "$n"); do
        ( while :; do :; done ) &
        LOAD+=($!)
    done
    info "load: $n busy loops"
}
load_ran() {  # the busy loops were running all along (the rounds really ran loaded)
    local p
    for p in "${LOAD[@]}"; do
        [ "$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)" = R ] ||
            kill -0 "$p" 2>/dev/null || fail "busy loop $p is gone: the host was not loaded"
    done
}

backend_of() {  # backend_of LABEL main|second
    local app="${NAME}_$1" pattern
    [ "$2" = main ] && pattern='singleton_(acquire|heartbeat)' || pattern='singleton_(bind|watch)'
    "${PSQL[@]}" -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'
                     AND query ~ '$pattern' AND pid <> pg_backend_pid()"
}

backend_gone() { [ -z "$("${PSQL[@]}" -c "SELECT 1 FROM pg_stat_activity WHERE pid = $1")" ]; }

LAT=()
report_latencies() {  # prints p50 / max of LAT (ms)
    [ "${#LAT[@]}" -gt 0 ] || return 0
    local sorted; sorted=$(printf '%s\n' "${LAT[@]}" | sort -n)
    info "$1: ${#LAT[@]} rounds, fault -> new COMMAND: p50 $(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms, max $(echo "$sorted" | tail -n1) ms"
    LAT=()
}

# --- kill -9 of the leader's singleton-lock, many rounds ------------------------------
case_kill9() {
    load_cpus
    start r0 --ttl 10s
    wait_for 30 started r0 || fail "the first leader never started COMMAND"
    standby r1 --ttl 10s
    local i old new t0
    for i in $(seq 1 "$ROUNDS"); do
        old="r$((i - 1))"; new="r$i"
        local wpid; eval "wpid=\$PID_$old"
        t0=$(now_ns)
        kill -KILL "$wpid" || fail "round $i: could not SIGKILL $old's singleton-lock ($wpid)"
        wait "$wpid"; local rc=$?
        [ "$rc" = 137 ] || fail "round $i: $old's singleton-lock exited $rc, not killed by SIGKILL"
        wait_for 30 started "$new" || fail "round $i: $new did not take over"
        LAT+=("$(ms_until_started "$t0" "$new")")
        check_handover "$old" "$new"
        standby "r$((i + 1))" --ttl 10s
    done
    load_ran
    report_latencies "kill -9 of the leader's singleton-lock"
    info "$ROUNDS rounds of kill -9 under load: no old process ran when the new COMMAND started, none survived"
}

# --- pg_terminate_backend of the leader's sessions ---------------------------------------
terminate_rounds() {  # terminate_rounds SESSION MODE ROUNDS
    local session="$1" rounds="$3" i old new t0 backend opts=(--ttl 3s)
    MODE="$2"
    [ "$MODE" = ignore ] && opts+=(--grace 300ms)
    old="t_${session}_${MODE}_0"
    start "$old" "${opts[@]}"
    wait_for 30 started "$old" || fail "$old never started COMMAND"
    for i in $(seq 1 "$rounds"); do
        new="t_${session}_${MODE}_$i"
        standby "$new" "${opts[@]}"
        backend=$(backend_of "$old" "$session")
        [ -n "$backend" ] || fail "no $session backend found for $old"
        t0=$(now_ns)
        [ "$("${PSQL[@]}" -c "SELECT pg_terminate_backend($backend)")" = t ] ||
            fail "could not terminate $old's $session backend $backend"
        wait_for 10 backend_gone "$backend" || fail "backend $backend still exists after pg_terminate_backend"
        wait_for 30 started "$new" || fail "$new did not take over after $old's $session backend was terminated"
        LAT+=("$(ms_until_started "$t0" "$new")")
        lost_then_handover "$old" "$new" "losing its $session session"
        old="$new"
    done
    stop_leader "$old"
    report_latencies "$session backend terminated, COMMAND ${MODE}s SIGTERM"
}

case_terminate_backend() {
    load_cpus
    terminate_rounds main honour 5
    terminate_rounds main ignore 5
    terminate_rounds second honour 3
    terminate_rounds second ignore 3
    load_ran
    info "leader's backends terminated: never two COMMANDs, none survived"
}

# --- server restarts ------------------------------------------------------------------------
restart_server() {  # restart_server fast|immediate: verified by the postmaster's start time
    local before after
    before=$("${PSQL[@]}" -c 'SELECT pg_postmaster_start_time()') || fail "server not reachable"
    ${SL_IT_RESTART% fast} "$1" >/dev/null 2>&1 || fail "restart ($1) failed"
    after=$("${PSQL[@]}" -c 'SELECT pg_postmaster_start_time()') || fail "server not back after restart"
    [ "$before" != "$after" ] || fail "the server did not restart ($1): start time $before"
}

case_restart() {
    [ -n "${SL_IT_RESTART:-}" ] || { echo "SKIP: set SL_IT_RESTART to a command restarting the server"; exit 77; }
    local how mode i=0 old new t0 opts
    for how in fast immediate; do
        for MODE in honour ignore; do
            opts=(--ttl 3s); [ "$MODE" = ignore ] && opts+=(--grace 300ms)
            old="x_${how}_${MODE}_a"; new="x_${how}_${MODE}_b"
            start "$old" "${opts[@]}"
            wait_for 30 started "$old" || fail "$old never started COMMAND"
            standby "$new" "${opts[@]}"
            t0=$(now_ns)
            restart_server "$how"
            wait_for 60 started "$new" || fail "$new did not take over after the restart ($how)"
            LAT+=("$(ms_until_started "$t0" "$new")")
            lost_then_handover "$old" "$new" "the restart"
            stop_leader "$new"
            i=$((i + 1))
        done
    done
    report_latencies "server restarts (from the restart command's start)"
    info "restarts fast/immediate, COMMAND honouring/ignoring SIGTERM: never two COMMANDs"
}

# --- abandoned queries --------------------------------------------------------------------
case_abandoned_query() {
    MODE=plain
    start a --ttl 2s
    wait_for 30 started a || fail "a never started COMMAND"
    local token_a transitions_before app_b="${NAME}_b"
    token_a=$(token_of a)
    transitions_before=$("${PSQL[@]}" -c "SELECT transitions FROM singleton_leases WHERE name = '$NAME'")
    # An application transaction fenced with a's token keeps the lease row locked
    # (FOR KEY SHARE): every acquire of the lease blocks on it.
    mkfifo "$TMP/fence.in"
    "${PSQL[@]}" <"$TMP/fence.in" >"$TMP/fence.out" 2>&1 &
    local fence=$!
    PIDS+=("$fence")
    exec 7>"$TMP/fence.in"
    echo "BEGIN; SELECT singleton_assert('$NAME', $token_a); SELECT 'fenced';" >&7
    wait_for 10 grep -q fenced "$TMP/fence.out" || fail "the fencing transaction did not start: $(cat "$TMP/fence.out")"
    start b --ttl 2s
    # b's acquire blocks on the row; its client gives up on it (no reply in time)
    # and reconnects, more than once.
    wait_for 30 bash -c "[ \$(grep -c 'database unavailable\|no reply' '$TMP/b.log') -ge 1 ]" ||
        fail "b never gave up on a blocked acquire"
    sleep 4
    local blocked
    blocked=$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app_b'
                               AND query ~ 'singleton_acquire' AND state = 'active'")
    info "acquires of b running in the server after its client gave up on some: $blocked"
    # a goes (SIGKILL: its sessions end once its COMMAND is gone), then the lock goes.
    kill -KILL "$PID_a" || fail "could not kill a"
    wait "$PID_a"; [ $? = 137 ] || fail "a was not killed by SIGKILL"
    echo "COMMIT;" >&7
    exec 7>&-
    wait "$fence" || fail "the fencing transaction failed: $(cat "$TMP/fence.out")"
    taken_or_lost() { started b || logged b LOST; }
    wait_for 30 taken_or_lost || fail "b never took over"
    logged b LOST && fail "b lost its lease right after taking over"
    check_handover a b
    # b keeps its lease: it must not lose it to a late call of its own.
    sleep 3
    logged b "LOST" && fail "b lost its lease after taking over"
    started b && gone "$PID_b" && fail "b exited"
    local transitions_after
    transitions_after=$("${PSQL[@]}" -c "SELECT transitions FROM singleton_leases WHERE name = '$NAME'")
    [ "$transitions_after" = $((transitions_before + 1)) ] ||
        fail "$((transitions_after - transitions_before)) tenures started for one handover (tokens issued), expected 1"
    [ "$("${PSQL[@]}" -c "SELECT token FROM singleton_leases WHERE name = '$NAME' AND state = 'held'")" = "$(token_of b)" ] ||
        fail "the lease is not held with b's token"
    [ "$blocked" -le 1 ] || fail "$blocked acquires of b ran in the server at once: abandoned queries were not cancelled"
    info "one handover, one new token, b still leads; abandoned acquires were cancelled"
    kill -TERM "$PID_b" || fail "could not stop b"
    wait "$PID_b" || fail "b exited $? after SIGTERM"
}

case "$CASE" in
    kill9) case_kill9 ;;
    terminate_backend) case_terminate_backend ;;
    restart) case_restart ;;
    abandoned_query) case_abandoned_query ;;
    *) echo "unknown case $CASE"; exit 2 ;;
esac
echo "PASS [$CASE]"
