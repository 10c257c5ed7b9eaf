#!/usr/bin/env bash
# The Python library's and examples/python/bot.py's tests against the server in
# the PG* environment (test/run_all.sh starts it and sets SL_IT_RESTART).
exec "$(dirname "$0")/pytest_no_skips.sh" test/python "$@"
