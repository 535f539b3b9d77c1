#!/usr/bin/env bash
# The browser half (web/), as CI runs it: installs what it needs on a fresh
# machine (Node and npm, the npm packages pinned in package-lock.json,
# Debian's chromium), then type-checks, lints, runs the unit tests and the
# real-Chromium suite against the settings-sync binary in
# $SETTINGS_SYNC_SERVER_BIN (built here when unset).
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  command -v "$1" >/dev/null && return 0
  echo "web-test: installing $2 from Debian's packages..." >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >&2
}
need node nodejs
need npm npm
need chromium chromium
node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("web-test: Node 20 or later is needed, found " + process.version); process.exit(1) }'

if [ -z "${SETTINGS_SYNC_SERVER_BIN:-}" ]; then
  cargo build --quiet -p settings-sync --bin settings-sync
  export SETTINGS_SYNC_SERVER_BIN="$PWD/${CARGO_TARGET_DIR:-target}/debug/settings-sync"
fi
export CHROMIUM_BIN="${CHROMIUM_BIN:-$(command -v chromium)}"

cd web
npm ci --no-audit --no-fund --loglevel=error
npm run --silent typecheck
npm run --silent lint
npm run --silent build
npx vitest run
npx vitest run --config vitest.browser.config.ts
