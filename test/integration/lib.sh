# shellcheck shell=bash
# Shared by run.sh and exclusion.sh (sourced, not run): psql, messages, a poll
# loop, and the check that the server of the PG* environment has the extension.
# Needs CASE set by the sourcing script, and its own fail().

PSQL=(psql -XAtq -v ON_ERROR_STOP=1)
info() { echo "[$CASE] $*"; }
now_ns() { date +%s%N; }

# wait_for SECONDS COMMAND...: poll every 10 ms until COMMAND succeeds.
wait_for() {
    local limit=$(( $(now_ns) + $1 * 1000000000 )); shift
    until "$@"; do
        [ "$(now_ns)" -gt "$limit" ] && return 1
        sleep 0.01
    done
}

# Exit 77 (skipped) when no server answers; create the extension if missing
# (retried: parallel tests create it at once); fail when it is not available.
require_extension() {
    if ! "${PSQL[@]}" -c 'SELECT 1' >/dev/null 2>&1; then
        echo "SKIP: no PostgreSQL server answers with the PG* environment (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-})"
        exit 77
    fi
    for _ in 1 2 3; do
        "${PSQL[@]}" -c 'CREATE EXTENSION IF NOT EXISTS singleton_lock' >/dev/null 2>&1 && break
        sleep 0.2
    done
    "${PSQL[@]}" -c "SELECT 'singleton_acquire'::regproc" >/dev/null 2>&1 ||
        fail "extension singleton_lock is not available (make install; CREATE EXTENSION singleton_lock)"
}
