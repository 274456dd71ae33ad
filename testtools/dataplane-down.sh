#!/usr/bin/env bash
# Stops a cluster that testtools/dataplane-up.sh started and removes exactly what it created: its recorded
# processes, every process left in its network namespaces (containers, shims, CNI), the namespaces themselves, its
# cgroups and mounts, and STATE_DIR (kept with --keep, for the logs).
#
#   testtools/dataplane-down.sh STATE_DIR [--keep]
#
# Order matters: the controllers stop and every pod is force-deleted so that nothing recreates one, the kubelets stop,
# then every process in the cluster's cgroups is killed (busybox as PID 1 ignores SIGTERM and would wait out its grace
# period) and containerd reaps their tasks, then the rest.
set -uo pipefail

state="${1:?usage: dataplane-down.sh STATE_DIR [--keep]}"
keep="${2:-}"
[[ -f "$state/pids" ]] || exit 0
# shellcheck disable=SC1091
source "$state/env" 2>/dev/null || true

pid_of() { awk -v n="$1" '$1 == n {print $2}' "$state/pids"; }
stop() { # names...: SIGTERM, then SIGKILL after 5 s
	local pids=() p
	for n in "$@"; do
		p=$(pid_of "$n")
		[[ -n "$p" ]] && kill -0 "$p" 2>/dev/null && pids+=("$p") && kill "$p" 2>/dev/null
	done
	for _ in $(seq 50); do
		local alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		((alive)) || return 0
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
}

stop kube-controller-manager kube-scheduler
# Pods force-deleted first: a kubelet would restart a sandbox killed under it.
if [[ -f "$state/kubeconfig" ]]; then
	timeout 20 "${K8S_BIN_DIR:-${OMSCLOUD_CACHE:-$HOME/.cache/omscloud}/k8s/v1.33.13/bin}/kubectl" \
		--kubeconfig "$state/kubeconfig" delete pods --all -A --force --grace-period=0 --wait=false >/dev/null 2>&1
fi
kubelets=() others=()
while read -r name _; do
	case "$name" in kubelet-* | kube-proxy-*) kubelets+=("$name") ;; containerd-*) ;; *) others+=("$name") ;; esac
done <"$state/pids"
stop "${kubelets[@]}"

# Every container process (pause included) lives in the cluster's cgroups: kill them all, then let each node's
# containerd reap its tasks (which ends their shims) before it stops.
while read -r kind what; do
	[[ "$kind" == cgroup && "$what" == */memory/* ]] || continue
	find "$what" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
done <"$state/created"
for ((i = 1; i <= ${DATAPLANE_NODES:-0}; i++)); do
	sock="$state/nodes/$i/containerd.sock"
	[[ -S "$sock" ]] || continue
	for t in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
		ctr -a "$sock" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1
	done
done
containerds=()
for ((i = 1; i <= ${DATAPLANE_NODES:-0}; i++)); do containerds+=("containerd-$i"); done
stop "${containerds[@]}"
stop "${others[@]}"

# Whatever still runs in the namespaces (a shim of a task containerd could not reap) is ours.
while read -r kind what; do
	[[ "$kind" == netns ]] || continue
	for p in $(ip netns pids "$what" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
done <"$state/created"
sleep 0.2

# Mounts made for the cluster (overlay rootfs, volume tmpfs, shm, netns binds), deepest first.
awk -v s="$state/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
	umount -l "$m" 2>/dev/null
done
while read -r kind what; do
	case "$kind" in
	netns) ip netns del "$what" 2>/dev/null ;;
	cgroup)
		# Children first; a cgroup still holding a task cannot go and is reported.
		find "$what" -depth -type d -exec rmdir {} \; 2>/dev/null
		[[ -d "$what" ]] && echo "dataplane-down: $what still exists" >&2
		;;
	esac
done <"$state/created"

rm -f "$state/pids"
if [[ "$keep" == --keep ]]; then
	find "$state" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null
else
	rm -rf "$state"
fi
exit 0
