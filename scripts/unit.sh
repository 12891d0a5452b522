#!/usr/bin/env bash
# Runs every package's tests once (no cache) and closes with "unit: N passed, N failed", counting
# packages. Extra arguments go to go test.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -count=1 -timeout 20m "$@" ./... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -c '^ok ' "$log" || true)
failed=$(grep -cP '^FAIL\t' "$log" || true)
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "unit: $passed passed, $failed failed"
exit "$rc"
