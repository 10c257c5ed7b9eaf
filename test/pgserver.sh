#!/usr/bin/env bash
# Throwaway PostgreSQL cluster (the major pg_config names: 15, 17 or 18) for
# tests, demos and benchmarks.
#
#   test/pgserver.sh start    initdb (if needed) + start; prints the env to use
#                             (on failure `false`, so that the caller's
#                             eval "$(test/pgserver.sh start)" fails rather than
#                             going on with the server its environment names;
#                             the reason goes to stderr)
#   test/pgserver.sh stop     stop and delete the cluster
#   test/pgserver.sh restart [fast|immediate]
#   test/pgserver.sh env      print PGHOST/PGPORT/PGUSER/PGDATABASE exports
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` system user (created by the postgresql-common package).
# Settings: SL_PGPORT (default 25329), SL_PGDIR (default /tmp/singleton_lock_pg.$SL_PGPORT),
# SL_PG_FSYNC (on|off, default on), SL_PG_TLS (1: TLS on, with a self-signed
# certificate made at initdb; clients choose it with sslmode=require).
set -euo pipefail

# The default and every scenario's port lie below the kernel's ephemeral range
# (32768-60999 by default), so no outgoing connection can be holding them.
PORT="${SL_PGPORT:-25329}"
DIR="${SL_PGDIR:-/tmp/singleton_lock_pg.$PORT}"
SOCKDIR=/tmp

# The server binaries of the major the extension is built for; else the newest installed.
server_bindir() {
  local dir
  dir=$(pg_config --bindir 2>/dev/null) && [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  done
  echo "no PostgreSQL server found (initdb): install postgresql-NN or run ./bootstrap test" >&2
  exit 1
}
BINDIR=$(server_bindir) || { [ "${1:-}" = start ] && echo false; exit 1; }  # (as a failed start)

# As root the server's commands run as `postgres`, from a directory it can
# read (the caller's may be under /root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

owner_name() {
  if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

print_env() {
  echo "export PGHOST=$SOCKDIR PGPORT=$PORT PGUSER=$(owner_name) PGDATABASE=postgres"
}

# A self-signed certificate for the server (openssl: a dependency of the
# postgresql package, through ssl-cert), and ssl = on.
tls_on() {
  as_owner openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -keyout "$DIR/data/server.key" -out "$DIR/data/server.crt" >"$DIR/openssl.log" 2>&1 ||
    { echo "could not make a certificate: $(cat "$DIR/openssl.log")" >&2; return 1; }
  as_owner chmod 600 "$DIR/data/server.key"
  echo "ssl = on" >>"$DIR/data/postgresql.conf"
}

start() {
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
    as_owner "$BINDIR/initdb" -D "$DIR/data" -A trust -U "$(owner_name)" -E UTF8 \
      --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; echo false; exit 1; }
    cat >>"$DIR/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCKDIR'
fsync = ${SL_PG_FSYNC:-on}
max_connections = 200
shared_buffers = 256MB
max_locks_per_transaction = 256
log_min_messages = warning
tcp_keepalives_idle = 10
tcp_keepalives_interval = 5
tcp_keepalives_count = 3
EOF
    if [ "${SL_PG_TLS:-0}" = 1 ]; then tls_on || { echo false; exit 1; }; fi
  fi
  if ! as_owner "$BINDIR/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    pg_start || { echo false; exit 1; }
  fi
  print_env
}

# Starts the cluster; when it does not come up, the tail of its log goes to stderr.
pg_start() {
  as_owner "$BINDIR/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null && return
  echo "the server on port $PORT did not start; $DIR/server.log ends:" >&2
  tail -n 20 "$DIR/server.log" >&2
  return 1
}

stop() {
  if [ -f "$DIR/data/PG_VERSION" ]; then
    as_owner "$BINDIR/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$DIR"
}

restart() {
  local mode="${1:-fast}"
  as_owner "$BINDIR/pg_ctl" -D "$DIR/data" -m "$mode" -w stop >/dev/null 2>&1 || true
  pg_start
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) restart "${2:-fast}" ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|restart [fast|immediate]|env" >&2; exit 2 ;;
esac
