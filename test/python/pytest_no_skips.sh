#!/usr/bin/env bash
# pytest_no_skips.sh DIR [PYTEST ARGS]: Debian's pytest (/usr/bin/python3) on
# DIR; a skipped test fails the run: under `make test` every prerequisite is there.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$1"; shift
out=$(cd "$ROOT" && /usr/bin/python3 -m pytest -s -rs -p no:cacheprovider "$dir" "$@" 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || exit $rc
if echo "$out" | grep -Eq 'SKIPPED|[0-9]+ skipped'; then
  echo "a test was skipped" >&2; exit 1
fi
