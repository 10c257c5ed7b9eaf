#!/usr/bin/env bash
# A rolling upgrade with priorities, three instances of two versions (v1-a and
# v1-b with priority 1, then v2 with priority 2): v2 leads as soon as it is
# ready, the v1 instances never take it back while it lives, one takes over
# when it stops; fenced ledger checked. See test/scenarios/rolling_upgrade.py.
# Needs a running server (PG* environment) with the extension installed
# (version 1.1), the built client (build/client) and Debian's python3-psycopg.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/rolling_upgrade.py"
