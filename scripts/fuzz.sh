#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a while each (default 20 s):
# request decoding + validation as the service does it, and JSON values.
#   scripts/fuzz.sh [seconds-per-target] [--dev]
# --dev builds the targets without optimizations: a build several minutes
# shorter, for the suite's brief smoke run (scripts/test.sh); long runs want
# the optimized default, which executes many more inputs per second.
# Needs the nightly toolchain and cargo-fuzz; installs them if missing, and
# fails (saying exactly what is missing) when they cannot be installed: a
# fuzz run that silently did not happen would look like a passing one.
# A crash fails the script and leaves its input under fuzz/artifacts/<target>/.
# The sanitizer build is cached outside the repo (it shares nothing with the
# stable build), so a fresh clone on the same machine rebuilds only our crates.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
profile=()
if [ "${2:-}" = "--dev" ]; then profile=(--dev); fi

cannot_run() {
  echo "fuzz.sh: FAILED: $*" >&2
  exit 1
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal >&2 ||
    cannot_run "the nightly toolchain is missing and could not be installed"
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked >&2 ||
    cannot_run "cargo-fuzz is missing and could not be installed"
fi

# Its own target directory: sanitizer builds share nothing with the stable ones.
export CARGO_TARGET_DIR=${SETTINGS_SYNC_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/settings-sync/fuzz-target}
targets=$(cargo +nightly fuzz list) || cannot_run "cargo fuzz list did not run"
[ -n "$targets" ] || cannot_run "cargo fuzz list found no targets in fuzz/"
started=$(date +%s)
for target in $targets; do
  echo "fuzz.sh: $target for ${seconds}s" >&2
  mkdir -p "fuzz/corpus/$target"
  # Seeds committed in fuzz/seeds/<target> start the corpus off.
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  log="$CARGO_TARGET_DIR/fuzz-$target.log"
  mkdir -p "$CARGO_TARGET_DIR"
  if ! cargo +nightly fuzz run "${profile[@]}" "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: $target FAILED (the input is under fuzz/artifacts/$target)" >&2
    exit 1
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)" "$log" >&2 || true
done
echo "fuzz.sh: all targets passed in $(($(date +%s) - started))s" >&2
