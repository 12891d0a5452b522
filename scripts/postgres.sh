#!/usr/bin/env bash
# Ensures a PostgreSQL server is reachable at 127.0.0.1:5432 (trust auth, user postgres, database
# "test"), as the tests expect. When one already answers, it only makes sure the database "test"
# exists. Otherwise it starts a throw-away cluster with the Debian binaries
# (/usr/lib/postgresql/*/bin: initdb + pg_ctl), run as user postgres via runuser when root,
# listening on loopback only. The cluster lives in $PECARCHIVE_PGDATA (default /tmp/pecarchive-pg).
#   scripts/postgres.sh          ensure running
#   scripts/postgres.sh --stop   stop the cluster this script started
set -euo pipefail
host=127.0.0.1
port=5432
data=${PECARCHIVE_PGDATA:-/tmp/pecarchive-pg}

bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
done
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null 2>&1; then
  bindir=$(dirname "$(command -v pg_ctl)")
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# ready prints nothing and succeeds when a server answers on host:port.
ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$host" -p "$port"
  elif [ -n "$bindir" ] && [ -x "$bindir/pg_isready" ]; then
    "$bindir/pg_isready" -q -h "$host" -p "$port"
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

psql_cmd() {
  if command -v psql >/dev/null 2>&1; then
    psql "$@"
  elif [ -n "$bindir" ] && [ -x "$bindir/psql" ]; then
    "$bindir/psql" "$@"
  else
    return 127
  fi
}

ensure_test_db() {
  local exists
  exists=$(psql_cmd -h "$host" -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null || true)
  if [ "$exists" != 1 ]; then
    psql_cmd -h "$host" -p "$port" -U postgres -d postgres -qc "CREATE DATABASE test" >/dev/null 2>&1 ||
      echo "postgres.sh: warning: could not create database test" >&2
  fi
}

if [ "${1:-}" = --stop ]; then
  if [ -f "$data/PG_VERSION" ]; then
    as_pg "$bindir/pg_ctl" -D "$data" -m fast stop
  fi
  exit 0
fi

if ready; then
  ensure_test_db
  echo "postgres.sh: PostgreSQL is reachable at $host:$port"
  exit 0
fi

if [ -z "$bindir" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # A fresh Debian machine: install the server from Debian's packages (no cluster is started by
  # the package here; this script runs its own throw-away one below).
  echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends postgresql >&2 || true
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
  done
  if ready; then
    ensure_test_db
    echo "postgres.sh: PostgreSQL is reachable at $host:$port"
    exit 0
  fi
fi
if [ -z "$bindir" ]; then
  echo "postgres.sh: no PostgreSQL at $host:$port and no initdb/pg_ctl found (Debian: apt-get install postgresql)" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres "$data"
  chmod 700 "$data"
  as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null ||
    as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
fi
sockdir="$data/sock"
mkdir -p "$sockdir"
[ "$(id -u)" = 0 ] && chown postgres "$sockdir"
as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
  -o "-c listen_addresses=$host -p $port -c unix_socket_directories=$sockdir" start >/dev/null
for _ in $(seq 1 50); do
  ready && break
  sleep 0.1
done
if ! ready; then
  echo "postgres.sh: PostgreSQL did not come up; see $data/server.log" >&2
  exit 1
fi
ensure_test_db
echo "postgres.sh: started PostgreSQL ($bindir) at $host:$port, data in $data"
