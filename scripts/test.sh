#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts a throw-away PostgreSQL
# (installing it if missing), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

eval "$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop "$SETTINGS_SYNC_TEST_PG_DIR"' EXIT

# helm, etcd, kube-apiserver and kube-controller-manager for the operator's
# chart and end-to-end tests: built from Go modules once, then cached
# outside the repo (scripts/operator-tools.sh).
SETTINGS_SYNC_HELM=$(scripts/operator-tools.sh helm)
SETTINGS_SYNC_E2E_K8S=$(scripts/operator-tools.sh cluster)
export SETTINGS_SYNC_HELM SETTINGS_SYNC_E2E_K8S

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Licenses, banned crates and sources (deny.toml). Advisories are left out:
# their database lives in a repository this machine can not reach.
if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0.20.2$'; then
  cargo install cargo-deny --locked --version 0.20.2
fi
cargo deny check licenses bans sources
# The replica and fault suites start the server binary as processes.
cargo build --workspace --bins
export SETTINGS_SYNC_SERVER_BIN="$PWD/${CARGO_TARGET_DIR:-target}/debug/settings-sync"
cargo test --workspace --no-fail-fast
# The chart end to end on a real single node: images built by
# scripts/image.sh, a kubelet running the operator, the migration Job and
# three servers, a client through the Service (about 1.5 minutes; the
# node's Go binaries are built once, then cached like the cluster's).
scripts/k8s-e2e.sh
# The browser client: typecheck, lint, unit tests and the suite in real
# Chromium against the server binary (installs Node's packages and Chromium).
scripts/web-test.sh
# The cargo-fuzz targets, briefly and unoptimized (nightly; fails, saying
# why, if it can not run them).
scripts/fuzz.sh "${SETTINGS_SYNC_FUZZ_SECONDS:-5}" --dev
