#!/usr/bin/env bash
# Stops the control plane testtools/k8s-up.sh started in STATE_DIR — only the PIDs it recorded, and only while they
# still run the binaries it launched — then removes what k8s-up.sh wrote there (unless --keep, which leaves logs and
# data for a post-mortem).
#
#   testtools/k8s-down.sh STATE_DIR [--keep]
set -euo pipefail

state="${1:?usage: k8s-down.sh STATE_DIR [--keep]}"
keep="${2:-}"
[[ -f "$state/pids" ]] || { echo "k8s-down: no cluster in $state" >&2; exit 0; }

# ours PID NAME: the PID is alive and still runs our binary (a recycled PID belongs to someone else).
ours() { [[ "$({ tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null)" == *"/$2 "* ]]; }

# Stop in reverse start order: clients before the apiserver, the apiserver before etcd.
mapfile -t entries < <(tac "$state/pids")
for e in "${entries[@]}"; do
	read -r name pid <<<"$e"
	ours "$pid" "$name" && kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		ours "$pid" "$name" || break
		sleep 0.1
	done
	if ours "$pid" "$name"; then
		echo "k8s-down: $name ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
done

if [[ "$keep" == "--keep" ]]; then
	mv "$state/pids" "$state/pids.stopped"
	echo "k8s-down: stopped; logs kept in $state/logs"
	exit 0
fi
rm -rf "$state/pki" "$state/etcd" "$state/logs" "$state/kubeconfig" "$state/controller-manager.kubeconfig" \
	"$state/scheduler.kubeconfig" "$state/pids"
rmdir "$state" 2>/dev/null || true
echo "k8s-down: stopped"
