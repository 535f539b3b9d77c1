#!/usr/bin/env bash
# Builds the server, operator and pause images as OCI archives, without a
# container engine: a root filesystem assembled from scratch and packed with
# umoci. Each image holds its binary, the shared libraries the binary links
# (as ldd lists them), CA certificates and /etc/passwd + /etc/group with the
# nonroot user 65532; nothing else (no shell, no package manager).
#
#   scripts/image.sh                 # all three images
#   scripts/image.sh server|operator|pause
#
# Prints one line per image: name, archive path, manifest digest, size.
# The archives load into containerd with `ctr -n k8s.io images import` or
# into a registry with `skopeo copy oci-archive:PATH docker://REGISTRY/...`.
#
# Reproducible: the same sources and toolchain give the same digest. Every
# file's mtime and every timestamp in the image's config (created, history)
# are SOURCE_DATE_EPOCH (default: the commit time of HEAD), owners are 0:0
# and entries are sorted.
#
# Environment:
#   SETTINGS_SYNC_IMAGE_PROFILE  cargo profile of the binaries (default
#                                release; the tests use dev to reuse the
#                                suite's build, stripped of debug info)
#   SETTINGS_SYNC_IMAGE_TAG      tag (default: the workspace version)
#   SETTINGS_SYNC_IMAGE_DIR      output directory (default target/images)
#   SETTINGS_SYNC_IMAGE_SOURCE   org.opencontainers.image.source (default:
#                                the git remote `origin`, if any)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "image: $*" >&2; }
need() {
  command -v "$1" >/dev/null && return 0
  log "installing $2 from Debian's packages..."
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >&2
}
need umoci umoci
need go golang-go            # the pause binary
need objcopy binutils        # strips debug info from dev binaries
[ -f /etc/ssl/certs/ca-certificates.crt ] || need update-ca-certificates ca-certificates

PROFILE=${SETTINGS_SYNC_IMAGE_PROFILE:-release}
TAG=${SETTINGS_SYNC_IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
OUT=${SETTINGS_SYNC_IMAGE_DIR:-${CARGO_TARGET_DIR:-target}/images}
SOURCE=${SETTINGS_SYNC_IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || echo unknown)}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
case "$PROFILE" in dev) BIN_DIR=${CARGO_TARGET_DIR:-target}/debug ;; *) BIN_DIR=${CARGO_TARGET_DIR:-target}/$PROFILE ;; esac
mkdir -p "$OUT"

# Copies an executable and every shared library ldd resolves for it
# (symlinks followed: the file lands under the name the loader asks for).
add_binary() {
  local bin=$1 root=$2 dest=$3 lib
  install -D -m 0755 "$bin" "$root$dest"
  objcopy --strip-debug "$root$dest"
  for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

add_base() {
  local root=$1
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
}

# Packs a root filesystem into an OCI archive: NAME ROOT USER ENTRYPOINT [CMD] [PORT]
pack() {
  local name=$1 root=$2 user=$3 entrypoint=$4 cmd=${5:-} port=${6:-}
  local work layout archive
  work=$(mktemp -d) layout="$work/oci"
  chmod 0755 "$root"
  chown -R 0:0 "$root"
  umoci init --layout "$layout"
  umoci new --image "$layout:$TAG"
  # unpack + repack, not `umoci insert`: insert (0.4.7) writes a layer
  # whose tar stream is cut short.
  umoci unpack --image "$layout:$TAG" "$work/bundle" >/dev/null
  cp -a "$root/." "$work/bundle/rootfs/"
  find "$work/bundle/rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  umoci repack --history.created "$CREATED" --history.created_by "scripts/image.sh" --image "$layout:$TAG" "$work/bundle"
  local args=(--image "$layout:$TAG" --history.created "$CREATED" --history.created_by "scripts/image.sh" --created "$CREATED"
    --architecture amd64 --os linux --config.user "$user" --config.entrypoint "$entrypoint"
    --config.label "org.opencontainers.image.source=$SOURCE"
    --config.label "org.opencontainers.image.version=$TAG"
    --config.label "org.opencontainers.image.revision=$REVISION"
    --config.label "org.opencontainers.image.title=$name")
  [ -n "$cmd" ] && args+=(--config.cmd "$cmd")
  [ -n "$port" ] && args+=(--config.exposedports "$port/tcp")
  umoci config "${args[@]}"
  umoci gc --layout "$layout"
  # `ctr images import` names the image after this annotation.
  local index="$layout/index.json"
  sed -i "s|\"org.opencontainers.image.ref.name\":\"$TAG\"|\"org.opencontainers.image.ref.name\":\"docker.io/library/$name:$TAG\"|" "$index"
  archive="$OUT/$name-$TAG.oci.tar"
  find "$layout" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$layout" -cf "$archive.tmp" . && mv "$archive.tmp" "$archive"
  local digest size
  digest=$(grep -oE '"digest":"sha256:[0-9a-f]+"' "$index" | head -1 | cut -d'"' -f4)
  size=$(du -b "$archive" | cut -f1)
  echo "$name $archive $digest $size"
  rm -rf "$work"
}

build_rust() {
  [ "$PROFILE" = dev ] && [ -x "$BIN_DIR/settings-sync" ] && [ -x "$BIN_DIR/settings-sync-operator" ] && return 0
  log "building settings-sync and settings-sync-operator ($PROFILE)"
  cargo build --locked --profile "$PROFILE" -p settings-sync -p settings-sync-operator --bins >&2
}

image_server() {
  local root; root=$(mktemp -d)
  add_base "$root"
  add_binary "$BIN_DIR/settings-sync" "$root" /usr/local/bin/settings-sync
  pack settings-sync "$root" 65532:65532 /usr/local/bin/settings-sync serve 50051
  rm -rf "$root"
}

image_operator() {
  local root; root=$(mktemp -d)
  add_base "$root"
  add_binary "$BIN_DIR/settings-sync-operator" "$root" /usr/local/bin/settings-sync-operator
  pack settings-sync-operator "$root" 65532:65532 /usr/local/bin/settings-sync-operator run 8080
  rm -rf "$root"
}

# The sandbox every pod starts with: holds the pod's namespaces, waits for
# a signal. A static Go binary of a few lines (no C, no libraries).
image_pause() {
  local root src; root=$(mktemp -d) src=$(mktemp -d)
  cat >"$src/main.go" <<'EOF'
// The pod sandbox: holds the pod's namespaces until told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
EOF
  printf 'module settings-sync.local/pause\n\ngo 1.24\n' >"$src/go.mod"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags '-s -w -buildid=' -o "$root/pause" . >&2)
  pack pause "$root" 65535:65535 /pause
  rm -rf "$root" "$src"
}

case "${1:-all}" in
  server) build_rust; image_server ;;
  operator) build_rust; image_operator ;;
  pause) image_pause ;;
  all) build_rust; image_server; image_operator; image_pause ;;
  *) echo "usage: $0 [server|operator|pause|all]" >&2; exit 2 ;;
esac
