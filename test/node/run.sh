#!/usr/bin/env bash
# examples/node/worker.js's tests: installs the pinned `pg` (npm ci, from
# examples/node/package-lock.json) into examples/node/node_modules, then runs
# the scenarios shared with the Python bot against the server in the PG* environment.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
node --version
(cd "$ROOT/examples/node" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
exec "$ROOT/test/python/pytest_no_skips.sh" test/node "$@"
