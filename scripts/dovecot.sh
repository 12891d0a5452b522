#!/usr/bin/env bash
# Starts a throw-away Dovecot IMAP server for tests, the demo and `pecarchive bench ingest`,
# listening on 127.0.0.1 only, with everything (configuration, a throw-away CA and server
# certificate, the passwd file, the mail) under DIR.
#   scripts/dovecot.sh start DIR PORT TLSPORT   start (or report the one already running in DIR)
#   scripts/dovecot.sh run DIR PORT TLSPORT     the same in the foreground (the process becomes
#                                                Dovecot's master: tests kill it with themselves)
#   scripts/dovecot.sh user DIR NAME PASSWORD [QUOTA]   add or replace a user (QUOTA: e.g. 10M)
#   scripts/dovecot.sh stop DIR                  stop it (DIR is kept)
#   scripts/dovecot.sh install                   install Dovecot where it is missing (apt-get)
# PORT serves plain IMAP and STARTTLS, TLSPORT implicit TLS (IMAPS). On start it prints
# KEY=VALUE lines to stdout:
#   IMAP_HOST IMAP_PORT IMAPS_PORT IMAP_CA_FILE (the CA that signed the server certificate, for
#   127.0.0.1 and localhost) DOVECOT_CONF DOVECOT_PID
# so `eval "$(scripts/dovecot.sh start /tmp/imap 10143 10993)"` sets them. Users log in with
# PLAIN/LOGIN (plaintext allowed, since nothing listens beyond loopback); each has a Maildir
# under DIR/home/NAME and the QUOTA and IMAP QUOTA plugins (1G unless given). Dovecot runs as
# root here (as in CI); mail is owned by nobody.
set -euo pipefail

usage() {
  echo "usage: $0 start|run DIR PORT TLSPORT | $0 user DIR NAME PASSWORD [QUOTA] | $0 stop DIR | $0 install" >&2
  exit 2
}

dovecot_bin=/usr/sbin/dovecot

install() {
  if [ -x "$dovecot_bin" ] && command -v openssl >/dev/null 2>&1 && [ -e /usr/lib/dovecot/modules/lib11_imap_quota_plugin.so ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "dovecot: Dovecot is not installed and cannot be installed here (needs root and apt-get)" >&2
    return 1
  fi
  echo "dovecot: installing dovecot-imapd and openssl with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends dovecot-imapd openssl >&2
  # The package starts a system-wide Dovecot where an init system runs; ours is separate.
}

alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo R)" != Z ]; }
pidof_dir() { cat "$1/run/master.pid" 2>/dev/null || true; }
running() { local p; p=$(pidof_dir "$1"); [ -n "$p" ] && alive "$p"; }

print() {
  local dir=$1
  echo "IMAP_HOST=127.0.0.1"
  echo "IMAP_PORT=$(cat "$dir/port")"
  echo "IMAPS_PORT=$(cat "$dir/tlsport")"
  echo "IMAP_CA_FILE=$dir/tls/ca.crt"
  echo "DOVECOT_CONF=$dir/dovecot.conf"
  echo "DOVECOT_PID=$(pidof_dir "$dir")"
}

cmd=${1:-}
case "$cmd" in
install)
  install
  exit $?
  ;;
stop)
  [ $# -eq 2 ] || usage
  dir=$2
  if running "$dir"; then
    pid=$(pidof_dir "$dir")
    "$dovecot_bin" -c "$dir/dovecot.conf" stop 2>/dev/null || kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "dovecot: stopped $pid" >&2
  else
    echo "dovecot: nothing running in $dir" >&2
  fi
  exit 0
  ;;
user)
  [ $# -eq 4 ] || [ $# -eq 5 ] || usage
  dir=$2 name=$3 pass=$4 quota=${5:-1G}
  case "$name$pass" in *:* | */* | *$'\n'*) echo "dovecot: no ':', '/' or newline in a name or password" >&2; exit 2 ;; esac
  [ -f "$dir/dovecot.conf" ] || { echo "dovecot: $dir holds no server" >&2; exit 1; }
  # One passwd file per user: Dovecot re-reads a passwd file at most once a second, so a user
  # added to a shared file could not log in at once; a file never read before is read.
  mkdir -p "$dir/users.d"
  tmp=$(mktemp "$dir/users.d/.new.XXXXXX")
  echo "$name:{PLAIN}$pass::::::userdb_quota_rule=*:storage=$quota" >"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$dir/users.d/$name"
  exit 0
  ;;
start | run) ;;
*) usage ;;
esac

[ $# -eq 4 ] || usage
dir=$2 port=$3 tlsport=$4
for p in "$port" "$tlsport"; do
  case "$p" in '' | *[!0-9]*) usage ;; esac
done
install
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Dovecot's unprivileged processes (and the mail owner, nobody) must reach the files below.
chmod 755 "$dir"

if [ "$cmd" = start ] && running "$dir"; then
  if [ "$(cat "$dir/port")" != "$port" ] || [ "$(cat "$dir/tlsport")" != "$tlsport" ]; then
    echo "dovecot: $dir already serves ports $(cat "$dir/port") and $(cat "$dir/tlsport"); stop it first" >&2
    exit 1
  fi
  print "$dir"
  exit 0
fi

mkdir -p "$dir/run" "$dir/state" "$dir/log" "$dir/tls" "$dir/home"
chmod 777 "$dir/home"
echo "$port" >"$dir/port"
echo "$tlsport" >"$dir/tlsport"
mkdir -p "$dir/users.d"
chmod 755 "$dir/users.d"

# A throw-away CA and a server certificate for 127.0.0.1 and localhost, made once per DIR.
if [ ! -f "$dir/tls/server.crt" ]; then
  (
    cd "$dir/tls"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=pecarchive test IMAP CA" -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    chmod 644 ca.crt server.crt
  )
fi

cat >"$dir/dovecot.conf" <<CONF
# Generated by scripts/dovecot.sh: a throw-away server on loopback.
instance_name = pecarchive-$(echo "$dir" | cksum | cut -d' ' -f1)
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/log/dovecot.log
info_log_path = $dir/log/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <$dir/tls/server.crt
ssl_key = <$dir/tls/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
# Tests log in wrongly on purpose; no delay after a failed login.
auth_failure_delay = 0
mail_location = maildir:~/Maildir
# A throw-away server: no fsync per message (APPEND of thousands of test messages).
mail_fsync = never
mail_plugins = \$mail_plugins quota
mail_max_userip_connections = 100
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users.d/%u
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/users.d/%u
  default_fields = uid=nobody gid=nogroup home=$dir/home/%u
}
plugin {
  quota = maildir:User quota
  quota_rule = *:storage=1G
}
protocol imap {
  mail_plugins = \$mail_plugins imap_quota
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $tlsport
    ssl = yes
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
CONF

if [ "$cmd" = run ]; then
  echo "IMAP_HOST=127.0.0.1"
  echo "IMAP_PORT=$port"
  echo "IMAPS_PORT=$tlsport"
  echo "IMAP_CA_FILE=$dir/tls/ca.crt"
  echo "DOVECOT_CONF=$dir/dovecot.conf"
  echo "DOVECOT_PID=$$"
  exec "$dovecot_bin" -F -c "$dir/dovecot.conf"
fi
"$dovecot_bin" -c "$dir/dovecot.conf"
for _ in $(seq 100); do
  if running "$dir" && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    print "$dir"
    exit 0
  fi
  sleep 0.1
done
echo "dovecot: did not start; its log:" >&2
tail -n 30 "$dir/log/dovecot.log" >&2 || true
exit 1
