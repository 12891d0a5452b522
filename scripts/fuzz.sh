#!/usr/bin/env bash
# Runs every Fuzz* target of every package for a short time (default 3s each), one at a time
# (go test -fuzz accepts one target per run). Prints one line per target and fails on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-3s}
n=0
for pkg in $(go list ./...); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for t in $targets; do
    echo "fuzz: $pkg $t ($fuzztime)"
    go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s "$pkg" >/tmp/pecarchive-fuzz.$$ 2>&1 || {
      cat /tmp/pecarchive-fuzz.$$; rm -f /tmp/pecarchive-fuzz.$$; echo "fuzz: $t FAILED"; exit 1; }
    tail -n 1 /tmp/pecarchive-fuzz.$$
    n=$((n+1))
  done
done
rm -f /tmp/pecarchive-fuzz.$$
echo "fuzz: $n targets ran without crashes"
