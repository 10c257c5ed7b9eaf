#!/usr/bin/env bash
# `make bench`, SQL API part: throughput of singleton_acquire / heartbeat / release
# against the round-trip floor, the cheapest durable write and a PL/pgSQL version
# of the same contract; acquire latency with 1,000,000 names vs 1; release ->
# waiting-acquire wake-up latency on the server clock.
#
#   test/bench/run.sh          writes Markdown to $BENCH_OUT (default test/bench/out/sql.md)
#
# Settings (environment): BENCH_DURATION (s per pgbench run, default 8),
# BENCH_CLIENTS (default "1 8"), BENCH_WAKE_ITERATIONS (default 150),
# BENCH_SKIP_INSTALL=1 (do not run `make install` first), SL_PGPORT (default 54350).
# Runs its own throwaway PostgreSQL (test/pgserver.sh), fsync on, and removes it.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DUR="${BENCH_DURATION:-8}"
CLIENTS="${BENCH_CLIENTS:-1 8}"
WAKE_N="${BENCH_WAKE_ITERATIONS:-150}"
OUT="${BENCH_OUT:-$HERE/out/sql.md}"
export SL_PGPORT="${SL_PGPORT:-54350}"
export SL_PG_FSYNC=on
WORK="$(mktemp -d /tmp/sl_bench.XXXXXX)"
chmod 755 "$WORK"
RES="$WORK/results.txt"   # key=value lines, read by report.py
: >"$RES"
mkdir -p "$(dirname "$OUT")"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }

cleanup() {
  "$ROOT/test/pgserver.sh" stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
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
cat >"$S/pl_renew.sql" <<'EOF'
SELECT * FROM plpgsql_lease.acquire('rn-' || :client_id, '1 day', 'bench-rn-' || :client_id);
EOF

# pgbench SCRIPT CLIENTS [extra options...]: records tps, per-statement latencies
# (ms) and failures under the key SCRIPT.cCLIENTS.
bench() {
  local script="$1" c="$2"; shift 2
  local j=$((c < 2 ? c : 2)) key="$script.c$c" outf="$WORK/$script.c$c.out"
  if ! pgbench -n -M prepared -r -T "$DUR" -c "$c" -j "$j" "$@" -f "$S/$script.sql" \
      >"$outf" 2>"$outf.err"; then
    log "pgbench $script -c $c failed:"; tail -n 20 "$outf.err" >&2; exit 1
  fi
  local tps lat failed
  tps=$(awk '/^tps = / {print $3; exit}' "$outf")
  failed=$(awk '/^number of failed transactions:/ {print $5; exit}' "$outf")
  lat=$(awk '/^statement latencies/ {on=1; next} on && NF >= 3 && $1 ~ /^[0-9.]+$/ {printf "%s%s", sep, $1; sep=" "}' "$outf")
  put "$key.tps" "$tps"; put "$key.lat" "$lat"; put "$key.failed" "${failed:-0}"
  log "$(printf '%-14s c=%-2s %10s tps  stmt ms: %s' "$script" "$c" "$tps" "$lat")"
}

# --- 1. throughput ------------------------------------------------------------
SCRIPTS="select1 update ext_acquire pl_acquire ext_heartbeat pl_heartbeat update2 ext_pair pl_pair ext_renew pl_renew"
put scripts "$SCRIPTS"
put clients "$CLIENTS"
for c in $CLIENTS; do
  q -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
  for s in $SCRIPTS; do bench "$s" "$c"; done
done
# Sanity: the heartbeat leases were renewed, never lost, and tokens kept growing.
put check.hb_lost "$(q -c "SELECT count(*) FROM singleton_leases WHERE name LIKE 'hb-%' AND state <> 'held'")"
put check.aq_transitions "$(q -c "SELECT COALESCE(sum(transitions), 0) FROM singleton_leases WHERE name LIKE 'aq-%'")"

# --- 2. acquire latency: 1 name vs 1,000,000 names ----------------------------
# One client, new tenure every call (ttl 1 us), per-transaction latencies from
# pgbench -l. "fixed": always the same name; "random": a random one of the 1M.
cat >"$S/scale_fixed.sql" <<'EOF'
SELECT * FROM singleton_acquire('bulk-1', '1 microsecond', 'bench-scale');
EOF
cat >"$S/scale_random.sql" <<'EOF'
\set id random(1, 1000000)
SELECT * FROM singleton_acquire('bulk-' || :id, '1 microsecond', 'bench-scale');
EOF
latency_run() {  # NAME SCRIPT
  local name="$1" script="$2" dir="$WORK/lat-$1"
  mkdir -p "$dir"
  q -c "CHECKPOINT" >/dev/null
  (cd "$dir" && pgbench -n -M prepared -T "$DUR" -c 1 -j 1 -l --log-prefix=lat \
      -f "$S/$script.sql" >"$dir/out" 2>"$dir/err") || { log "pgbench $name failed"; cat "$dir/err" >&2; exit 1; }
  local stats
  stats=$(cat "$dir"/lat* | awk '{print $3}' | sort -n | awk '
    {v[NR] = $1; s += $1}
    END {i = int(NR * 0.99 + 0.999999); if (i > NR) i = NR; i50 = int(NR * 0.5 + 0.999999);
         printf "%d %.1f %d %d", NR, s / NR, v[i50], v[i]}')
  put "scale.$name" "$stats"
  log "scale $name: n avg_us p50_us p99_us = $stats"
}
log "acquire latency, 1 name"
q >/dev/null <<'SQL'
TRUNCATE singleton_lock_leases;
INSERT INTO singleton_lock_leases (name) VALUES ('bulk-1');
VACUUM ANALYZE singleton_lock_leases;
SQL
put scale.rows1 "$(q -c 'SELECT count(*) FROM singleton_lock_leases')"
latency_run one scale_fixed
log "populating 1,000,000 lease names"
q >/dev/null <<'SQL'
INSERT INTO singleton_lock_leases (name) SELECT 'bulk-' || g FROM generate_series(2, 1000000) g;
VACUUM ANALYZE singleton_lock_leases;
SQL
put scale.rowsM "$(q -c 'SELECT count(*) FROM singleton_lock_leases')"
put scale.size "$(q -c "SELECT pg_size_pretty(pg_table_size('singleton_lock_leases')) || ' heap+toast, ' || pg_size_pretty(pg_indexes_size('singleton_lock_leases')) || ' index'")"
latency_run million_fixed scale_fixed
latency_run million_random scale_random
q -c "SELECT pg_prewarm('singleton_lock_leases')" >/dev/null 2>&1 || true
put scale.plan "$(q -c "EXPLAIN (COSTS OFF) SELECT * FROM singleton_lock_leases WHERE name = 'bulk-77' FOR UPDATE" | tr '\n' ';')"
# Back to 1 name, to see whether the difference is the table size or drift.
q >/dev/null <<'SQL'
TRUNCATE singleton_lock_leases;
INSERT INTO singleton_lock_leases (name) VALUES ('bulk-1');
VACUUM ANALYZE singleton_lock_leases;
SQL
latency_run one_again scale_fixed

# --- 3. release committed -> waiting acquire returns ---------------------------
log "wake-up latency ($WAKE_N iterations; restarting with track_commit_timestamp = on)"
g++ -std=c++17 -O2 -o "$WORK/wake_latency" "$HERE/wake_latency.cpp" \
  -I"$(pg_config --includedir)" -L"$(pg_config --libdir)" -lpq
q -c "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
"$ROOT/test/pgserver.sh" restart fast >/dev/null
"$WORK/wake_latency" "$WAKE_N" >"$WORK/wake.csv"
put wake.csv "$WORK/wake.csv"

# --- report --------------------------------------------------------------------
python3 "$HERE/report.py" "$RES" "$OUT"
log "written: $OUT"
cat "$OUT"
