#!/usr/bin/env bash
# The operator's chart tests, its contract with the real server binary, and
# its end-to-end suite against a real etcd +
# kube-apiserver + kube-controller-manager started by the tests.
# Builds and caches helm and the cluster binaries first (from Go modules;
# see scripts/operator-tools.sh): about 10 minutes the first time on
# 2 cores, nothing after that.
#   scripts/operator-e2e.sh            # chart + e2e tests
#   SETTINGS_SYNC_E2E_KEEP=1 scripts/operator-e2e.sh   # keep the cluster's logs
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

need() {
  command -v "$1" >/dev/null && return 0
  echo "operator-e2e: installing $2 from Debian's packages..." >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >&2
}
need openssl openssl       # the API server's service-account key
need go golang-go          # builds the tools (once)

start=$SECONDS
SETTINGS_SYNC_HELM=$(scripts/operator-tools.sh helm)
SETTINGS_SYNC_E2E_K8S=$(scripts/operator-tools.sh cluster)
export SETTINGS_SYNC_HELM SETTINGS_SYNC_E2E_K8S
echo "operator-e2e: tools ready in $((SECONDS - start))s" >&2

# The server binary, for the operator/server contract tests.
cargo build -p settings-sync
SETTINGS_SYNC_SERVER_BIN="${CARGO_TARGET_DIR:-target}/debug/settings-sync"
export SETTINGS_SYNC_SERVER_BIN

# One test binary at a time: each e2e test starts its own control plane.
cargo test -p settings-sync-operator --test chart --test server_contract --test e2e -- --test-threads=1
