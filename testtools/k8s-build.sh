#!/usr/bin/env bash
# Builds the real-Kubernetes verification binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok and the omscloud PKI generator; for a real data plane kubelet,
# kube-proxy and CoreDNS) from the Go modules pinned in testtools/k8s/go.mod and
# testtools/coredns/go.mod into a cache outside the repository, skipping binaries already built for
# the pinned versions. Prints the time each binary took.
#
#   testtools/k8s-build.sh            # build what is missing
#   K8S_BUILD_FORCE=1 testtools/k8s-build.sh   # rebuild everything
#
# Environment: OMSCLOUD_CACHE (default ~/.cache/omscloud), K8S_BIN_DIR (default
# $OMSCLOUD_CACHE/k8s/v1.33.13/bin), K8S_BUILD_P (go build -p, default 2; the apiserver link
# alone needs ~3 GB).
set -euo pipefail

K8S_VERSION=v1.33.13
ETCD_VERSION=v3.5.21
KWOK_VERSION=v0.7.0
COREDNS_VERSION=v1.12.0

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/testtools/k8s"
bin_dir="${K8S_BIN_DIR:-${OMSCLOUD_CACHE:-$HOME/.cache/omscloud}/k8s/$K8S_VERSION/bin}"
mkdir -p "$bin_dir"

k8s_ldflags() {
	local major minor
	major="${K8S_VERSION#v}"; major="${major%%.*}"
	minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
	local f=(-s -w)
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		f+=("-X $pkg.gitVersion=$K8S_VERSION" "-X $pkg.gitMajor=$major" "-X $pkg.gitMinor=$minor"
			"-X $pkg.gitTreeState=clean" "-X $pkg.buildDate=1970-01-01T00:00:00Z")
	done
	echo "${f[*]}"
}

# name | module dir under testtools/ | package | version stamp | ldflags
targets=(
	"k8s-pki|k8s|./cmd/k8s-pki|pki-$(cat "$tools"/cmd/k8s-pki/*.go | sha256sum | cut -c1-16)|-s -w"
	"etcd|k8s|go.etcd.io/etcd/server/v3|$ETCD_VERSION|-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
	"kube-apiserver|k8s|k8s.io/kubernetes/cmd/kube-apiserver|$K8S_VERSION|$(k8s_ldflags)"
	"kubectl|k8s|k8s.io/kubernetes/cmd/kubectl|$K8S_VERSION|$(k8s_ldflags)"
	"kube-scheduler|k8s|k8s.io/kubernetes/cmd/kube-scheduler|$K8S_VERSION|$(k8s_ldflags)"
	"kube-controller-manager|k8s|k8s.io/kubernetes/cmd/kube-controller-manager|$K8S_VERSION|$(k8s_ldflags)"
	"kwok|k8s|sigs.k8s.io/kwok/cmd/kwok|$KWOK_VERSION|-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"
	"k8s-nsproxy|k8s|./cmd/k8s-nsproxy|nsproxy-$(cat "$tools"/cmd/k8s-nsproxy/*.go | sha256sum | cut -c1-16)|-s -w"
	"kubelet|k8s|k8s.io/kubernetes/cmd/kubelet|$K8S_VERSION|$(k8s_ldflags)"
	"kube-proxy|k8s|k8s.io/kubernetes/cmd/kube-proxy|$K8S_VERSION|$(k8s_ldflags)"
	# Own module: CoreDNS pins an older client-go than the k8s module. GitCommit is what `coredns -version` prints.
	"coredns|coredns|github.com/coredns/coredns|$COREDNS_VERSION|-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
)

total_start=$(date +%s)
built=0
for t in "${targets[@]}"; do
	IFS='|' read -r name dir pkg stamp ldflags <<<"$t"
	out="$bin_dir/$name"
	if [[ -z "${K8S_BUILD_FORCE:-}" && -x "$out" && "$(cat "$out.stamp" 2>/dev/null)" == "$stamp" ]]; then
		echo "k8s-build: $name $stamp cached"
		continue
	fi
	start=$(date +%s)
	echo "k8s-build: building $name ($pkg $stamp)"
	# CGO off: static binaries, no C toolchain needed in CI.
	(cd "$repo/testtools/$dir" &&
		CGO_ENABLED=0 go build -p "${K8S_BUILD_P:-2}" -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
	mv "$out.tmp" "$out"
	echo "$stamp" >"$out.stamp"
	built=$((built + 1))
	echo "k8s-build: $name built in $(($(date +%s) - start)) s"
done
echo "k8s-build: $built binaries built, total $(($(date +%s) - total_start)) s, in $bin_dir"
