#!/usr/bin/env bash
# Failover under plain streaming replication (loopback, throwaway servers):
#   test/scenarios/failover_streaming.sh async|sync
# A primary and a hot standby, three `singleton-lock run` instances with a
# multi-host DSN writing to a fenced ledger; the primary crashes, the standby is
# promoted; checks and figures are described in test/scenarios/failover/streaming.py.
# Needs the extension installed (make install), the client built
# (test/build_client.sh) and Debian's python3-psycopg.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
case "${1:-}" in
  async|sync) ;;
  *) echo "usage: $0 async|sync" >&2; exit 2 ;;
esac
exec /usr/bin/python3 "$HERE/failover/streaming.py" "$1"
