#!/usr/bin/env bash
# Throughput and latency of one settings-sync replica against the same
# statements run bare by pgbench, on this machine, in one run:
#
#   scripts/bench.sh                         # about six minutes
#   BENCH_CONCURRENCY="16 64" BENCH_SECONDS=5 scripts/bench.sh
#
# For each concurrency: pgbench runs the service's merge statement
# (scripts/bench-sync.sql) and its primary-key read (scripts/bench-get.sql);
# then the release server (batched, as deployed) and the same server with
# --batch-max 1 (one statement per request) are driven by
# settings-sync-load with the same keys, stamps and clients; the batched
# server also takes the same writes as per-field patches. Before every
# phase the documents are reset (scripts/bench-reset.sql). The same Gets
# also go to load/examples/grpc_ceiling.rs, which answers them from memory:
# what gRPC alone sustains on these cores, with no store. Last, 10,000
# idle Watch streams are opened on one replica and its memory per stream
# is read from /proc. Figures go to docs/performance.{json,csv,svg}.
# Not part of scripts/test.sh: it is a measurement, not a check.
set -euo pipefail
cd "$(dirname "$0")/.."

CONCURRENCY=${BENCH_CONCURRENCY:-"1 4 16 64"}
SECONDS_PER_POINT=${BENCH_SECONDS:-10}
DOCUMENTS=${BENCH_DOCUMENTS:-10000}
TENANTS=${BENCH_TENANTS:-10}
WATCH_STREAMS=${BENCH_WATCH_STREAMS:-10000}
POOL=${BENCH_DB_POOL_SIZE:-16}
OUT=${BENCH_OUT:-docs}
VALUE='{"fontSize":14,"theme":"dark"}'
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

# Reuse the cluster of the calling shell, or start a throw-away one.
OWN_PG=
if [ -z "${SETTINGS_SYNC_TEST_DATABASE_URL:-}" ]; then
  eval "$(scripts/postgres.sh start)"
  OWN_PG=1
fi
WORK=$(mktemp -d /tmp/settings-sync-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=
}
cleanup() {
  stop_server
  rm -rf "$WORK"
  if [ -n "$OWN_PG" ]; then scripts/postgres.sh stop "$SETTINGS_SYNC_TEST_PG_DIR"; fi
}
trap cleanup EXIT
PSQL=${SETTINGS_SYNC_TEST_PG_BIN:+$SETTINGS_SYNC_TEST_PG_BIN/}psql
ADMIN=$SETTINGS_SYNC_TEST_DATABASE_URL
URL=${ADMIN%/*}/settings_sync_bench

echo "building release binaries..." >&2
cargo build --release --quiet -p settings-sync -p settings-sync-load
cargo build --release --quiet -p settings-sync-load --example grpc_ceiling
SERVER=$CARGO_TARGET_DIR/release/settings-sync
CEILING=$CARGO_TARGET_DIR/release/examples/grpc_ceiling
LOAD=$CARGO_TARGET_DIR/release/settings-sync-load

"$PSQL" "$ADMIN" -q -c "DROP DATABASE IF EXISTS settings_sync_bench" -c "CREATE DATABASE settings_sync_bench"
"$SERVER" migrate --database-url "$URL" >/dev/null
# Thousands of Watch streams and their sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ENDPOINT=http://127.0.0.1:$PORT
# Flags of other features, passed only where this build has them.
AUTH_FLAG=()
if "$SERVER" serve --help | grep -q -- '--insecure-no-auth'; then AUTH_FLAG=(--insecure-no-auth); fi
WATCH_FLAGS=()
if "$SERVER" serve --help | grep -q -- '--max-watch-streams-per-identity'; then
  WATCH_FLAGS=(--max-watch-streams-per-identity 0)
fi

# start_server NAME [FLAGS...]: one release replica on $PORT.
start_server() {
  local name=$1; shift
  stop_server
  RUST_LOG=warn "$SERVER" serve --listen "127.0.0.1:$PORT" --database-url "$URL" --skip-migrations \
    --db-pool-size "$POOL" "${AUTH_FLAG[@]}" "$@" >"$WORK/server-$name.log" 2>&1 &
  SERVER_PID=$!
  wait_for_port "server-$name"
}

# wait_for_port LOG: until $PORT accepts, or $SERVER_PID died (prints $WORK/LOG.log).
wait_for_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/$1.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "the server did not start" >&2; exit 1
}

reset() { "$PSQL" "$URL" -q -v documents="$DOCUMENTS" -v tenants="$TENANTS" -f scripts/bench-reset.sql; }

# pgbench_point KIND SCRIPT C: appends one JSON line.
pgbench_point() {
  local kind=$1 script=$2 c=$3 threads=$(( $3 < 2 ? 1 : 2 ))
  reset
  rm -f "$WORK"/pgb.*
  pgbench -n -M prepared -c "$c" -j "$threads" -T "$SECONDS_PER_POINT" -f "$script" -l --log-prefix="$WORK/pgb" \
    -D documents="$DOCUMENTS" -D tenants="$TENANTS" -D clock=0 -D name=settings -D "value=$VALUE" \
    -D now="$(date -u +%FT%TZ)" -D jump=1000000 "$URL" >"$WORK/pgbench.out" 2>&1 \
    || { cat "$WORK/pgbench.out" >&2; exit 1; }
  python3 scripts/bench-report.py pgbench "$kind" "$c" "$WORK/pgbench.out" "$WORK"/pgb.* >>"$RESULTS"
}

# service_point SERIES KIND C [LOAD FLAGS...]: appends one JSON line.
service_point() {
  local series=$1 kind=$2 c=$3 reads=0
  shift 3
  [ "$kind" = get ] && reads=1
  reset
  "$LOAD" --endpoint "$ENDPOINT" --concurrency "$c" --duration "$SECONDS_PER_POINT" \
    --documents "$DOCUMENTS" --tenants "$TENANTS" --reads "$reads" "$@" --json >"$WORK/load.json" 2>"$WORK/load.err" \
    || { cat "$WORK/load.err" >&2; exit 1; }
  python3 scripts/bench-report.py load "$kind" "$c" "$WORK/load.json" "$series" >>"$RESULTS"
}

start_server batched
for c in $CONCURRENCY; do
  echo "concurrency $c: pgbench, service (batched)" >&2
  pgbench_point sync scripts/bench-sync.sql "$c"
  pgbench_point get scripts/bench-get.sql "$c"
  service_point service sync "$c"
  service_point service get "$c"
  # The same writes as per-field patches of one field each. The documents
  # start whole (the reset), so each one's first patch also opts it in.
  service_point patch sync "$c" --patch-fields
done
start_server unbatched --batch-max 1
for c in $CONCURRENCY; do
  echo "concurrency $c: service (--batch-max 1)" >&2
  service_point unbatched sync "$c"
  service_point unbatched get "$c"
done

stop_server
"$CEILING" "127.0.0.1:$PORT" >"$WORK/ceiling.log" 2>&1 &
SERVER_PID=$!
wait_for_port ceiling
for c in $CONCURRENCY; do
  echo "concurrency $c: gRPC alone (Gets answered from memory)" >&2
  service_point ceiling get "$c"
done

if [ "$WATCH_STREAMS" -gt 0 ]; then
  echo "$WATCH_STREAMS idle Watch streams on one replica" >&2
  start_server watch "${WATCH_FLAGS[@]}"
  "$LOAD" --endpoint "$ENDPOINT" --watch-streams "$WATCH_STREAMS" --connections 200 \
    --server-pid "$SERVER_PID" --watch-hold 2 --json >"$WORK/watch.json" 2>"$WORK/watch.err" \
    || { cat "$WORK/watch.err" >&2; exit 1; }
  python3 scripts/bench-report.py watch "$WORK/watch.json" >>"$RESULTS"
fi
stop_server

python3 scripts/bench-report.py summary "$RESULTS" "$OUT" "$(nproc)"
