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
# is read from /proc. Then etcd, side by side (BENCH_ETCD=0 skips it): per
# concurrency one fresh member of the etcd the operator's tests run, driven
# by etcd's own benchmark tool: a compare-and-put Txn on mod_revision
# against Sync, linearizable and serializable ranges against Get, and a
# watch fan-out (docs/performance.md, "etcd side by side").
# Figures go to docs/performance.{json,csv,svg}.
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
ETCD_PHASE=${BENCH_ETCD:-1}
ETCD_WATCHERS=${BENCH_ETCD_WATCHERS_PER_STREAM:-10}
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
ETCD_PID=
stop_etcd() {
  if [ -n "$ETCD_PID" ]; then kill "$ETCD_PID" 2>/dev/null || true; wait "$ETCD_PID" 2>/dev/null || true; fi
  ETCD_PID=
}
cleanup() {
  stop_server
  stop_etcd
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
if [ "$ETCD_PHASE" = 1 ]; then
  # etcd and its benchmark tool at the version the operator's test cluster
  # runs, built from Go modules once and cached (scripts/operator-tools.sh).
  ETCD_TOOLS=$(scripts/operator-tools.sh etcd-bench)
  ETCD=$(sed -n 1p <<<"$ETCD_TOOLS")
  ETCD_BENCH=$(sed -n 2p <<<"$ETCD_TOOLS")
  ETCD_VERSION=$("$ETCD" --version | awk '/^etcd Version/ { print "v" $3 }')
fi

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

# etcd side by side: one member (this version of etcd, data directory under
# $WORK, on the same disk as PostgreSQL's, default fsync) per concurrency,
# driven by etcd's own benchmark tool (tools/benchmark) with as many clients
# as the service had and min(c, 8) gRPC connections, like the load tool.
# start_etcd: a fresh single-member cluster on two free loopback ports.
start_etcd() {
  stop_etcd
  rm -rf "$WORK/etcd"
  local ports
  ports=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
  ETCD_PORT=${ports% *}
  local peer=http://127.0.0.1:${ports#* }
  "$ETCD" --name bench --data-dir "$WORK/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "bench=$peer" \
    --log-level warn >"$WORK/etcd.log" 2>&1 &
  ETCD_PID=$!
  for _ in $(seq 1 200); do
    python3 -c 'import json, sys, urllib.request
sys.exit(0 if json.load(urllib.request.urlopen(sys.argv[1], timeout=1)).get("health") == "true" else 1)' \
      "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null && return 0
    kill -0 "$ETCD_PID" 2>/dev/null || { cat "$WORK/etcd.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "etcd did not become healthy" >&2; cat "$WORK/etcd.log" >&2; exit 1
}
# etcd_bench C ARGS...: etcd's benchmark tool against the member, output in $WORK/etcd-bench.out.
etcd_bench() {
  local c=$1; shift
  "$ETCD_BENCH" --endpoints "127.0.0.1:$ETCD_PORT" --clients "$c" --conns $(( c < 8 ? c : 8 )) --precise "$@" \
    >"$WORK/etcd-bench.out" 2>"$WORK/etcd-bench.err" || { cat "$WORK/etcd-bench.out" "$WORK/etcd-bench.err" >&2; exit 1; }
}
# etcd_point SERIES KIND C ARGS...: the tool runs a fixed count, so a short
# first run measures the rate and the second runs about $SECONDS_PER_POINT.
etcd_point() {
  local series=$1 kind=$2 c=$3 rate
  shift 3
  etcd_bench "$c" "$@" --total $(( 200 + 50 * c ))
  rate=$(python3 scripts/bench-report.py etcd-rate "$WORK/etcd-bench.out")
  etcd_bench "$c" "$@" --total $(( rate * SECONDS_PER_POINT > 1000 ? rate * SECONDS_PER_POINT : 1000 ))
  python3 scripts/bench-report.py etcd "$series" "$kind" "$c" "$WORK/etcd-bench.out" >>"$RESULTS"
}
if [ "$ETCD_PHASE" = 1 ]; then
  VALUE_SIZE=${#VALUE}
  for c in $CONCURRENCY; do
    echo "concurrency $c: etcd $ETCD_VERSION (its benchmark tool)" >&2
    start_etcd
    # As many keys as documents (16-byte keys, the encoding `stm` picks
    # them in), each with a value as long as the service's document.
    etcd_bench 8 put --sequential-keys --key-size 16 --key-space-size "$DOCUMENTS" \
      --total "$DOCUMENTS" --val-size "$VALUE_SIZE"
    # Get: one preloaded key (["\x02", "\x03") is document 1's 16-byte key),
    # read linearizably (a ReadIndex round through raft) and serializably
    # (the member's local state).
    etcd_point etcd get "$c" range $'\x02' $'\x03' --limit 1 --consistency l
    etcd_point etcd-serializable get "$c" range $'\x02' $'\x03' --limit 1 --consistency s
    # Sync: read a random key (serializable), then Txn(If mod_revision(k) == read, Then
    # Put(k, v)), retried from the read when the compare fails.
    etcd_point etcd sync "$c" stm --isolation r --keys "$DOCUMENTS" --keys-per-txn 1 \
      --txn-wr-percent 100 --val-size "$VALUE_SIZE"
    # Watch fan-out: c streams of $ETCD_WATCHERS watchers on one key,
    # 100 puts/s for $SECONDS_PER_POINT s; latency from each put's reply
    # to each watcher's event.
    etcd_bench "$c" watch-latency --streams "$c" --watchers-per-stream "$ETCD_WATCHERS" \
      --put-rate 100 --put-total $(( 100 * SECONDS_PER_POINT )) --key-size 16 --val-size "$VALUE_SIZE"
    python3 scripts/bench-report.py etcd etcd watch "$c" "$WORK/etcd-bench.out" >>"$RESULTS"
    stop_etcd
  done
fi

python3 scripts/bench-report.py summary "$RESULTS" "$OUT" "$(nproc)"
