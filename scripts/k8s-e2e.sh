#!/usr/bin/env bash
# The production path end to end, nothing written by hand: images built by
# scripts/image.sh, a real node (scripts/k8s-node.sh), the chart installed
# with the real helm, the operator running in a pod, a SettingsSync with
# three replicas and JWKS authentication, its migration Job and server pods
# run by the kubelet, and a client going through the Service (kube-proxy):
# Sync, Get, Query and Watch; `helm test`; a rolling upgrade and a pod
# killed with grace period 0, each under load from 16 clients whose every
# acknowledged write is read back afterwards; the pods' spans at an OTLP
# receiver; garbage collection and `helm uninstall`.
#
#   scripts/k8s-e2e.sh
#   SETTINGS_SYNC_E2E_PLANT=migration-fails scripts/k8s-e2e.sh   # must fail
#
# Environment: SETTINGS_SYNC_IMAGE_PROFILE (default dev: the suite's own
# build, see scripts/image.sh), SETTINGS_SYNC_NODE_KEEP=1 keeps the node's
# files (logs) after the run.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

# fd 3: the run's own messages, even from inside a silenced wait.
exec 3>&2
log() { echo "k8s-e2e: $*" >&3; }
die() { log "FAILED: $*"; exit 1; }
STARTED=$SECONDS
stage() { log "stage: $* ($((SECONDS - STARTED))s)"; }

# Waits for a command to succeed: WHAT SECONDS COMMAND...
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${seconds}s waiting for $what"
    sleep 0.5
  done
}

export SETTINGS_SYNC_IMAGE_PROFILE=${SETTINGS_SYNC_IMAGE_PROFILE:-dev}
PLANT=${SETTINGS_SYNC_E2E_PLANT:-}
NS=apps
RELEASE=settings-sync
SYSTEM_NS=settings-sync-system
NAME=prefs

# Only what this script starts is cleaned up (scripts/test.sh exports its own).
unset SETTINGS_SYNC_NODE_DIR SETTINGS_SYNC_TEST_PG_DIR

# Background processes this run started (load, watch, OTLP sink), by PID.
PIDS=()
cleanup() {
  local code=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ $code -eq 0 ] || dump_state || true
  [ -n "${SETTINGS_SYNC_NODE_DIR:-}" ] && scripts/k8s-node.sh down "$SETTINGS_SYNC_NODE_DIR" || true
  [ -n "${SETTINGS_SYNC_TEST_PG_DIR:-}" ] && scripts/postgres.sh stop "$SETTINGS_SYNC_TEST_PG_DIR" || true
  # This run's image archives (their tags are its own).
  [ -f "${WORK:-/nonexistent}/images" ] && awk '{ print $2 }' "$WORK/images" | xargs rm -f
  rm -rf "${WORK:-/nonexistent}"
  log "finished with status $code after $((SECONDS - STARTED))s"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

WORK=$(mktemp -d)
HELM=$(scripts/operator-tools.sh helm)

# --- the images and the node ------------------------------------------------
stage "building the images ($SETTINGS_SYNC_IMAGE_PROFILE binaries)"
# The images' binaries (dev profile) and the clients the run uses.
# The same command as scripts/test.sh: the same features, so nothing rebuilds there.
cargo build --workspace --bins >&2
# Tags of their own, so a run never mistakes another build's image for its own.
TAG=e2e-$(date +%s)
SETTINGS_SYNC_IMAGE_TAG=$TAG scripts/image.sh server | tee "$WORK/images" >&2
SETTINGS_SYNC_IMAGE_TAG=$TAG scripts/image.sh operator | tee -a "$WORK/images" >&2
# The rolling upgrade's target: the same build under a new tag (a new image
# reference is what a user's upgrade changes).
SETTINGS_SYNC_IMAGE_TAG=$TAG-next scripts/image.sh server | tee -a "$WORK/images" >&2
stage "starting the node"
# (Assigned first: `eval "$(failing)"` would succeed.)
node_env=$(scripts/k8s-node.sh up)
eval "$node_env"
GATEWAY=$SETTINGS_SYNC_NODE_GATEWAY
scripts/k8s-node.sh load $(awk '{ print $2 }' "$WORK/images")
ADMIN_TOKEN=$(awk '/token:/ { print $2 }' "$KUBECONFIG")

api() {
  local method=$1 path=$2; shift 2
  curl -sS --fail-with-body --cacert "$SETTINGS_SYNC_NODE_DIR/pki/ca.crt" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -X "$method" "https://$GATEWAY:6443$path" "$@"
}
post() { api POST "$1" -H 'Content-Type: application/json' --data-binary "$2" >/dev/null; }
# A JSON value at a dotted path of a GET (empty when absent): PATH FIELD
field() {
  api GET "$1" | python3 -c '
import json, sys
value = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    value = value[int(part)] if isinstance(value, list) else value.get(part, "") if isinstance(value, dict) else ""
print(value if not isinstance(value, (dict, list)) else json.dumps(value))' "$2"
}

dump_state() {
  [ -n "${SETTINGS_SYNC_NODE_DIR:-}" ] || return 0
  log "pods at the failure:"
  api GET "/api/v1/pods" | python3 -c '
import json, sys
for p in json.load(sys.stdin)["items"]:
    s = p.get("status", {})
    print(" ", p["metadata"]["namespace"], p["metadata"]["name"], s.get("phase"),
          [(c["name"], c.get("ready"), c.get("state"), c.get("restartCount")) for c in s.get("containerStatuses", [])])' >&3 || log "(cannot list pods)"
  log "jobs at the failure:"
  api GET "/apis/batch/v1/jobs" | python3 -c '
import json, sys
for j in json.load(sys.stdin)["items"]:
    print(" ", j["metadata"]["name"], [(c["type"], c.get("reason"), c.get("message")) for c in j.get("status", {}).get("conditions", [])])' >&3 || log "(cannot list jobs)"
  log "node logs: $SETTINGS_SYNC_NODE_DIR/logs (kept with SETTINGS_SYNC_NODE_KEEP=1)"
}

# --- the database the pods reach on the bridge ------------------------------
stage "starting PostgreSQL on $GATEWAY"
pg_env=$(SETTINGS_SYNC_TEST_PG_ALSO_LISTEN="$GATEWAY/24" scripts/postgres.sh start)
eval "$pg_env"
PG_PORT=${SETTINGS_SYNC_TEST_DATABASE_URL##*:}; PG_PORT=${PG_PORT%%/*}
DB_PASSWORD=$(openssl rand -hex 16)
"$SETTINGS_SYNC_TEST_PG_BIN/psql" -q "$SETTINGS_SYNC_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE settings_sync LOGIN PASSWORD '$DB_PASSWORD'" -c "CREATE DATABASE settings_sync OWNER settings_sync" >&2
DB_URL_PASSWORD=$DB_PASSWORD
# Planted bug: the migration cannot log in, so the Job fails.
[ "$PLANT" = migration-fails ] && DB_URL_PASSWORD=wrong-password
DB_URL="postgres://settings_sync:$DB_URL_PASSWORD@$GATEWAY:$PG_PORT/settings_sync"

# --- a JSON Web Key Set and a token it signs --------------------------------
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
openssl genrsa -out "$WORK/jwt.key" 2048 2>/dev/null
MODULUS=$(openssl rsa -in "$WORK/jwt.key" -noout -modulus | cut -d= -f2 | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' | b64url)
JWKS="{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"e2e\",\"alg\":\"RS256\",\"use\":\"sig\",\"n\":\"$MODULUS\",\"e\":\"AQAB\"}]}"
jwt() { # TENANT SUBJECT SCOPE
  local header payload signature
  header=$(printf '{"alg":"RS256","typ":"JWT","kid":"e2e"}' | b64url)
  payload=$(printf '{"sub":"%s","tenant":"%s","scope":"%s","iat":%s,"exp":%s}' "$2" "$1" "$3" "$(date +%s)" "$(($(date +%s) + 3600))" | b64url)
  signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$WORK/jwt.key" -binary | b64url)
  echo "$header.$payload.$signature"
}

# --- the chart and the operator ---------------------------------------------
stage "helm install (operator image $(awk '$1 == "settings-sync-operator" { print $3 }' "$WORK/images"))"
"$HELM" install "$RELEASE" charts/settings-sync --kubeconfig "$KUBECONFIG" -n "$SYSTEM_NS" --create-namespace \
  --set operator.image.tag="$TAG" --set operator.idleResyncSeconds=30 --set operator.busyResyncSeconds=2 --wait --timeout 5m >&2
OPERATOR_POD=$(api GET "/api/v1/namespaces/$SYSTEM_NS/pods" | python3 -c '
import json, sys
pods = [p for p in json.load(sys.stdin)["items"] if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
print(pods[0]["metadata"]["name"])')
stage "operator pod $OPERATOR_POD is Ready; waiting for it to hold the lease"
holds_lease() { [ "$(field "/apis/coordination.k8s.io/v1/namespaces/$SYSTEM_NS/leases/$RELEASE-operator" spec.holderIdentity)" = "$OPERATOR_POD" ]; }
wait_for "the operator to hold its lease" 60 holds_lease

# --- an OTLP receiver the pods export their spans to -----------------------
"${CARGO_TARGET_DIR:-target}/debug/otlp-sink" --listen "$GATEWAY:0" --out "$WORK/spans.jsonl" 2>"$WORK/otlp-sink.log" &
PIDS+=($!)
sink_listening() { grep -q 'listening on' "$WORK/otlp-sink.log"; }
wait_for "the OTLP receiver to listen" 10 sink_listening
OTLP_ENDPOINT="http://$(sed -n 's/.*listening on //p' "$WORK/otlp-sink.log")"
stage "OTLP receiver at $OTLP_ENDPOINT"

# --- a SettingsSync with three replicas and JWKS authentication -------------
# The load below is one backend identity at full speed; the default limit
# (100/s per identity and replica) would refuse part of it, which is the
# limiter working, not the Service failing. The rate is raised, not turned
# off, so the limit is still configured through the operator in real pods.
LOAD_RATE_LIMIT=100000
stage "creating SettingsSync $NS/$NAME (3 replicas, JWKS auth)"
post /api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"'$NS'"}}'
secret() { # NAME KEY VALUE
  post "/api/v1/namespaces/$NS/secrets" "$(python3 -c 'import json, sys; print(json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": sys.argv[1]}, "stringData": {sys.argv[2]: sys.argv[3]}}))' "$@")"
}
secret prefs-db url "$DB_URL"
secret prefs-jwks jwks.json "$JWKS"
post "/apis/settingssync.dev/v1alpha1/namespaces/$NS/settingssyncs" '{
  "apiVersion": "settingssync.dev/v1alpha1", "kind": "SettingsSync",
  "metadata": {"name": "'$NAME'"},
  "spec": {
    "replicas": 3,
    "image": "settings-sync:'"$TAG"'",
    "database": {"urlSecretRef": {"name": "prefs-db", "key": "url"}, "poolSize": 5},
    "auth": {"jwksSecretRef": {"name": "prefs-jwks", "key": "jwks.json"}},
    "limits": {"rateLimitPerSecond": '"$LOAD_RATE_LIMIT"'},
    "telemetry": {"otlpEndpoint": "'"$OTLP_ENDPOINT"'", "samplingRatio": 0.2}
  }}'

# The migration Job's state: succeeded, failed or running.
job_state() {
  api GET "/apis/batch/v1/namespaces/$NS/jobs" | python3 -c '
import json, sys
for j in json.load(sys.stdin)["items"]:
    if j["metadata"]["name"].startswith(sys.argv[1] + "-migrate-"):
        status = j.get("status", {})
        failed = any(c["type"] == "Failed" and c["status"] == "True" for c in status.get("conditions", []))
        print("succeeded" if status.get("succeeded", 0) >= 1 else "failed" if failed else "running")
        break' "$NAME"
}
job_finished() {
  local state; state=$(job_state)
  [ "$state" != failed ] || die "the migration Job failed"
  [ "$state" = succeeded ]
}
wait_for "the migration Job to succeed" 180 job_finished
stage "the migration Job ran in a pod to completion"

three_ready() { [ "$(field "/apis/apps/v1/namespaces/$NS/deployments/$NAME" status.readyReplicas)" = 3 ]; }
wait_for "three server pods Ready (gRPC probes)" 180 three_ready
stage "three server pods are Ready through their gRPC probes"

# --- a client through the Service -------------------------------------------
CLUSTER_IP=$(field "/api/v1/namespaces/$NS/services/$NAME" spec.clusterIP)
SERVER="http://$CLUSTER_IP:50051"
SETTINGS_SYNC_TOKEN=$(jwt acme dispatch settings-sync:service)
export SETTINGS_SYNC_TOKEN
CLI=${CARGO_TARGET_DIR:-target}/debug/settings-sync
stage "client through the Service at $SERVER"
# Ready pods reach kube-proxy's rules a moment later (EndpointSlice, then a
# sync): wait until the Service answers at all (NOT_FOUND is an answer).
service_answers() {
  "$CLI" get acme nobody none --server "$SERVER"
  [ $? -ne 6 ]
}
wait_for "the Service to answer" 60 service_answers
out=$("$CLI" put acme alice alerts '{"airports":["SEA","LAX"],"email":true}' --server "$SERVER")
echo "$out" | grep -q '"decision":"APPLIED"' || die "Sync through the Service: $out"
out=$("$CLI" get acme alice alerts --server "$SERVER")
echo "$out" | grep -q '"airports":\["SEA","LAX"\]' || die "Get through the Service: $out"
out=$("$CLI" query acme alerts '{"airports":["SEA"]}' --server "$SERVER")
echo "$out" | grep -q '"key":"acme/alice/alerts"' || die "Query through the Service: $out"
if SETTINGS_SYNC_TOKEN=$(jwt acme alice "") "$CLI" get acme bob alerts --server "$SERVER" 2>"$WORK/denied"; then
  die "a user read another user's document"
fi
grep -q "PermissionDenied\|permission" "$WORK/denied" || die "expected a permission error: $(cat "$WORK/denied")"
stage "Sync, Get and Query through the Service with a JWKS-signed token; another user's read refused"

# Watch through the Service: a change made after the stream caught up
# arrives on it.
"$CLI" watch acme --owner alice --server "$SERVER" >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
PIDS+=($WATCH_PID)
watch_caught_up() { grep -q 'caught up' "$WORK/watch.err"; }
wait_for "the Watch stream to catch up" 30 watch_caught_up
"$CLI" put acme alice alerts '{"airports":["SEA","LAX","SFO"],"email":true}' --server "$SERVER" >/dev/null
watch_saw_it() { grep -q '"SFO"' "$WORK/watch.out"; }
wait_for "the change on the Watch stream" 30 watch_saw_it
kill "$WATCH_PID" 2>/dev/null || true
stage "Watch through the Service delivered a change"

# --- helm test ---------------------------------------------------------------
"$HELM" test "$RELEASE" --kubeconfig "$KUBECONFIG" -n "$SYSTEM_NS" --timeout 2m >&2 || die "helm test failed"
stage "helm test passed"

# --- load while the pods change -----------------------------------------------
jwt 0 load settings-sync:service >"$WORK/load-token"
# Starts 16 clients that retry UNAVAILABLE and read every acknowledged write
# back when stopped: NAME CLOCK_BASE (above the clocks of the runs before,
# so its writes are not all STALE; below the server's largest clock jump)
start_load() {
  "${CARGO_TARGET_DIR:-target}/debug/settings-sync-load" --endpoint "$SERVER" --concurrency 16 \
    --duration 600 --warmup 0 --tenants 1 --documents 1000 --reads 0.3 --clock-base "$2" \
    --retry-unavailable --verify-writes --call-timeout 10 \
    --token-file "$WORK/load-token" --json >"$WORK/$1.json" 2>"$WORK/$1.log" &
  LOAD_PID=$!
  PIDS+=($LOAD_PID)
}
# Stops the load, then checks its report: no error but UNAVAILABLE (each
# retried), every acknowledged write read back: NAME WHAT
stop_load() {
  kill -INT "$LOAD_PID"
  wait "$LOAD_PID" || die "the load for $2 failed: $(tail -5 "$WORK/$1.log")"
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
v = r["verify"]
print("k8s-e2e: %s: %d calls in %.1f s at concurrency %d (%.0f/s), errors %s, retried %d; %d acknowledged writes to %d documents read back: %d lost, %d unreadable" % (
    sys.argv[2], r["calls"], r["seconds"], r["concurrency"], r["throughput"], r["errors"], r["retries"],
    v["acknowledged_writes"], v["documents"], v["writes_lost"], v["unreadable"]), file=sys.stderr)
for code, example in r["error_examples"].items():
    print("k8s-e2e:   %s: %s" % (code, example), file=sys.stderr)
for example in v["examples"]:
    print("k8s-e2e:   " + example, file=sys.stderr)
ok = r["calls"] > 0 and set(r["errors"]) <= {"Unavailable"} and v["acknowledged_writes"] > 0 and v["writes_lost"] == 0 and v["unreadable"] == 0
sys.exit(0 if ok else 1)' "$WORK/$1.json" "$2" 2>&3 || die "$2: $(cat "$WORK/$1.json")"
}
deployment_settled() { # IMAGE: every replica updated to IMAGE and Ready, no old pod left
  api GET "/apis/apps/v1/namespaces/$NS/deployments/$NAME" | python3 -c '
import json, sys
d = json.load(sys.stdin); s = d.get("status", {})
image = d["spec"]["template"]["spec"]["containers"][0]["image"]
ok = (image == sys.argv[1] and s.get("observedGeneration") == d["metadata"]["generation"]
      and s.get("updatedReplicas") == 3 and s.get("readyReplicas") == 3 and s.get("replicas") == 3)
sys.exit(0 if ok else 1)' "$1"
}

start_load rollout 0
sleep 3
stage "rolling upgrade to settings-sync:$TAG-next under load"
api PATCH "/apis/settingssync.dev/v1alpha1/namespaces/$NS/settingssyncs/$NAME" \
  -H 'Content-Type: application/merge-patch+json' --data-binary '{"spec":{"image":"settings-sync:'"$TAG-next"'"}}' >/dev/null
ROLLOUT_STARTED=$SECONDS
wait_for "the rolling upgrade to finish" 240 deployment_settled "settings-sync:$TAG-next"
stage "rolled out in $((SECONDS - ROLLOUT_STARTED))s; load goes on 3 s more"
sleep 3
stop_load rollout "rolling upgrade under load"

start_load kill 200000
sleep 3
VICTIM=$(api GET "/api/v1/namespaces/$NS/pods" | python3 -c '
import json, sys
pods = [p["metadata"]["name"] for p in json.load(sys.stdin)["items"] if p["metadata"]["name"].startswith(sys.argv[1] + "-") and "-migrate-" not in p["metadata"]["name"] and p["status"].get("phase") == "Running"]
print(sorted(pods)[0])' "$NAME")
stage "killing server pod $VICTIM with grace period 0 under load"
api DELETE "/api/v1/namespaces/$NS/pods/$VICTIM" -H 'Content-Type: application/json' --data-binary '{"gracePeriodSeconds":0}' >/dev/null
KILLED=$SECONDS
victim_replaced() {
  ! api GET "/api/v1/namespaces/$NS/pods/$VICTIM" >/dev/null 2>&1 && deployment_settled "settings-sync:$TAG-next"
}
wait_for "the killed pod to be replaced" 120 victim_replaced
stage "replaced in $((SECONDS - KILLED))s; load goes on 3 s more"
sleep 3
stop_load kill "a pod killed with grace period 0 under load"

# --- the pods' spans ------------------------------------------------------------
sync_spans_arrived() {
  python3 -c '
import json, sys
spans = [json.loads(line) for line in open(sys.argv[1])]
syncs = [s for s in spans if s["attributes"].get("rpc.method") == "Sync" and s["kind"] == "SPAN_KIND_SERVER"]
decided = [s for s in syncs if s["attributes"].get("settings_sync.decision") in ("APPLIED", "STALE", "UNCHANGED")
           and "settings_sync.stamp.incoming.clock" in s["attributes"]]
services = {s["service"] for s in decided}
print("k8s-e2e: %d spans from the pods, %d Sync server spans, %d with their decision and stamps; services %s" % (len(spans), len(syncs), len(decided), sorted(services)), file=sys.stderr)
sys.exit(0 if decided and services == {sys.argv[2]} else 1)' "$WORK/spans.jsonl" "$NAME"
}
wait_for "Sync spans with their decision at the OTLP receiver" 30 sync_spans_arrived
sync_spans_arrived 2>&3
stage "the pods' Sync spans reached the OTLP receiver with their decisions"

# --- garbage collection and uninstall ---------------------------------------
api DELETE "/apis/settingssync.dev/v1alpha1/namespaces/$NS/settingssyncs/$NAME" >/dev/null
children_gone() {
  for kind in "apps/v1/namespaces/$NS/deployments" "v1/namespaces/$NS/services" "batch/v1/namespaces/$NS/jobs" "v1/namespaces/$NS/configmaps"; do
    local prefix=/apis; [ "${kind%%/*}" = v1 ] && prefix=/api
    api GET "$prefix/$kind" | python3 -c '
import json, sys
items = [i for i in json.load(sys.stdin)["items"] if any(o.get("kind") == "SettingsSync" for o in i["metadata"].get("ownerReferences", []))]
sys.exit(1 if items else 0)' || return 1
  done
}
wait_for "the SettingsSync's children to be garbage-collected" 120 children_gone
stage "deleting the SettingsSync garbage-collected its children"
"$HELM" uninstall "$RELEASE" --kubeconfig "$KUBECONFIG" -n "$SYSTEM_NS" --wait --timeout 2m >&2
only_crd_left() {
  api GET "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/settingssyncs.settingssync.dev" >/dev/null &&
    [ "$(api GET "/apis/apps/v1/namespaces/$SYSTEM_NS/deployments" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))')" = 0 ] &&
    ! api GET "/apis/rbac.authorization.k8s.io/v1/clusterroles" | grep -q "\"$RELEASE-operator\""
}
wait_for "helm uninstall to leave only the CRD" 60 only_crd_left
stage "helm uninstall left only the CRD"
log "PASSED"
