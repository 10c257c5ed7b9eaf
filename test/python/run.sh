#!/usr/bin/env bash
# The Python library's and examples/python/bot.py's tests (pytest, Debian's
# /usr/bin/python3) against the server in the PG* environment. A skipped test
# fails the suite: under `make test` every prerequisite is there.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
out=$(cd "$ROOT" && /usr/bin/python3 -m pytest -s -rs -p no:cacheprovider test/python "$@" 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || exit $rc
if echo "$out" | grep -Eq '^[0-9]+ passed.* skipped|SKIPPED'; then
  echo "a test was skipped" >&2; exit 1
fi
