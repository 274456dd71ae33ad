#!/usr/bin/env bash
# Starts a Kubernetes cluster whose nodes run containers for real: etcd, kube-apiserver, controller-manager, scheduler
# and CoreDNS in one network namespace, and per node a namespace of its own with containerd + runc, a kubelet, a
# kube-proxy (iptables) and CNI (ptp + host-local: every pod is routed through its node, so ClusterIP NAT needs no
# bridge netfilter). Recipe and pitfalls: /work/shared/notes/real-data-plane.md.
#
#   testtools/dataplane-up.sh STATE_DIR NODES_FILE
#   testtools/dataplane-down.sh STATE_DIR
#
# NODES_FILE has one node per line: NAME LABELS TAINTS, where LABELS is k=v,k=v and TAINTS k=v:Effect,... or "-".
# The host is left alone: no interface, route, iptables rule or sysctl changes outside the namespaces this script
# creates; every container's cgroup sits under this process's memory cgroup. The host reaches the API through
# k8s-nsproxy on 127.0.0.1 (STATE_DIR/kubeconfig); STATE_DIR/env names the namespaces for the harness.
#
# Addresses: nodes 10.250.0.11.. on a bridge in the control-plane namespace (10.250.0.1), pods 10.244.N.0/24 on
# node N, Services 10.0.0.0/24 (kubernetes 10.0.0.1, DNS 10.0.0.10). DATAPLANE_EXTRA_ADDRS (space separated) are
# also given to the control-plane namespace, for services that stand in for managed ones (Cloud SQL's private IP).
# DATAPLANE_IMAGES: a directory of docker-archive tarballs imported into every node (testtools/images-build.sh).
# DATAPLANE_OWNER_PID: stop the cluster when that process is gone.
set -euo pipefail

state="${1:?usage: dataplane-up.sh STATE_DIR NODES_FILE}"
nodes_file="${2:?usage: dataplane-up.sh STATE_DIR NODES_FILE}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${K8S_BIN_DIR:-${OMSCLOUD_CACHE:-$HOME/.cache/omscloud}/k8s/v1.33.13/bin}"
timeout_s="${K8S_UP_TIMEOUT:-120}"
me=dataplane-up down="$here/dataplane-down.sh"
# shellcheck source=testtools/cluster-lib.sh
source "$here/cluster-lib.sh"
cni_bin=/usr/lib/cni

for b in k8s-pki etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy coredns k8s-nsproxy; do
	[[ -x "$bin/$b" ]] || { echo "dataplane-up: $bin/$b missing: run testtools/k8s-build.sh" >&2; exit 3; }
done
for b in containerd containerd-shim-runc-v2 ctr runc nsenter ip iptables conntrack; do
	command -v "$b" >/dev/null || { echo "dataplane-up: $b missing: run scripts/install-dataplane.sh" >&2; exit 3; }
done
for p in ptp host-local loopback portmap; do
	[[ -x "$cni_bin/$p" ]] || { echo "dataplane-up: CNI plugin $cni_bin/$p missing: run scripts/install-dataplane.sh" >&2; exit 3; }
done
if [[ -e "$state/pids" ]]; then
	echo "dataplane-up: $state already holds a cluster: run testtools/dataplane-down.sh $state first" >&2
	exit 2
fi
mkdir -p "$state/logs" && state="$(cd "$state" && pwd)"
start=$(date +%s.%N)
pki="$state/pki"

# Names unique on this machine, short enough for interface names (15 bytes).
id=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
cp_ns="odp$id-cp"
# The memory cgroup this script runs in (cgroup v1): every node's cgroup root goes below it.
memcg=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
cgroot="${memcg%/}/odp$id"

mapfile -t nodes < <(grep -v '^\s*\(#\|$\)' "$nodes_file")
((${#nodes[@]} > 0 && ${#nodes[@]} < 200)) || { echo "dataplane-up: $nodes_file: 1-199 nodes" >&2; exit 2; }

{
	echo "DATAPLANE_ID=$id"
	echo "DATAPLANE_CP_NS=$cp_ns"
	echo "DATAPLANE_CGROUP_ROOT=$cgroot"
	echo "DATAPLANE_NODES=${#nodes[@]}"
} >"$state/env"

launch() { # name netns|- args...: starts a component in the background, records its PID
	local name="$1" ns="$2"
	shift 2
	if [[ "$ns" == - ]]; then
		setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
	else
		# nsenter --net only (`ip netns exec` would also remount /sys in a mount namespace of its own).
		setsid nsenter --net="/run/netns/$ns" "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
	fi
	echo "$name $!" >>"$state/pids"
}

# The kubelet sets six kernel-wide sysctls to the values it wants (container_manager_linux.go, setupKernelTunables)
# unless protectKernelDefaults, which refuses to start when they differ instead: the host keeps its values because
# each node's processes share a mount namespace of their own, where those files are private copies. containerd must
# share the kubelet's mount namespace anyway: the kubelet's tmpfs volume mounts are what it bind-mounts into containers.
kernel_tunables=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys
	kernel/keys/root_maxbytes)
# The host's values, for the harness to check they never change (enginetest.DataPlane.HostSysctlChanges).
for f in "${kernel_tunables[@]}"; do echo "$f $(cat "/proc/sys/$f")"; done >"$state/host-sysctls"
node_mounts() { # i dir: starts the holder of node i's mount namespace
	local i="$1" d="$2"
	mkdir -p "$d/sysctl"
	# unshare execs (no fork), so $! is the holder whose /proc/PID/ns/mnt the node's processes enter.
	setsid unshare --mount --propagation private -- bash -c 'set -e; d="$1"; shift
		for f in "$@"; do c="$d/sysctl/${f//\//.}"; cat "/proc/sys/$f" >"$c"; mount --bind "$c" "/proc/sys/$f"; done
		touch "$d/sysctl/ready"; exec sleep infinity' node-mounts "$d" "${kernel_tunables[@]}" \
		>"$state/logs/mounts-$i.log" 2>&1 </dev/null &
	echo "mounts-$i $!" >>"$state/pids"
}
launch_node() { # name i netns args...: a node component, in the node's network and mount namespaces
	local name="$1" i="$2" ns="$3" holder
	shift 3
	holder=$(awk -v n="mounts-$i" '$1 == n {print $2}' "$state/pids")
	setsid nsenter --net="/run/netns/$ns" --mount="/proc/$holder/ns/mnt" "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
	echo "$name $!" >>"$state/pids"
}

in_ns() { local ns="$1"; shift; nsenter --net="/run/netns/$ns" "$@"; }
sysctls() { # ns: a router that does not drop asymmetric paths
	in_ns "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# --- network: the control-plane namespace holds the bridge every node hangs off ----------------------------------
: >"$state/pids"
ip netns add "$cp_ns"
echo "netns $cp_ns" >>"$state/created"
ip -n "$cp_ns" link set lo up
ip -n "$cp_ns" link add br0 type bridge
ip -n "$cp_ns" addr add 10.250.0.1/24 dev br0
ip -n "$cp_ns" link set br0 up
sysctls "$cp_ns"
for a in ${DATAPLANE_EXTRA_ADDRS:-}; do
	ip -n "$cp_ns" addr add "$a/32" dev lo
done

i=0
for line in "${nodes[@]}"; do
	i=$((i + 1))
	ns="odp$id-n$i"
	ip netns add "$ns"
	echo "netns $ns" >>"$state/created"
	ip -n "$ns" link set lo up
	ip -n "$cp_ns" link add "n$i" type veth peer name eth0 netns "$ns"
	ip -n "$cp_ns" link set "n$i" master br0 up
	ip -n "$ns" addr add "10.250.0.$((10 + i))/24" dev eth0
	ip -n "$ns" link set eth0 up
	# Pods reach Services, the API and the stand-ins through the control-plane namespace; a node needs a default
	# route for kube-proxy's DNAT to apply at all.
	ip -n "$ns" route add default via 10.250.0.1
	ip -n "$cp_ns" route add "10.244.$i.0/24" via "10.250.0.$((10 + i))"
	sysctls "$ns"
	# Conntrack: a reply's NAT undone for connections that hairpin through the node.
	in_ns "$ns" sysctl -qw net.ipv4.conf.all.route_localnet=1
done
for ((a = 1; a <= i; a++)); do
	for ((b = 1; b <= i; b++)); do
		((a == b)) || ip -n "odp$id-n$a" route add "10.244.$b.0/24" via "10.250.0.$((10 + b))"
	done
done

# --- control plane ------------------------------------------------------------------------------------------------
"$bin/k8s-pki" -dir "$pki" -service-ip 10.0.0.1 >/dev/null

kubeconfig() { # file server
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: omscloud-test
  cluster:
    server: $2
    certificate-authority: $pki/ca.crt
    tls-server-name: kubernetes
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: omscloud-test
  context: {cluster: omscloud-test, user: admin}
current-context: omscloud-test
EOF
}
# Inside the namespaces every component uses the admin identity: the cluster is the test's own.
kubeconfig "$state/ns.kubeconfig" https://10.250.0.1:6443

[[ -z "${DATAPLANE_OWNER_PID:-}" ]] || watch_owner "$DATAPLANE_OWNER_PID"

mkdir -p -m 700 "$state/etcd"
launch etcd "$cp_ns" "$bin/etcd" --name omscloud-test --data-dir "$state/etcd" --unsafe-no-fsync \
	--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster omscloud-test=http://127.0.0.1:2380 --log-level warn
wait_for etcd in_ns "$cp_ns" curl -sf http://127.0.0.1:2379/health

launch kube-apiserver "$cp_ns" "$bin/kube-apiserver" \
	--etcd-servers http://127.0.0.1:2379 \
	--bind-address 0.0.0.0 --advertise-address 10.250.0.1 --secure-port 6443 \
	--service-cluster-ip-range 10.0.0.0/24 \
	--authorization-mode Node,RBAC \
	--client-ca-file "$pki/ca.crt" \
	--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
	--kubelet-preferred-address-types InternalIP \
	--kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
	--requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
	--requestheader-allowed-names front-proxy-client \
	--requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
	--requestheader-extra-headers-prefix X-Remote-Extra- \
	--proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
	--profiling=false
api_ready() {
	in_ns "$cp_ns" curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
		--resolve kubernetes:6443:10.250.0.1 https://kubernetes:6443/readyz
}
wait_for kube-apiserver api_ready

# The host's way in: 127.0.0.1 (in the certificate) forwarded into the control-plane namespace.
launch nsproxy-api - "$bin/k8s-nsproxy" -netns "/run/netns/$cp_ns" -to 10.250.0.1:6443 -listen 127.0.0.1:0 \
	-addr-file "$state/api.addr"
wait_for nsproxy-api test -s "$state/api.addr"
kubeconfig "$state/kubeconfig" "https://$(cat "$state/api.addr")"
kc() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }

launch kube-controller-manager "$cp_ns" "$bin/kube-controller-manager" \
	--kubeconfig "$state/ns.kubeconfig" \
	--authentication-kubeconfig "$state/ns.kubeconfig" --authorization-kubeconfig "$state/ns.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port 10257 \
	--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
	--use-service-account-credentials \
	--leader-elect=false --profiling=false
launch kube-scheduler "$cp_ns" "$bin/kube-scheduler" \
	--kubeconfig "$state/ns.kubeconfig" \
	--authentication-kubeconfig "$state/ns.kubeconfig" --authorization-kubeconfig "$state/ns.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port 10259 \
	--leader-elect=false --profiling=false

# CoreDNS in the control-plane namespace behind the kube-dns Service: cluster.local from the API, NXDOMAIN for every
# other name (there is nothing to forward to offline).
# The kubernetes zones in a block of their own: CoreDNS runs plugins in its compiled order (template before
# kubernetes), so one block holding both would answer NXDOMAIN for every name.
cat >"$state/Corefile" <<EOF
cluster.local in-addr.arpa ip6.arpa {
    bind 10.250.0.1
    errors
    health 127.0.0.1:8080
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $state/ns.kubeconfig omscloud-test
        pods insecure
        ttl 5
    }
    cache 5
}
. {
    bind 10.250.0.1
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
launch coredns "$cp_ns" "$bin/coredns" -conf "$state/Corefile"

healthz() { in_ns "$cp_ns" curl -sfk "https://127.0.0.1:$1/healthz"; }
wait_for kube-controller-manager healthz 10257
wait_for kube-scheduler healthz 10259
wait_for coredns in_ns "$cp_ns" curl -sf http://127.0.0.1:8181/ready
wait_for kube-controller-manager kc -n default get serviceaccount default
kc apply -f "$here/gke-crds.yaml" >/dev/null
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: 10.0.0.10
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: kube-dns-coredns, namespace: kube-system, labels: {kubernetes.io/service-name: kube-dns}}
addressType: IPv4
endpoints: [{addresses: [10.250.0.1], conditions: {ready: true}}]
ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
EOF

# --- nodes ----------------------------------------------------------------------------------------------------------
# Every cgroup v1 hierarchy the kubelet uses needs the root to exist; cpuset children start empty in v1, so each
# level copies its parent's cpus and mems.
for h in /sys/fs/cgroup/*/; do
	h="${h%/}"
	# The v2 hierarchy of a hybrid host: runc mirrors containers there by itself; only its removal is ours.
	case "$(basename "$h")" in unified) echo "cgroup $h$cgroot" >>"$state/created" && continue ;; esac
	path="$h"
	for part in ${cgroot//\// }; do
		path="$path/$part"
		if [[ ! -d "$path" ]]; then
			mkdir "$path"
			if [[ -f "$path/cpuset.cpus" ]]; then
				cat "$(dirname "$path")/cpuset.cpus" >"$path/cpuset.cpus"
				cat "$(dirname "$path")/cpuset.mems" >"$path/cpuset.mems"
			fi
		fi
	done
	echo "cgroup $h$cgroot" >>"$state/created"
done

: >"$state/resolv.conf"
i=0
for line in "${nodes[@]}"; do
	i=$((i + 1))
	read -r name labels taints <<<"$line"
	ns="odp$id-n$i"
	d="$state/nodes/$i"
	mkdir -p "$d/cni" "$d/ipam" "$d/kubelet" "$d/pod-logs" "$d/containerd/root" "$d/containerd/state"
	echo "DATAPLANE_NODE_$i=\"$name $ns 10.250.0.$((10 + i)) $d\"" >>"$state/env"
	cat >"$d/cni/10-omsdp.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "omsdp", "plugins": [
  {"type": "ptp", "ipMasq": false, "mtu": 1500,
   "ipam": {"type": "host-local", "dataDir": "$d/ipam", "ranges": [[{"subnet": "10.244.$i.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
	cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$d/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # Root here lacks CAP_SYS_RESOURCE: lowering a container's oom_score_adj below this process's fails every sandbox.
  restrict_oom_score_adj = true
  enable_selinux = false
  # Pod network namespaces under the node's state (not /run/netns), so teardown finds exactly its own.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$d/cni"
EOF
	node_mounts "$i" "$d"
	wait_for "mounts-$i" test -e "$d/sysctl/ready"
	launch_node "containerd-$i" "$i" "$ns" containerd --config "$d/containerd.toml"
	cat >"$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$d/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $cgroot/n$i
failSwapOn: false
failCgroupV1: false
podLogsDir: $d/pod-logs
resolvConf: $state/resolv.conf
clusterDNS: [10.0.0.10]
clusterDomain: cluster.local
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
serializeImagePulls: false
# Every node reports the whole machine: thresholds that the host's disk and memory never cross.
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 4s
shutdownGracePeriod: 0s
EOF
	for h in /sys/fs/cgroup/*/; do
		h="${h%/}"
		case "$(basename "$h")" in unified) continue ;; esac
		mkdir -p "$h$cgroot/n$i"
		if [[ -f "$h$cgroot/n$i/cpuset.cpus" && -z "$(cat "$h$cgroot/n$i/cpuset.cpus")" ]]; then
			cat "$h$cgroot/cpuset.cpus" >"$h$cgroot/n$i/cpuset.cpus"
			cat "$h$cgroot/cpuset.mems" >"$h$cgroot/n$i/cpuset.mems"
		fi
	done
	cat >"$d/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: 10.244.0.0/16
hostnameOverride: $name
clientConnection: {kubeconfig: $state/ns.kubeconfig}
bindAddress: 10.250.0.$((10 + i))
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# 0: leave the machine-wide nf_conntrack_max alone.
conntrack: {maxPerCore: 0, min: 0}
iptables: {syncPeriod: 5s, minSyncPeriod: 0s}
EOF
done

i=0
for line in "${nodes[@]}"; do
	i=$((i + 1))
	d="$state/nodes/$i"
	wait_for "containerd-$i" test -S "$d/containerd.sock"
	if [[ -n "${DATAPLANE_IMAGES:-}" ]]; then
		for img in "$DATAPLANE_IMAGES"/*.tar; do
			ctr -a "$d/containerd.sock" -n k8s.io images import --no-unpack "$img" >/dev/null \
				|| fail "import $img into node $i" "containerd-$i"
		done
	fi
done

i=0
for line in "${nodes[@]}"; do
	i=$((i + 1))
	read -r name labels taints <<<"$line"
	ns="odp$id-n$i"
	d="$state/nodes/$i"
	taint_flag=()
	[[ "$taints" == - || -z "$taints" ]] || taint_flag=(--register-with-taints "$taints")
	launch_node "kubelet-$i" "$i" "$ns" "$bin/kubelet" --config "$d/kubelet.yaml" --kubeconfig "$state/ns.kubeconfig" \
		--root-dir "$d/kubelet" --hostname-override "$name" --node-ip "10.250.0.$((10 + i))" \
		--node-labels "$labels" "${taint_flag[@]}" -v 1
	launch_node "kube-proxy-$i" "$i" "$ns" "$bin/kube-proxy" --config "$d/kube-proxy.yaml"
done

deadline=$(($(date +%s) + timeout_s))
until [[ "$(kc get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True)" == "$i" ]]; do
	for ((n = 1; n <= i; n++)); do
		pid=$(awk -v c="kubelet-$n" '$1 == c {print $2}' "$state/pids")
		kill -0 "$pid" 2>/dev/null || fail "kubelet $n exited" "kubelet-$n"
	done
	(($(date +%s) < deadline)) || fail "nodes not Ready after ${timeout_s}s" "kubelet-1"
	sleep 0.5
done

echo "dataplane-up: $i nodes Ready in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s" \
	"(apiserver https://$(cat "$state/api.addr")); export KUBECONFIG=$state/kubeconfig"
