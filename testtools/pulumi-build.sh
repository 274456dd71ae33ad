#!/usr/bin/env bash
# Builds the Pulumi CLI pinned in testtools/pulumi/go.mod (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) into a cache
# outside the repository, for the real-engine tests (enginetest/, DESIGN.md testing layer 5) and `omsctl dr`.
# Skips the build when the binary for the pinned version is already there. Prints the time it took.
#
#   testtools/pulumi-build.sh                       # build if missing; prints the binary's path last
#   PULUMI_BUILD_FORCE=1 testtools/pulumi-build.sh  # rebuild
#
# Environment: OMSCLOUD_CACHE (default ~/.cache/omscloud); PULUMI_BUILD_P (go build -p, default 2).
# The binary lands in $OMSCLOUD_CACHE/pulumi/<version>/bin/pulumi, the layout auto.NewPulumiCommand expects
# (PulumiCommandOptions.Root = $OMSCLOUD_CACHE/pulumi/<version>).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/testtools/pulumi"
version="$(awk '$1 == "require" && $2 == "github.com/pulumi/pulumi/pkg/v3" { print $3 }' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "pulumi-build: no github.com/pulumi/pulumi/pkg/v3 requirement in $tools/go.mod" >&2
	exit 1
fi
bin_dir="${OMSCLOUD_CACHE:-$HOME/.cache/omscloud}/pulumi/$version/bin"
out="$bin_dir/pulumi"

if [[ -z "${PULUMI_BUILD_FORCE:-}" && -x "$out" ]]; then
	echo "pulumi-build: pulumi $version cached" >&2
	echo "$out"
	exit 0
fi

mkdir -p "$bin_dir"
start=$(date +%s)
echo "pulumi-build: building pulumi $version (a few minutes cold; the machine is shared, so niced)" >&2
cd "$tools"
# No -trimpath: the same flags as a plain `go build` of the CLI, so an existing build cache is reused.
nice -n 19 go build -p "${PULUMI_BUILD_P:-2}" \
	-ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
	-o "$out.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
mv "$out.tmp" "$out"
got="$("$out" version)"
if [[ "$got" != "$version" ]]; then
	echo "pulumi-build: built binary reports version $got, want $version" >&2
	exit 1
fi
echo "pulumi-build: pulumi $version built in $(($(date +%s) - start))s -> $out" >&2
echo "$out"
