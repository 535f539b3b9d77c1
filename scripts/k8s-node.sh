#!/usr/bin/env bash
# A throw-away single-node Kubernetes on this machine: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet and kube-proxy (built from
# Go modules by scripts/operator-tools.sh), containerd, runc and the CNI
# plugins (Debian's packages, installed if missing).
#
#   eval "$(scripts/k8s-node.sh up)"          # sets KUBECONFIG, SETTINGS_SYNC_NODE_DIR, SETTINGS_SYNC_NODE_GATEWAY
#   scripts/k8s-node.sh load ARCHIVE...       # imports OCI archives (scripts/image.sh) into the node
#   scripts/k8s-node.sh down "$SETTINGS_SYNC_NODE_DIR"   # idempotent; leaves nothing behind
#
# Network: pods live in network namespaces on a bridge this script creates
# ($BRIDGE, $POD_CIDR). Nothing is masqueraded to the outside and nothing is
# forwarded between the bridge and any other interface: pods get no default
# route, the Service CIDR is routed to the bridge (a ClusterIP that
# kube-proxy fails to translate can only reach the bridge), and two mangle
# rules drop any forwarded packet that enters or leaves the bridge through
# another interface. The API server and the kubelet listen on the bridge's
# gateway address; so must anything on the host the pods should reach.
#
# Cgroups: pods go under the memory cgroup this script runs in (the kubelet's
# cgroupRoot is a child of it, created in every v1 hierarchy); the host's
# cgroup mounts are never touched.
#
# Kernel settings: the kubelet insists on its values for a few global
# sysctls (vm.overcommit_memory, kernel.panic...). Rather than changing the
# host's, it runs in a mount namespace of its own where those /proc/sys
# files read as it expects; its volume mounts still reach the host through
# a shared mount of its root directory.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

BRIDGE=${SETTINGS_SYNC_NODE_BRIDGE:-ssync0}
POD_CIDR=10.201.0.0/24
GATEWAY=10.201.0.1
SERVICE_CIDR=10.202.0.0/24
NODE=settings-sync-node
CNI_NETWORK=settings-sync-node

log() { echo "k8s-node: $*" >&2; }
die() { log "$*"; exit 1; }
need() {
  command -v "$1" >/dev/null && return 0
  log "installing $2 from Debian's packages..."
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >&2
}
need_all() {
  need containerd containerd
  need runc runc
  [ -x /usr/lib/cni/bridge ] || need /usr/lib/cni/bridge containernetworking-plugins
  need ip iproute2
  need iptables iptables
  need conntrack conntrack
  need openssl openssl
  need unshare util-linux
  need curl curl
}

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return; }
  done
}

# Waits for a command to succeed: NAME SECONDS COMMAND...
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${seconds}s waiting for $what (logs in $DIR/logs)"
    sleep 0.2
  done
}

# Starts a process in the background, its PID in $DIR/pids: NAME COMMAND...
start() {
  local name=$1; shift
  "$@" >"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name"
}

memory_cgroup() { awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup; }

certs() {
  local d=$DIR/pki
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=settings-sync-node-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
    printf 'subjectAltName=IP:%s,IP:%s,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n' \
      "$GATEWAY" "${SERVICE_CIDR%.0/24}.1" >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 -extfile apiserver.ext 2>/dev/null
    # The API server's identity towards the kubelet (logs, exec).
    openssl req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr \
      -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out kubelet-client.crt -days 2 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  # One random token per component; RBAC's default bindings name these users.
  local user groups
  : >"$d/tokens.csv"
  while read -r user groups; do
    local token; token=$(openssl rand -hex 24)
    echo "$token,$user,$user,\"$groups\"" >>"$d/tokens.csv"
    kubeconfig "$user" "$token"
  done <<EOF
admin system:masters
system:node:$NODE system:nodes
system:kube-proxy system:authenticated
system:kube-scheduler system:authenticated
system:kube-controller-manager system:authenticated
EOF
  chmod 0600 "$d"/*.key "$d/tokens.csv"
}

# Writes $DIR/USER.kubeconfig (":" in user names becomes "-").
kubeconfig() {
  local user=$1 token=$2 file
  file="$DIR/kubeconfig/$(echo "$user" | tr ':' '-').kubeconfig"
  mkdir -p "$DIR/kubeconfig"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster:
    server: https://$GATEWAY:6443
    certificate-authority: $DIR/pki/ca.crt
users:
- name: $user
  user:
    token: $token
contexts:
- name: node
  context: {cluster: node, user: $user}
current-context: node
EOF
  chmod 0600 "$file"
}

network_up() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$GATEWAY/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  ip route add "$SERVICE_CIDR" dev "$BRIDGE"
  # The CNI bridge plugin turns on IPv4 forwarding; put back what was there.
  sysctl -n net.ipv4.ip_forward >"$DIR/ip_forward.orig"
  iptables -t mangle -I FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP -m comment --comment settings-sync-node
  iptables -t mangle -I FORWARD -o "$BRIDGE" ! -i "$BRIDGE" -j DROP -m comment --comment settings-sync-node
  # Service traffic between two pods on the bridge must pass kube-proxy's
  # rules; the reply must be un-translated on the way back.
  modprobe br_netfilter 2>/dev/null || true
  mkdir -p "$DIR/cni/net.d" "$DIR/cni/ipam"
  cat >"$DIR/cni/net.d/10-settings-sync.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}]
      }
    }
  ]
}
EOF
}

containerd_up() {
  mkdir -p "$DIR/containerd"
  cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$DIR/containerd.sock"
[ttrpc]
  address = "$DIR/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/pause:$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
  # Lowering a process's OOM score is not permitted here; runc fails without this.
  restrict_oom_score_adj = true
  # Network namespaces under the state directory, so down finds them all.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$DIR/containerd/certs.d"
EOF
  # Every registry resolves to a closed loopback port: an image that was
  # not imported fails to pull instead of reaching the outside.
  mkdir -p "$DIR/containerd/certs.d/_default" "$DIR/containerd/certs.d/docker.io"
  local hosts='server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n'
  printf "$hosts" >"$DIR/containerd/certs.d/_default/hosts.toml"
  printf "$hosts" >"$DIR/containerd/certs.d/docker.io/hosts.toml"
  start containerd containerd --config "$DIR/containerd/config.toml"
  wait_for containerd 60 ctr --address "$DIR/containerd.sock" version
}

control_plane_up() {
  local etcd_port peer_port
  etcd_port=$(free_port) peer_port=$(free_port)
  start etcd "$K8S/etcd" --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync
  local p=$DIR/pki
  start kube-apiserver "$K8S/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$GATEWAY" --advertise-address "$GATEWAY" --secure-port 6443 \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --token-auth-file "$p/tokens.csv" --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$p/kubelet-client.crt" --kubelet-client-key "$p/kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range "$SERVICE_CIDR" \
    --allow-privileged=false
  wait_for "the API server" 120 curl -sf --cacert "$p/ca.crt" "https://$GATEWAY:6443/readyz" \
    -H "Authorization: Bearer $(token admin)"
  start kube-controller-manager "$K8S/kube-controller-manager" \
    --kubeconfig "$DIR/kubeconfig/system-kube-controller-manager.kubeconfig" \
    --leader-elect=false --secure-port 0 --use-service-account-credentials \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt"
  start kube-scheduler "$NODEBIN/kube-scheduler" --kubeconfig "$DIR/kubeconfig/system-kube-scheduler.kubeconfig" \
    --leader-elect=false --secure-port 0
}

# Every process started is still there (one that failed on its flags would
# otherwise only show as pods that never start).
all_running() {
  local f
  for f in "$DIR"/pids/*; do
    kill -0 "$(cat "$f")" 2>/dev/null || die "$(basename "$f") exited: $(tail -3 "$DIR/logs/$(basename "$f").log")"
  done
}

token() { awk -F, -v u="$1" '$2 == u { print $1 }' "$DIR/pki/tokens.csv"; }

# cgroupRoot under the memory cgroup we run in, made in every hierarchy
# (cpuset children start empty: copy the parent's cpus and mems).
cgroups_up() {
  local root h dir parent rel
  root="$(memory_cgroup)/settings-sync-node"
  [ "${root:0:1}" = / ] || root="/$root"
  echo "$root" >"$DIR/cgroup-root"
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}
    # The unified (v2) hierarchy too: runc makes the path there, and what
    # this script makes, down removes.
    [ -e "$h/cgroup.procs" ] || continue
    rel=""
    for part in $(echo "$root" | tr '/' ' '); do
      rel="$rel/$part" dir="$h$rel"
      [ -d "$dir" ] && continue
      mkdir "$dir"
      echo "$dir" >>"$DIR/cgroups-created"
      if [ -e "$dir/cpuset.cpus" ]; then
        parent=$(dirname "$dir")
        cat "$parent/cpuset.cpus" >"$dir/cpuset.cpus"
        cat "$parent/cpuset.mems" >"$dir/cpuset.mems"
      fi
    done
  done
}

kubelet_up() {
  local healthz; healthz=$(free_port)
  mkdir -p "$DIR/kubelet" "$DIR/kubelet-pki" "$DIR/pod-logs" "$DIR/sysctl"
  # Shared, so the kubelet's volume mounts (in its own mount namespace)
  # appear in the host's, where containerd mounts them into containers.
  mount --bind "$DIR/kubelet" "$DIR/kubelet"
  mount --make-shared "$DIR/kubelet"
  cat >"$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $GATEWAY
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: $(cat "$DIR/cgroup-root")
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: true
containerRuntimeEndpoint: unix://$DIR/containerd.sock
# No DNS: pods must never be handed the host's resolvers.
resolvConf: ""
podLogsDir: $DIR/pod-logs
# Absolute floors: the disk this runs on may be nearly full of build output.
evictionHard: {memory.available: 100Mi, nodefs.available: 512Mi, imagefs.available: 512Mi, nodefs.inodesFree: "1000"}
# The images are imported, not pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# No KUBE-FIREWALL/canary chains in the host's tables (kube-proxy has its own).
makeIPTablesUtilChains: false
EOF
  # What the kubelet wants to read in /proc/sys (its mount namespace only).
  local binds="" kv
  for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
    local f=${kv%%=*} v=${kv#*=}
    echo "$v" >"$DIR/sysctl/${f//\//.}"
    binds="$binds mount --bind $DIR/sysctl/${f//\//.} /proc/sys/$f;"
  done
  start kubelet unshare --mount --propagation unchanged -- sh -c "$binds exec \"\$0\" \"\$@\"" \
    "$NODEBIN/kubelet" --config "$DIR/kubelet.yaml" \
    --kubeconfig "$DIR/kubeconfig/system-node-$NODE.kubeconfig" --root-dir "$DIR/kubelet" \
    --cert-dir "$DIR/kubelet-pki" --hostname-override "$NODE" --node-ip "$GATEWAY"
}

proxy_up() {
  local metrics healthz; metrics=$(free_port) healthz=$(free_port)
  cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $GATEWAY
healthzBindAddress: 127.0.0.1:$healthz
metricsBindAddress: 127.0.0.1:$metrics
nodePortAddresses: ["$POD_CIDR"]
clientConnection:
  kubeconfig: $DIR/kubeconfig/system-kube-proxy.kubeconfig
# Leave the host's conntrack settings and route_localnet alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
  echo "$healthz" >"$DIR/proxy-healthz-port"
  start kube-proxy "$NODEBIN/kube-proxy" --config "$DIR/kube-proxy.yaml"
}

node_ready() {
  curl -sf --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $(token admin)" \
    "https://$GATEWAY:6443/api/v1/nodes/$NODE" |
    python3 -c 'import json, sys; sys.exit(0 if any(c["type"] == "Ready" and c["status"] == "True" for c in json.load(sys.stdin)["status"]["conditions"]) else 1)'
}

# kube-proxy has written its rules once it serves its health check.
proxy_ready() { curl -sf "http://127.0.0.1:$(cat "$DIR/proxy-healthz-port")/healthz"; }

up() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, mounts, cgroups)"
  need_all
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "bridge $BRIDGE exists: is a node already up? (scripts/k8s-node.sh down DIR)"
  K8S=$(scripts/operator-tools.sh cluster)
  NODEBIN=$(scripts/operator-tools.sh node)
  DIR=${1:-$(mktemp -d "${TMPDIR:-/tmp}/settings-sync-node.XXXXXX")}
  mkdir -p "$DIR/logs" "$DIR/pids"
  echo "$NODEBIN" >"$DIR/nodebin"
  # From here on, a failure takes everything down again.
  trap 'log "failed; cleaning up"; down "$DIR" >&2' EXIT
  network_up
  certs
  containerd_up
  # The sandbox image, built here: nothing is ever pulled.
  load "$(SETTINGS_SYNC_IMAGE_TAG='' scripts/image.sh pause | cut -d' ' -f2)"
  control_plane_up
  cgroups_up
  kubelet_up
  proxy_up
  wait_for "the node to be Ready" 180 node_ready
  wait_for "kube-proxy" 60 proxy_ready
  all_running
  trap - EXIT
  echo "export SETTINGS_SYNC_NODE_DIR='$DIR' KUBECONFIG='$DIR/kubeconfig/admin.kubeconfig' SETTINGS_SYNC_NODE_GATEWAY='$GATEWAY'"
}

load() {
  DIR=${DIR:-${SETTINGS_SYNC_NODE_DIR:?run up first (eval its output)}}
  local archive
  for archive in "$@"; do
    ctr --address "$DIR/containerd.sock" -n k8s.io images import --snapshotter overlayfs "$archive" >&2
  done
}

stop_pid() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# Every process whose command line names this node's directory (containerd's
# shims, pods' processes are found through the cgroups below).
pids_naming_dir() {
  local p
  for p in /proc/[0-9]*; do
    { tr "\0" " " <"$p/cmdline"; } 2>/dev/null | grep -qF "$DIR/" && echo "${p#/proc/}"
  done
  return 0
}

# Chains a kubelet creates unless told not to (as an older run of this script
# did): removed by name, in both IP families.
kubelet_chains_down() {
  local ipt table chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    $ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    $ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    for table in filter nat mangle raw; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        $ipt -t "$table" -F "$chain" 2>/dev/null && $ipt -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

down() {
  DIR=${1:?usage: $0 down DIR}
  DIR=${DIR%/}
  [ -d "$DIR" ] || { log "$DIR is gone already"; return 0; }
  # The kubelet first, so it restarts nothing; then kube-proxy's rules.
  stop_pid "$DIR/pids/kubelet"
  if [ -f "$DIR/pids/kube-proxy" ]; then
    stop_pid "$DIR/pids/kube-proxy"
    "$(cat "$DIR/nodebin")/kube-proxy" --cleanup >>"$DIR/logs/kube-proxy-cleanup.log" 2>&1 || true
  fi
  # Pods' processes: everything in the kubelet's cgroup tree.
  if [ -f "$DIR/cgroup-root" ]; then
    local root; root=$(cat "$DIR/cgroup-root")
    local pid
    for pid in $(find "/sys/fs/cgroup/memory$root" -name cgroup.procs -exec cat {} + 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
  fi
  local name
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do stop_pid "$DIR/pids/$name"; done
  # containerd's shims outlive it by design.
  for pid in $(pids_naming_dir); do
    [ "$pid" = $$ ] || kill -KILL "$pid" 2>/dev/null || true
  done
  # Mounts under the directory (container root filesystems, volumes,
  # network namespaces), deepest first.
  local m
  for m in $(awk -v d="$DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  # Cgroups this script created, deepest first.
  if [ -f "$DIR/cgroups-created" ]; then
    local cg
    for cg in $(sort -r "$DIR/cgroups-created"); do
      [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  fi
  kubelet_chains_down
  # Network: the bridge (and its routes), our two rules, forwarding as it was.
  ip link del "$BRIDGE" 2>/dev/null || true
  while iptables -t mangle -D FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP -m comment --comment settings-sync-node 2>/dev/null; do :; done
  while iptables -t mangle -D FORWARD -o "$BRIDGE" ! -i "$BRIDGE" -j DROP -m comment --comment settings-sync-node 2>/dev/null; do :; done
  [ -f "$DIR/ip_forward.orig" ] && sysctl -qw "net.ipv4.ip_forward=$(cat "$DIR/ip_forward.orig")"
  rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
  if [ -n "${SETTINGS_SYNC_NODE_KEEP:-}" ]; then
    log "kept the node's files in $DIR"
  else
    rm -rf "$DIR"
  fi
}

case "${1:-}" in
  up) shift; up "$@" ;;
  load) shift; load "$@" ;;
  down) shift; down "$@" ;;
  *) echo "usage: $0 up [DIR] | load ARCHIVE... | down DIR" >&2; exit 2 ;;
esac
