#!/usr/bin/env bash
# Traces in a real backend: starts Jaeger v2 (all-in-one, in-memory storage,
# OTLP/gRPC on 127.0.0.1:4317, query API and UI on 127.0.0.1:16686), runs the
# server with OTEL_* pointing at it, makes a few writes, stops the server
# (which flushes its spans) and finds the trace through Jaeger's HTTP query
# API. KEEP=1 leaves Jaeger running to look at the UI afterwards.
#
# Jaeger is built from source once (Go toolchain and the Go module proxy
# needed; about 6 minutes on 2 cores here) and cached outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

# Jaeger v2 releases are tagged twice; the Go module version is the v1.x tag
# (v1.76.0 is Jaeger v2.13.0).
JAEGER_VERSION=${JAEGER_VERSION:-v1.76.0}
TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/settings-sync/tools/jaeger-$JAEGER_VERSION
JAEGER=$TOOLS/jaeger
QUERY=http://127.0.0.1:16686

if [ ! -x "$JAEGER" ]; then
  echo "building Jaeger $JAEGER_VERSION into $TOOLS (once)" >&2
  # `go install …@version` refuses modules with replace directives, as
  # Jaeger's has: build the downloaded module as the main module instead.
  src=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" | jq -r .Dir)
  build=$(mktemp -d)
  cp -r "$src/." "$build" && chmod -R u+w "$build"
  mkdir -p "$TOOLS"
  (cd "$build" && go build -o "$JAEGER" ./cmd/jaeger)
  rm -rf "$build"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Waits until a command succeeds, at most $1 seconds.
wait_for() {
  local limit=$1
  shift
  for _ in $(seq $((limit * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for: $*" >&2
  return 1
}

if curl -sf "$QUERY/" >/dev/null; then
  echo "something already serves $QUERY; stop it first" >&2
  exit 1
fi
"$JAEGER" >"$work/jaeger.log" 2>&1 &
jaeger_pid=$!
if [ "${KEEP:-}" != 1 ]; then pids+=("$jaeger_pid"); fi
wait_for 60 curl -sf "$QUERY/api/services" || { tail -20 "$work/jaeger.log"; exit 1; }
echo "Jaeger $JAEGER_VERSION is up (pid $jaeger_pid)"

cargo build --quiet -p settings-sync --bin settings-sync
target=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
server=$target/debug/settings-sync

OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_SERVICE_NAME=settings-sync \
  RUST_LOG=info "$server" serve --insecure-no-auth --listen 127.0.0.1:0 --data-dir "$work/data" \
  2>"$work/server.log" &
server_pid=$!
pids+=("$server_pid")
wait_for 30 grep -q "serving address=" "$work/server.log"
address=$(grep -o "serving address=[^ ]*" "$work/server.log" | head -1 | cut -d= -f2)
echo "server on $address"

put() { "$server" put --server "http://$address" "$@"; }
put acme alice alerts '{"airports":["SEA","LAX"]}'
put acme alice alerts '{"airports":[]}' --clock 1 --writer old-tab # STALE
put acme bob alerts '{"airports":["JFK"]}'

# SIGTERM: the server drains, then flushes its spans before exiting.
kill -TERM "$server_pid"
wait "$server_pid" || true

traces="$QUERY/api/traces?service=settings-sync&operation=settingssync.v1.SettingsSync/Sync&limit=20"
has_stale() {
  curl -sf "$traces" | jq -e '[.data[].spans[].tags[]
    | select(.key == "settings_sync.decision" and .value == "STALE")] | length > 0'
}
wait_for 30 has_stale
curl -sf "$traces" | jq -r '
  .data[] | .spans[] | select(.operationName | startswith("settingssync")) |
  "\(.traceID) \(.operationName) " +
  ([.tags[] | select(.key | startswith("settings_sync.decision") or startswith("settings_sync.stamp")
    or . == "settings_sync.owner") | "\(.key)=\(.value)"] | join(" "))'
db_spans=$(curl -sf "$traces" | jq '[.data[].spans[] | select(.tags[]? | .key == "db.system.name")] | length')
echo "database spans: $db_spans"
[ "$db_spans" -gt 0 ]
echo "OK: Jaeger has the Sync traces with their decisions and database spans"
if [ "${KEEP:-}" = 1 ]; then echo "Jaeger UI: $QUERY (pid $jaeger_pid)"; fi
