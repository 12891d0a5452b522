#!/usr/bin/env bash
# Protobuf workflow for proto/ (buf.yaml, buf.gen.yaml at the repository root).
#   scripts/proto.sh generate   regenerate gen/ with buf and the pinned local plugins
#   scripts/proto.sh check      buf lint; regenerate into a temporary directory and fail when the
#                               committed gen/ differs (stale or hand-edited generated code); then
#                               buf breaking against the previous commit's protos (HEAD~1), so a
#                               change that breaks a client of either API fails make test (a
#                               shallow clone fetches HEAD~1 first, and fails when it cannot;
#                               PECARCHIVE_SKIP_BREAKING=1 skips that check, saying so)
#   scripts/proto.sh breaking [REF]
#                               buf breaking against a git ref (default: HEAD) of this repository
# The tools (buf, protoc-gen-go, protoc-gen-go-grpc) are installed by scripts/tools.sh, which
# builds them once and reuses the cached binaries; they are put first on PATH so the plugin
# versions are the pinned ones, whatever else is installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

usage() { echo "usage: scripts/proto.sh generate|check|breaking [REF]" >&2; exit 2; }
[ $# -ge 1 ] || usage

bin=$("$here/tools.sh" buf protoc-gen-go protoc-gen-go-grpc | tail -n 1)
export PATH="$bin:$PATH"
# buf keeps a cache (module downloads, none needed here); keep it out of the work tree.
export BUF_CACHE_DIR="${BUF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pecarchive/buf}"

case "$1" in
generate)
  buf generate
  ;;
check)
  buf lint
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  buf generate --output "$tmp/out"
  if ! diff -r -u gen "$tmp/out/gen" >"$tmp/diff" 2>&1; then
    cat "$tmp/diff" >&2
    rm -f "$tmp/diff"
    echo "proto: gen/ is stale; run scripts/proto.sh generate and commit the result" >&2
    exit 1
  fi
  rm -f "$tmp/diff"
  echo "proto: lint clean, gen/ up to date"
  # The work tree (uncommitted changes included) against the previous commit. A shallow clone
  # (CI's often are) fetches that one commit first. One that still lacks it fails: a check that
  # did not run must not pass; PECARCHIVE_SKIP_BREAKING=1 skips it on purpose, saying so. Only a
  # first commit has nothing to compare with.
  has_parent() { git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null; }
  shallow() { [ "$(git rev-parse --is-shallow-repository)" = true ]; }
  if ! has_parent && shallow; then
    echo "proto: shallow clone: fetching the previous commit for the breaking check" >&2
    git fetch -q --deepen=1 >&2 || true
  fi
  if has_parent; then
    buf breaking --against ".git#ref=HEAD~1"
    echo "proto: no breaking change since HEAD~1"
  elif [ "${PECARCHIVE_SKIP_BREAKING:-}" = 1 ]; then
    echo "proto: breaking check SKIPPED (PECARCHIVE_SKIP_BREAKING=1)" >&2
  elif shallow; then
    echo "proto: this shallow clone lacks the previous commit and could not fetch it, so the breaking check cannot run:" \
      "run git fetch --deepen=1 (or clone without --depth), or set PECARCHIVE_SKIP_BREAKING=1 to skip it" >&2
    exit 1
  else
    echo "proto: HEAD is the first commit: no previous protos to check against"
  fi
  ;;
breaking)
  ref=${2:-HEAD}
  buf breaking --against ".git#ref=$ref"
  ;;
*)
  usage
  ;;
esac
