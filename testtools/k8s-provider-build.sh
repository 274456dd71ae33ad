#!/usr/bin/env bash
# Builds the real Pulumi Kubernetes provider plugin (pulumi-resource-kubernetes) pinned in testtools/k8s-provider/go.mod
# into a cache outside the repository, for the real-provider engine tests (enginetest/realk8s_test.go). The module
# proxy serves one version of github.com/pulumi/pulumi-kubernetes/provider/v4, a pseudo-version that is release
# v4.25.0. Its cmd/pulumi-resource-kubernetes/main.go embeds schema-embed.json and terraform-mapping-embed.json,
# which are not in the module zip: this script runs the zip's own generate.go (VERSION=4.25.0) next to the zip's
# schema.json and terraform-mapping.json in a build directory, then builds testtools/k8s-provider/main.go (the shipped
# main.go without its go:generate line) there. A warm run (same stamp) skips the build. Prints the time it took.
#
#   testtools/k8s-provider-build.sh                            # build if missing; prints the binary's path last
#   K8S_PROVIDER_BUILD_FORCE=1 testtools/k8s-provider-build.sh # rebuild
#
# Environment: OMSCLOUD_CACHE (default ~/.cache/omscloud); K8S_PROVIDER_BUILD_P (go build -p, default 2).
# Cost: ~690 CPU-seconds cold (8-10 min on an idle 2-core machine, up to 25 under load), 4.7 GB peak RSS per
# compile process; ~30 s warm. The binary lands in $OMSCLOUD_CACHE/k8s-provider/4.25.0/bin.
set -euo pipefail

# The release the pinned pseudo-version is; the provider reports it and the generated schema carries it.
RELEASE=4.25.0
MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/testtools/k8s-provider"
module_version="$(awk -v m="$MODULE" '($1 == "require" && $2 == m) || $1 == m { print ($1 == m ? $2 : $3); exit }' "$tools/go.mod")"
if [[ -z "$module_version" ]]; then
	echo "k8s-provider-build: no $MODULE requirement in $tools/go.mod" >&2
	exit 1
fi
root="${OMSCLOUD_CACHE:-$HOME/.cache/omscloud}/k8s-provider/$RELEASE"
out="$root/bin/pulumi-resource-kubernetes"
stamp="$module_version $(cat "$tools/go.mod" "$tools/go.sum" "$tools/main.go" | sha256sum | cut -c1-16)"

if [[ -z "${K8S_PROVIDER_BUILD_FORCE:-}" && -x "$out" && "$(cat "$out.stamp" 2>/dev/null)" == "$stamp" ]]; then
	echo "k8s-provider-build: pulumi-resource-kubernetes $RELEASE ($module_version) cached" >&2
	echo "$out"
	exit 0
fi

start=$(date +%s)
echo "k8s-provider-build: building pulumi-resource-kubernetes $RELEASE ($module_version); 10-25 min cold, niced" >&2
src="$root/src"
rm -rf "$src"
mkdir -p "$src" "$root/bin"
cp "$tools/go.mod" "$tools/go.sum" "$tools/main.go" "$tools/deps.go" "$src/"
cd "$src"
go mod download "$MODULE"
zipdir="$(go list -m -f '{{.Dir}}' "$MODULE")"
cp "$zipdir/cmd/pulumi-resource-kubernetes/"{generate.go,schema.json,terraform-mapping.json} "$src/"
chmod u+w "$src"/*
VERSION="$RELEASE" nice -n 19 go run generate.go
rm generate.go schema.json terraform-mapping.json
# No -trimpath, like pulumi-build.sh: a plain build's cache entries are reused.
CGO_ENABLED=0 nice -n 19 go build -p "${K8S_PROVIDER_BUILD_P:-2}" \
	-ldflags "-s -w -X $MODULE/pkg/version.Version=$RELEASE" -o "$out.tmp" .
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
echo "k8s-provider-build: pulumi-resource-kubernetes $RELEASE built in $(($(date +%s) - start))s -> $out" >&2
echo "$out"
