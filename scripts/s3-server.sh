#!/usr/bin/env bash
# Starts a local S3 server (versitygw or MinIO) in the background for development and for
# `pecarchive bench archive`, listening on 127.0.0.1 only, storing everything under DIR.
#   scripts/s3-server.sh versitygw|minio DIR PORT   start (or report the one already running in DIR)
#   scripts/s3-server.sh stop DIR                    stop it (DIR and its data are kept)
# On start it prints KEY=VALUE lines to stdout:
#   S3_KIND S3_ENDPOINT (host:port, plain HTTP) S3_ACCESS_KEY S3_SECRET_KEY S3_REGION S3_PID
# so `eval "$(scripts/s3-server.sh versitygw /tmp/s3 9000)"` sets them. Keys are generated once
# per DIR (kept in DIR/credentials). The binaries come from scripts/tools.sh (built once, cached).
# Buckets are created by the client (pecarchive creates its bucket with Object Lock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() {
  echo "usage: $0 versitygw|minio DIR PORT | $0 stop DIR" >&2
  exit 2
}

# alive PID: the process exists and has not exited. A server whose starting shell is gone is
# reparented to PID 1, which in some containers never reaps it: kill -0 then still succeeds on
# the zombie, so its state is checked too.
alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo R)" != Z ]; }
running() { [ -f "$1/server.pid" ] && alive "$(cat "$1/server.pid")"; }

cmd=${1:-}
case "$cmd" in
stop)
  [ $# -eq 2 ] || usage
  dir=$2
  if running "$dir"; then
    pid=$(cat "$dir/server.pid")
    kill "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "s3-server: stopped $pid" >&2
  else
    echo "s3-server: nothing running in $dir" >&2
  fi
  rm -f "$dir/server.pid"
  exit 0
  ;;
versitygw | minio) ;;
*) usage ;;
esac
[ $# -eq 3 ] || usage
kind=$1 dir=$2 port=$3
case "$port" in '' | *[!0-9]*) usage ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ ! -f "$dir/credentials" ]; then
  umask 077
  {
    echo "S3_ACCESS_KEY=dev$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "S3_SECRET_KEY=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } >"$dir/credentials"
fi
# shellcheck disable=SC1091
. "$dir/credentials"
region=us-east-1
endpoint=127.0.0.1:$port

print() {
  echo "S3_KIND=$kind"
  echo "S3_ENDPOINT=$endpoint"
  echo "S3_ACCESS_KEY=$S3_ACCESS_KEY"
  echo "S3_SECRET_KEY=$S3_SECRET_KEY"
  echo "S3_REGION=$region"
  echo "S3_PID=$(cat "$dir/server.pid")"
}

if running "$dir"; then
  if [ "$(cat "$dir/server.kind" 2>/dev/null)" != "$kind" ] || [ "$(cat "$dir/server.endpoint" 2>/dev/null)" != "$endpoint" ]; then
    echo "s3-server: $dir already serves $(cat "$dir/server.kind" 2>/dev/null) on $(cat "$dir/server.endpoint" 2>/dev/null); stop it first" >&2
    exit 1
  fi
  print
  exit 0
fi

bin=$("$here/tools.sh" "$kind" | tail -n 1)
log=$dir/server.log
case "$kind" in
versitygw)
  mkdir -p "$dir/data" "$dir/versions"
  ROOT_ACCESS_KEY="$S3_ACCESS_KEY" ROOT_SECRET_KEY="$S3_SECRET_KEY" \
    nohup "$bin/versitygw" --region "$region" --port "$endpoint" --quiet --keep-alive \
    posix --versioning-dir "$dir/versions" "$dir/data" >"$log" 2>&1 </dev/null &
  ;;
minio)
  mkdir -p "$dir/data"
  MINIO_ROOT_USER="$S3_ACCESS_KEY" MINIO_ROOT_PASSWORD="$S3_SECRET_KEY" MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_REGION="$region" HOME="$dir" \
    nohup "$bin/minio" server --quiet --address "$endpoint" "$dir/data" >"$log" 2>&1 </dev/null &
  ;;
esac
pid=$!
echo "$pid" >"$dir/server.pid"
echo "$kind" >"$dir/server.kind"
echo "$endpoint" >"$dir/server.endpoint"

deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
  if ! alive "$pid"; then
    echo "s3-server: $kind exited; log $log:" >&2
    tail -n 20 "$log" >&2
    rm -f "$dir/server.pid"
    exit 1
  fi
  # Ready when a signed ListBuckets succeeds (MinIO's health probe says ready a bit too early).
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --aws-sigv4 "aws:amz:$region:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "http://$endpoint/" || true)
  if [ "$code" = 200 ]; then
    echo "s3-server: $kind ready on $endpoint (pid $pid, data $dir, log $log)" >&2
    print
    exit 0
  fi
  sleep 0.1
done
echo "s3-server: $kind not ready after 30s; log $log:" >&2
tail -n 20 "$log" >&2
kill "$pid" 2>/dev/null || true
rm -f "$dir/server.pid"
exit 1
