#!/usr/bin/env bash
# Runs a command with the test environment ready: the pinned tools installed and on PATH, and a
# PostgreSQL reachable at 127.0.0.1:5432 (started by scripts/postgres.sh where none runs), and
# headless Chromium and poppler-utils for the report tests (scripts/browser.sh installs them).
# S3 servers (versitygw, MinIO) are started by the tests themselves, on loopback, per package.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$("$here/tools.sh" | tail -n 1)
export PATH="$bin:$PATH"
if [ -x "$here/postgres.sh" ]; then
  "$here/postgres.sh" >&2
fi
"$here/browser.sh" >&2
exec "$@"
