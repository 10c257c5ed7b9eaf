#!/usr/bin/env bash
# Failover with a real Patroni cluster (Debian patroni + etcd-server, loopback):
#   test/scenarios/failover_patroni.sh
# etcd and two PostgreSQL members run by Patroni; three `singleton-lock run`
# instances with a multi-host DSN; `patronictl switchover`, then kill -9 of the
# primary's postmaster. Checks and figures: test/scenarios/failover/patroni.py.
# Needs the extension installed (make install), the client built
# (test/build_client.sh), and the Debian packages patroni, etcd-server,
# etcd-client and python3-psycopg.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
for tool in patroni patronictl etcd etcdctl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (test/install_deps.sh)" >&2; exit 1; }
done
exec /usr/bin/python3 "$HERE/failover/patroni.py"
