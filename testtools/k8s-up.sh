#!/usr/bin/env bash
# Starts a throwaway Kubernetes control plane on 127.0.0.1 from the binaries testtools/k8s-build.sh cached: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which runs the fake nodes that carry the
# annotation kwok.x-k8s.io/node=fake). Everything it creates lives in STATE_DIR: PKI, etcd data, logs, the
# admin kubeconfig and the PIDs that testtools/k8s-down.sh stops.
#
#   dir=$(mktemp -d) && testtools/k8s-up.sh "$dir" && export KUBECONFIG=$dir/kubeconfig
#   ...
#   testtools/k8s-down.sh "$dir"
#
# kwok runs the pod stages in testtools/kwok-stages.yaml (kwok's defaults plus pod-smoke-fail) and heartbeats its
# nodes through leases; the controller-manager allows a node 5 minutes without a heartbeat. Without leases kwok
# heartbeats only every 20-45 s through a stage, which under load crosses the default 40-50 s grace period: the
# nodes go NotReady and every pod on them turns unready for good.
#
# Environment: K8S_BIN_DIR (default ${OMSCLOUD_CACHE:-$HOME/.cache/omscloud}/k8s/v1.33.13/bin),
# K8S_UP_TIMEOUT seconds per component (default 120).
set -euo pipefail

state="${1:?usage: k8s-up.sh STATE_DIR}"
bin="${K8S_BIN_DIR:-${OMSCLOUD_CACHE:-$HOME/.cache/omscloud}/k8s/v1.33.13/bin}"
timeout_s="${K8S_UP_TIMEOUT:-120}"
me=k8s-up down="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/k8s-down.sh"
# shellcheck source=testtools/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

for b in k8s-pki etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
	if [[ ! -x "$bin/$b" ]]; then
		echo "k8s-up: $bin/$b missing: run testtools/k8s-build.sh" >&2
		exit 3
	fi
done
if [[ -e "$state/pids" ]]; then
	echo "k8s-up: $state already holds a cluster: run testtools/k8s-down.sh $state first" >&2
	exit 2
fi
mkdir -p "$state/logs" && mkdir -p -m 700 "$state/etcd"
state="$(cd "$state" && pwd)"
pki="$state/pki"
start=$(date +%s.%N)

# A port nobody listens on now, below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default), so
# that no outgoing connection and no server bound to port 0 (every other test here) can hold it. Another component
# may still take it before we bind: then the component exits, the wait below reports its log, and the callers start
# again on new ports when it says "address already in use". Sets the variable named $1 (no subshell, so taken holds).
declare -A taken=()
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		[[ -n "${taken[$p]:-}" ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			taken[$p]=1
			printf -v "$1" '%s' "$p"
			return
		fi
	done
}
for port in etcd_port etcd_peer_port api_port kcm_port sched_port kwok_port; do
	free_port "$port"
done

"$bin/k8s-pki" -dir "$pki" -service-ip 10.0.0.1

kubeconfig() { # file user cert key
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: omscloud-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$3.crt
    client-key: $pki/$3.key
contexts:
- name: omscloud-test
  context: {cluster: omscloud-test, user: $2}
current-context: omscloud-test
EOF
}
kubeconfig "$state/kubeconfig" admin admin
kubeconfig "$state/controller-manager.kubeconfig" controller-manager controller-manager
kubeconfig "$state/scheduler.kubeconfig" scheduler scheduler

launch() { # name args...
	local name="$1"
	shift
	# setsid: the component outlives this script and is not hit by the caller's terminal signals.
	setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
	echo "$name $!" >>"$state/pids"
}

launch etcd "$bin/etcd" --name omscloud-test --data-dir "$state/etcd" --unsafe-no-fsync \
	--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
	--listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
	--initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
	--initial-cluster "omscloud-test=http://127.0.0.1:$etcd_peer_port" --log-level warn

[[ -z "${K8S_OWNER_PID:-}" ]] || watch_owner "$K8S_OWNER_PID"
wait_for etcd curl -sf "http://127.0.0.1:$etcd_port/health"

launch kube-apiserver "$bin/kube-apiserver" \
	--etcd-servers "http://127.0.0.1:$etcd_port" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
	--endpoint-reconciler-type none \
	--service-cluster-ip-range 10.0.0.0/24 \
	--authorization-mode Node,RBAC \
	--client-ca-file "$pki/ca.crt" \
	--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
	--requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
	--requestheader-allowed-names front-proxy-client \
	--requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
	--requestheader-extra-headers-prefix X-Remote-Extra- \
	--proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
	--profiling=false

api_ready() {
	curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
		"https://127.0.0.1:$api_port/readyz" >/dev/null
}
wait_for kube-apiserver api_ready

launch kube-controller-manager "$bin/kube-controller-manager" \
	--kubeconfig "$state/controller-manager.kubeconfig" \
	--authentication-kubeconfig "$state/controller-manager.kubeconfig" \
	--authorization-kubeconfig "$state/controller-manager.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port "$kcm_port" \
	--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
	--use-service-account-credentials \
	--horizontal-pod-autoscaler-sync-period 2s \
	--node-monitor-grace-period 5m \
	--leader-elect=false --profiling=false

launch kube-scheduler "$bin/kube-scheduler" \
	--kubeconfig "$state/scheduler.kubeconfig" \
	--authentication-kubeconfig "$state/scheduler.kubeconfig" \
	--authorization-kubeconfig "$state/scheduler.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port "$sched_port" \
	--leader-elect=false --profiling=false

launch kwok "$bin/kwok" --kubeconfig "$state/kubeconfig" \
	--manage-all-nodes=false \
	--manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
	--manage-nodes-with-label-selector= \
	--node-lease-duration-seconds 40 \
	--config "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kwok-stages.yaml" \
	--server-address "127.0.0.1:$kwok_port"

healthz() { curl -sfk "https://127.0.0.1:$1/healthz" >/dev/null; }
wait_for kube-controller-manager healthz "$kcm_port"
wait_for kube-scheduler healthz "$sched_port"
wait_for kwok curl -sf "http://127.0.0.1:$kwok_port/healthz"
# Pods need the default ServiceAccount, which the controller-manager creates.
wait_for kube-controller-manager "$bin/kubectl" --kubeconfig "$state/kubeconfig" -n default get serviceaccount default

# What GKE adds for omscloud's objects: the managed Prometheus collection's PodMonitoring.
"$bin/kubectl" --kubeconfig "$state/kubeconfig" apply -f "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/gke-crds.yaml" >/dev/null
wait_for kube-apiserver "$bin/kubectl" --kubeconfig "$state/kubeconfig" wait --for condition=established --timeout 30s \
	crd/podmonitorings.monitoring.googleapis.com

echo "k8s-up: cluster ready in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s" \
	"(apiserver https://127.0.0.1:$api_port); export KUBECONFIG=$state/kubeconfig"
