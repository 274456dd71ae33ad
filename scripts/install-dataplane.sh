#!/usr/bin/env bash
# Installs the Debian packages a real Kubernetes data plane needs (real kubelets in network namespaces, see
# testtools/README.md): containerd + runc as the container runtime, the CNI plugins (ptp, host-local, loopback,
# portmap in /usr/lib/cni), iptables + conntrack for kube-proxy, iproute2 for the namespaces and veths, and
# busybox-static as the userland of the locally built test images. kubelet, kube-proxy and CoreDNS are built from
# Go modules by testtools/k8s-build.sh, not installed here.
#
# Idempotent, and starts no service: scripts/apt-install.sh.
set -euo pipefail

PACKAGES=(
  containerd                   # the CRI runtime each test node runs with its own config and socket; ships ctr
  runc
  containernetworking-plugins  # /usr/lib/cni: ptp, host-local, loopback, portmap
  iptables                     # kube-proxy's iptables mode (nft backend)
  conntrack                    # kube-proxy clears stale UDP conntrack entries with it
  iproute2                     # ip netns / ip link: the node namespaces and their veths
  busybox-static               # the userland copied into the locally built test images
  libc-bin                     # getent, copied into images (Debian's busybox has none); essential, listed for the record
  util-linux                   # nsenter into the test namespaces; essential, listed for the record
)
LOG_TAG=install-dataplane
# shellcheck source=scripts/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
start_all=$(now)
apt_install "${PACKAGES[@]}"

# Report what is there, and whether a system-wide containerd runs (this script started none; one listed was
# started by someone else and is left alone).
log "containerd: $(containerd --version)"
log "ctr:        $(ctr --version)"
log "runc:       $(runc --version | head -n1)"
log "cni:        $(ls /usr/lib/cni | tr '\n' ' ')"
log "iptables:   $(iptables --version)"
log "conntrack:  $(conntrack --version 2>&1)"
log "busybox:    $(busybox 2>&1 | head -n1)"
running=$(ps -eo pid=,comm= | awk '$2 == "containerd" { print $1 }')
if [[ -n $running ]]; then
  log "note: containerd already running (not started by this script), PIDs: $(echo $running)"
else
  log "no containerd running"
fi
log "done in $(elapsed "$start_all")"
