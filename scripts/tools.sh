#!/usr/bin/env bash
# Installs the project's pinned developer and test tools, building each from source with
# `go install` once and reusing the cached binary afterwards. The cache lives outside the work tree
# (PECARCHIVE_TOOLS, default ~/.cache/pecarchive/tools) so fresh clones on the same machine reuse it.
#   scripts/tools.sh              install everything
#   scripts/tools.sh buf minio    install only the named tools
#   scripts/tools.sh --print-dir  print the bin directory and exit
# Prints the bin directory on its last line.
set -euo pipefail
bin="${PECARCHIVE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pecarchive/tools}/bin"
if [ "${1:-}" = "--print-dir" ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"
export GOBIN="$bin"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# name  module@version  (the version is part of the cache stamp, so bumping it reinstalls)
declare -A pkg=(
  [buf]="github.com/bufbuild/buf/cmd/buf@v1.75.0"
  [protoc-gen-go]="google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  [protoc-gen-go-grpc]="google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
  [versitygw]="github.com/versity/versitygw/cmd/versitygw@v1.8.0"
  [minio]="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
)
order=(buf protoc-gen-go protoc-gen-go-grpc versitygw minio)
want=("$@")
[ ${#want[@]} -eq 0 ] && want=("${order[@]}")

# One installer at a time per cache (parallel test packages and CI steps may all call this).
exec 9>"$bin/.lock"
flock 9

for name in "${want[@]}"; do
  spec=${pkg[$name]:?unknown tool $name}
  stamp="$bin/.$name.version"
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$spec" ]; then
    continue
  fi
  echo "tools: installing $spec" >&2
  start=$(date +%s)
  (cd /tmp && go install "$spec")
  echo "$spec" >"$stamp"
  echo "tools: $name ready in $(( $(date +%s) - start ))s" >&2
done
echo "$bin"
