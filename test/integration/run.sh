#!/usr/bin/env bash
# Multi-process integration tests of `singleton-lock run` against a REAL
# PostgreSQL server with the real singleton_lock extension (no mocks).
#
#   test/integration/run.sh /path/to/singleton-lock CASE
#
# The server comes from the PG* environment (e.g. eval "$(test/pgserver.sh env)");
# the extension is created if missing. Exit 77 (skipped) when no server answers.
# Assertions are about correctness only; latencies are printed, never asserted.
set -uo pipefail

SL="$1"
CASE="$2"
TMP="$(mktemp -d /tmp/sl-it.XXXXXX)"
NAME="it_${CASE}_$$_${RANDOM}"
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    # COMMANDs a failing case may have left behind (they hold its output pipe open)
    # (checked by their command line: a pid may have been reused meanwhile)
    for f in "$TMP"/*.child "$TMP"/*.grandchild; do
        [ -f "$f" ] || continue
        p=$(cat "$f"); tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qE "$TMP/|^sleep 1000" &&
            kill -KILL "$p" 2>/dev/null
    done
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

fail() {
    echo "FAIL [$CASE]: $*"
    for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
    exit 1
}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }

require_extension

# The COMMAND used by the tests: first notes any earlier COMMAND's process
# (or its child) that still runs in LABEL.overlap; records its pid, a
# grandchild's pid, its environment and when it started; exits 0 on SIGTERM
# unless told to ignore it (ignore_term) or to note it and go on (count_term).
cat >"$TMP/worker.sh" <<'WORKER'
#!/bin/sh
dir="$1"; label="$2"; mode="${3:-normal}"
for f in "$dir"/*.child "$dir"/*.grandchild; do
    case "$f" in "$dir/$label".*) continue ;; esac
    [ -f "$f" ] || continue
    st=$(sed 's/.*) //' "/proc/$(cat "$f")/stat" 2>/dev/null | cut -c1)
    [ -n "$st" ] && [ "$st" != Z ] && echo "$(cat "$f") ($f)" >>"$dir/$label.overlap"
done
sleep 1000 &
echo $! >"$dir/$label.grandchild"
echo $$ >"$dir/$label.child"
echo "$SINGLETON_LOCK_NAME $SINGLETON_LOCK_TOKEN $SINGLETON_LOCK_HOLDER" >"$dir/$label.env"
case "$mode" in
    ignore_term) trap '' TERM ;;
    count_term) trap 'date +%s%N >>"$dir/$label.terms"' TERM ;;  # and go on
    *) trap 'kill $! 2>/dev/null; exit 0' TERM ;;
esac
date +%s%N >"$dir/$label.started"
while :; do wait; done
WORKER
chmod +x "$TMP/worker.sh"

# start LABEL [singleton-lock run options...] -- runs the worker as COMMAND.
start() {
    local label="$1"; shift
    "$SL" run --name "$NAME" "$@" -- "$TMP/worker.sh" "$TMP" "$label" "${WORKER_MODE:-normal}" \
        2>"$TMP/$label.log" &
    local pid=$!
    PIDS+=("$pid")
    eval "PID_$label=$pid"
}
started() { [ -s "$TMP/$1.started" ]; }
logged() { grep -q "$2" "$TMP/$1.log" 2>/dev/null; }
. "$(dirname "$0")/http_get.sh"
# The health endpoint's port that LABEL's log names, and a metric's value there for this lease.
port_of() { sed -n 's|.*health endpoint on http://127.0.0.1:\([0-9]*\).*|\1|p' "$TMP/$1.log"; }
metric() {  # metric PORT NAME
    http_get "$1" /metrics && [ "$HTTP_CODE" = 200 ] || fail "no /metrics on :$1"
    prometheus_text_ok "$HTTP_BODY" || fail "/metrics on :$1 is not Prometheus text"
    awk -v m="$2{name=\"$NAME\"}" '$1 == m { print $2 }' <<<"$HTTP_BODY"
}
alive() { kill -0 "$1" 2>/dev/null; }
stopped() { [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = T ]; }
# Dead, or a zombie waiting for init to reap it (its group was SIGKILLed with its parent).
dead() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
reap() { wait "$1"; RC=$?; }  # in this shell: $(...) could not wait
children_of() {  # PID: its children, from /proc (no procps needed)
    { cat /proc/[0-9]*/stat 2>/dev/null || :; } |  # (past processes that just ended)
        awk -v parent="$1" '{ pid = $1; sub(/.*\) /, ""); if ($2 == parent) print pid }'
}
fd_count() { ls "/proc/$1/fd" | wc -l; }  # PID: its open descriptors
# supervisor_of PID: the supervising process of singleton-lock process PID
# (its first child); fails (status 1) when it has none.
supervisor_of() {
    local sup; sup=$(children_of "$1" | head -n1)
    [ -n "$sup" ] || { echo "singleton-lock $1 has no supervising process" >&2; return 1; }
    echo "$sup"
}
# wrapper_fds PID: the descriptors of singleton-lock process PID and of its
# supervising process; fails (status 1) when it has none.
wrapper_fds() {
    local sup; sup=$(supervisor_of "$1") || return 1
    echo "$(fd_count "$1") $(fd_count "$sup")"
}
# wrapper_counts PID: those descriptors and PID's child processes.
wrapper_counts() {
    local fds; fds=$(wrapper_fds "$1") || return 1
    echo "descriptors $fds, $(children_of "$1" | wc -l) children"
}
lease_state() { "${PSQL[@]}" -c "SELECT state FROM singleton_leases WHERE name = '$NAME'"; }
token_of() { cut -d' ' -f2 <"$TMP/$1.env"; }
# backend_of LABEL N: the pid of its Nth session's backend, from its leader line
# (1: the main session, which heartbeats; 2: the second).
backend_of() { sed -n "s/.*leader, token .*(backends \([0-9]*\), \([0-9]*\)).*/\\$2/p" "$TMP/$1.log" | head -n1; }
no_overlap() {  # LABEL: its COMMAND found no earlier COMMAND's process running as it started
    [ ! -s "$TMP/$1.overlap" ] || fail "overlap: $1's COMMAND started while these ran: $(cat "$TMP/$1.overlap")"
}

# NO_LEFTOVERS CMD...: CMD's exit status, or 99 when a process it started (a
# supervising process, COMMAND's tree) outlived it. sl_alone ARGS: "$SL" ARGS so.
NO_LEFTOVERS=(/usr/bin/python3 "$(dirname "$0")/no_leftovers.py")
sl_alone() { "${NO_LEFTOVERS[@]}" "$SL" "$@"; }

leader_and_standby() {
    start a "$@"
    wait_for 20 started a || fail "first instance never started COMMAND"
    start b "$@"
    wait_for 20 logged b "standby, held by" || fail "second instance never reported standby"
    sleep 0.3
    started b && fail "the standby's COMMAND started while the leader holds the lease"
    info "standby's COMMAND is not running while the leader holds the lease: ok"
}

case "$CASE" in
handover)
    leader_and_standby --ttl 5s
    t0=$(now_ns)
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"
    wait_for 20 started b || fail "standby did not take over after SIGTERM to the leader"
    no_overlap b
    info "handover after SIGTERM (signal -> new COMMAND started): $(( ($(cat "$TMP/b.started") - t0) / 1000000 )) ms"
    reap "$PID_a"; rc=$RC
    [ "$rc" = 0 ] || fail "old leader exited $rc, expected COMMAND's status 0"
    logged a "released" || fail "old leader did not log the release"
    [ "$(token_of b)" -gt "$(token_of a)" ] || fail "fencing token did not increase: $(token_of a) -> $(token_of b)"
    info "tokens $(token_of a) -> $(token_of b): ok"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"
    reap "$PID_b"; rc=$RC
    [ "$rc" = 0 ] || fail "second leader exited $rc"
    [ "$(lease_state)" = free ] || fail "lease not free at the end: $(lease_state)"
    ;;
sigkill_takeover)
    leader_and_standby --ttl 10s
    child=$(cat "$TMP/a.child"); grandchild=$(cat "$TMP/a.grandchild")
    t0=$(now_ns)
    kill -KILL "$PID_a" || fail "could not send SIGKILL to a"
    reap "$PID_a"; [ "$RC" = 137 ] || fail "a exited $RC, not killed by SIGKILL"
    wait_for 20 started b || fail "standby did not take over after SIGKILL of the leader's singleton-lock"
    no_overlap b
    info "takeover after SIGKILL (TTL 10s): $(( ($(cat "$TMP/b.started") - t0) / 1000000 )) ms"
    wait_for 10 dead "$child" || fail "the killed leader's COMMAND ($child) is still alive"
    wait_for 10 dead "$grandchild" || fail "the killed leader's COMMAND's child ($grandchild) is still alive"
    info "COMMAND and its child died with singleton-lock: ok"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; reap "$PID_b"
    ;;
force_release)
    start a --ttl 10s
    wait_for 20 started a || fail "COMMAND never started"
    child=$(cat "$TMP/a.child")
    t0=$(now_ns)
    out=$("$SL" release --name "$NAME" --force) || fail "release --force failed: $out"
    wait_for 20 dead "$child" || fail "COMMAND still running after the force release"
    info "force release -> COMMAND stopped: $(ms_since "$t0") ms"
    reap "$PID_a"; rc=$RC
    [ "$rc" = 3 ] || fail "exit code $rc after losing the lease, expected 3"
    logged a "LOST" || fail "no LOST log line"
    "$SL" release --name "$NAME" --force >/dev/null; rc=$?
    [ "$rc" = 4 ] || fail "release --force of a free lease exited $rc, expected 4"
    ;;
lost_kills_stubborn_command)
    WORKER_MODE=ignore_term start a --ttl 2s --grace 300ms
    wait_for 20 started a || fail "COMMAND never started"
    child=$(cat "$TMP/a.child")
    t0=$(now_ns)
    "$SL" release --name "$NAME" --force >/dev/null || fail "release --force failed"
    wait_for 20 dead "$child" || fail "a COMMAND ignoring SIGTERM survived the grace"
    info "force release -> SIGTERM-ignoring COMMAND killed: $(ms_since "$t0") ms (grace 300ms)"
    reap "$PID_a"; rc=$RC
    [ "$rc" = 3 ] || fail "exit code $rc, expected 3"
    logged a "SIGKILL" || fail "no SIGKILL log line"
    ;;
health)
    # Every endpoint, checked with bash's /dev/tcp (no curl needed): a leader, a
    # standby, a standby that cannot reach the database, and after a handover.
    expect() {  # expect PORT PATH CODE [BODY]
        http_get "$1" "$2" || fail "no answer on :$1$2"
        [ "$HTTP_CODE" = "$3" ] || fail ":$1$2 answered $HTTP_CODE ($HTTP_BODY), expected $3"
        [ -z "${4:-}" ] || [ "$HTTP_BODY" = "$4" ] || fail ":$1$2 said '$HTTP_BODY', expected '$4'"
    }
    start a --ttl 2s --health-addr 127.0.0.1:0
    wait_for 20 started a || fail "COMMAND never started"
    start b --ttl 2s --health-addr 127.0.0.1:0
    wait_for 20 logged b "standby, held by" || fail "no standby"
    pa=$(port_of a); pb=$(port_of b)
    [ -n "$pa" ] && [ -n "$pb" ] || fail "no health endpoint port in the logs"
    for p in /livez; do expect "$pa" $p 200 alive; expect "$pb" $p 200 alive; done
    expect "$pa" /readyz 200 leader; expect "$pa" /leader 200 leader; expect "$pa" /healthz 200 leader
    expect "$pb" /readyz 503 standby; expect "$pb" /leader 503 standby; expect "$pb" /healthz 200 standby
    info "/livez /readyz /leader /healthz on a leader and a standby: ok"
    # Other methods: 405 with Allow on our paths, 404 elsewhere; OPTIONS says what is
    # allowed. A body is never read, and a head must fit 32 KiB: before (cpp-httplib
    # 0.11), 400 MiB of a chunked body or of headers grew the leader's wrapper as much.
    for m in POST PUT DELETE; do
        http_request $m "$pa" /healthz && [ "$HTTP_CODE" = 405 ] && [ "$HTTP_ALLOW" = "GET, HEAD, OPTIONS" ] ||
            fail "$m /healthz: '$HTTP_CODE', Allow '$HTTP_ALLOW'; expected 405, 'GET, HEAD, OPTIONS'"
    done
    http_request OPTIONS "$pa" /readyz && [ "$HTTP_CODE" = 204 ] && [ -n "$HTTP_ALLOW" ] ||
        fail "OPTIONS /readyz: '$HTTP_CODE', Allow '$HTTP_ALLOW'"
    http_request POST "$pa" /nope && [ "$HTTP_CODE" = 404 ] || fail "POST /nope: '$HTTP_CODE', expected 404"
    peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
    rss0=$(peak_rss_kib "$PID_a")
    for target in "POST /nope" "POST /healthz" "PUT /livez" "OPTIONS /readyz" "GET /livez"; do
        http_flood ${target% *} "$pa" "${target#* }" 64 || fail "$target: no answer to a 64 MiB chunked body"
        grew=$(( $(peak_rss_kib "$PID_a") - rss0 ))  # (the peak: a body read is freed after)
        [ "$grew" -lt 16384 ] || fail "$target with a 64 MiB chunked body: the wrapper's peak RSS grew by $grew KiB"
    done
    http_header_flood "$pa" /livez 64 || fail "no answer to 64 MiB of headers"
    grew=$(( $(peak_rss_kib "$PID_a") - rss0 ))
    [ "$grew" -lt 16384 ] && [ "$HTTP_CODE" = 431 ] ||
        fail "64 MiB of headers: answered '$HTTP_CODE' (expected 431), the wrapper's peak RSS grew by $grew KiB"
    expect "$pa" /livez 200 alive
    info "other methods: 405 with Allow (404 off our paths); 5 x 64 MiB chunked bodies and 64 MiB of headers: 431, the wrapper's peak RSS grew by $grew KiB"
    # A port that is taken: exit 1 at once, saying why; nothing started. (Before: both
    # bound it, SO_REUSEPORT, and the kernel spread probes between leader and standby.)
    # (no_leftovers.py: its supervising process, forked before the port is bound,
    # must be gone when it exits)
    timeout 10 "${NO_LEFTOVERS[@]}" \
        "$SL" run --name "$NAME" --health-addr "127.0.0.1:$pa" -- touch "$TMP/taken.ran" 2>"$TMP/taken.log"
    rc=$?
    [ "$rc" = 1 ] && grep -q "cannot listen on 127.0.0.1:$pa: Address already in use" "$TMP/taken.log" ||
        fail "a taken health port: exit $rc, $(cat "$TMP/taken.log")"
    [ ! -e "$TMP/taken.ran" ] || fail "COMMAND ran although the health port was taken"
    # A host that does not resolve: said so (before, with cpp-httplib: a stale errno,
    # "Resource temporarily unavailable").
    timeout 10 "$SL" run --name "$NAME" --health-addr no-such-host.invalid:0 -- touch "$TMP/taken.ran" 2>"$TMP/taken.log"
    rc=$?
    [ "$rc" = 1 ] && grep -q "cannot listen on no-such-host.invalid:0: cannot resolve no-such-host.invalid: " "$TMP/taken.log" ||
        fail "an unresolvable health host: exit $rc, $(cat "$TMP/taken.log")"
    [ ! -e "$TMP/taken.ran" ] || fail "COMMAND ran although the health host does not resolve"
    # An IPv6 address: the URL logged has it in brackets (where ::1 exists).
    if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
        timeout 10 "$SL" run --name "$NAME-v6" --health-addr '[::1]:0' -- true 2>"$TMP/v6.log" ||
            fail "--health-addr [::1]:0 failed: $(cat "$TMP/v6.log")"
        grep -q 'health endpoint on http://\[::1\]:[0-9]*$' "$TMP/v6.log" || fail "IPv6 URL logged as: $(grep 'health endpoint' "$TMP/v6.log")"
    fi
    # The HTTP server is a module loaded only for --health-addr: without it, no HTTP
    # server in memory.
    grep -q "/singleton-lock-health.so" "/proc/$PID_b/maps" || fail "b with --health-addr has not loaded the module"
    "$SL" run --name "$NAME" -- "$TMP/worker.sh" "$TMP" d 2>"$TMP/d.log" &
    PID_d=$!; PIDS+=("$PID_d")
    wait_for 20 logged d "standby, held by" || fail "d is not standby"
    ! grep -E "singleton-lock-health|microhttpd" "/proc/$PID_d/maps" ||
        fail "a standby without --health-addr loaded the health endpoint's libraries"
    kill -TERM "$PID_d" || fail "could not send SIGTERM to d"; reap "$PID_d"
    # Without the module (a copy of the command alone), with a broken one, one
    # anybody could have replaced or one of another release: exit 1 with the
    # reason, COMMAND never runs, no process is left; without --health-addr the
    # copy works.
    mkdir "$TMP/bare" && cp "$SL" "$TMP/bare/singleton-lock" || fail "cannot copy $SL"
    installed=$(grep -aoE '/[[:alnum:]_./-]+/lib[[:alnum:]_./-]*/singleton-lock' "$SL" | head -n1)
    # (SL_HEALTH_OTHER_RELEASE: the module built as release 0.0-other, test/integration/meson.build)
    [ -r "${SL_HEALTH_OTHER_RELEASE:-}" ] || fail "SL_HEALTH_OTHER_RELEASE names no module: '${SL_HEALTH_OTHER_RELEASE:-}'"
    for broken in missing garbage writable other_release; do
        [ "$broken" = garbage ] && echo "not ELF" >"$TMP/bare/singleton-lock-health.so"
        [ "$broken" = writable ] && chmod o+w "$TMP/bare/singleton-lock-health.so"
        if [ "$broken" = other_release ]; then
            rm -f "$TMP/bare/singleton-lock-health.so" &&
                cp "$SL_HEALTH_OTHER_RELEASE" "$TMP/bare/singleton-lock-health.so" &&
                chmod 0755 "$TMP/bare/singleton-lock-health.so" || fail "cannot copy $SL_HEALTH_OTHER_RELEASE"
        fi
        [ "$broken" = missing ] && [ -n "$installed" ] && [ -e "$installed/singleton-lock-health.so" ] &&
            { info "module installed in $installed: the missing-module case is not checked"; continue; }
        timeout 10 "${NO_LEFTOVERS[@]}" \
            "$TMP/bare/singleton-lock" run --name "$NAME-bare" --health-addr 127.0.0.1:0 \
            -- touch "$TMP/bare.ran" 2>"$TMP/bare.log"
        rc=$?
        want="health endpoint's module singleton-lock-health.so is not installed (looked for $TMP/bare/singleton-lock-health.so, "
        [ "$broken" = garbage ] && want="cannot load the health endpoint's module: $TMP/bare/singleton-lock-health.so: "
        [ "$broken" = writable ] && want="refusing to load the health endpoint's module $TMP/bare/singleton-lock-health.so: writable by others"
        [ "$broken" = other_release ] && want="the module is of version 0.0-other, singleton-lock of version $("$SL" --version | awk '{ print $2 }')"
        [ "$rc" = 1 ] && grep -qF "$want" "$TMP/bare.log" || fail "module $broken: exit $rc, $(cat "$TMP/bare.log")"
        [ ! -e "$TMP/bare.ran" ] || fail "COMMAND ran although the health module is $broken"
    done
    timeout 10 "$TMP/bare/singleton-lock" run --name "$NAME-bare" -- touch "$TMP/bare.ran" 2>"$TMP/bare.log" &&
        [ -e "$TMP/bare.ran" ] || fail "the command without its module failed without --health-addr: $(cat "$TMP/bare.log")"
    info "module: loaded only for --health-addr; missing, broken, writable by others or of another release: exit 1 saying so: ok"
    wait_for 5 bash -c "[ \"\$(. '$(dirname "$0")/http_get.sh'; http_get $pa /metrics; awk '/^singleton_lock_heartbeat_duration_seconds_count/ { print \$2 }' <<<\"\$HTTP_BODY\")\" -ge 1 ]" ||
        fail "no heartbeat counted in a's /metrics"
    [ "$(metric "$pa" singleton_lock_leader)" = 1 ] || fail "a: singleton_lock_leader is not 1"
    [ "$(metric "$pa" singleton_lock_token)" = "$(token_of a)" ] || fail "a: singleton_lock_token is not its token $(token_of a)"
    [ "$(metric "$pa" singleton_lock_transitions_total)" = 1 ] || fail "a: transitions_total is not 1"
    [ "$(metric "$pa" singleton_lock_up)" = 1 ] || fail "a: singleton_lock_up is not 1"
    age=$(metric "$pa" singleton_lock_last_heartbeat_age_seconds)
    awk -v a="$age" 'BEGIN { exit !(a >= 0 && a < 2) }' || fail "a: last heartbeat age '$age' is not within the ttl"
    [ "$(metric "$pb" singleton_lock_leader)" = 0 ] || fail "b: singleton_lock_leader is not 0"
    [ "$(metric "$pb" singleton_lock_token)" = 0 ] || fail "b: singleton_lock_token is not 0"
    [ "$(metric "$pb" singleton_lock_up)" = 1 ] || fail "b: singleton_lock_up is not 1"
    [ "$(metric "$pb" singleton_lock_transitions_total)" = 0 ] || fail "b: transitions_total is not 0"
    [ "$(metric "$pb" singleton_lock_last_heartbeat_age_seconds)" = NaN ] || fail "b: heartbeat age is not NaN"
    [ "$(metric "$pb" singleton_lock_database_errors_total)" = 0 ] || fail "b: database errors counted"
    info "/metrics of the leader and the standby: ok"
    # A standby that cannot reach its database: alive, but not healthy.
    "$SL" run --name "$NAME" --dsn "host=127.0.0.1 port=1" --health-addr 127.0.0.1:0 \
        -- "$TMP/worker.sh" "$TMP" c 2>"$TMP/c.log" &
    PID_c=$!; PIDS+=("$PID_c")
    wait_for 10 logged c "health endpoint on" || fail "c has no health endpoint"
    pc=$(port_of c)
    wait_for 10 logged c "database unavailable" || fail "c did not report the unreachable database"
    expect "$pc" /livez 200 alive; expect "$pc" /healthz 503 unreachable; expect "$pc" /readyz 503 standby
    [ "$(metric "$pc" singleton_lock_up)" = 0 ] || fail "c: singleton_lock_up is not 0"
    [ "$(metric "$pc" singleton_lock_database_errors_total)" -ge 1 ] || fail "c: no database error counted"
    kill -TERM "$PID_c" || fail "could not send SIGTERM to c"; reap "$PID_c"
    info "a standby that cannot reach the database: /livez 200, /healthz 503 unreachable, up 0: ok"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"
    wait_for 20 started b || fail "no takeover"
    wait_for 5 bash -c ". '$(dirname "$0")/http_get.sh'; http_get $pb /readyz && [ \"\$HTTP_CODE\" = 200 ]" ||
        fail "new leader's /readyz is not 200"
    expect "$pb" /healthz 200 leader
    [ "$(metric "$pb" singleton_lock_transitions_total)" = 1 ] || fail "b: transitions_total is not 1"
    info "after the handover the new leader's /readyz is 200: ok"
    # Clients that trickle a byte a second to the endpoint (slowloris) hold a
    # connection each, but probes are still answered meanwhile, and b still exits
    # at once on SIGTERM. (Before, with cpp-httplib's one worker: one such client
    # left probes unanswered, and b's exit waited for it to stop, 60 s here.)
    tricklers=()
    for _ in 1 2 3 4; do
        bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
                 for _ in $(seq 60); do printf X >&3 || exit; sleep 1; done' trickle "$pb" &
        tricklers+=($!); PIDS+=($!)
    done
    # (the fault applied: established connections to b's port)
    wait_for 5 awk -v port="$(printf ':%04X' "$pb")" \
        '$4 == "01" && substr($2, length($2) - 4) == port { n++ } END { exit n < 4 }' /proc/net/tcp ||
        fail "the 4 trickling clients are not connected to b's endpoint"
    sleep 1
    expect "$pb" /livez 200 alive
    t0=$(now_ns)
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"
    wait_for 10 dead "$PID_b" || fail "b still runs 10 s after SIGTERM while a client trickles bytes to its endpoint"
    reap "$PID_b"
    info "with 4 clients trickling bytes to its endpoint, /livez answered and b exited $(ms_since "$t0") ms after SIGTERM: ok"
    kill "${tricklers[@]}" 2>/dev/null
    ;;
wait_timeout)
    start a --ttl 5s
    wait_for 20 started a || fail "COMMAND never started"
    t0=$(now_ns)
    sl_alone run --name "$NAME" --wait 1s -- "$TMP/worker.sh" "$TMP" b 2>"$TMP/b.log"; rc=$?
    info "--wait 1s on a held lease returned after $(ms_since "$t0") ms"
    [ "$rc" = 75 ] || fail "exit code $rc, expected 75 (99: a process outlived it)"
    started b && fail "COMMAND ran although the wait ran out"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"; reap "$PID_a"
    ;;
standby_signal)
    leader_and_standby --ttl 5s
    t0=$(now_ns)
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"
    reap "$PID_b"; rc=$RC
    info "standby stopped by SIGTERM after $(ms_since "$t0") ms"
    [ "$rc" = 143 ] || fail "standby exit code $rc after SIGTERM, expected 143"
    started b && fail "the standby ran COMMAND"
    alive "$PID_a" || fail "the leader died"
    start c --ttl 5s
    wait_for 20 logged c "standby, held by" || fail "no standby"
    kill -INT "$PID_c" || fail "could not send SIGINT to c"
    reap "$PID_c"; rc=$RC
    [ "$rc" = 130 ] || fail "standby exit code $rc after SIGINT, expected 130"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"; reap "$PID_a"
    ;;
stalled_stderr)
    # Whoever reads the leader's stderr stops reading (a stuck journald, a log
    # shipper, a full pipe): its log lines wait, its loop goes on renewing the
    # lease. (Before: its next log line blocked the loop, the lease ran out and
    # the standby took over.)
    mkfifo "$TMP/a.fifo" || fail "mkfifo"
    sleep 1000 <"$TMP/a.fifo" & reader=$!; PIDS+=("$reader")  # opens it, never reads
    cat >"$TMP/noisy.sh" <<'NOISY'
#!/bin/sh
# Fills its stderr (the wrapper's) in the background, notes SIGHUPs, exits on SIGTERM.
dir="$1"
head -c 300000 /dev/zero >&2 &
exec 2>/dev/null  # (sh's own messages, such as its sleep's "Hangup", would block too)
trap 'echo hup >>"$dir/a.hups"' HUP
trap 'exit 0' TERM
date +%s%N >"$dir/a.started"
while :; do sleep 0.1; done
NOISY
    chmod +x "$TMP/noisy.sh"
    # (SIGHUP at its default: an ignored one would stay ignored for COMMAND)
    env --default-signal=HUP "$SL" run --name "$NAME" --ttl 3s -- "$TMP/noisy.sh" "$TMP" 2>"$TMP/a.fifo" &
    PID_a=$!; PIDS+=("$PID_a")
    wait_for 20 started a || fail "a's COMMAND never started"
    start b --ttl 3s
    wait_for 20 logged b "standby, held by" || fail "b is not standby"
    kill -HUP "$PID_a" || fail "could not send SIGHUP to a"  # a logs that it passed it on
    wait_for 5 test -s "$TMP/a.hups" || fail "a did not pass SIGHUP on"
    sleep 7  # over twice the ttl
    started b && fail "b took over while a was alive: a's loop froze on its full stderr"
    alive "$PID_a" || fail "a died"
    cat "$TMP/a.fifo" >"$TMP/a.log" & PIDS+=($!)  # someone reads it again
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"
    wait_for 10 started b || fail "b did not take over after SIGTERM to a"
    reap "$PID_a"
    [ "$RC" = 0 ] || fail "a exited $RC after SIGTERM, expected COMMAND's 0"
    no_overlap b
    # Its lines waited and came out in order once read (test/unit/log_test.cpp: beyond
    # 64 KiB they are counted instead)
    wait_for 5 logged a ": released" || fail "a's last lines never came out"
    grep -a "singleton-lock\[" "$TMP/a.log" | sed 's/.*: lease "[^"]*": //' | grep -E "^(passed|forwarded|COMMAND|released)" |
        tr '\n' '|' | grep -qx "passed SIGHUP on to COMMAND|forwarded SIGTERM to COMMAND; [^|]*|COMMAND exited with status 0|released|" ||
        fail "a's log lines after the stall are not all there, in order"
    info "a leader whose stderr nobody reads keeps leading; its lines come out in order once read; it hands over on SIGTERM: ok"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; reap "$PID_b"
    ;;
fork_storm)
    # COMMAND ignores SIGTERM and forks without end (each child too ignores it):
    # at the end of --grace every process of it is killed and reaped, new ones
    # still being forked as the old ones die, and only then does the lease go;
    # none outlives the wrapper (no_leftovers.py).
    "${NO_LEFTOVERS[@]}" bash -c '
        "$1" run --name "$2" --ttl 3s --grace 300ms -- \
            sh -c "trap \"\" TERM; while :; do (trap \"\" TERM; exec sleep 1000) & done" 2>"$3/a.log" &
        p=$!; sleep 1.5; kill -TERM $p; wait $p' bash "$SL" "$NAME" "$TMP"; rc=$?
    [ "$rc" = 137 ] || fail "exit $rc, expected 137 (COMMAND SIGKILLed at the end of --grace; 99: a process outlived the wrapper)"
    killed=$(grep -o "[0-9]* more of its processes killed" "$TMP/a.log" | cut -d' ' -f1)
    [ -n "$killed" ] || fail "no count of the storm's processes killed: $(tail -n 3 "$TMP/a.log")"
    # (Where singleton-lock had to kill its supervising process, see below, it
    # counts only what that process had not killed yet: 6 on a loaded CI host.)
    grep -q "its supervising process died" "$TMP/a.log" || [ "$killed" -ge 20 ] ||
        fail "only $killed processes of the storm were killed: $(tail -n 3 "$TMP/a.log")"
    # Killed at the end of --grace by the supervising process, or, should its kill loop
    # outlast grace + slack (ASan, hundreds of processes), by singleton-lock, which then
    # kills its supervising process and adopts and kills the rest: either way before the release.
    grep -q ": COMMAND was killed by signal 9 (Killed); \(grace over\|its supervising process died\)" "$TMP/a.log" ||
        fail "COMMAND did not end by SIGKILL at the end of --grace"
    [ "$(grep -n "COMMAND was killed" "$TMP/a.log" | cut -d: -f1)" -lt "$(grep -n ": released" "$TMP/a.log" | cut -d: -f1)" ] ||
        fail "the lease was released before COMMAND's tree was gone"
    [ "$(lease_state)" = free ] || fail "lease not released: $(lease_state)"
    info "a COMMAND forking without end: $killed more processes killed and reaped at the end of --grace, none left, lease released: ok"
    ;;
job_control)
    # Job control stops a job's whole process group: Ctrl-Z (SIGTSTP), `kill -STOP %1`.
    # COMMAND runs in a group of its own and is not stopped with it. SIGTSTP (and
    # SIGTTIN, SIGTTOU) are ignored; under SIGSTOP, which cannot be, the
    # supervising process, in a group of its own too, still stops COMMAND before
    # the lease runs out. (Before: both stopped with the group, COMMAND ran on,
    # and the standby led beside it.) setsid: a's group is its own, as a job's is.
    setsid "$SL" run --name "$NAME" --ttl 2s --grace 300ms \
        -- "$TMP/worker.sh" "$TMP" a ignore_term 2>"$TMP/a.log" &
    PID_a=$!; PIDS+=("$PID_a")
    trap 'kill -CONT -- "-$PID_a" 2>/dev/null; cleanup' EXIT
    wait_for 20 started a || fail "a never led"
    setsid "$SL" run --name "$NAME" --ttl 2s -- "$TMP/worker.sh" "$TMP" b 2>"$TMP/b.log" &
    PID_b=$!; PIDS+=("$PID_b")
    wait_for 20 logged b "standby, held by" || fail "b is not standby"
    for sig in TSTP TTIN TTOU; do kill -"$sig" -- "-$PID_a" || fail "could not send SIG$sig to a's group"; done
    wait_for 5 logged a "ignored SIGTTOU" || fail "a did not log SIGTTOU as ignored"
    sleep 5  # over twice the ttl
    stopped "$PID_a" && fail "a's group was stopped by SIGTSTP, SIGTTIN or SIGTTOU"
    started b && fail "b took over while a led"
    logged a "ignored SIGTSTP" || fail "a did not log SIGTSTP as ignored"
    info "SIGTSTP, SIGTTIN, SIGTTOU to a's group: ignored, a still leads: ok"
    child=$(cat "$TMP/a.child")
    kill -STOP -- "-$PID_a" || fail "could not stop a's group"
    wait_for 5 stopped "$PID_a" || fail "a did not stop"
    wait_for 10 dead "$child" || fail "a's COMMAND ran on under its stopped wrapper"
    wait_for 20 started b || fail "b did not take over"
    no_overlap b
    kill -CONT -- "-$PID_a" || fail "could not resume a's group"
    reap "$PID_a"
    [ "$RC" = 3 ] || fail "the resumed ex-leader exited $RC, expected 3 (lease lost)"
    info "SIGSTOP to a's group: its supervising process stopped COMMAND before the lease ran out, b took over, no overlap: ok"
    # SIGKILL to b's whole group (`kill -9 %1`, supervisord's killasgroup): the
    # supervising process, not in it, kills COMMAND's tree before the sessions end.
    # (Before: it died with the group, COMMAND ran on, and c led beside it.)
    start c --ttl 2s
    wait_for 20 logged c "standby, held by" || fail "c is not standby"
    kill -KILL -- "-$PID_b" || fail "could not kill b's group"
    reap "$PID_b"
    wait_for 20 started c || fail "c did not take over after b's group was killed"
    no_overlap c
    info "SIGKILL to b's group: COMMAND's tree killed before the lease went, no overlap: ok"
    kill -TERM "$PID_c" || fail "could not send SIGTERM to c"; reap "$PID_c"
    ;;
closed_stdio)
    # Started with stdin, stdout and stderr closed: they become /dev/null before
    # anything else is opened. (Before: the descriptors opened next took their
    # numbers, and log lines went into the supervising process's link.)
    "$SL" run --name "$NAME" --ttl 3s -- \
        sh -c 'echo "$SINGLETON_LOCK_TOKEN" >"$1/a.env"; sleep 2; exit 5' sh "$TMP" \
        0<&- 1>&- 2>&- &
    PID_a=$!; PIDS+=("$PID_a")
    wait_for 20 test -s "$TMP/a.env" || fail "COMMAND never ran"
    for fd in 0 1 2; do
        target=$(readlink "/proc/$PID_a/fd/$fd") || fail "fd $fd of the wrapper is closed"
        [ "$target" = /dev/null ] || fail "fd $fd of the wrapper is $target, not /dev/null"
    done
    reap "$PID_a"
    [ "$RC" = 5 ] || fail "exit $RC, expected COMMAND's 5"
    [ "$(lease_state)" = free ] || fail "lease not released: $(lease_state)"
    info "started with stdin, stdout and stderr closed: /dev/null in their place, COMMAND's status kept, lease released: ok"
    # stderr on a full disk (ENOSPC): the lines are lost, the run is not held up
    # and ends. (Before: at exit the count of lost lines was lost too, counted
    # and written again for ever: the released leader spun at 100% CPU.)
    t0=$(now_ns)
    timeout -s KILL 20 "$SL" run --name "$NAME" --ttl 3s -- sh -c 'exit 6' 2>/dev/full
    rc=$?
    [ "$rc" = 6 ] || fail "stderr on /dev/full: exit $rc, expected COMMAND's 6 (137: still running after 20 s)"
    [ "$(lease_state)" = free ] || fail "lease not released: $(lease_state)"
    info "stderr on a full disk: COMMAND's status kept, lease released, exited after $(ms_since "$t0") ms: ok"
    ;;
open_files)
    # Too few descriptors (ulimit -n). Before: every connection attempt failed alike
    # ("could not create socket: Too many open files") and a standby retried for
    # ever, as if the database were down.
    # 1. A hard limit below the need: exit 1 at once, saying so; nothing contended.
    ( ulimit -n 7; exec "$SL" run --name "$NAME" -- "$TMP/worker.sh" "$TMP" a ) 2>"$TMP/a.log" &
    PID_a=$!; PIDS+=("$PID_a")
    wait_for 5 dead "$PID_a" || fail "still running 5 s after a start with ulimit -n 7: $(cat "$TMP/a.log")"
    reap "$PID_a"
    [ "$RC" = 1 ] || fail "ulimit -n 7: exit $RC, expected 1"
    logged a "the limit on open files is 7 (ulimit -n; hard limit 7): singleton-lock run needs 16" ||
        fail "no reason given: $(cat "$TMP/a.log")"
    logged a "waiting as" && fail "contended with ulimit -n 7"
    started a && fail "COMMAND ran with ulimit -n 7"
    info "hard limit 7: $(sed 's/.*]: //' "$TMP/a.log")"
    # 2. The health endpoint needs room for its connections too.
    ( ulimit -n 40; exec "$SL" run --name "$NAME" --health-addr 127.0.0.1:0 -- \
        "$TMP/worker.sh" "$TMP" b ) 2>"$TMP/b.log" &
    PID_b=$!; PIDS+=("$PID_b")
    wait_for 5 dead "$PID_b" || fail "still running 5 s after a start with ulimit -n 40 and --health-addr"
    reap "$PID_b"
    [ "$RC" = 1 ] || fail "ulimit -n 40 with --health-addr: exit $RC, expected 1"
    logged b "singleton-lock run needs 50" || fail "no reason given: $(cat "$TMP/b.log")"
    started b && fail "COMMAND ran with ulimit -n 40 and --health-addr"
    # 3. Only the soft limit low: raised for singleton-lock, which leads; COMMAND
    #    runs with the limit it was started with (its output: no redirection of its
    #    own, for which sh would need a descriptor above 9).
    ( ulimit -Sn 7; exec "$SL" run --name "$NAME" --health-addr 127.0.0.1:0 -- sh -c 'ulimit -Sn' ) \
        >"$TMP/c.nofile" 2>"$TMP/c.log" &
    PID_c=$!; PIDS+=("$PID_c")
    wait_for 20 dead "$PID_c" || fail "ulimit -Sn 7: still running after 20 s: $(cat "$TMP/c.log")"
    reap "$PID_c"
    [ "$RC" = 0 ] || fail "ulimit -Sn 7: exit $RC: $(cat "$TMP/c.log")"
    [ "$(cat "$TMP/c.nofile" 2>/dev/null)" = 7 ] ||
        fail "COMMAND's soft limit is '$(cat "$TMP/c.nofile" 2>/dev/null)', expected the 7 it was started with"
    [ "$(lease_state)" = free ] || fail "lease not released: $(lease_state)"
    info "soft limit 7 (hard $(ulimit -Hn)): led, COMMAND ran with soft limit 7: ok"
    ;;
passed_signals)
    # SIGHUP, SIGUSR1, SIGUSR2 (a reload, a log reopen) are passed on to COMMAND; the
    # lease is unaffected. A standby without COMMAND ignores them. SIGQUIT kills this
    # COMMAND (sh's default): its exit ends the run as any other. Before: the signal's
    # default action killed singleton-lock, and its supervisor SIGKILLed COMMAND.
    cat >"$TMP/reloader.sh" <<'RELOADER'
#!/bin/sh
out="$1"
for sig in HUP USR1 USR2; do trap "echo $sig >>'$out'" "$sig"; done
trap 'exit 0' TERM
: >"$out"; date +%s%N >"$out.started"
while :; do sleep 0.05; done
RELOADER
    chmod +x "$TMP/reloader.sh"
    # LABEL [OPTION]. The signals at their default: an ignored one stays ignored through
    # exec, and a shell cannot trap a signal ignored when it started (bash's `&` ignores
    # SIGINT and SIGQUIT; under nohup, as CI may run, SIGHUP is ignored throughout).
    run_reloader() {
        env --default-signal=HUP,INT,QUIT,USR1,USR2 "$SL" run --name "$NAME" --ttl 5s ${2:+"$2"} \
            -- "$TMP/reloader.sh" "$TMP/$1.sig" 2>"$TMP/$1.log" &
        PIDS+=("$!"); eval "PID_$1=$!"
    }
    got() { grep -qx "$2" "$TMP/$1.sig" 2>/dev/null; }
    token() { "${PSQL[@]}" -c "SELECT state || ' ' || token FROM singleton_leases WHERE name = '$NAME'"; }
    run_reloader a
    wait_for 20 test -s "$TMP/a.sig.started" || fail "a's COMMAND never started"
    run_reloader b
    wait_for 20 logged b "standby, held by" || fail "b never reported standby"
    before=$(token)
    for sig in HUP USR1 USR2; do
        kill -"$sig" "$PID_a" || fail "could not send SIG$sig to a"
        wait_for 10 got a "$sig" || fail "COMMAND did not get SIG$sig"
        logged a "passed SIG$sig on to COMMAND" || fail "no log line for SIG$sig"
    done
    kill -HUP "$PID_b" || fail "could not send SIGHUP to b"
    wait_for 10 logged b "received SIGHUP; no COMMAND runs to pass it to: ignored" ||
        fail "the standby did not say it ignored SIGHUP"
    sleep 0.3
    alive "$PID_a" && alive "$PID_b" || fail "a signal to pass on ended a wrapper"
    [ "$(token)" = "$before" ] || fail "the lease changed: $before -> $(token)"
    [ ! -e "$TMP/b.sig.started" ] || fail "the standby ran COMMAND"
    kill -TERM "$PID_a"; reap "$PID_a"
    [ "$RC" = 0 ] || fail "a exited $RC after SIGTERM, expected COMMAND's 0"
    wait_for 20 test -s "$TMP/b.sig.started" || fail "b never took over"
    kill -QUIT "$PID_b"; reap "$PID_b"
    [ "$RC" = 131 ] || fail "b exited $RC after SIGQUIT, expected 128+SIGQUIT=131 (COMMAND's death)"
    logged b "passed SIGQUIT on to COMMAND" || fail "no log line for SIGQUIT"
    [ "$(lease_state)" = free ] || fail "the lease was not released after COMMAND died: $(lease_state)"
    # A warm standby's COMMAND runs already: it gets them too, and the standby stays one.
    run_reloader c
    wait_for 20 test -s "$TMP/c.sig.started" || fail "c's COMMAND never started"
    run_reloader d --warm
    wait_for 20 test -s "$TMP/d.sig.started" || fail "d's warm COMMAND never started"
    wait_for 20 logged d "standby, held by" || fail "d never reported standby"
    kill -HUP "$PID_d" || fail "could not send SIGHUP to d"
    wait_for 10 got d HUP || fail "the warm COMMAND did not get SIGHUP"
    sleep 0.3
    alive "$PID_d" && logged d "passed SIGHUP on to COMMAND" || fail "the warm standby did not pass SIGHUP on"
    logged d "leader, token" && fail "the warm standby led while c held the lease"
    kill -TERM "$PID_c"; reap "$PID_c"
    wait_for 20 logged d "leader, token" || fail "d never took over"
    kill -TERM "$PID_d"; reap "$PID_d"
    info "SIGHUP, SIGUSR1, SIGUSR2 passed on to the leader's COMMAND with the lease unchanged ($before), ignored by a cold standby, passed on to a warm standby's COMMAND; SIGQUIT's death of COMMAND released the lease: ok"
    ;;
exit_status)
    # (sl_alone: exit 99 when any process outlived the wrapper, e.g. COMMAND's
    # child or a daemon it started)
    # (run with our variables inherited, as under another singleton-lock: exactly
    # NAME, HOLDER and TOKEN reach COMMAND, its own)
    SINGLETON_LOCK_LEADER_FD=99 SINGLETON_LOCK_TOKEN=1 sl_alone run --name "$NAME" -- \
        sh -c 'test "$SINGLETON_LOCK_TOKEN" != 1 && test "$(grep -zc "^SINGLETON_LOCK_" /proc/$$/environ)" = 3 || exit 1
               sleep 1000 & setsid sleep 1000 & exit 7' \
        2>"$TMP/a.log"; rc=$?
    [ "$rc" = 7 ] || fail "exit code $rc, expected COMMAND's 7 (1: its SINGLETON_LOCK_ variables were not its own): $(cat "$TMP/a.log")"
    [ "$(lease_state)" = free ] || fail "lease not released after COMMAND exited: $(lease_state)"
    sl_alone run --name "$NAME" -- sh -c 'sleep 1000 & kill -USR1 $$' 2>"$TMP/b.log"; rc=$?
    [ "$rc" = 138 ] || fail "exit code $rc, expected 128+SIGUSR1=138: $(cat "$TMP/b.log")"
    # A COMMAND that cannot run is refused before the lease is taken.
    transitions() { "${PSQL[@]}" -c "SELECT transitions FROM singleton_leases WHERE name = '$NAME'"; }
    before=$(transitions)
    sl_alone run --name "$NAME" -- /nonexistent/command 2>"$TMP/c.log"; rc=$?
    [ "$rc" = 127 ] || fail "exit code $rc for a missing COMMAND, expected 127"
    sl_alone run --name "$NAME" -- "no-such-command-$$" 2>"$TMP/d.log"; rc=$?
    [ "$rc" = 127 ] || fail "exit code $rc for a COMMAND not in PATH, expected 127"
    : >"$TMP/not-executable"
    sl_alone run --name "$NAME" -- "$TMP/not-executable" 2>"$TMP/e.log"; rc=$?
    [ "$rc" = 126 ] || fail "exit code $rc for a COMMAND that is not executable, expected 126"
    sl_alone run --name "$NAME" -- "$TMP" 2>"$TMP/f.log"; rc=$?
    [ "$rc" = 126 ] || fail "exit code $rc for a directory as COMMAND, expected 126"
    # A script whose #! interpreter is missing (or not executable) fails at execve.
    printf '#!/nonexistent/interpreter\necho ran\n' >"$TMP/bad-interpreter"
    printf '#! %s -x\necho ran\n' "$TMP/not-executable" >"$TMP/bad-interpreter-2"
    chmod +x "$TMP/bad-interpreter" "$TMP/bad-interpreter-2"
    sl_alone run --name "$NAME" -- "$TMP/bad-interpreter" 2>"$TMP/c2.log"; rc=$?
    [ "$rc" = 127 ] || fail "exit code $rc for a script whose interpreter is missing, expected 127"
    grep -q "its interpreter /nonexistent/interpreter (#! line): not found" "$TMP/c2.log" ||
        fail "no clear error for a missing interpreter: $(cat "$TMP/c2.log")"
    sl_alone run --name "$NAME" -- "$TMP/bad-interpreter-2" 2>"$TMP/c3.log"; rc=$?
    [ "$rc" = 126 ] || fail "exit code $rc for a script whose interpreter is not executable, expected 126"
    # A binary whose dynamic loader (ELF PT_INTERP) is missing fails at execve
    # too, with ENOENT although the file is there; also as a script's #! interpreter.
    /usr/bin/python3 - /bin/true "$TMP/no-loader" <<'PY' || fail "could not make a binary with a missing loader"
import struct, sys
elf = bytearray(open(sys.argv[1], "rb").read())
assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1, "not a 64-bit little-endian ELF"
phoff, = struct.unpack_from("<Q", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
for i in range(phnum):
    ph = phoff + i * phentsize
    if struct.unpack_from("<I", elf, ph)[0] == 3:  # PT_INTERP
        offset, = struct.unpack_from("<Q", elf, ph + 8)
        size, = struct.unpack_from("<Q", elf, ph + 32)
        elf[offset:offset + size - 1] = b"/nonexistent/ld".ljust(size - 1, b"x")
        break
else:
    sys.exit("no PT_INTERP in " + sys.argv[1])
open(sys.argv[2], "wb").write(elf)
PY
    chmod +x "$TMP/no-loader"
    "$TMP/no-loader" 2>/dev/null; rc=$?
    [ "$rc" = 127 ] || fail "the patched binary did not fail to start (exit $rc): the fault was not applied"
    sl_alone run --name "$NAME" -- "$TMP/no-loader" 2>"$TMP/c5.log"; rc=$?
    [ "$rc" = 127 ] || fail "exit code $rc for a binary whose loader is missing, expected 127: $(cat "$TMP/c5.log")"
    grep -q "its interpreter /nonexistent/ldx* (ELF PT_INTERP): not found" "$TMP/c5.log" ||
        fail "no clear error for a binary whose loader is missing: $(cat "$TMP/c5.log")"
    printf '#!%s\necho ran\n' "$TMP/no-loader" >"$TMP/bad-interpreter-3"
    chmod +x "$TMP/bad-interpreter-3"
    sl_alone run --name "$NAME" -- "$TMP/bad-interpreter-3" 2>"$TMP/c6.log"; rc=$?
    [ "$rc" = 127 ] || fail "exit code $rc for a script whose interpreter's loader is missing, expected 127"
    grep -q "(ELF PT_INTERP of $TMP/no-loader): not found" "$TMP/c6.log" ||
        fail "no clear error for a script whose interpreter's loader is missing: $(cat "$TMP/c6.log")"
    [ "$(transitions)" = "$before" ] || fail "a COMMAND that cannot run took the lease"
    # A binary of another machine is left to execve (binfmt_misc may run it
    # with qemu-user, whose loader need not be where the file says): no
    # refusal before the lease, whatever execve then says.
    /usr/bin/python3 - "$TMP/no-loader" "$TMP/foreign" <<'PY' || fail "could not make a foreign binary"
import struct, sys
elf = bytearray(open(sys.argv[1], "rb").read())
machine, = struct.unpack_from("<H", elf, 0x12)
struct.pack_into("<H", elf, 0x12, 183 if machine == 62 else 62)  # EM_AARCH64, EM_X86_64
open(sys.argv[2], "wb").write(elf)
PY
    chmod +x "$TMP/foreign"
    sl_alone run --name "$NAME" -- "$TMP/foreign" 2>"$TMP/c7.log"; rc=$?
    grep -q "its interpreter" "$TMP/c7.log" && fail "a binary of another machine was refused: $(cat "$TMP/c7.log")"
    grep -q "could not be started" "$TMP/c7.log" || [ "$rc" = 0 ] ||
        fail "a binary of another machine: exit $rc without a clear error: $(cat "$TMP/c7.log")"
    [ "$(transitions)" != "$before" ] || fail "a binary of another machine never took the lease"
    before=$(transitions)
    grep -q "not found" "$TMP/c.log" || fail "no clear error for a missing COMMAND: $(cat "$TMP/c.log")"
    # Checked before the lease, gone by the time it leads (a deploy removed the
    # old release while its standby waited): execve fails after all; the lease
    # goes back at once, the exit is 127 and the log says why.
    cp /bin/true "$TMP/removed-later"
    "${PSQL[@]}" -c "SET singleton_lock.bind_session = off; SELECT acquired FROM singleton_acquire('$NAME', '1 h', 'keeper')" >/dev/null
    "$SL" run --name "$NAME" -- "$TMP/removed-later" 2>"$TMP/c4.log" &
    late=$!
    wait_for 20 grep -q "standby, held by keeper" "$TMP/c4.log" || fail "the standby never waited: $(cat "$TMP/c4.log")"
    rm "$TMP/removed-later"
    "${PSQL[@]}" -c "SELECT singleton_force_release('$NAME')" >/dev/null
    reap "$late"
    [ "$RC" = 127 ] || fail "exit code $RC for a COMMAND removed while standby, expected 127: $(cat "$TMP/c4.log")"
    grep -q "COMMAND $TMP/removed-later could not be started: No such file or directory; exit status 127" "$TMP/c4.log" ||
        fail "no clear error for a COMMAND removed while standby: $(cat "$TMP/c4.log")"
    [ "$(lease_state)" = free ] || fail "the lease was not released after COMMAND could not start: $(lease_state)"
    before=$(transitions)
    "$SL" run --name "$NAME" --ttl 99999999999h -- true 2>"$TMP/g.log"; rc=$?
    [ "$rc" = 2 ] || fail "exit code $rc for --ttl 99999999999h, expected usage error 2"
    grep -q "too long" "$TMP/g.log" || fail "no clear error for --ttl 99999999999h: $(cat "$TMP/g.log")"
    # A name or holder that is not UTF-8 is a usage error, found before the server is asked.
    bad=$(printf 'bad\377name')
    for args in "run --name $bad -- true" "run --name $NAME --holder $bad -- true" \
                "pause --name $bad --reason r" "resume --name $bad" "status --name $bad" \
                "release --force --name $bad"; do
        # shellcheck disable=SC2086  # (words on purpose: $bad has no space)
        "$SL" $args 2>"$TMP/h.log"; rc=$?
        [ "$rc" = 2 ] || fail "exit code $rc for a name that is not UTF-8 (${args%% *}), expected 2"
        grep -q "must be valid UTF-8" "$TMP/h.log" ||
            fail "no clear error for a name that is not UTF-8 (${args%% *}): $(cat "$TMP/h.log")"
    done
    [ "$(transitions)" = "$before" ] || fail "a run with a bad holder id took the lease"
    # The server's other rules for names and holder ids, checked before connecting too:
    # 1 to 255 characters, not only white space, no control characters.
    long=$(printf 'n%.0s' $(seq 256)); tab=$(printf 'a\tb')
    for bad in "$long" "   " "$tab"; do
        for args in run pause resume status release; do
            case $args in
                run) set -- run --name "$bad" -- true ;;
                pause) set -- pause --name "$bad" --reason r ;;
                release) set -- release --force --name "$bad" ;;
                *) set -- "$args" --name "$bad" ;;
            esac
            "$SL" "$@" 2>"$TMP/i.log"; rc=$?
            [ "$rc" = 2 ] || fail "exit code $rc for the name '$bad' ($1), expected 2: $(cat "$TMP/i.log")"
            grep -q "characters long\|only white space\|control characters" "$TMP/i.log" ||
                fail "no clear error for the name '$bad' ($1): $(cat "$TMP/i.log")"
        done
        "$SL" run --name "$NAME" --holder "$bad" -- true 2>"$TMP/i.log"; rc=$?
        [ "$rc" = 2 ] || fail "exit code $rc for the holder id '$bad', expected 2"
    done
    [ "$(transitions)" = "$before" ] || fail "a run with a bad holder id took the lease"
    # A DSN libpq cannot parse, or whose values it refuses whenever it connects,
    # never connects: a usage error at once, not retried as an outage.
    for dsn in "hots=localhost|invalid connection option \"hots\"" \
               "port=abc|invalid integer value \"abc\" for connection option \"port\"" \
               "sslmode=requre|invalid sslmode value: \"requre\""; do
        for args in "run --name $NAME" "status" "pause --name $NAME --reason r" \
                    "resume --name $NAME" "release --force --name $NAME"; do
            set -- --dsn "${dsn%%|*}"
            [ "${args%% *}" = run ] && set -- "$@" -- touch "$TMP/ran"
            # shellcheck disable=SC2086  # (words on purpose)
            timeout 10 "$SL" $args "$@" 2>"$TMP/k.log"; rc=$?
            [ "$rc" = 2 ] || fail "exit code $rc for the DSN '${dsn%%|*}' (${args%% *}), expected 2"
            grep -qF "invalid connection string: ${dsn#*|}" "$TMP/k.log" ||
                fail "no clear error for the DSN '${dsn%%|*}' (${args%% *}): $(cat "$TMP/k.log")"
        done
    done
    [ ! -e "$TMP/ran" ] || fail "COMMAND ran with a DSN that cannot connect"
    # ...and the longest name they allow is one the server takes (255 characters, 2 bytes each).
    longest="${NAME:0:10}$(printf '\303\274%.0s' $(seq 245))"
    "$SL" run --name "$longest" -- true 2>"$TMP/j.log" || fail "a 255-character name: $(cat "$TMP/j.log")"
    info "exit statuses 7 and 138 (no process of COMMAND's left), 127, 126 (a missing or not executable COMMAND, #! interpreter or ELF loader, checked before the lease; a COMMAND removed while standby, said after), and 2 for an overflowing ttl, for names and holder ids the server would refuse and for a DSN libpq cannot parse; a COMMAND that cannot run never took the lease: ok"
    ;;
admin)
    start a --ttl 5s --holder "admin-test-holder"
    wait_for 20 started a || fail "COMMAND never started"
    out=$("$SL" status --name "$NAME") || fail "status failed"
    echo "$out"
    echo "$out" | grep -q "admin-test-holder" || fail "status does not show the holder"
    echo "$out" | grep -q "held" || fail "status does not show the state"
    "$SL" status >/dev/null || fail "status (all leases) failed"
    [ "$("$SL" --version)" = "singleton-lock $("${PSQL[@]}" -c 'SELECT singleton_lock_version()')" ] ||
        fail "singleton-lock --version ($("$SL" --version)) disagrees with the server's extension"
    "$SL" run --name "$NAME" --ttl 1s --grace 500ms -- true 2>/dev/null; rc=$?
    [ "$rc" = 2 ] || fail "grace = ttl/2 gave $rc, expected usage error 2"
    "$SL" status --dsn "host=/nonexistent port=1" >/dev/null 2>&1; rc=$?
    [ "$rc" = 1 ] || fail "status against no server gave $rc, expected 1"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"; reap "$PID_a"
    ;;
admin_waits)
    # release --force, pause and resume wait behind transactions that asserted
    # the lease: after a second they say who holds them up; a signal then
    # cancels the call in the server (nothing changed, 128+N), where dying
    # would leave its backend queued to act when the transaction ends.
    "${PSQL[@]}" -c "SET singleton_lock.bind_session = off" \
        -c "SELECT acquired FROM singleton_acquire('$NAME', '1 h', 'admin-holder')" >/dev/null ||
        fail "could not take the lease"
    fence() {  # SECONDS: a transaction asserting the lease for that long, in the background
        # (A paused lease has no tenure to assert: there a lock of its row.)
        local hold="SELECT singleton_assert('$NAME', token) FROM singleton_lock_leases WHERE name = '$NAME'"
        [ "$(lease_state)" = paused ] && hold="SELECT 1 FROM singleton_lock_leases WHERE name = '$NAME' FOR UPDATE"
        "${PSQL[@]}" -c "SET application_name = 'fenced-job'" -c "BEGIN" -c "$hold" \
            -c "SELECT pg_sleep($1)" -c "COMMIT" >/dev/null &
        FENCE=$!
        wait_for 10 fence_sleeps || fail "the asserting transaction never got to its sleep"
    }
    fence_sleeps() {  # sets FENCE_PID: the fence's backend, once it sleeps
        FENCE_PID=$("${PSQL[@]}" -c "SELECT pid FROM pg_stat_activity
                     WHERE application_name = 'fenced-job' AND query LIKE 'SELECT pg_sleep%'")
        [ -n "$FENCE_PID" ]
    }
    lease_row() {  # what a cancelled call must not change
        "${PSQL[@]}" -c "SELECT transitions || '/' || token || '/' || paused
                         FROM singleton_lock_leases WHERE name = '$NAME'"
    }
    waits_no_more() {  # BACKEND: no longer running its call
        [ "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'")" = 0 ]
    }
    for call in "release --force" "pause --reason r" "resume"; do
        if [ "$call" = resume ]; then
            "$SL" pause --name "$NAME" --reason r >/dev/null || fail "pause failed"
        fi
        before=$(lease_row)
        fence 30
        for sig in INT TERM; do
            # shellcheck disable=SC2086  # (words on purpose)
            set -- $call
            # (A background job of a script starts with SIGINT ignored, which
            # singleton-lock respects, as nohup's SIGHUP: reset it for the test.)
            /usr/bin/python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
                "$SL" "$1" --name "$NAME" "${@:2}" 2>"$TMP/w.log" >/dev/null &
            pid=$!
            wait_for 10 grep -q "held up by pid $FENCE_PID (fenced-job, active" "$TMP/w.log" ||
                fail "$call: no note of who holds it up: $(cat "$TMP/w.log")"
            backend=$("${PSQL[@]}" -c "SELECT pid FROM pg_stat_activity WHERE $FENCE_PID = ANY (pg_blocking_pids(pid))")
            [ -n "$backend" ] || fail "$call: its backend does not wait for the asserting transaction"
            kill -"$sig" "$pid"; reap "$pid"; rc=$RC
            want=$((128 + $(kill -l "$sig")))
            [ "$rc" = "$want" ] || fail "$call: exit $rc after SIG$sig, expected $want: $(cat "$TMP/w.log")"
            grep -q "stopped by SIG$sig: the server cancelled the call, nothing was changed" "$TMP/w.log" ||
                fail "$call: no word that nothing was changed: $(cat "$TMP/w.log")"
            wait_for 5 waits_no_more "$backend" || fail "$call: its backend still waits after SIG$sig"
        done
        if [ "$call" = "release --force" ]; then  # SIGINT ignored from the start stays so
            "$SL" release --force --name "$NAME" 2>"$TMP/w.log" >/dev/null &
            pid=$!
            wait_for 10 grep -q "held up by pid $FENCE_PID" "$TMP/w.log" || fail "no note (SIGINT ignored)"
            kill -INT "$pid"; sleep 0.3
            alive "$pid" || fail "an ignored SIGINT stopped release --force"
            kill -TERM "$pid"; reap "$pid"
            [ "$RC" = 143 ] || fail "exit $RC after SIGTERM, expected 143"
        fi
        kill "$FENCE" 2>/dev/null; "${PSQL[@]}" -c "SELECT pg_cancel_backend($FENCE_PID)" >/dev/null
        wait "$FENCE" 2>/dev/null
        after=$(lease_row)
        [ "$before" = "$after" ] || fail "$call: cancelled, it changed the lease: $before -> $after"
        info "$call: said who held it up (pid $FENCE_PID), cancelled by SIGINT and SIGTERM (exit 130, 143), changed nothing: ok"
    done
    # Given time, it goes through once the asserting transaction ends.
    fence 2
    out=$("$SL" resume --name "$NAME" 2>"$TMP/w.log") || fail "resume after the fence failed: $out"
    grep -q "held up by pid $FENCE_PID" "$TMP/w.log" || fail "no note while resume waited"
    wait "$FENCE"
    info "resume waited for the asserting transaction, said so, then: $out"
    ;;
connection_limit)
    # A role whose CONNECTION LIMIT counts one connection per instance: the
    # wrapper holds two (its second session keeps the lease bound while
    # COMMAND runs). It says so, keeps trying, and leads once the limit allows
    # both. Before: only the server's "too many connections for role".
    role="it_limit_$$"
    PGOPTIONS= "${PSQL[@]}" -c "CREATE ROLE $role LOGIN CONNECTION LIMIT 1" \
        -c "GRANT EXECUTE ON FUNCTION singleton_acquire(text, interval, text, interval, integer),
            singleton_heartbeat(text, bigint, interval), singleton_release(text, bigint),
            singleton_assert(text, bigint), singleton_bind(text, bigint),
            singleton_watch(text, bigint, interval) TO $role" >/dev/null ||
        fail "cannot create role $role"
    start a --ttl 5s --dsn "user=$role"
    wait_for 20 logged a "too many connections" || fail "the limit was not hit: $(cat "$TMP/a.log")"
    logged a "each instance holds two connections" || fail "no hint: $(cat "$TMP/a.log")"
    started a && fail "COMMAND started without its second session"
    info "$(grep -o 'too many connections.*' "$TMP/a.log" | head -n1)"
    PGOPTIONS= "${PSQL[@]}" -c "ALTER ROLE $role CONNECTION LIMIT 2" >/dev/null
    wait_for 20 started a || fail "no leader once the limit allowed both connections"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"; reap "$PID_a"
    [ "$RC" = 0 ] || fail "a exited $RC"
    PGOPTIONS= "${PSQL[@]}" -c "DROP OWNED BY $role" -c "DROP ROLE $role" >/dev/null ||
        fail "cannot drop role $role"
    ;;
silent_dns)
    # A DNS server that receives the queries and never answers (the fault, checked:
    # it logs them), in a resolv.conf, nsswitch.conf and hosts file of the case's own:
    # singleton-lock runs in a mount namespace of its own (unshare -m) with a copy of
    # /etc over /etc. libpq looks names up synchronously; the client now does it on a
    # thread first.
    [ "$(id -u)" = 0 ] || { info "SKIP: needs root (to mount an /etc of its own)"; exit 77; }
    unshare -m true 2>"$TMP/unshare.err" || {
        info "SKIP: cannot make a private mount namespace here: $(cat "$TMP/unshare.err")" \
             "(needs CAP_SYS_ADMIN, and / a mount point: in a chroot, bind-mount its root onto itself)"
        exit 77; }
    cat >"$TMP/dns.py" <<'DNS'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.9", 53))
log = open(sys.argv[1], "ab", 0)
open(sys.argv[1] + ".ready", "w").close()
while True:
    s.recvfrom(2048)
    log.write(b"query\n")
DNS
    python3 "$TMP/dns.py" "$TMP/queries" 2>"$TMP/dns.log" & PIDS+=($!)
    wait_for 10 test -e "$TMP/queries.ready" || fail "the silent DNS server could not bind 127.0.0.9:53"
    printf 'hosts: files dns\n' >"$TMP/nsswitch.conf"
    printf '127.0.0.1 localhost\n127.0.0.1 db-ok.test\n' >"$TMP/hosts"
    printf 'multi on\n' >"$TMP/host.conf"  # (every address of a name in the hosts file, step 6)
    our_etc() {  # our_etc DIR RESOLV_OPTIONS: a copy of /etc with the case's resolver files
        cp -a /etc "$1" 2>/dev/null; [ -d "$1" ] || fail "cannot copy /etc"
        # (removed first: in the copy they may be symbolic links to the machine's own files)
        rm -f "$1/resolv.conf" "$1/nsswitch.conf" "$1/hosts" "$1/host.conf"
        printf 'nameserver %s\noptions %s\n' "${NAMESERVER:-127.0.0.9}" "$2" >"$1/resolv.conf"
        cp "$TMP/nsswitch.conf" "$TMP/hosts" "$TMP/host.conf" "$1/" || fail "cannot write $1"
    }
    isolated() {  # isolated LABEL RESOLV_OPTIONS DSN [ARGS]: singleton-lock run with our resolver files
        our_etc "$TMP/$1.etc" "$2"
        unshare -m bash -c 'mount --bind "$2/$1.etc" /etc || exit 1
                            exec "$3" run --name "$4" --dsn "$5" "${@:6}" -- "$2/worker.sh" "$2" "$1"' \
            isolated "$1" "$TMP" "$SL" "$NAME" "$3" "${@:4}" 2>"$TMP/$1.log" &
        PIDS+=($!); eval "PID_$1=$!"
    }
    queries() { wc -l <"$TMP/queries"; }
    # 1. SIGTERM while its name is being looked up: exit at once, COMMAND never ran.
    #    (Before: 9.4 s, the resolver's timeouts, by hand.)
    isolated a "timeout:5 attempts:2" "host=db.test"
    wait_for 10 bash -c "[ \$(wc -l <'$TMP/queries') -ge 1 ]" || fail "no query reached the silent DNS server"
    sleep 0.3
    t0=$(now_ns)
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"
    wait_for 3 dead "$PID_a" || fail "a still runs 3 s after SIGTERM while its name lookup hangs"
    reap "$PID_a"; rc=$RC
    [ "$rc" = 143 ] || fail "exit $rc after SIGTERM while looking up, expected 143"
    started a && fail "a ran COMMAND"
    info "SIGTERM while the DNS server is silent: exit 143 after $(ms_since "$t0") ms"
    # 2. A lookup that ran out fails the attempt in libpq's words, and libpq is not
    #    made to ask the silent server again: one lookup (2 queries, A and AAAA) per
    #    attempt (before: 2 lookups). It retries, and still exits at once on SIGTERM.
    q0=$(queries)
    isolated b "timeout:1 attempts:1" "host=db.test" --health-addr 127.0.0.1:0
    wait_for 10 logged b "health endpoint on" || fail "b has no health endpoint"
    pb=$(port_of b)
    failed_attempts() { metric "$pb" singleton_lock_database_errors_total; }
    attempts_failed() { local n; n=$(failed_attempts); [ "${n:-0}" -ge "$1" ]; }
    wait_for 20 attempts_failed 3 || fail "b did not fail 3 attempts: '$(failed_attempts)'"
    q=$(( $(queries) - q0 )); n=$(failed_attempts)
    logged b 'could not translate host name "db.test" to address' || fail "b did not say why in libpq's words"
    [ "$q" -le $(( 2 * (n + 1) )) ] ||
        fail "$q queries for $n failed attempts: libpq asked the silent server again (expected <= $(( 2 * (n + 1) )))"
    t0=$(now_ns)
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"
    wait_for 3 dead "$PID_b" || fail "b still runs 3 s after SIGTERM"
    reap "$PID_b"
    info "failed lookups: reported in libpq's words, $q queries for $n failed attempts, exit $(ms_since "$t0") ms after SIGTERM"
    # 3. A name that resolves (from the hosts file) connects and leads.
    isolated c "timeout:1 attempts:1" "host=db-ok.test"
    wait_for 20 started c || fail "c (host=db-ok.test) never led: $(cat "$TMP/c.log")"
    kill -TERM "$PID_c" || fail "could not send SIGTERM to c"; reap "$PID_c"
    [ "$RC" = 0 ] || [ "$RC" = 143 ] || fail "c exited $RC"
    info "a name that resolves: connected and led"
    # 4. A DNS server that answers, slowly (700 ms): each connect asks it once, and
    #    libpq is given the addresses found. Before: libpq asked again, blocking the
    #    wrapper's loop (signals, heartbeats) as long again: 8 queries to lead, not 4.
    cat >"$TMP/slow_dns.py" <<'DNS'
import socket, struct, sys, threading, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.10", 53))
log = open(sys.argv[1], "ab", 0)
open(sys.argv[1] + ".ready", "w").close()
def answer(query, client):
    time.sleep(0.7)
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    qtype = struct.unpack(">H", query[end + 1:end + 3])[0]
    # A: 127.0.0.1 (a pointer to the question's name); AAAA and others: no records
    record = (b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
              if qtype == 1 else b"")
    header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if record else 0, 0, 0)
    s.sendto(header + query[12:end + 5] + record, client)
while True:
    query, client = s.recvfrom(2048)
    log.write(b"query\n")
    threading.Thread(target=answer, args=(query, client), daemon=True).start()
DNS
    python3 "$TMP/slow_dns.py" "$TMP/slow_queries" 2>"$TMP/slow_dns.log" & PIDS+=($!)
    wait_for 10 test -e "$TMP/slow_queries.ready" || fail "the slow DNS server could not bind 127.0.0.10:53"
    t0=$(now_ns)
    NAMESERVER=127.0.0.10 isolated d "timeout:5 attempts:1" "host=db-slow.test"
    wait_for 30 started d || fail "d (host=db-slow.test, slow DNS) never led: $(cat "$TMP/d.log")"
    led_ms=$(ms_since "$t0")
    q=$(wc -l <"$TMP/slow_queries")
    [ "$q" -ge 2 ] || fail "only $q queries reached the slow DNS server: the fault was not applied"
    # (two sessions, each looked up once: an A and an AAAA query each)
    [ "$q" -le 4 ] || fail "$q queries to lead with two sessions: libpq asked the slow server again (expected 4)"
    kill -TERM "$PID_d" || fail "could not send SIGTERM to d"; reap "$PID_d"
    [ "$RC" = 0 ] || fail "d exited $RC"
    info "a DNS server answering in 700 ms: led after $led_ms ms with $q queries (2 sessions, one lookup each)"
    # 5. A name not found is left out of the attempt while another host remains;
    #    when the rest fail too, the error still names it.
    isolated e "timeout:1 attempts:1" "host=gone.test,db-ok.test port=1"
    wait_for 20 logged e 'could not translate host name "gone.test" to address' ||
        fail "the name left out is not named: $(cat "$TMP/e.log")"
    logged e '"db-ok.test" (127.0.0.1), port 1 failed' || fail "libpq's own error is lost: $(cat "$TMP/e.log")"
    kill -TERM "$PID_e" || fail "could not send SIGTERM to e"; reap "$PID_e"
    info "a name not found among others: $(grep -m1 -o 'database unavailable.*' "$TMP/e.log")"
    # 6. A name with two addresses, the first a member gone from the network (the
    #    connection is accepted, nothing ever comes back), the second the server:
    #    after its connect time the silent address is set aside and the next one
    #    tried. Before: the whole name was set aside, and with one host in the DSN
    #    every attempt began again at the silent address: never led.
    # (the silent member: connections accepted by the kernel, never read)
    python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.2", int(sys.argv[1]))); s.listen(64); open(sys.argv[2], "w").close()
time.sleep(3600)' "${PGPORT:-5432}" "$TMP/silent.ready" 2>"$TMP/silent.log" & PIDS+=($!)
    /usr/bin/python3 "$(dirname "$0")/partition_proxy.py" "$PGHOST/.s.PGSQL.${PGPORT:-5432}" "$TMP/two" \
        "127.0.0.3:${PGPORT:-5432}" 2>"$TMP/two.log" & PIDS+=($!)
    wait_for 10 test -e "$TMP/silent.ready" || fail "cannot listen on 127.0.0.2: $(cat "$TMP/silent.log")"
    wait_for 10 grep -q ready "$TMP/two" 2>/dev/null || fail "cannot listen on 127.0.0.3: $(cat "$TMP/two.log")"
    printf '127.0.0.2 db-two.test\n127.0.0.3 db-two.test\n' >>"$TMP/hosts"
    our_etc "$TMP/order.etc" "timeout:1 attempts:1"
    order=$(unshare -m bash -c 'mount --bind "$1" /etc && getent ahosts db-two.test' _ "$TMP/order.etc" |
            awk '$2 == "STREAM" { printf "%s ", $1 }')
    [ "$order" = "127.0.0.2 127.0.0.3 " ] ||
        fail "the resolver orders db-two.test as '$order', not silent address first: the fault would not apply"
    t0=$(now_ns)
    isolated f "timeout:1 attempts:1" "host=db-two.test"
    wait_for 30 started f || fail "f (host=db-two.test, first address silent) never led: $(cat "$TMP/f.log")"
    led_ms=$(ms_since "$t0")
    kill -TERM "$PID_f" || fail "could not send SIGTERM to f"; reap "$PID_f"
    [ "$RC" = 0 ] || fail "f exited $RC"
    info "a name whose first address never answers: led through its second after $led_ms ms"
    ;;
notify_spam)
    # Any role may NOTIFY the channel singleton_lock. A loop of NOTIFYs naming the
    # lease, from a role granted nothing, made the leader heartbeat once per
    # notification (11,899 in 5 s, by hand); now at most one per 100 ms. A real
    # change during the spam (a force release) still stops COMMAND at once.
    role="it_spam_$$"
    PGOPTIONS= "${PSQL[@]}" -c "CREATE ROLE $role LOGIN" || fail "cannot create role $role"
    start a --ttl 30s --health-addr 127.0.0.1:0  # (its own heartbeats: one per 10 s)
    wait_for 20 started a || fail "COMMAND never started"
    pa=$(port_of a)
    beats() { metric "$pa" singleton_lock_heartbeat_duration_seconds_count; }
    yes "NOTIFY singleton_lock, '$NAME';" | PGOPTIONS= psql -X -q -U "$role" >/dev/null 2>"$TMP/spam.log" &
    spammer=$!; PIDS+=("$spammer")
    sleep 0.5
    t0=$(now_ns); b0=$(beats); sleep 3; b1=$(beats); window_ms=$(ms_since "$t0")
    n=$(( b1 - b0 ))
    # (at least a few: the fault applied, the notifications reach the leader)
    [ "$n" -ge 5 ] || fail "$n heartbeats in 3 s of NOTIFY spam: did the spam reach the leader? $(cat "$TMP/spam.log")"
    # (one per 100 ms, one of its own, and one in flight at each end of the window)
    [ "$n" -le $(( window_ms / 100 + 3 )) ] ||
        fail "$n heartbeats in $window_ms ms of NOTIFY spam (at most one per 100 ms expected)"
    child=$(cat "$TMP/a.child")
    out=$("$SL" release --name "$NAME" --force) || fail "release --force failed: $out"
    wait_for 10 dead "$child" || fail "COMMAND still running 10 s after a force release during the spam"
    reap "$PID_a"; [ "$RC" = 3 ] || fail "exit $RC after the force release, expected 3"
    kill "$spammer" 2>/dev/null; pkill -u "$(id -u)" -f "psql -X -q -U $role" 2>/dev/null
    PGOPTIONS= "${PSQL[@]}" -c "DROP ROLE $role" >/dev/null 2>&1
    info "NOTIFY spam from a role granted nothing: $n heartbeats in $window_ms ms; a force release still stopped COMMAND"
    ;;
hung_backend)
    # The leader's main session hangs (its backend is SIGSTOPped): the heartbeat
    # never returns. The wrapper must stop (SIGKILL, since COMMAND ignores
    # SIGTERM) its COMMAND before the lease expires, without waiting for the
    # database, then release the lease over its second session.
    WORKER_MODE=ignore_term leader_and_standby --ttl 2s --grace 300ms
    # The main session's backend (the one that heartbeats): the first the log names.
    backend=$(backend_of a 1)
    [ -n "$backend" ] || fail "no backend pid in the leader's log"
    trap 'kill -CONT $backend 2>/dev/null; cleanup' EXIT
    grep -q postgres "/proc/$backend/cmdline" 2>/dev/null ||
        { echo "SKIP: the server's backend $backend is not a local process"; exit 77; }
    kill -0 "$backend" 2>/dev/null || { echo "SKIP: cannot signal the server's backend $backend"; exit 77; }
    # Stopped inside a heartbeat, the backend would keep the lease row locked:
    # nobody could take the lease until it resumed (client/README.md, limits).
    # This case is about a backend hung between calls, so it is stopped when idle.
    stop_when_idle() {
        local try state
        for try in $(seq 40); do
            t0=$(now_ns)
            kill -STOP "$backend" || return 1
            wait_for 5 stopped "$backend" || return 1
            state=$(PGOPTIONS='-c statement_timeout=2s' "${PSQL[@]}" \
                -c "SELECT state FROM pg_stat_activity WHERE pid = $backend") && [ "$state" = idle ] &&
                return 0
            info "backend $backend stopped while ${state:-unreadable}: resumed, stopping again"
            kill -CONT "$backend"; sleep 0.1
        done
        return 1
    }
    stop_when_idle || fail "could not stop backend $backend while idle"
    reap "$PID_a"; rc=$RC
    info "leader exited $(ms_since "$t0") ms after its backend hung (ttl 2s, grace 300ms)"
    [ "$rc" = 3 ] || fail "leader exit code $rc, expected 3 (lease lost)"
    logged a "no heartbeat confirmed in time\|heartbeat not confirmed in time" || fail "no deadline log line"
    wait_for 20 started b || { kill -CONT "$backend"; fail "the standby never took over"; }
    info "standby took over $(( ($(cat "$TMP/b.started") - t0) / 1000000 )) ms after the hang (ttl 2s)"
    logged a "COMMAND was killed" || fail "no kill log line"
    no_overlap b
    info "no process of the old COMMAND ran when the new one started: ok"
    kill -CONT "$backend" || fail "could not resume backend $backend"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; kill -KILL "$(cat "$TMP/b.child")" 2>/dev/null; reap "$PID_b"
    ;;
server_frozen)
    # The whole database server hangs longer than the ttl (every process of it
    # SIGSTOPped: a frozen VM, storage that stopped answering). Nobody hears
    # from it and nothing is closed. The leader must stop COMMAND by its own
    # deadline (SIGKILL after --grace: COMMAND ignores SIGTERM) while the
    # server is still frozen; once it resumes exactly one leads: the standby,
    # with a larger token, after every process of the old COMMAND is gone; the
    # old leader exits 3. Needs a private server (SL_IT_RESTART set: nobody
    # else uses it) that this user may signal.
    [ -n "${SL_IT_RESTART:-}" ] || { echo "SKIP: set SL_IT_RESTART (a private server this case may freeze)"; exit 77; }
    datadir=$("${PSQL[@]}" -c "SHOW data_directory") || fail "server not reachable"
    postmaster=$(head -n1 "$datadir/postmaster.pid" 2>/dev/null) && kill -0 "$postmaster" 2>/dev/null ||
        { echo "SKIP: cannot signal the server's postmaster (${postmaster:-no postmaster.pid})"; exit 77; }
    WORKER_MODE=ignore_term leader_and_standby --ttl 2s --grace 300ms
    child=$(cat "$TMP/a.child")
    server=""
    trap 'kill -CONT $server $postmaster 2>/dev/null; cleanup' EXIT
    t0=$(now_ns)
    kill -STOP "$postmaster" || fail "could not stop the postmaster"
    # (After the postmaster: it forks no child that would escape.)
    server=$(children_of "$postmaster" | tr '\n' ' ')
    # shellcheck disable=SC2086  # (a list of pids)
    kill -STOP $server || fail "could not stop the server's processes"
    for p in $postmaster $server; do wait_for 5 stopped "$p" || fail "server process $p did not stop"; done
    info "froze the server: the postmaster and $(echo $server | wc -w) processes stopped"
    wait_for 10 dead "$child" || fail "the leader's COMMAND still ran 10 s into the freeze (ttl 2s)"
    info "the leader's COMMAND was stopped $(ms_since "$t0") ms into the freeze (ttl 2s, grace 300ms)"
    logged a "no heartbeat confirmed in time\|heartbeat not confirmed in time" || fail "no deadline log line"
    for p in $postmaster $server; do stopped "$p" || fail "server process $p ran during the freeze"; done
    started b && fail "b led while the server was frozen"
    while [ "$(ms_since "$t0")" -lt 4000 ]; do sleep 0.1; done  # 2 x ttl
    # shellcheck disable=SC2086
    kill -CONT $server "$postmaster" || fail "could not resume the server"
    t1=$(now_ns)
    wait_for 30 started b || fail "the standby never led after the server resumed"
    no_overlap b
    [ "$(token_of b)" -gt "$(token_of a)" ] || fail "token $(token_of b) after $(token_of a)"
    info "the standby led $(( ($(cat "$TMP/b.started") - t1) / 1000000 )) ms after the server resumed; no overlap; token $(token_of a) -> $(token_of b)"
    reap "$PID_a"; [ "$RC" = 3 ] || fail "the old leader exited $RC, expected 3 (lease lost)"
    [ "$(lease_state)" = held ] || fail "the lease is $(lease_state) with b leading"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; kill -KILL "$(cat "$TMP/b.child")" 2>/dev/null; reap "$PID_b"
    ;;
partition)
    # A dead network path between the leader and the server (a partition, a
    # firewall dropping packets, a pulled cable): nothing arrives either way and
    # nothing is closed, so neither side hears of it. The leader's sessions go
    # through partition_proxy.py, which cuts the path on SIGUSR1. The leader must
    # stop its COMMAND (SIGKILL: it ignores SIGTERM) before the lease expires
    # without a word from the server, and exit 3; the server keeps the lease
    # until its expiry (the backends see nothing either), then the standby,
    # connected directly, takes over; no process of the old COMMAND runs then.
    # A second standby, c, behind the same proxy, neither takes over while cut
    # off nor hangs: it reconnects once the path heals, and exits on SIGTERM.
    [[ "${PGHOST:-}" == /* ]] || { echo "SKIP: the proxy needs the server's Unix socket (PGHOST=$PGHOST)"; exit 77; }
    /usr/bin/python3 "$(dirname "$0")/partition_proxy.py" "$PGHOST/.s.PGSQL.${PGPORT:-5432}" "$TMP/proxy" &
    proxy=$!; PIDS+=("$proxy")
    wait_for 10 test -s "$TMP/proxy.port" || fail "the proxy did not start"
    WORKER_MODE=ignore_term start a --ttl 3s --grace 300ms --dsn "host=127.0.0.1 port=$(cat "$TMP/proxy.port")"
    wait_for 20 started a || fail "a never started COMMAND through the proxy"
    WORKER_MODE=ignore_term start b --ttl 3s --grace 300ms
    wait_for 20 logged b "standby, held by" || fail "no standby"
    WORKER_MODE=ignore_term start c --ttl 3s --grace 300ms --dsn "host=127.0.0.1 port=$(cat "$TMP/proxy.port")"
    wait_for 20 logged c "standby, held by" || fail "no standby c"
    child=$(cat "$TMP/a.child")
    token_a=$(token_of a)
    # A blip (cut for 600 ms, then healed) is ridden through: no step-down.
    kill -USR1 "$proxy" || fail "could not signal the proxy"
    wait_for 5 grep -qx "cut 4" "$TMP/proxy" || fail "the path was not cut for a's and c's two sessions each: $(cat "$TMP/proxy")"
    sleep 0.6
    kill -USR2 "$proxy" || fail "could not heal the path"
    wait_for 5 grep -qx "healed 4" "$TMP/proxy" || fail "the path was not healed: $(cat "$TMP/proxy")"
    sleep 3  # (a ttl)
    alive "$child" && ! logged a LOST || fail "a stepped down after a 600 ms blip: $(grep LOST "$TMP/a.log")"
    started b && fail "b took over after a 600 ms blip of a's path"
    info "a 600 ms cut of the leader's path is ridden through (ttl 3s): ok"
    t0=$(now_ns)
    kill -USR1 "$proxy" || fail "could not signal the proxy"
    # (the fault applied: both of a's sessions cut)
    wait_for 5 grep -qx "cut 4" "$TMP/proxy" || fail "the path was not cut for a's and c's two sessions each: $(cat "$TMP/proxy")"
    wait_for 20 dead "$child" || fail "a's COMMAND survived the partition"
    killed_ms=$(ms_since "$t0")
    expires=$("${PSQL[@]}" -c "SELECT (extract(epoch FROM expires_at) * 1000)::bigint FROM singleton_leases WHERE name = '$NAME' AND token = $token_a")
    [ -n "$expires" ] || fail "the partitioned lease is no longer a's (token $token_a) when its COMMAND is gone: $(lease_state)"
    # When a reaped it (its log's time; the same clock as the server's here)
    wait_for 5 logged a "COMMAND was killed by signal 9" || fail "a did not log its COMMAND's SIGKILL"
    reaped=$(sed -n 's/^\([0-9T:.-]*\)Z .*COMMAND was killed by signal 9.*/\1/p' "$TMP/a.log" | head -n1)
    reaped_at=$(date -u -d "$reaped" +%s%3N) || fail "cannot read the time of '$reaped'"
    [ "$reaped_at" -lt "$expires" ] || fail "a's COMMAND was reaped $((reaped_at - expires)) ms after the lease expired"
    info "a's COMMAND killed ${killed_ms} ms into the partition, reaped $((expires - reaped_at)) ms before the lease's expiry (ttl 3s): ok"
    wait_for 20 dead "$PID_a" || fail "a still runs 20 s into the partition"
    reap "$PID_a"
    [ "$RC" = 3 ] || fail "a exited $RC, expected 3 (lease lost)"
    logged a "no heartbeat confirmed in time\|heartbeat not confirmed in time" || fail "a did not say why it stepped down"
    wait_for 20 started b || fail "the standby never took over"
    no_overlap b
    [ "$(token_of b)" -gt "$token_a" ] || fail "b's token $(token_of b) is not above a's $token_a"
    info "b took over $(( ($(cat "$TMP/b.started") - t0) / 1000000 )) ms into the partition (ttl 3s); a exited 3; no overlap: ok"
    started c && fail "c, cut off, took over"
    logged c "database unavailable" || fail "c did not report its dead path"
    kill -USR2 "$proxy" || fail "could not heal the path"
    holder_b=$(cut -d' ' -f3 <"$TMP/b.env")
    wait_for 20 logged c "standby, held by $holder_b" || fail "c did not reconnect once the path healed"
    info "c, cut off too, reported it, did not take over, and reconnected as b's standby once healed: ok"
    t0=$(now_ns)
    kill -TERM "$PID_c" || fail "could not send SIGTERM to c"
    wait_for 10 dead "$PID_c" || fail "c still runs 10 s after SIGTERM"
    reap "$PID_c"
    [ "$RC" = 143 ] || fail "c exited $RC after SIGTERM, expected 143"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; kill -KILL "$(cat "$TMP/b.child")" 2>/dev/null; reap "$PID_b"
    ;;
cancel_storm)
    # An operator's script that cancels long-running queries (pg_cancel_backend).
    # A cancel is not a loss. (1) Every statement of the standby's sessions and of
    # the leader's second session (its watch) is cancelled as soon as it is seen
    # running, for 3 s: b keeps waiting, a keeps leading. (2) A burst on the
    # leader's main session (its heartbeats), from its first cancel for 200 ms:
    # the heartbeat is retried and a keeps leading. (A storm on the heartbeats
    # for longer than the margin before the deadline must cost the lease: no
    # renewal can succeed then.) Neither exits or starts COMMAND; the handover
    # afterwards is as usual.
    start a --ttl 4s
    wait_for 20 started a || fail "a never started COMMAND"
    PGAPPNAME=it_storm_b start b --ttl 4s
    wait_for 20 logged b "standby, held by" || fail "no standby"
    main_a=$(backend_of a 1); second_a=$(backend_of a 2)
    [ -n "$main_a" ] && [ -n "$second_a" ] || fail "no backend pids in a's log"
    # storm SECONDS BURST_MS PAUSE WHICH: cancels each statement of WHICH (a WHERE
    # clause on pg_stat_activity) seen running, for SECONDS, or for BURST_MS after
    # the first cancel, looking again every PAUSE seconds (0: a busy loop, which
    # a heartbeat of a millisecond cannot slip through); prints the cancels per
    # backend ("pid count").
    storm() {
        "${PSQL[@]}" -F' ' <<SQL
CREATE TEMP TABLE cancelled(pid int, n int);
DO \$\$
DECLARE t0 timestamptz := clock_timestamp(); first timestamptz;
BEGIN
  WHILE clock_timestamp() < t0 + interval '$1 s'
        AND (first IS NULL OR clock_timestamp() < first + interval '$2 ms') LOOP
    PERFORM pg_stat_clear_snapshot();  -- (else the transaction sees its first snapshot)
    INSERT INTO cancelled
      SELECT pid,  -- (CASE: no cancel is tried before its row is chosen)
             CASE WHEN state = 'active' AND pid <> pg_backend_pid() THEN pg_cancel_backend(pid)::int END
      FROM pg_stat_activity WHERE $4;
    IF first IS NULL AND EXISTS (SELECT FROM cancelled WHERE n > 0) THEN first := clock_timestamp(); END IF;
    PERFORM pg_sleep($3);
  END LOOP;
END \$\$;
SELECT pid, coalesce(sum(n), 0) FROM cancelled GROUP BY pid ORDER BY pid;
SQL
    }
    cancels() { awk -v pid="$2" '$1 == pid { n += $2 } END { print n + 0 }' <<<"$1"; }
    counts=$(storm 3 999999 0.001 "application_name = 'it_storm_b' OR pid = $second_a") || fail "the storm failed"
    b_cancels=$(awk -v a="$second_a" '$1 != a { n += $2 } END { print n + 0 }' <<<"$counts")
    a_cancels=$(cancels "$counts" "$second_a")
    info "3 s storm: $b_cancels statements of b cancelled, $a_cancels of a's second session"
    [ "$b_cancels" -gt 0 ] || fail "no statement of b was cancelled (the fault was not applied)"
    [ "$a_cancels" -gt 0 ] || fail "no statement of a's second session was cancelled"
    # (up to 15 s to catch the first: a heartbeat every ttl/3 is active for about
    # a millisecond, and on a loaded machine 5 s once caught none)
    counts=$(storm 15 200 0 "pid = $main_a") || fail "the burst failed"
    a_cancels=$(cancels "$counts" "$main_a")
    info "burst on a's heartbeats: $a_cancels cancelled"
    [ "$a_cancels" -gt 0 ] || fail "no heartbeat of a was cancelled (the fault was not applied)"
    sleep 4  # (a ttl: a renewal must have succeeded since)
    alive "$(cat "$TMP/a.child")" && ! logged a LOST || fail "a lost its lease to cancels: $(grep LOST "$TMP/a.log")"
    alive "$PID_b" && ! started b || fail "b exited or started COMMAND during the storm"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"
    wait_for 20 started b || fail "b did not take over after the storm"
    no_overlap b
    reap "$PID_a"
    [ "$RC" = 0 ] || fail "a exited $RC after SIGTERM, expected its COMMAND's 0"
    info "a kept leading and b kept waiting through the cancels; then the handover: ok"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; reap "$PID_b"
    ;;
wrapper_stopped)
    # singleton-lock itself hangs (SIGSTOP) while its COMMAND (ignoring SIGTERM)
    # keeps running: the supervising process's watchdog kills the COMMAND before
    # the lease expires; the standby takes over after the TTL, and its COMMAND
    # finds no process of the old one running.
    WORKER_MODE=ignore_term leader_and_standby --ttl 2s --grace 300ms
    child=$(cat "$TMP/a.child")
    trap 'kill -CONT $PID_a 2>/dev/null; cleanup' EXIT
    t0=$(now_ns)
    kill -STOP "$PID_a" || fail "could not stop a"
    wait_for 5 stopped "$PID_a" || fail "a did not stop"
    wait_for 20 dead "$child" || fail "COMMAND survived its hung singleton-lock"
    killed=$(now_ns)
    info "COMMAND killed by the watchdog $(( (killed - t0) / 1000000 )) ms after singleton-lock hung (ttl 2s, grace 300ms)"
    wait_for 20 started b || fail "the standby never took over"
    no_overlap b
    info "standby took over $(( ($(cat "$TMP/b.started") - t0) / 1000000 )) ms after the hang; no overlap: ok"
    kill -CONT "$PID_a" || fail "could not resume a"
    reap "$PID_a"; rc=$RC
    [ "$rc" = 3 ] || fail "the resumed ex-leader exited $rc, expected 3"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; kill -KILL "$(cat "$TMP/b.child")" 2>/dev/null; reap "$PID_b"
    ;;
db_restart)
    # Needs a server this test may restart: SL_IT_RESTART="test/pgserver.sh restart fast"
    # (with SL_PGPORT of a private server). The leader loses its lease (its session
    # ends), the standby retries through the outage and takes over.
    [ -n "${SL_IT_RESTART:-}" ] || { echo "SKIP: set SL_IT_RESTART to a command restarting the server"; exit 77; }
    leader_and_standby --ttl 3s
    child=$(cat "$TMP/a.child")
    before=$("${PSQL[@]}" -c 'SELECT pg_postmaster_start_time()') || fail "server not reachable"
    t0=$(now_ns)
    $SL_IT_RESTART >/dev/null 2>&1 || fail "restart command failed"
    [ "$("${PSQL[@]}" -c 'SELECT pg_postmaster_start_time()')" != "$before" ] || fail "the server did not restart"
    info "server restarted in $(ms_since "$t0") ms"
    reap "$PID_a"; rc=$RC
    [ "$rc" = 3 ] || fail "leader exit code $rc after the restart, expected 3"
    wait_for 10 dead "$child" || fail "old COMMAND still alive"
    wait_for 30 started b || fail "the standby did not take over after the restart"
    no_overlap b
    info "standby took over $(( ($(cat "$TMP/b.started") - t0) / 1000000 )) ms after the restart began"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; reap "$PID_b"
    ;;
heartbeat_memory)
    # A leader heartbeats for months and a standby waits as long: neither may
    # grow. With a 500 ms ttl (a heartbeat every ~170 ms) both run 50 s; the
    # anonymous memory (RssAnon) of each and of its supervising process is
    # read after 5 s and after 50 s and may grow by at most 2 pages in each
    # (a leak of 32 bytes per heartbeat would show). (A 250 ms ttl lost its
    # lease on a CI host with two other phases building beside it.) Under the
    # sanitizers, whose quarantine keeps freed memory resident, the growth is
    # not judged: LeakSanitizer judges at exit (the exit status), which a few
    # seconds of heartbeats show as well as 50.
    sanitized=0 span=45
    grep -qa __asan_init "$SL" && { sanitized=1 span=3; }
    start a --ttl 500ms
    wait_for 20 started a || fail "a never started COMMAND"
    start b --ttl 500ms
    wait_for 20 logged b "standby, held by" || fail "b never waited as a standby"
    anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }
    counts() {  # kB: a, a's supervising process, b, b's
        local sa sb; sa=$(supervisor_of "$PID_a") && sb=$(supervisor_of "$PID_b") || return 1
        echo "$(anon "$PID_a") $(anon "$sa") $(anon "$PID_b") $(anon "$sb")"
    }
    not_lost() { ! logged a LOST || fail "a lost its lease (the host too busy for a 500 ms ttl?): $(grep LOST "$TMP/a.log")"; }
    sleep 3
    before=$(counts) || { not_lost; fail "no supervising process to measure"; }
    sleep "$span"
    after=$(counts) || { not_lost; fail "no supervising process to measure after $((span + 5)) s"; }
    lasted=$("${PSQL[@]}" -c "SELECT extract(epoch FROM renewed_at - acquired_at)::int
                                FROM singleton_lock_leases WHERE name = '$NAME'")
    [ "${lasted:-0}" -ge "$span" ] ||
        fail "the tenure lasted ${lasted:-?} s, expected one 500 ms tenure renewed for $((span + 3)) s"
    started b && fail "the standby led"
    info "RssAnon (kB) of a, its supervisor, b, its supervisor after 5 s: $before; after $((span + 5)) s: $after (one tenure renewed for $lasted s, ~$((lasted * 6)) heartbeats)"
    if [ "$sanitized" = 1 ]; then
        info "(built with the sanitizers: growth not judged, LeakSanitizer judges at exit)"
    else
        read -r -a b4 <<<"$before"; read -r -a af <<<"$after"
        for i in 0 1 2 3; do
            [ $((af[i] - b4[i])) -le 8 ] || fail "process $i grew by $((af[i] - b4[i])) kB in $span s: $before -> $after"
        done
    fi
    kill -TERM "$PID_b"; reap "$PID_b"
    [ "$RC" = 143 ] || fail "the standby exited $RC after SIGTERM, expected 143"
    kill -TERM "$PID_a"; reap "$PID_a"
    [ "$RC" = 0 ] || fail "a exited $RC after SIGTERM, expected its COMMAND's 0: $(tail -3 "$TMP/a.log")"
    ;;
restart_cycles)
    # A standby waits through database restarts, fast and immediate (a crash
    # and its recovery), and keeps its descriptors and processes: a lease held
    # unbound by another holder for an hour outlives each restart, so the
    # standby reconnects and waits again every round. Counted after round 2
    # and round 8; then the lease is freed and the standby leads at once.
    [ -n "${SL_IT_RESTART:-}" ] || { echo "SKIP: set SL_IT_RESTART to a command restarting the server"; exit 77; }
    "${PSQL[@]}" -c "SET singleton_lock.bind_session = off; SELECT acquired FROM singleton_acquire('$NAME', '1 h', 'keeper')" >/dev/null
    start b --ttl 5s
    wait_for 20 logged b "standby, held by keeper" || fail "b never waited as a standby"
    waiting() { [ "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = 'singleton-lock' AND wait_event_type = 'Extension'")" = 1 ]; }
    before=""
    for round in $(seq 1 8); do
        mode=fast restart=$SL_IT_RESTART
        [ $((round % 2)) = 1 ] && { mode=immediate restart=${SL_IT_RESTART/%fast/immediate}; }
        was=$("${PSQL[@]}" -c 'SELECT pg_postmaster_start_time()') || fail "round $round: server not reachable"
        $restart >/dev/null 2>&1 || fail "round $round: the $mode restart command failed"
        [ "$("${PSQL[@]}" -c 'SELECT pg_postmaster_start_time()')" != "$was" ] ||
            fail "round $round: the server did not restart"
        wait_for 30 waiting || fail "round $round ($mode): b did not wait in the server again"
        alive "$PID_b" || fail "round $round: b exited"
        started b && fail "round $round: b's COMMAND started while keeper holds the lease"
        sleep 0.3
        [ "$round" = 2 ] && { before=$(wrapper_counts "$PID_b") || fail "round 2: no count"; }
    done
    after=$(wrapper_counts "$PID_b") || fail "no count after round 8"
    noticed=$(grep -c "database unavailable" "$TMP/b.log")
    [ "$noticed" -ge 8 ] || fail "b noticed $noticed of 8 restarts"
    info "through 8 restarts (4 fast, 4 immediate; $noticed outages logged): after round 2: $before; after round 8: $after"
    [ "$before" = "$after" ] || fail "b grew over 6 restarts: $before -> $after"
    [ "$("${PSQL[@]}" -c "SELECT holder FROM singleton_leases WHERE name = '$NAME'")" = keeper ] ||
        fail "the keeper's lease did not outlive the restarts"
    "${PSQL[@]}" -c "SELECT singleton_force_release('$NAME')" >/dev/null
    wait_for 10 started b || fail "b did not lead once the lease was freed"
    kill -TERM "$PID_b"; reap "$PID_b"
    [ "$RC" = 0 ] || fail "b exited $RC after SIGTERM, expected its COMMAND's 0: $(tail -3 "$TMP/b.log")"
    ;;
prefork)
    # A standby forks COMMAND's supervising process in advance (it vforks COMMAND
    # only at leadership); it never runs COMMAND while standby, goes away with the
    # standby (SIGTERM, --wait ran out, SIGKILL), and a dead one is forked anew.
    helpers() {  # PID: its supervising process and that one's children
        local s; s=$(children_of "$1") && [ -n "$s" ] || return 1
        echo "$s $(children_of "$s" | tr '\n' ' ')"
    }
    pgid_of() { awk '{ sub(/.*\) /, ""); print $3 }' "/proc/$1/stat"; }
    check_helpers() {  # LABEL PID: one helper, leading a group of its own, no child, no db socket
        local wrapper="$2" h; h=$(helpers "$2") || fail "$1: no pre-forked supervising process"
        set -- "$1" $h
        [ $# = 2 ] || fail "$1: expected a supervisor and no child before leadership, got: ${*:2}"
        # (its own group: a stop or SIGKILL of singleton-lock's group must not reach it; job_control)
        [ "$(pgid_of "$2")" = "$2" ] && [ "$(pgid_of "$wrapper")" != "$2" ] ||
            fail "$1: the supervisor does not lead a process group of its own"
        n=$(fd_count "$2")
        [ "$n" -le 6 ] || fail "$1: helper $2 holds $n descriptors: $(ls -l "/proc/$2/fd")"
        [ "$(readlink "/proc/$2/exe")" = "$(readlink -f "$SL")" ] || fail "$1: helper $2 exec'd"
        HELPERS="$2"
    }
    leader_and_standby --ttl 5s
    check_helpers b "$PID_b"; hb=$HELPERS
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; reap "$PID_b"
    [ "$RC" = 143 ] || fail "standby exit code $RC after SIGTERM, expected 143"
    for p in $hb; do wait_for 2 dead "$p" || fail "helper $p of the SIGTERMed standby is still alive"; done
    started b && fail "the standby ran COMMAND"
    info "SIGTERM as standby: helpers $hb gone, COMMAND never ran: ok"

    "$SL" run --name "$NAME" --wait 1s -- "$TMP/worker.sh" "$TMP" w 2>"$TMP/w.log" & pw=$!
    wait_for 5 helpers "$pw" >/dev/null || fail "--wait standby: no helpers"
    hw=$(helpers "$pw")
    wait "$pw"; rc=$?
    [ "$rc" = 75 ] || fail "exit code $rc after --wait 1s, expected 75"
    for p in $hw; do wait_for 2 dead "$p" || fail "helper $p after --wait ran out is still alive"; done
    started w && fail "COMMAND ran although the wait ran out"
    info "--wait ran out: helpers $hw gone: ok"

    start k --ttl 5s
    wait_for 20 logged k "standby, held by" || fail "no standby k"
    check_helpers k "$PID_k"; hk=$HELPERS
    kill -KILL "$PID_k" || fail "could not send SIGKILL to k"
    for p in $hk; do wait_for 2 dead "$p" || fail "helper $p of the SIGKILLed standby is still alive"; done
    info "SIGKILL of the standby: helpers $hk gone: ok"

    # A standby whose supervising process was killed forks one when it leads,
    # and COMMAND still gets its environment.
    start c --ttl 5s --holder "it-holder-$$"
    wait_for 20 logged c "standby, held by" || fail "no standby c"
    check_helpers c "$PID_c"; hc=$HELPERS
    kill -KILL ${hc%% *} || fail "could not kill c's supervising process"
    wait_for 5 logged c "pre-forked supervising process ended" || fail "c did not notice its helper died"
    for p in $hc; do wait_for 2 dead "$p" || fail "helper $p still alive"; done
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"; reap "$PID_a"
    wait_for 20 started c || fail "c did not take over"
    read -r n t h <"$TMP/c.env"
    [ "$n" = "$NAME" ] && [ "$h" = "it-holder-$$" ] && [ "$t" -gt "$(token_of a)" ] ||
        fail "COMMAND's environment: '$n $t $h'"
    alive "$PID_c" || fail "c died"
    kill -TERM "$PID_c" || fail "could not send SIGTERM to c"; reap "$PID_c"
    [ "$RC" = 0 ] || fail "c exited $RC"
    # ... and so does one with its pre-forked helper in place.
    start d --ttl 5s --holder "it-holder-d-$$"
    wait_for 20 started d || fail "d never started COMMAND"
    read -r n t h <"$TMP/d.env"
    [ "$n" = "$NAME" ] && [ "$h" = "it-holder-d-$$" ] && [ "$t" -gt "$(token_of c)" ] ||
        fail "COMMAND's environment: '$n $t $h'"
    kill -TERM "$PID_d" || fail "could not send SIGTERM to d"; reap "$PID_d"
    [ "$RC" = 0 ] || fail "d exited $RC"
    [ "$(lease_state)" = free ] || fail "lease not free at the end: $(lease_state)"
    info "COMMAND's environment (name, token, holder) with a fresh and a pre-forked helper: ok"
    ;;
priority_step_down)
    # A standby of higher priority makes the leader step down (SIGTERM to its
    # COMMAND, then a release that hands it the lease); the old leader waits as a
    # standby again. Equal and lower priorities never preempt.
    leader_and_standby --ttl 5s --priority 1
    start c --ttl 5s --priority 2
    t0=$(now_ns)
    wait_for 20 started c || fail "the standby of higher priority never led"
    no_overlap c
    info "standby of priority 2 started -> its COMMAND runs: $(( ($(cat "$TMP/c.started") - t0) / 1000000 )) ms (includes its start-up)"
    logged a "a standby of higher priority asks for the lease" || fail "a did not log the step-down request"
    wait_for 10 logged a "stepped down; waiting as a standby again" || fail "a did not become a standby again"
    alive "$PID_a" || fail "a exited after stepping down"
    dead "$(cat "$TMP/a.child")" || fail "a's COMMAND survived the step-down"
    [ "$(token_of c)" -gt "$(token_of a)" ] || fail "token did not increase: $(token_of a) -> $(token_of c)"
    started b && fail "the standby of equal priority (b) led"
    # Now c (2) leads; a and b (1) wait and must not take it back.
    wait_for 10 logged a "standby, held by" || fail "a never waited again"
    sleep 0.5
    alive "$PID_c" || fail "c died"
    logged c "asks for the lease" && fail "a standby of lower priority preempted c"
    [ "$(grep -c 'leader, token' "$TMP/a.log")" = 1 ] || fail "a led again while c lives"
    info "equal and lower priorities did not preempt: ok"
    kill -TERM "$PID_c" || fail "could not send SIGTERM to c"
    reap "$PID_c"; [ "$RC" = 0 ] || fail "c exited $RC"
    # One of the two (priority 1) takes over. (Ties go to the longest waiting
    # acquire call, and standbys wait in slices: either may win.)
    next_leader() { started b || [ "$(grep -c 'leader, token' "$TMP/a.log")" = 2 ]; }
    wait_for 20 next_leader || fail "neither a nor b took over from c"
    if started b; then no_overlap b; else no_overlap a; fi
    kill -TERM "$PID_b" "$PID_a"; reap "$PID_b"; rc_b=$RC; reap "$PID_a"
    [ "$RC" = 143 ] || [ "$rc_b" = 143 ] || fail "neither a nor b exited 143 as a standby ($RC, $rc_b)"
    # (Both stopped at once: the leader's release may hand the lease to the other
    # one just as it stops; its session's end then leaves it orphaned, i.e. free.)
    case "$(lease_state)" in free | orphaned) ;; *) fail "lease not free at the end: $(lease_state)" ;; esac
    ;;
repeated_sigterm)
    # A SIGTERM while COMMAND is stopping is passed on as well, but the grace is
    # not begun anew: SIGKILL comes --grace after the first stop, whatever follows
    # (else a signal every few seconds would keep COMMAND, and the lease, forever).
    WORKER_MODE=count_term start a --ttl 8s --grace 3s
    wait_for 20 started a || fail "COMMAND never started"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"
    wait_for 5 logged a "forwarded SIGTERM to COMMAND;" || fail "a did not forward the first SIGTERM"
    sleep 2
    kill -TERM "$PID_a" || fail "could not send the second SIGTERM to a"
    reap "$PID_a"
    [ "$RC" = 137 ] || fail "a exited $RC, expected 137 (COMMAND SIGKILLed at the end of --grace)"
    terms=$(wc -l <"$TMP/a.terms" 2>/dev/null)
    [ "$terms" = 2 ] || fail "COMMAND got ${terms:-no} SIGTERMs, expected 2"
    # The wrapper's own log, 1 ms resolution: first forward -> COMMAND's end reported.
    at() {
        local line; line=$(grep -m1 -- "$1" "$TMP/a.log") || fail "a's log has no line with '$1'"
        date -d "${line%% *}" +%s%3N
    }
    first=$(at "forwarded SIGTERM to COMMAND;") ended=$(at ": COMMAND ") || exit 1
    grep -- ": COMMAND " "$TMP/a.log" | grep -q "grace over: SIGKILL" ||
        fail "COMMAND's end was not the supervising process's SIGKILL at the end of --grace"
    again=$(grep -o "forwarded SIGTERM to COMMAND again; SIGKILL in [^ ]*" "$TMP/a.log") ||
        fail "a did not log the second SIGTERM as forwarded again"
    info "first SIGTERM -> COMMAND's end reported: $((ended - first)) ms (--grace 3s); the second logged: $again"
    [ $((ended - first)) -lt 4000 ] || fail "SIGKILL came $((ended - first)) ms after the first SIGTERM: the second began the grace anew"
    [ $((ended - first)) -ge 3000 ] || fail "SIGKILL came $((ended - first)) ms after the first SIGTERM, before --grace"
    info "a second SIGTERM while stopping is passed on and keeps the first grace: ok"
    ;;
signal_while_releasing)
    # SIGTERM after a step-down has stopped COMMAND, while the release that hands
    # the lease over is still under way (here: it waits for a fenced transaction,
    # a singleton_assert of a's token, to end): a exits once released instead of
    # waiting as a standby again. (Before: the signal was logged and dropped.)
    WORKER_MODE=ignore_term start a --ttl 5s --grace 1500ms --priority 1
    wait_for 20 started a || fail "a never started COMMAND"
    start c --ttl 5s --priority 2
    wait_for 10 logged a "a standby of higher priority asks for the lease" || fail "a got no step-down request"
    "${PSQL[@]}" -c "SELECT singleton_assert('$NAME', $(token_of a)); SELECT pg_sleep(4)" \
        >"$TMP/fence.out" 2>&1 &
    fence=$!
    wait_for 10 logged a "COMMAND was killed by signal\|COMMAND exited with status" ||
        fail "a's COMMAND did not end after its grace"
    sleep 0.3
    alive "$fence" || fail "the fenced transaction ended too soon: $(cat "$TMP/fence.out")"
    started c && fail "c led while the fenced transaction of a's tenure was open"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"
    wait_for 5 logged a "received SIGTERM; COMMAND has ended: exiting once the lease is released" ||
        fail "a did not acknowledge SIGTERM while releasing"
    wait "$fence" || fail "the fenced transaction failed: $(cat "$TMP/fence.out")"
    wait_for 10 started c || fail "c never led after the release"
    no_overlap c
    wait_for 10 dead "$PID_a" || fail "a did not exit after its release (it waits as a standby again?)"
    reap "$PID_a"
    logged a "waiting as a standby again" && fail "a went back to standby despite SIGTERM"
    info "SIGTERM while releasing after a step-down: a exited $RC once released, c leads: ok"
    kill -TERM "$PID_c" || fail "could not send SIGTERM to c"; reap "$PID_c"
    ;;
setup_blocked)
    # The session's setup statement (it reads pg_extension) waits behind a lock,
    # as behind catalog maintenance (every client of the server waits: not run in
    # parallel with other tests): the client gives up after its connect
    # timeout (--ttl 3s: 2 s), cancels what it abandons (its waiting backends
    # do not pile up in the lock's queue), retries, and leads once the lock goes.
    "${PSQL[@]}" -c "BEGIN; LOCK pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(9); COMMIT" \
        >"$TMP/locker.out" 2>&1 &
    locker=$!
    locked() { [ "$("${PSQL[@]}" -c "SELECT count(*) FROM pg_locks WHERE relation = 'pg_catalog.pg_extension'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1 ]; }
    wait_for 5 locked || fail "pg_extension was not locked: $(cat "$TMP/locker.out")"
    PGAPPNAME="$NAME-a" start a --ttl 3s  # (its sessions' application_name)
    waiting() { "${PSQL[@]}" -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$NAME-a' AND wait_event_type = 'Lock'"; }
    most=0; : >"$TMP/waiters"
    while alive "$locker"; do
        pids=$(waiting); n=$(echo "$pids" | grep -c .)
        [ "$n" -gt "$most" ] && most=$n; echo "$pids" >>"$TMP/waiters"
        sleep 0.2
    done
    wait "$locker" || fail "the locking transaction failed: $(cat "$TMP/locker.out")"
    attempts=$(grep . "$TMP/waiters" | sort -u | wc -l)
    [ "$attempts" -ge 3 ] || fail "$attempts backend(s) of a seen waiting in 9 s: it did not give up and retry (connect timeout 2 s)"
    logged a "no reply from the server in time" || fail "a did not say why it retried"
    # (its two sessions may be set up at the same time)
    [ "$most" -le 2 ] || fail "$most setup statements of a waited at once: abandoned ones were not cancelled"
    wait_for 10 started a || fail "a never led after the lock went"
    info "setup blocked 9 s: $attempts backends of a waited in turn, at most $most at once, then it led: ok"
    kill -TERM "$PID_a" || fail "could not send SIGTERM to a"; reap "$PID_a"
    ;;
supervisor_killed)
    # The leader's supervising process is killed (the OOM killer's pick, a stray
    # kill -9). Its orphans, COMMAND and COMMAND's child, pass to singleton-lock
    # (a child subreaper), which kills and reaps them before it releases the
    # lease: the standby's COMMAND finds none of them running.
    leader_and_standby --ttl 5s
    cmd=$(cat "$TMP/a.child"); gc=$(cat "$TMP/a.grandchild")
    sup=$(sed 's/.*) //' "/proc/$cmd/stat" | cut -d' ' -f2)
    [ "$(readlink "/proc/$sup/exe")" = "$(readlink -f "$SL")" ] && [ "$sup" != "$PID_a" ] ||
        fail "COMMAND's parent $sup is not a's supervising process"
    kill -KILL "$sup" || fail "could not kill a's supervising process $sup"
    wait_for 10 started b || fail "b never led after a's supervising process died"
    no_overlap b
    dead "$cmd" && dead "$gc" || fail "a's COMMAND ($cmd) or its child ($gc) survived"
    wait_for 10 dead "$PID_a" || fail "a did not exit"
    reap "$PID_a"; [ "$RC" = 137 ] || fail "a exited $RC, expected 137 (COMMAND killed by SIGKILL)"
    logged a "COMMAND was killed by signal 9 .*its supervising process died" || fail "a did not say why"
    [ "$(token_of b)" -gt "$(token_of a)" ] || fail "token did not increase: $(token_of a) -> $(token_of b)"
    info "leader's supervising process killed: COMMAND and its child reaped first, b led, a exited 137: ok"
    kill -TERM "$PID_b" || fail "could not send SIGTERM to b"; reap "$PID_b"
    ;;
pause_resume)
    # pause ends the tenure (COMMAND stopped as on a lost lease, exit 3); no
    # standby leads while paused; resume hands the lease to the waiting standby.
    # Ordinary roles get a clear error. All of it in sessions that default to
    # read-only transactions (as a role's or database's setting would make them;
    # here PGOPTIONS): each session of ours sets its own default.
    export PGOPTIONS="-c default_transaction_read_only=on"
    leader_and_standby --ttl 5s
    child=$(cat "$TMP/a.child")
    t0=$(now_ns)
    out=$("$SL" pause --name "$NAME" --reason "it maintenance") || fail "pause failed: $out"
    echo "$out" | grep -q "tenure ended" || fail "pause said: $out"
    wait_for 10 dead "$child" || fail "the leader's COMMAND survived the pause"
    info "pause -> COMMAND stopped: $(ms_since "$t0") ms"
    reap "$PID_a"; [ "$RC" = 3 ] || fail "the paused leader exited $RC, expected 3"
    [ "$(lease_state)" = paused ] || fail "lease state $(lease_state), expected paused"
    "$SL" status --name "$NAME" | grep -q "it maintenance" || fail "status does not show the reason"
    sleep 0.5
    started b && fail "a standby led while paused"
    alive "$PID_b" || fail "the standby gave up while paused"
    out=$("$SL" resume --name "$NAME") || fail "resume failed: $out"
    wait_for 10 started b || fail "resume did not hand the lease to the standby"
    no_overlap b
    "$SL" resume --name "$NAME" >/dev/null; rc=$?
    [ "$rc" = 4 ] || fail "resume of a lease not paused exited $rc, expected 4"
    role="it_plain_$$"
    PGOPTIONS= "${PSQL[@]}" -c "CREATE ROLE $role LOGIN" || fail "cannot create role $role"
    "$SL" pause --name "$NAME" --reason x --dsn "user=$role" 2>"$TMP/denied.err"; rc=$?
    "$SL" resume --name "$NAME" --dsn "user=$role" 2>>"$TMP/denied.err"; rc2=$?
    "$SL" status --dsn "user=$role" 2>>"$TMP/denied.err"; rc3=$?
    "$SL" release --force --name "$NAME" --dsn "user=$role" 2>>"$TMP/denied.err"; rc4=$?
    PGOPTIONS= "${PSQL[@]}" -c "DROP ROLE $role"
    [ "$rc" = 1 ] && [ "$rc2" = 1 ] && [ "$rc3" = 1 ] && [ "$rc4" = 1 ] ||
        fail "pause/resume/status/release --force by an ordinary role exited $rc/$rc2/$rc3/$rc4, expected 1"
    [ "$(grep -c 'for administrators' "$TMP/denied.err")" = 4 ] || fail "no clear error: $(cat "$TMP/denied.err")"
    grep -q "status reads the view singleton_leases" "$TMP/denied.err" &&
        grep -q "release --force is for administrators" "$TMP/denied.err" ||
        fail "status/release: no hint of their own: $(cat "$TMP/denied.err")"
    alive "$PID_b" || fail "the refused pause stopped the leader"
    info "ordinary role: $(head -n1 "$TMP/denied.err")"
    kill -TERM "$PID_b"; reap "$PID_b"; [ "$RC" = 0 ] || fail "b exited $RC"
    ;;
warm)
    # --warm: COMMAND starts while standby and learns on SINGLETON_LOCK_LEADER_FD
    # that it leads (one line "leader TOKEN"). The overlap check runs when it is
    # told, not at boot. kill -9 of the leader, SIGTERM as standby, --wait
    # running out and a COMMAND that exits as standby behave as without --warm.
    cat >"$TMP/warm.sh" <<'WARM'
#!/bin/bash
dir="$1"; label="$2"
echo $$ >"$dir/$label.child"
echo "${SINGLETON_LOCK_TOKEN:-none} $SINGLETON_LOCK_LEADER_FD $(grep -zc '^SINGLETON_LOCK_' /proc/$$/environ)" >"$dir/$label.booted"
[ "${3:-}" = exit_now ] && exit 9
read -r word token <&"$SINGLETON_LOCK_LEADER_FD" || { echo eof >"$dir/$label.eof"; exit 0; }
for f in "$dir"/*.child; do
    case "$f" in "$dir/$label".*) continue ;; esac
    [ -f "$dir/$(basename "$f" .child).started" ] || continue  # only processes that led
    st=$(sed 's/.*) //' "/proc/$(cat "$f")/stat" 2>/dev/null | cut -c1)
    [ -n "$st" ] && [ "$st" != Z ] && echo "$(cat "$f") ($f)" >>"$dir/$label.overlap"
done
echo "$SINGLETON_LOCK_NAME $token $SINGLETON_LOCK_HOLDER $word" >"$dir/$label.env"
date +%s%N >"$dir/$label.started"
trap 'exit 0' TERM
while :; do sleep 0.05; done
WARM
    chmod +x "$TMP/warm.sh"
    wstart() {  # LABEL [options...]
        local label="$1"; shift
        "$SL" run --name "$NAME" --warm "$@" -- "$TMP/warm.sh" "$TMP" "$label" ${WARM_ARG:-} \
            2>"$TMP/$label.log" &
        local pid=$!; PIDS+=("$pid"); eval "PID_$label=$pid"
    }
    booted() { [ -s "$TMP/$1.booted" ]; }
    wstart a --ttl 5s
    wait_for 20 started a || fail "the first warm instance never led"
    [ "$(cut -d' ' -f4 <"$TMP/a.env")" = leader ] || fail "the leader line: $(cat "$TMP/a.env")"
    # (b inherits our variables as if it ran under another singleton-lock: its own replace them)
    SINGLETON_LOCK_LEADER_FD=99 SINGLETON_LOCK_TOKEN=1 SINGLETON_LOCK_NAME=outer wstart b --ttl 5s
    wait_for 20 booted b || fail "the warm standby's COMMAND did not start while standby"
    read -r tok fd vars <"$TMP/b.booted"
    [ "$tok" = none ] && [ -n "$fd" ] && [ "$fd" != 99 ] && [ "$vars" = 3 ] ||
        fail "warm COMMAND's environment: token '$tok', leader fd '$fd', $vars SINGLETON_LOCK_ entries (expected 3: NAME, HOLDER, LEADER_FD)"
    wait_for 20 logged b "standby, held by" || fail "no standby b"
    sleep 0.3
    started b && fail "the warm standby was told it leads while a leads"
    info "warm standby booted while standby, not told to lead: ok"
    child=$(cat "$TMP/a.child")
    t0=$(now_ns)
    kill -KILL "$PID_a"; reap "$PID_a"; [ "$RC" = 137 ] || fail "a exited $RC"
    wait_for 20 started b || fail "the warm standby was never told it leads"
    no_overlap b
    dead "$child" || fail "the killed leader's warm COMMAND is still alive"
    [ "$(token_of b)" -gt "$(token_of a)" ] || fail "token did not increase"
    info "kill -9 of the leader -> warm standby told it leads: $(( ($(cat "$TMP/b.started") - t0) / 1000000 )) ms"
    # SIGTERM as a warm standby: its COMMAND is stopped, exit 143; it never led.
    wstart c --ttl 5s
    wait_for 20 booted c || fail "c did not boot"
    wait_for 20 logged c "standby, held by" || fail "no standby c"
    cchild=$(cat "$TMP/c.child")
    kill -TERM "$PID_c"; reap "$PID_c"
    [ "$RC" = 143 ] || fail "a warm standby exited $RC after SIGTERM, expected 143"
    dead "$cchild" || fail "the warm standby's COMMAND survived its SIGTERM"
    started c && fail "c was told it leads"
    # --wait runs out: exit 75, its COMMAND stopped.
    wstart w --ttl 5s --wait 500ms
    reap "$PID_w"; [ "$RC" = 75 ] || fail "--warm --wait 500ms exited $RC, expected 75"
    dead "$(cat "$TMP/w.child")" || fail "the COMMAND of a warm standby whose wait ran out survived"
    # A warm COMMAND that exits while standby: the wrapper exits with its status.
    WARM_ARG=exit_now wstart x --ttl 5s
    reap "$PID_x"; [ "$RC" = 9 ] || fail "a warm COMMAND that exited 9 as standby gave $RC"
    # The lease is lost (force release): COMMAND stopped, exit 3, as without --warm.
    bchild=$(cat "$TMP/b.child")
    "$SL" release --name "$NAME" --force >/dev/null || fail "release --force failed"
    reap "$PID_b"; [ "$RC" = 3 ] || fail "the warm leader exited $RC after a force release, expected 3"
    dead "$bchild" || fail "the warm leader's COMMAND survived the lost lease"
    info "SIGTERM as standby (143), --wait (75), COMMAND's own exit as standby (9), lost lease (3): ok"
    ;;
warm_examples)
    # The documented --warm examples (examples/warm/, shell and Python): a leader
    # and a warm standby of each; kill -9 of the leader; the standby's service
    # reads its line and works with the new token; SIGTERM stops it.
    EX="$(cd "$(dirname "$0")/../../examples/warm" && pwd)"
    for kind in sh py; do
        if [ $kind = sh ]; then svc=("$EX/warm_service.sh" 0.2); else svc=(/usr/bin/python3 "$EX/warm_service.py" 0.2); fi
        "$SL" run --name "$NAME-$kind" --ttl 5s --warm -- "${svc[@]}" >"$TMP/$kind-a.out" 2>"$TMP/$kind-a.log" &
        pa=$!; PIDS+=("$pa")
        wait_for 20 logged "$kind-a" "leader with fencing token" || fail "$kind: the first instance never worked as leader"
        "$SL" run --name "$NAME-$kind" --ttl 5s --warm -- "${svc[@]}" >"$TMP/$kind-b.out" 2>"$TMP/$kind-b.log" &
        pb=$!; PIDS+=("$pb")
        wait_for 20 logged "$kind-b" "booted; waiting to lead\|booting" || fail "$kind: the warm standby did not boot"
        wait_for 20 logged "$kind-b" "standby, held by" || fail "$kind: no standby"
        logged "$kind-b" "leader with fencing token" && fail "$kind: the warm standby worked as leader while the other led"
        kill -KILL "$pa"; reap "$pa"
        wait_for 20 logged "$kind-b" "warm_service: leader with fencing token" || fail "$kind: the warm standby never led"
        tok=$(sed -n 's/.*leader with fencing token \([0-9]*\).*/\1/p' "$TMP/$kind-b.log" | head -n1)
        grep -q "told the warm COMMAND" "$TMP/$kind-b.log" || fail "$kind: no 'told the warm COMMAND' line"
        [ "$(sed -n 's/.*leader, token \([0-9]*\),.*/\1/p' "$TMP/$kind-b.log")" = "$tok" ] ||
            fail "$kind: the service's token $tok is not the lease's"
        wait_for 5 grep -q "working as the leader (token $tok)" "$TMP/$kind-b.out" || fail "$kind: no leader work"
        kill -TERM "$pb"; reap "$pb"; [ "$RC" = 0 ] || fail "$kind: the warm leader exited $RC after SIGTERM"
        info "examples/warm/warm_service.$kind: booted as standby, led with token $tok after kill -9 of the leader: ok"
    done
    ;;
reconnects)
    # Sessions that end and are made again leave no descriptor behind: a
    # standby may wait through months of database restarts. Each round the
    # standby's session (over TCP, so that its sessions can be told apart
    # from the leader's) is terminated and it waits on. (A leader whose
    # session ends has lost its lease, as documented: it reconnects as a new
    # process's standby would.) Descriptors of both processes of the standby
    # are counted after round 2 and after round 12.
    start a --ttl 5s
    wait_for 20 started a || fail "first instance never started COMMAND"
    PGHOST=127.0.0.1 start b --ttl 5s
    wait_for 20 logged b "standby, held by" || fail "second instance never reported standby"
    child=$(cat "$TMP/a.child")
    sessions() {  # WHERE: how many of the wrappers' sessions match
        "${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'singleton-lock' AND $1"
    }
    waiting="client_addr IS NOT NULL AND wait_event_type = 'Extension'"
    settled() { [ "$(sessions "$waiting")" = 1 ]; }
    wait_for 10 settled || fail "the standby never waited in the server over TCP"
    before=""
    for round in $(seq 1 12); do
        ended=$("${PSQL[@]}" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'singleton-lock' AND client_addr IS NOT NULL")
        [ "$ended" -ge 1 ] || fail "round $round: no session of the standby to terminate"
        sleep 0.3
        wait_for 15 settled || fail "round $round: the standby did not reconnect"
        alive "$child" || fail "round $round: the leader's COMMAND stopped"
        started b && fail "round $round: the standby's COMMAND started"
        [ "$round" = 2 ] && { sleep 0.5; before=$(wrapper_fds "$PID_b") || fail "round 2: no count"; }
    done
    sleep 0.5
    after=$(wrapper_fds "$PID_b") || fail "no count after round 12"
    [ "$(grep -c "database unavailable" "$TMP/b.log")" -ge 1 ] || fail "the standby never noticed its session end"
    info "descriptors of the standby and its supervising process after round 2: $before; after round 12: $after"
    [ "$before" = "$after" ] || fail "descriptors grew over 10 reconnects: $before -> $after"
    logged a LOST && fail "the leader lost its lease"
    # (Under the sanitizers a leak found at exit changes the exit status.)
    kill -TERM "$PID_b"; reap "$PID_b"
    [ "$RC" = 143 ] || fail "the standby exited $RC after SIGTERM, expected 143: $(tail -3 "$TMP/b.log")"
    kill -TERM "$PID_a"; reap "$PID_a"
    ;;
step_down_cycles)
    # A leader that steps down and leads again, over and over (each rolling
    # deploy with priorities does it once), keeps its descriptors and its
    # processes: a retired elector's sessions and each old supervising
    # process must go. a (priority 1) leads; in each of 8 rounds a standby of
    # priority 2 takes the lease, then stops, and a leads again. Counted after
    # round 2 and round 8: a's descriptors, its child processes, and its
    # supervising process's descriptors. Under the sanitizers a leak found at
    # exit changes a's exit status.
    start a --ttl 5s --priority 1
    wait_for 20 started a || fail "a never started COMMAND"
    before=""
    for round in $(seq 1 8); do
        start "c$round" --ttl 5s --priority 2
        wait_for 20 started "c$round" || fail "round $round: the standby of priority 2 never led"
        no_overlap "c$round"
        wait_for 10 test "$(grep -c 'stepped down; waiting as a standby again' "$TMP/a.log")" = "$round" ||
            fail "round $round: a did not step down and wait again"
        eval "pid=\$PID_c$round"
        was=$(cat "$TMP/a.started")
        kill -TERM "$pid"; reap "$pid"
        [ "$RC" = 0 ] || fail "round $round: c$round exited $RC"
        wait_for 20 test "$(grep -c 'leader, token' "$TMP/a.log")" = $((round + 1)) ||
            fail "round $round: a did not lead again"
        restarted() { [ "$(cat "$TMP/a.started")" != "$was" ]; }
        wait_for 10 restarted || fail "round $round: a's COMMAND did not start again"
        no_overlap a
        sleep 0.2
        [ "$round" = 2 ] && { before=$(wrapper_counts "$PID_a") || fail "round 2: no count"; }
    done
    after=$(wrapper_counts "$PID_a") || fail "no count after round 8"
    info "after round 2: $before; after round 8: $after"
    [ "$before" = "$after" ] || fail "a grew over 6 step-downs: $before -> $after"
    kill -TERM "$PID_a"; reap "$PID_a"
    [ "$RC" = 0 ] || fail "a exited $RC after SIGTERM, expected its COMMAND's 0: $(tail -3 "$TMP/a.log")"
    ;;
*)
    echo "unknown case $CASE"; exit 2 ;;
esac
echo "PASS [$CASE]"
