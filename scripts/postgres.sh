#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster for the tests and prints the
# variables to reach it:  eval "$(scripts/postgres.sh start)".
# Installs PostgreSQL from Debian's packages when it is missing.
#   scripts/postgres.sh start   # prints export lines
#   scripts/postgres.sh stop DIR           # stop and delete the cluster
#   scripts/postgres.sh server-stop DIR    # stop the server, keep the cluster
#   scripts/postgres.sh server-start DIR   # start it again on the same port
# SETTINGS_SYNC_TEST_PG_ALSO_LISTEN=ADDR/PREFIX: also listen on ADDR and let
# that network in with a password (the pods of scripts/k8s-node.sh).
set -euo pipefail

find_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && { echo "$dir"; return 0; }
  done
  return 1
}

install_postgres() {
  echo "installing PostgreSQL from Debian's packages..." >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql postgresql-contrib >&2
}

# Runs a command as the cluster's owner: PostgreSQL refuses to run as root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  local bindir dir port
  bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir); }
  dir=$(mktemp -d /tmp/settings-sync-pg.XXXXXX)
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  port=$(free_port)
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  echo "$port" >"$dir/port"
  echo "127.0.0.1" >"$dir/listen"
  if [ -n "${SETTINGS_SYNC_TEST_PG_ALSO_LISTEN:-}" ]; then
    echo "127.0.0.1,${SETTINGS_SYNC_TEST_PG_ALSO_LISTEN%/*}" >"$dir/listen"
    echo "host all all $SETTINGS_SYNC_TEST_PG_ALSO_LISTEN scram-sha-256" >>"$dir/data/pg_hba.conf"
  fi
  server_start "$dir"
  echo "export SETTINGS_SYNC_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$port/postgres"
  echo "export SETTINGS_SYNC_TEST_PG_DIR=$dir"
  echo "export SETTINGS_SYNC_TEST_PG_BIN=$bindir"
}

# Starts the server of an existing cluster (again), on the port it had.
server_start() {
  local dir=$1 bindir port listen
  bindir=$(find_bindir)
  port=$(cat "$dir/port")
  listen=$(cat "$dir/listen" 2>/dev/null || echo 127.0.0.1)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=$listen -c max_connections=400 -c shared_buffers=256MB" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
}

# Stops the server, keeping the cluster (fault tests restart it).
server_stop() {
  local dir=$1 bindir
  bindir=$(find_bindir)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2
}

stop() {
  local dir=$1 bindir
  bindir=$(find_bindir)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
  server-stop) server_stop "${2:?usage: postgres.sh server-stop DIR}" ;;
  server-start) server_start "${2:?usage: postgres.sh server-start DIR}" ;;
  *) echo "usage: $0 start | stop DIR | server-stop DIR | server-start DIR" >&2; exit 2 ;;
esac
