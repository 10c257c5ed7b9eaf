#!/usr/bin/env bash
# A call whose client has gone away changes nothing. An acquire blocked on the
# lease row (another transaction holds it) keeps waiting in the server after
# its client was killed; when the row lock goes, the late call must not take
# or renew the lease (nor bind it to its dying session).
#
# Runs its own throwaway server (port 25362); the extension must be installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export SL_PGPORT=25362
# Its own cluster directory too: an inherited SL_PGDIR names the caller's, which
# stopping this server would delete.
export SL_PGDIR=/tmp/singleton_lock_pg.$SL_PGPORT
export SL_PG_TLS=1  # (clients over TCP choose: sslmode=require or disable)
WORK=$(mktemp -d /tmp/sl-abandoned.XXXXXX)
cleanup() { set +e; exec 9>&-; kill $(jobs -p) 2>/dev/null; "$ROOT/test/pgserver.sh" stop; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
eval "$("$ROOT/test/pgserver.sh" start)"  # (on failure it evaluates to `false`: set -e stops here)
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION IF NOT EXISTS singleton_lock"
checks=0

# What a late call must not change: tenures, holder, expiry, pause.
lease_row() {
  q "SELECT transitions || '/' || coalesce(holder, '') || '/' || coalesce(expires_at::text, '')
            || '/' || paused FROM singleton_lock_leases WHERE name = '$1'"
}

# Locks lease $1's row in a transaction of its own, in the background
# (LOCKER: its psql's pid, fed through descriptor 9), and returns once the
# row is locked; unlock_row commits it (now, or after $1 seconds).
lock_row() {
  rm -f "$WORK/locker.in" "$WORK/locker.out" && mkfifo "$WORK/locker.in"
  psql -X -qAt -v ON_ERROR_STOP=1 <"$WORK/locker.in" >"$WORK/locker.out" 2>&1 &
  LOCKER=$!
  exec 9>"$WORK/locker.in"
  echo "BEGIN; SELECT 'locked' FROM singleton_lock_leases WHERE name = '$1' FOR UPDATE;" >&9
  for _ in $(seq 1 200); do
    grep -qx locked "$WORK/locker.out" && return 0
    kill -0 "$LOCKER" 2>/dev/null || break
    sleep 0.05
  done
  fail "could not lock lease $1's row: $(cat "$WORK/locker.out")"
}
unlock_row() {
  if [ -n "${1:-}" ]; then (sleep "$1"; echo "COMMIT;" >&9) & else echo "COMMIT;" >&9; fi
  exec 9>&-
}

# A client in Python that sends call $1 in pipeline mode and, once its
# backend waits on the row lock, either closes properly ($2 = closing,
# closing-tls: libpq's Terminate, then the close), resets its connection
# ($2 = reset-tcp, reset-unix, reset-tls: it exits with a result unread, over
# TCP with SO_LINGER 0 as well, so that the backend's socket sees ECONNRESET,
# not the end of the stream) or pipelines its next statement behind it
# ($2 = live) and checks that the call returned a row. -tls: over TCP with
# sslmode=require (checked in use), -tcp: without TLS, else a Unix socket.
python_client() {
  PYTHONPATH="$ROOT/test/scenarios" /usr/bin/python3 - "$1" "$2" <<'PY'
import fcntl, os, socket, struct, sys, termios, psycopg
from psycopg import pq
from piped_client import send_piped, wait_until_waiting
call, how = sys.argv[1], sys.argv[2]
with psycopg.connect(autocommit=True) as observer:
    transport = how.rsplit("-", 1)[-1]
    over = {"tcp": {"host": "127.0.0.1", "sslmode": "disable"},
            "tls": {"host": "127.0.0.1", "sslmode": "require"}}.get(transport, {})
    pg = psycopg.connect(autocommit=True, **over).pgconn
    assert pg.ssl_in_use == (transport == "tls"), f"TLS in use: {pg.ssl_in_use}"
    pg.enter_pipeline_mode()
    if how.startswith("reset"):
        send_piped(pg, b"SELECT 1")  # its result stays unread
    send_piped(pg, call.encode())
    wait_until_waiting(observer, pg.backend_pid, "Lock", "the call")
    if how.startswith("closing"):
        pg.finish()  # Terminate (and TLS's close_notify), then the close
        sys.exit(0)
    if how.startswith("reset"):
        sock = socket.socket(fileno=os.dup(pg.socket))
        if transport in ("tcp", "tls"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            assert struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)) == (1, 0)
        unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
        assert unread > 0, "no unread result: the close would not reset the connection"
        os._exit(0)  # the kernel closes both descriptors: a reset
    send_piped(pg, b"SELECT 1")
    r = None
    while r is None:
        r = pg.get_result()
    assert r.status == pq.ExecStatus.TUPLES_OK, r.error_message
    print(f"ok: the call of a live client with a statement pipelined behind it acted: {r.get_value(0, 0).decode()}")
PY
}

# $1 lease, $2 the late call, $3 how its client goes: killed (kill -9, the
# default), closing / closing-tls (it closes properly: its Terminate waits
# unread on the socket when the call looks at it) or reset-tcp / reset-unix /
# reset-tls (see python_client). The lease row is locked while the
# call arrives.
late_call_changes_nothing() {
  local lease=$1 call=$2 how=${3:-killed} before after
  before=$(lease_row "$lease")
  lock_row "$lease"
  if [ "${how%-*}" = closing ]; then
    python_client "$call" "$how" || fail "the $how client of '$call' failed"
  elif [ "${how%-*}" = reset ]; then
    # (The server's log cannot tell a reset from a close: "could not send data
    # to client: Broken pipe" either way. The client asserts what makes the
    # kernel reset the connection: a result unread at the close, SO_LINGER 0.)
    python_client "$call" "$how" >/dev/null || fail "the $how client of '$call' failed"
  else
    psql -X -qAt -c "$call" >/dev/null 2>&1 &
    local client=$!
    # Wait until the late call's backend waits on the row lock, then kill its client.
    local waiting=0
    for _ in $(seq 1 100); do
      waiting=$(q "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query = \$q\$$call\$q\$")
      [ "$waiting" = 1 ] && break; sleep 0.05
    done
    [ "$waiting" = 1 ] || fail "the call never waited on the row lock"
    kill -9 "$client"; wait "$client" 2>/dev/null || true
    kill -0 "$client" 2>/dev/null && fail "client $client still alive"
  fi
  unlock_row
  wait "$LOCKER" || fail "the locking transaction failed"
  # The backend runs on once the lock goes; give it time to finish.
  for _ in $(seq 1 100); do
    [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE query = \$q\$$call\$q\$")" = 0 ] && break; sleep 0.05
  done
  after=$(lease_row "$lease")
  [ "$before" = "$after" ] || fail "late call changed lease $lease: '$before' -> '$after'"
  echo "ok: a late '$call' from a $how client changed nothing ($after)"; checks=$((checks + 1))
}

# A free lease: the late acquire must not take it.
q "SELECT singleton_release('free', token) FROM singleton_acquire('free', '1 min', 'someone')" >/dev/null
late_call_changes_nothing free "SELECT singleton_acquire('free', '1 min', 'ghost')"
# A waiting acquire (it waits in a subtransaction) likewise.
late_call_changes_nothing free "SELECT singleton_acquire('free', '1 min', 'ghost', '30s')"
# A lease held (unbound) by the same holder: the late call must not renew it or bind it.
q "SET singleton_lock.bind_session = off; SELECT acquired FROM singleton_acquire('held', '1 min', 'same')" >/dev/null
late_call_changes_nothing held "SELECT singleton_acquire('held', '1 min', 'same')"
[ "$(q "SELECT bound_since IS NULL FROM singleton_lock_leases WHERE name = 'held'")" = t ] \
  || fail "the late call bound the lease to its session"
echo "ok: and did not bind it"; checks=$((checks + 1))
# The holder's own release, and an administrator's force release, pause and
# resume: an operator who gives up on a command stuck behind a transaction
# (Ctrl-C, a timeout) must not see it act minutes later, when that ends.
token=$(q "SET singleton_lock.bind_session = off; SELECT token FROM singleton_acquire('admin', '1 h', 'holder')")
late_call_changes_nothing admin "SELECT singleton_heartbeat('admin', $token)"
late_call_changes_nothing admin "SELECT singleton_release('admin', $token)"
late_call_changes_nothing admin "SELECT singleton_force_release('admin')"
late_call_changes_nothing admin "SELECT singleton_pause('admin', 'maintenance')"
q "SELECT singleton_pause('admin', 'maintenance')" >/dev/null
late_call_changes_nothing admin "SELECT singleton_resume('admin')"
# The same with a client that closes properly (over TLS its Terminate and
# close_notify wait unread as encrypted records: the same).
for how in closing closing-tls; do
  q "SELECT singleton_release('$how', token) FROM singleton_acquire('$how', '1 min', 'someone')" >/dev/null
  late_call_changes_nothing "$how" "SELECT acquired FROM singleton_acquire('$how', '1 min', 'ghost')" "$how"
done
# A client whose connection was reset (the backend's recv fails with
# ECONNRESET: over TCP an RST, over a Unix socket a close with data unread).
for how in reset-tcp reset-unix reset-tls; do
  q "SELECT singleton_release('$how', token) FROM singleton_acquire('$how', '1 min', 'someone')" >/dev/null
  late_call_changes_nothing "$how" "SELECT acquired FROM singleton_acquire('$how', '1 min', 'ghost')" "$how"
  q "SET singleton_lock.bind_session = off; SELECT acquired FROM singleton_acquire('$how', '1 h', 'holder')" >/dev/null
  late_call_changes_nothing "$how" "SELECT singleton_force_release('$how')" "$how"
done
# A live client that pipelined its next statement behind the call left
# bytes there too: its call must act. Over a Unix socket and over TLS (its
# next statement is an encrypted record there).
for how in live live-tls; do
  q "SELECT singleton_release('piped-$how', token) FROM singleton_acquire('piped-$how', '1 min', 'someone')" >/dev/null
  lock_row "piped-$how"
  unlock_row 2  # (its client waits for the call's result: the lock goes while it does)
  python_client "SELECT acquired FROM singleton_acquire('piped-$how', '1 min', 'live')" "$how" \
    || fail "the $how client's call failed"
  wait "$LOCKER" || fail "the locking transaction failed"
  [ "$(q "SELECT holder FROM singleton_lock_leases WHERE name = 'piped-$how'")" = live ] \
    || fail "the $how client's call did not take the lease"
  echo "ok: and it holds the lease"; checks=$((checks + 1))
done

# A session sleeping in the extension's wait ends as soon as its client is
# killed: a waiting acquire (its waiter registration goes with it) and a
# holder's singleton_watch (its binding goes with it: the lease is orphaned
# at once instead of when the watch would have run out).
backend_ends_with_its_client() {
  local what=$1 call=$2 before=${3:-SELECT 1}
  psql -X -qAt -c "$before" -c "$call" >/dev/null 2>&1 &
  local client=$! pid=""
  for _ in $(seq 1 100); do
    pid=$(q "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND query = \$q\$$call\$q\$")
    [ -n "$pid" ] && break; sleep 0.05
  done
  [ -n "$pid" ] || fail "$what never slept in the extension's wait"
  kill -9 "$client"; wait "$client" 2>/dev/null || true
  local gone=no
  for _ in $(seq 1 40); do
    [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid")" = 0 ] && { gone=yes; break; }
    sleep 0.05
  done
  [ "$gone" = yes ] || fail "$what: backend $pid still there 2 s after its client was killed"
  echo "ok: $what ends with its client"; checks=$((checks + 1))
}
q "SET singleton_lock.bind_session = off; SELECT acquired FROM singleton_acquire('busy', '1 h', 'someone-else')" >/dev/null
backend_ends_with_its_client "a waiting acquire" "SELECT singleton_acquire('busy', '1 min', 'ghost', '10 min')"
# The holder's session: it acquires (bound to it), then watches.
backend_ends_with_its_client "a holder's watch" \
  "SELECT singleton_watch('watched', (SELECT token FROM singleton_lock_leases WHERE name = 'watched'), '10 min')" \
  "SELECT acquired FROM singleton_acquire('watched', '1 h', 'holder')"
[ "$(q "SELECT state FROM singleton_leases WHERE name = 'watched'")" = orphaned ] \
  || fail "the killed holder's lease is not orphaned"
echo "ok: and its lease is orphaned at once"; checks=$((checks + 1))

# A holder's next statement ends its singleton_watch at once (no cancel
# request needed): a watch of 20 s, then (once the backend sleeps in it) a
# release pipelined behind it on the same connection: the watch returns
# 'held' and the release goes through well within those 20 s. (A statement
# that reaches the server in the same read as the watch is noticed only when
# the watch ends: see docs/sql-reference.md, singleton_watch.)
PYTHONPATH="$ROOT/test/scenarios" /usr/bin/python3 - <<'PY' || fail "a queued statement did not end the watch"
import time, psycopg
from psycopg import pq
from piped_client import send_piped, wait_until_waiting

def results(pg, syncs):
    """The first value of every statement's result up to the `syncs`th
    pipeline sync; then the connection leaves pipeline mode."""
    out = []
    while syncs:
        r = pg.get_result()
        if r is None:
            continue
        if r.status == pq.ExecStatus.PIPELINE_SYNC:
            syncs -= 1
            continue
        assert r.status == pq.ExecStatus.TUPLES_OK, r.error_message
        out.append(r.get_value(0, 0).decode())
    pg.exit_pipeline_mode()
    return out

with psycopg.connect(autocommit=True) as conn, psycopg.connect(autocommit=True) as observer:
    token = conn.execute("SELECT token FROM singleton_acquire('piped', '1 h', 'holder')").fetchone()[0]
    pid, pg = conn.info.backend_pid, conn.pgconn
    pg.enter_pipeline_mode()
    send_piped(pg, b"SELECT singleton_watch('piped', $1, '20 s')", [str(token).encode()])
    wait_until_waiting(observer, pid, "Extension", "the watch")
    started = time.monotonic()
    send_piped(pg, b"SELECT singleton_release('piped', $1)", [str(token).encode()])
    outcome, released = results(pg, 2)
    took = time.monotonic() - started
    assert outcome == "held" and released == "t" and took < 10, (outcome, released, took)
    print(f"ok: a pipelined release ended the watch ({outcome}) and released in {took * 1000:.0f} ms")
PY
checks=$((checks + 1))

grep -q "the client has disconnected; nothing was changed" "/tmp/singleton_lock_pg.$SL_PGPORT/server.log" \
  || fail "the server log does not say why the late calls failed"
echo "ok: the server log says why"; checks=$((checks + 1))
echo "$checks passed, 0 failed"
