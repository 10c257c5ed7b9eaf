#!/usr/bin/env bash
# `make bench`: every benchmark, then BENCHMARKS.md at the repository root.
#
# 1. SQL API: throughput of singleton_acquire / heartbeat / release against the
#    round-trip floor, the cheapest durable write and a PL/pgSQL version of the
#    same contract (acquire and release also with singleton_lock.notify = off);
#    CPU cost per call with synchronous_commit = off (server processes' CPU time
#    from /proc) against the PL/pgSQL version and the bare UPDATE; acquire
#    latency with 1,000,000 names vs 1; SELECT 1 and the UPDATE after idle time;
#    release -> waiting-acquire wake-up
#    latency on the server clock.
# 2. Handover (test/bench/handover.sh): real `singleton-lock run` processes,
#    SIGTERM / kill -9 / SIGSTOP of the leader, the incident's policy emulated,
#    standby memory.
#
#   test/bench/run.sh    writes the SQL part to $BENCH_OUT (default test/bench/out/sql.md),
#                        everything to $BENCH_MD (default BENCHMARKS.md at the root),
#                        the handover plot to test/bench/out/handover.png and docs/handover.png
#
# Settings (environment): BENCH_DURATION (s per pgbench run, default 3),
# BENCH_ROUNDS (interleaved repetitions of every run, default 2),
# BENCH_CPU_ROUNDS (rounds of the CPU-cost part, default 2), BENCH_IDLE_MS (the pause
# before each statement of the after-idle runs, default 150),
# BENCH_CLIENTS (default "1 8"), BENCH_WAKE_ITERATIONS (default 150),
# BENCH_SKIP_INSTALL=1 (do not run `make install` first), SL_PGPORT (default 25350).
# Runs its own throwaway PostgreSQL (test/pgserver.sh), fsync on, and removes it.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DUR="${BENCH_DURATION:-3}"
ROUNDS="${BENCH_ROUNDS:-2}"
CPU_ROUNDS="${BENCH_CPU_ROUNDS:-2}"
IDLE_MS="${BENCH_IDLE_MS:-150}"
CLIENTS="${BENCH_CLIENTS:-1 8}"
WAKE_N="${BENCH_WAKE_ITERATIONS:-150}"
OUT="${BENCH_OUT:-$HERE/out/sql.md}"
MD="${BENCH_MD:-$ROOT/BENCHMARKS.md}"
T_START=$SECONDS
export SL_PGPORT="${SL_PGPORT:-25350}"
export SL_PG_FSYNC=on
# The cluster lives on disk (a sandbox's /tmp may be a tmpfs, where an fsync costs nothing).
export SL_PGDIR="${SL_PGDIR:-$HERE/out/pgdata}"
# raw results stay in test/bench/out/work (gitignored) until the next run, so the
# report can be re-rendered: python3 test/bench/report.py out/work/results.txt out/sql.md BENCHMARKS.md out
WORK="$HERE/out/work"
rm -rf "$WORK"; mkdir -p "$WORK"
chmod 755 "$WORK"
RES="$WORK/results.txt"   # key=value lines, read by report.py
: >"$RES"
mkdir -p "$(dirname "$OUT")"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }

cleanup() {
  "$ROOT/test/pgserver.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
  make -C "$ROOT" -s >/dev/null && make -C "$ROOT" -s install >/dev/null \
    || { log "make install failed"; exit 1; }
fi

# --- the throwaway server ----------------------------------------------------
"$ROOT/test/pgserver.sh" stop >/dev/null 2>&1 || true   # a leftover of an interrupted run
"$ROOT/test/pgserver.sh" start >/dev/null
eval "$("$ROOT/test/pgserver.sh" env)"
export PGAPPNAME=sl_bench

q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

q -c "CREATE EXTENSION singleton_lock" >/dev/null
q -f "$HERE/plpgsql_lease.sql" >/dev/null
q >/dev/null <<'SQL'
CREATE TABLE bench_kv (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0);
INSERT INTO bench_kv (id) SELECT g FROM generate_series(0, 63) g;
SQL

# --- machine and settings ----------------------------------------------------
put machine.nproc "$(nproc)"
put machine.kernel "$(uname -r)"
put machine.cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
put machine.pg "$(q -c 'SHOW server_version')"
put machine.commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- extension 2>/dev/null || echo '+uncommitted extension changes')"
put machine.settings "$(q -F' ' -c "SELECT string_agg(name || '=' || setting || COALESCE(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync','synchronous_commit','wal_sync_method','full_page_writes','commit_delay','wal_level','shared_buffers','max_wal_size','checkpoint_timeout')")"
put machine.duration "$DUR"
put machine.load_start "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- pgbench scripts ---------------------------------------------------------
S="$WORK/scripts"; mkdir -p "$S"
maxc=0; for c in $CLIENTS; do [ "$c" -gt "$maxc" ] && maxc=$c; done

# Heartbeat leases: one per client, held (bind_session off, so they outlive the
# setup session) with a long ttl; their tokens go into the script as a CASE.
ext_case="case"; pl_case="case"
for ((c = 0; c < maxc; c++)); do
  t=$(PGOPTIONS='-c singleton_lock.bind_session=off' q -c \
      "SELECT token FROM singleton_acquire('hb-$c', '1 day', 'bench-hb-$c')")
  p=$(q -c "SELECT token FROM plpgsql_lease.acquire('hb-$c', '1 day', 'bench-hb-$c')")
  ext_case+=" when :client_id = $c then $t"; pl_case+=" when :client_id = $c then $p"
done
ext_case+=" else 0 end"; pl_case+=" else 0 end"
# Renew leases: held by the same holder, renewed by every call.
for ((c = 0; c < maxc; c++)); do
  PGOPTIONS='-c singleton_lock.bind_session=off' q -c \
    "SELECT token FROM singleton_acquire('rn-$c', '1 day', 'bench-rn-$c')" >/dev/null
  q -c "SELECT token FROM plpgsql_lease.acquire('rn-$c', '1 day', 'bench-rn-$c')" >/dev/null
done

cat >"$S/select1.sql" <<'EOF'
SELECT 1;
EOF
cat >"$S/update.sql" <<'EOF'
UPDATE bench_kv SET v = v + 1 WHERE id = :client_id;
EOF
# Two one-row UPDATEs, two transactions: the baseline of the acquire+release pair.
# The same write plus a NOTIFY in its transaction: the contract NOTIFYs on every
# change of holder, and a NOTIFY serializes commits (PostgreSQL's notify queue lock).
cat >"$S/update_notify.sql" <<'EOF'
WITH u AS (UPDATE bench_kv SET v = v + 1 WHERE id = :client_id RETURNING id) SELECT pg_notify('bench', 'x') FROM u;
EOF
cat >"$S/update2.sql" <<'EOF'
UPDATE bench_kv SET v = v + 1 WHERE id = :client_id;
UPDATE bench_kv SET v = v + 1 WHERE id = :client_id + 32;
EOF
# Acquire, new tenure every call: the ttl of 1 us has run out by the next call,
# so each call takes over an expired lease (new token, forced durable commit).
cat >"$S/ext_acquire.sql" <<'EOF'
SELECT * FROM singleton_acquire('aq-' || :client_id, '1 microsecond', 'bench-aq-' || :client_id);
EOF
cat >"$S/pl_acquire.sql" <<'EOF'
SELECT * FROM plpgsql_lease.acquire('aq-' || :client_id, '1 microsecond', 'bench-aq-' || :client_id);
EOF
cat >"$S/ext_heartbeat.sql" <<EOF
\\set tok $ext_case
SELECT singleton_heartbeat('hb-' || :client_id, :tok);
EOF
# Heartbeat of a session-bound lease (bind_session on, the client's default: the
# extension may commit such a heartbeat without waiting for its WAL flush). Each
# pgbench connection acquires its lease once (tok starts as 0: pgbench -D), then
# every transaction renews it; a NULL (lost lease) aborts the run.
cat >"$S/ext_heartbeat_bound.sql" <<'EOF'
\if :tok = 0
SELECT token AS tok FROM singleton_acquire('hbb-' || :client_id, '1 day', 'bench-hbb-' || :client_id) \gset
\endif
SELECT singleton_heartbeat('hbb-' || :client_id, :tok) IS NOT NULL AS ok \gset
\if NOT :ok
SELECT 1 / 0;
\endif
EOF
cat >"$S/pl_heartbeat.sql" <<EOF
\\set tok $pl_case
SELECT plpgsql_lease.heartbeat('hb-' || :client_id, :tok);
EOF
# Acquire of a released lease, then its release: two transactions per pgbench
# transaction; -r splits the time between the two statements.
cat >"$S/ext_pair.sql" <<'EOF'
SELECT token FROM singleton_acquire('ar-' || :client_id, '1 hour', 'bench-ar-' || :client_id) \gset
SELECT singleton_release('ar-' || :client_id, :token);
EOF
cat >"$S/pl_pair.sql" <<'EOF'
SELECT token FROM plpgsql_lease.acquire('ar-' || :client_id, '1 hour', 'bench-ar-' || :client_id) \gset
SELECT plpgsql_lease.release('ar-' || :client_id, :token);
EOF
cat >"$S/ext_renew.sql" <<'EOF'
SELECT * FROM singleton_acquire('rn-' || :client_id, '1 day', 'bench-rn-' || :client_id);
EOF
# The same acquire and acquire+release with singleton_lock.notify = off (set with
# PGOPTIONS for these scripts only): PostgreSQL serializes the commits of
# NOTIFYing transactions (a database-wide lock held through the WAL flush).
cp "$S/ext_acquire.sql" "$S/ext_acquire_nonotify.sql"
cp "$S/ext_pair.sql" "$S/ext_pair_nonotify.sql"
cat >"$S/pl_renew.sql" <<'EOF'
SELECT * FROM plpgsql_lease.acquire('rn-' || :client_id, '1 day', 'bench-rn-' || :client_id);
EOF

# pgbench SCRIPT CLIENTS ROUND: records tps, per-statement latencies (ms) and
# failures under the key SCRIPT.cCLIENTS.rROUND.
bench() {
  local script="$1" c="$2" r="$3"
  local j=$((c < 2 ? c : 2)) key="$script.c$c.r$r" outf="$WORK/$script.c$c.r$r.out"
  local opts="${PGOPTIONS:-}"
  local defs=()
  case "$script" in *_nonotify) opts="$opts -c singleton_lock.notify=off" ;; esac
  case "$script" in *_bound) defs=(-D tok=0) ;; esac
  if ! PGOPTIONS="$opts" pgbench -n -M prepared -r -T "$DUR" -c "$c" -j "$j" "${defs[@]}" -f "$S/$script.sql" \
      >"$outf" 2>"$outf.err"; then
    log "pgbench $script -c $c failed:"; tail -n 20 "$outf.err" >&2; exit 1
  fi
  local tps lat failed
  tps=$(awk '/^tps = / {print $3; exit}' "$outf")
  failed=$(awk '/^number of failed transactions:/ {print $5; exit}' "$outf")
  lat=$(awk '/^statement latencies/ {on=1; next} on && NF >= 3 && $1 ~ /^[0-9.]+$/ {printf "%s%s", sep, $1; sep=" "}' "$outf")
  put "$key.tps" "$tps"; put "$key.lat" "$lat"; put "$key.failed" "${failed:-0}"
  log "$(printf '%-14s c=%-2s r=%s %10s tps  stmt ms: %s' "$script" "$c" "$r" "$tps" "$lat")"
}

reversed() { echo "$@" | tr ' ' '\n' | tac | tr '\n' ' '; }

# --- 1. throughput ------------------------------------------------------------
# The machine is noisy (the cost of an fsync varies several-fold within
# minutes), so every script runs ROUNDS times, interleaved (odd rounds in one
# order, even rounds in reverse); ratios are computed within a round and the
# report gives their median.
SCRIPTS="select1 update update_notify ext_acquire pl_acquire ext_heartbeat ext_heartbeat_bound pl_heartbeat update2 ext_pair pl_pair ext_renew pl_renew"
# (the GUC exists once the library is loaded: no shared_preload_libraries here)
if q -c "LOAD 'singleton_lock'" -c "SHOW singleton_lock.notify" >/dev/null 2>&1 \
   && [ "$(PGOPTIONS='-c singleton_lock.notify=off' q -c "LOAD 'singleton_lock'" -c 'SHOW singleton_lock.notify')" = off ]; then
  # each next to its default-on twin, so that the within-round ratios share the same fsync weather
  SCRIPTS="${SCRIPTS/ext_acquire /ext_acquire ext_acquire_nonotify }"
  SCRIPTS="${SCRIPTS/ext_pair /ext_pair ext_pair_nonotify }"
  put notify_guc on
else
  log "singleton_lock.notify is not installed: no notify=off rows"
  put notify_guc missing
fi
put scripts "$SCRIPTS"
put clients "$CLIENTS"
put rounds "$ROUNDS"
for c in $CLIENTS; do
  q -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
  for ((r = 1; r <= ROUNDS; r++)); do
    order="$SCRIPTS"
    [ $((r % 2)) = 0 ] && order="$(reversed $SCRIPTS)"
    for s in $order; do bench "$s" "$c" "$r"; done
  done
done
# Sanity: the heartbeat leases were renewed, never lost.
put check.hb_lost "$(q -c "SELECT count(*) FROM singleton_leases WHERE name LIKE 'hb-%' AND state <> 'held'")"
put check.aq_transitions "$(q -c "SELECT COALESCE(sum(transitions), 0) FROM singleton_leases WHERE name LIKE 'aq-%'")"

# --- 1a. the same statements after idle time -----------------------------------
# A handover comes after idle time, and on a virtual machine a statement sent
# after a pause costs more than one sent back-to-back (a halted vCPU, cold caches,
# an idle disk). One client, pgbench -r's average per statement (the \sleep apart).
for s in select1 update; do
  { printf '\\sleep %s ms\n' "$IDLE_MS"; cat "$S/$s.sql"; } >"$S/${s}_idle.sql"
done
put idle.ms "$IDLE_MS"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in select1_idle update_idle; do bench "$s" 1 "$r"; done
done

# --- 1b. CPU cost per call, synchronous_commit = off ----------------------------
# With fsync on, a durable commit's WAL flush dominates every call of both the
# extension and the PL/pgSQL version, so their rates say little about the work
# each does. Here each script runs with synchronous_commit = off, and the server
# with fsync = off for this part only (the extension forces a durable commit for
# every new tenure whatever synchronous_commit says; with fsync off that commit
# still writes its WAL, but the flush no longer turns the comparison into one of
# waiting). The CPU time of the whole server (every process of this postmaster,
# reaped backends included through its cutime/cstime) is read from /proc before
# and after; an idle interval of the same length, measured in the same round,
# is subtracted. One client; per call = CPU / transactions.
PM_PID=$(head -n1 "$(q -c 'SHOW data_directory')/postmaster.pid")
TCK=$(getconf CLK_TCK)
server_ticks() {  # utime+stime of the postmaster's children and itself (+ its reaped children)
  local total=0 line f
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    set -- ${line##*) }  # from field 3 on: $2 ppid, $12 utime, $13 stime
    [ "$2" = "$PM_PID" ] && total=$((total + ${12} + ${13}))
  done
  read -r line <"/proc/$PM_PID/stat"
  set -- ${line##*) }  # $14, $15: cutime, cstime (reaped backends)
  echo $((total + ${12} + ${13} + ${14} + ${15}))
}
cpu_run() {  # SCRIPT ROUND: records ticks and transactions under cpu.SCRIPT.rROUND
  local script="$1" r="$2" before after n outf="$WORK/cpu.$1.r$2.out"
  before=$(server_ticks)
  if [ "$script" = idle ]; then
    sleep "$DUR"; n=1
  else
    local defs=()
    case "$script" in *_bound) defs=(-D tok=0) ;; esac
    PGOPTIONS="-c synchronous_commit=off" pgbench -n -M prepared -T "$DUR" -c 1 -j 1 "${defs[@]}" \
      -f "$S/$script.sql" >"$outf" 2>"$outf.err" || { log "pgbench $script (cpu) failed"; tail "$outf.err" >&2; exit 1; }
    n=$(awk '/^number of transactions actually processed:/ {print $6; exit}' "$outf")
    n=${n%%/*}
  fi
  sleep 0.3  # the backend exits and is reaped: its CPU moves to the postmaster's cutime
  after=$(server_ticks)
  put "cpu.$script.r$r" "$((after - before)) $n"
  log "$(printf 'cpu %-20s r=%s %6s ticks %8s calls' "$script" "$r" "$((after - before))" "$n")"
}
CPU_SCRIPTS="idle select1 update ext_acquire pl_acquire ext_heartbeat pl_heartbeat ext_heartbeat_bound ext_pair pl_pair"
put cpu.scripts "$CPU_SCRIPTS"
put cpu.rounds "$CPU_ROUNDS"
put cpu.tck "$TCK"
q -c "ALTER SYSTEM SET fsync = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
for ((r = 1; r <= CPU_ROUNDS; r++)); do
  order="$CPU_SCRIPTS"
  [ $((r % 2)) = 0 ] && order="$(reversed $CPU_SCRIPTS)"
  for s in $order; do cpu_run "$s" "$r"; done
done
q -c "ALTER SYSTEM RESET fsync" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
[ "$(q -c 'SHOW fsync')" = on ] || { log "fsync did not come back on"; exit 1; }

# --- 2. acquire latency: 1 name vs 1,000,000 names ----------------------------
# Two databases of the same server, one whose lease table holds 1 row and one
# with 1,000,000 rows, measured in alternation (ROUNDS rounds). One client, new
# tenure every call (ttl 1 us), per-transaction latencies from pgbench -l,
# with bind_session off (see latency_run).
# "fixed": always the same name; "random": a random one of the 1M names.
# The baseline, in the same databases: a bare UPDATE of a plain table of the
# same names (same fillfactor as the lease table), to tell what the table's
# size costs PostgreSQL itself (a random row is on a page not yet written
# since the checkpoint: its full-page image goes into the WAL) from what it
# costs the extension. WAL bytes per call are recorded for both.
echo "SELECT * FROM singleton_acquire('bulk-1', '1 microsecond', 'bench-scale');" >"$S/scale_fixed.sql"
printf '%s\n' '\set id random(1, 1000000)' \
  "SELECT * FROM singleton_acquire('bulk-' || :id, '1 microsecond', 'bench-scale');" >"$S/scale_random.sql"
PLAIN_SET="SET token = token + 1, holder = 'bench-scale', expires_at = clock_timestamp()"
echo "UPDATE bench_plain $PLAIN_SET WHERE name = 'bulk-1';" >"$S/plain_fixed.sql"
printf '%s\n' '\set id random(1, 1000000)' \
  "UPDATE bench_plain $PLAIN_SET WHERE name = 'bulk-' || :id;" >"$S/plain_random.sql"
log "acquire latency: populating a database with 1,000,000 lease names"
for db in bench_one bench_million; do
  q -c "CREATE DATABASE $db" >/dev/null
  q -d "$db" -c "CREATE EXTENSION singleton_lock" >/dev/null
done
FILLFACTOR="$(q -d bench_one -c "SELECT coalesce((SELECT substr(o, 12) FROM unnest(reloptions) o
  WHERE o LIKE 'fillfactor=%'), '100') FROM pg_class WHERE relname = 'singleton_lock_leases'")"
for db in bench_one bench_million; do
  q -d "$db" -c "CREATE TABLE bench_plain (name text PRIMARY KEY, holder text,
    token bigint NOT NULL DEFAULT 0, expires_at timestamptz) WITH (fillfactor = $FILLFACTOR)" >/dev/null
done
for t in singleton_lock_leases bench_plain; do
  q -d bench_one -c "INSERT INTO $t (name) VALUES ('bulk-1')" -c "VACUUM ANALYZE $t" >/dev/null
  q -d bench_million \
    -c "INSERT INTO $t (name) SELECT 'bulk-' || g FROM generate_series(1, 1000000) g" \
    -c "VACUUM ANALYZE $t" >/dev/null
done
put scale.fillfactor "$FILLFACTOR"
put scale.rows1 "$(q -d bench_one -c 'SELECT count(*) FROM singleton_lock_leases')"
put scale.rowsM "$(q -d bench_million -c 'SELECT count(*) FROM singleton_lock_leases')"
put scale.size "$(q -d bench_million -c "SELECT pg_size_pretty(pg_table_size('singleton_lock_leases')) || ' heap, ' || pg_size_pretty(pg_indexes_size('singleton_lock_leases')) || ' index'")"
put scale.plan "$(q -d bench_million -c "EXPLAIN (COSTS OFF) SELECT * FROM singleton_lock_leases WHERE name = 'bulk-77' FOR UPDATE" | tr '\n' ' ' | tr -s ' ')"

latency_run() {  # NAME DATABASE SCRIPT ROUND
  local name="$1" db="$2" script="$3" r="$4" dir="$WORK/lat-$1.r$4"
  mkdir -p "$dir"
  q -c "CHECKPOINT" >/dev/null
  local lsn0; lsn0="$(q -c "SELECT pg_current_wal_lsn()")"
  # bind_session off: one session takes 1,000,000 different leases here, and a
  # session may be bound to at most singleton_lock.max_bound_leases (100) of them;
  # the same setting for the 1-name runs, so the two compare like for like.
  (cd "$dir" && PGOPTIONS="-c singleton_lock.bind_session=off" PGDATABASE="$db" \
      pgbench -n -M prepared -T "$DUR" -c 1 -j 1 -l --log-prefix=lat \
      -f "$S/$script.sql" >"$dir/out" 2>"$dir/err") \
    || { log "pgbench $name failed"; cat "$dir/err" >&2; exit 1; }
  awk '{print $3}' "$dir"/lat.* >"$dir/us"
  local calls; calls=$(wc -l <"$dir/us")
  put "scale.$name.r$r" "$dir/us"
  put "scale.$name.wal.r$r" "$(q -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') / $calls)")"
  log "scale $name r=$r: $calls calls, avg $(awk '{s += $1} END {printf "%.0f", s / NR}' "$dir/us") us"
}
SCALE_RUNS="one:bench_one:scale_fixed million_fixed:bench_million:scale_fixed million_random:bench_million:scale_random
  plain_one:bench_one:plain_fixed plain_million_fixed:bench_million:plain_fixed
  plain_million_random:bench_million:plain_random"
for ((r = 1; r <= ROUNDS; r++)); do
  order="$SCALE_RUNS"
  [ $((r % 2)) = 0 ] && order="$(reversed $SCALE_RUNS)"
  for run in $order; do
    IFS=: read -r name db script <<<"$run"
    latency_run "$name" "$db" "$script" "$r"
  done
done

# --- 3. release committed -> waiting acquire returns ---------------------------
log "wake-up latency ($WAKE_N iterations; restarting with track_commit_timestamp = on)"
g++ -std=c++17 -O2 -o "$WORK/wake_latency" "$HERE/wake_latency.cpp" \
  -I"$(pg_config --includedir)" -L"$(pg_config --libdir)" -lpq
q -c "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
"$ROOT/test/pgserver.sh" restart fast >/dev/null
"$WORK/wake_latency" "$WAKE_N" >"$WORK/wake.csv"
put wake.csv "$WORK/wake.csv"

"$ROOT/test/pgserver.sh" stop >/dev/null
put time.sql "$((SECONDS - T_START))"
put machine.load_mid "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- 4. handover with real processes (its own fresh server, same port) -----------
log "handover benchmark (test/bench/handover.sh)"
T_HO=$SECONDS
"$HERE/handover.sh" "$RES"
put time.handover "$((SECONDS - T_HO))"
put time.total "$((SECONDS - T_START))"
put machine.load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- report --------------------------------------------------------------------
python3 "$HERE/report.py" "$RES" "$OUT" "$MD" "$HERE/out"
if command -v gnuplot >/dev/null && [ -f "$HERE/out/handover.gp" ]; then
  if (cd "$HERE/out" && gnuplot handover.gp); then
    mkdir -p "$ROOT/docs" && cp "$HERE/out/handover.png" "$ROOT/docs/handover.png"
  else
    log "gnuplot failed; no plot"
  fi
fi
log "written: $OUT, $MD ($((SECONDS - T_START)) s in all)"
