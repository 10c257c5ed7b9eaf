#!/usr/bin/env bash
# Prints the extension's default_version from extension/singleton_lock.control:
# the one place the project's version is written.
set -euo pipefail
sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$(dirname "$0")/../../extension/singleton_lock.control"
