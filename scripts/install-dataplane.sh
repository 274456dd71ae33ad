#!/usr/bin/env bash
# Installs the Debian packages a real Kubernetes data plane needs (real kubelets in network namespaces, see
# testtools/README.md): containerd + runc as the container runtime, the CNI plugins (ptp, host-local, loopback,
# portmap in /usr/lib/cni), iptables + conntrack for kube-proxy, iproute2 for the namespaces and veths, and
# busybox-static as the userland of the locally built test images. kubelet, kube-proxy and CoreDNS are built from
# Go modules by testtools/k8s-build.sh, not installed here.
#
# Idempotent: installed packages are left alone and `apt-get update` runs only when a package has no
# install candidate yet. containerd's maintainer scripts would start a system-wide daemon on
# /run/containerd/containerd.sock; a temporary policy-rc.d denies that start (an existing policy-rc.d is left
# untouched), so the only containerds on this machine are the ones tests start with their own config, root,
# state dir and socket. Runs as root, non-interactively (CI=true, no stdin).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

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
POLICY=/usr/sbin/policy-rc.d

log() { printf '[install-dataplane] %s\n' "$*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

if [[ $(id -u) -ne 0 ]]; then
  log "must run as root (apt-get install); try: sudo $0"
  exit 1
fi

start_all=$(now)

# Outputs are captured before matching: with pipefail, `cmd | grep -q` can fail when grep exits early.
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }
has_candidate() {
  local policy
  policy=$(apt-cache policy "$1" 2>/dev/null || true)
  [[ $policy =~ Candidate:\ [^\(] ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all packages already installed: ${PACKAGES[*]}"
else
  log "to install: ${missing[*]}"
  need_update=false
  for p in "${missing[@]}"; do
    has_candidate "$p" || need_update=true
  done
  if $need_update; then
    t=$(now)
    log "apt-get update (a package has no install candidate yet)"
    apt-get update -q </dev/null
    log "apt-get update done in $(elapsed "$t")"
  fi

  # Deny service starts from maintainer scripts while installing; remove our policy afterwards even on failure.
  created_policy=false
  if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\n# temporary, written by omscloud scripts/install-dataplane.sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    created_policy=true
    trap 'rm -f "$POLICY"' EXIT
    log "service starts denied during install ($POLICY, temporary)"
  else
    log "keeping existing $POLICY"
  fi

  t=$(now)
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null
  log "apt-get install done in $(elapsed "$t")"

  if $created_policy; then
    rm -f "$POLICY"
    trap - EXIT
    log "removed temporary $POLICY"
  fi
fi

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
