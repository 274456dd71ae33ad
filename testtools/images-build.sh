#!/usr/bin/env bash
# Builds the container images of the local Kubernetes data plane (containerd + kubelets on this machine) as
# docker-archive tarballs, from binaries on this machine, under the names the sandbox stack's manifests use:
# registry.k8s.io/pause:3.10 (and :3.6, containerd 1.6's default sandbox image), docker.io/library/redis:7.2.5,
# docker.io/library/rabbitmq:3.13.7-management, docker.io/curlimages/curl:8.11.1,
# docker.io/oliver006/redis_exporter:v1.62.0 and the oms image (--oms-tag). Import with
#   ctr -n k8s.io -a SOCK images import OUT_DIR/<name>.tar
# Builds oms (CGO off), the pause program and k8s-images (testtools/k8s/cmd), and redis_exporter v1.62.0 from the
# module proxy once; k8s-images skips an image whose inputs (files by content, its spec) have not changed and prints
# the time and size of each.
#
#   testtools/images-build.sh [OUT_DIR] [--oms-tag TAG]... [--oms-broken-tag TAG]... [--force]
#
# --oms-broken-tag: the same runtime as a release that turns ready but fails the smoke test (the drills' failing
# switch).
#
# OUT_DIR defaults to ${OMSCLOUD_CACHE:-~/.cache/omscloud}/images. Needs the Debian packages redis-server,
# redis-sentinel, rabbitmq-server (scripts/install-services.sh), curl, busybox-static and ca-certificates.
set -euo pipefail

REDIS_EXPORTER_VERSION=v1.62.0
REDIS_EXPORTER_COMMIT=620cb9964b0d7d7033fe5f9858e0952b7269de4d

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${OMSCLOUD_CACHE:-$HOME/.cache/omscloud}"
out="" oms_tags=() broken_tags=() force=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--oms-tag) oms_tags+=("$2"); shift 2 ;;
	--oms-tag=*) oms_tags+=("${1#*=}"); shift ;;
	--oms-broken-tag) broken_tags+=("$2"); shift 2 ;;
	--force) force=(-force); shift ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	-*) echo "images-build: unknown flag $1" >&2; exit 2 ;;
	*) out="$1"; shift ;;
	esac
done
out="${out:-$cache/images}"
bin="$cache/images-build"
mkdir -p "$out" "$bin"

log() { printf 'images-build: %s\n' "$*"; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

missing=()
for f in /usr/bin/busybox:busybox-static /usr/bin/redis-server:redis-server /usr/bin/redis-sentinel:redis-sentinel \
	/usr/lib/rabbitmq/bin/rabbitmq-server:rabbitmq-server /usr/bin/curl:curl /usr/bin/getent:libc-bin \
	/etc/ssl/certs/ca-certificates.crt:ca-certificates; do
	[[ -e ${f%%:*} ]] || missing+=("${f#*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	log "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]}; scripts/install-services.sh has the data tier)"
	exit 1
fi

total=$(now)
# The oms binary the image runs; go's build cache makes an unchanged tree a quick relink.
t=$(now)
(cd "$repo/runtime" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin/oms.tmp" ./cmd/oms)
mv "$bin/oms.tmp" "$bin/oms"
log "oms built in $(took "$t")"

t=$(now)
(cd "$repo/testtools/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin/pause" ./cmd/pause &&
	go build -trimpath -o "$bin/k8s-images" ./cmd/k8s-images)
log "pause and k8s-images built in $(took "$t")"

# redis_exporter from the module proxy. The checksum database answers 404 for this module through the proxy here,
# so its go.sum is pinned below (h1 hashes as the proxy served them on 2026-12-03): go verifies against it and
# never asks the checksum database.
exporter="$bin/redis_exporter-$REDIS_EXPORTER_VERSION"
if [[ ! -x $exporter ]]; then
	t=$(now)
	mod=$(mktemp -d)
	cat >"$mod/go.mod" <<EOF
module omscloud.test/redis-exporter-build

go 1.22

require github.com/oliver006/redis_exporter $REDIS_EXPORTER_VERSION
EOF
	cat >"$mod/go.sum" <<'EOF'
github.com/beorn7/perks v1.0.1 h1:VlbKKnNfV8bJzeqoa4cOKqO6bYr3WgKZxO8Z16+hsOM=
github.com/beorn7/perks v1.0.1/go.mod h1:G2ZrVWU2WbWT9wwq4/hrbKbnv/1ERSJQ0ibhJ6rlkpw=
github.com/cespare/xxhash/v2 v2.2.0 h1:DC2CZ1Ep5Y4k3ZQ899DldepgrayRUGE6BBZ/cd9Cj44=
github.com/cespare/xxhash/v2 v2.2.0/go.mod h1:VGX0DQ3Q6kWi7AoAeZDth3/j3BFtOZR5XLFGgcrjCOs=
github.com/gomodule/redigo v1.9.2 h1:HrutZBLhSIU8abiSfW8pj8mPhOyMYjZT/wcA4/L9L9s=
github.com/gomodule/redigo v1.9.2/go.mod h1:KsU3hiK/Ay8U42qpaJk+kuNa3C+spxapWpM+ywhcgtw=
github.com/mna/redisc v1.4.0 h1:rBKXyGO/39SGmYoRKCyzXcBpoMMKqkikg8E1G8YIfSA=
github.com/mna/redisc v1.4.0/go.mod h1:CplIoaSTDi5h9icnj4FLbRgHoNKCHDNJDVRztWDGeSQ=
github.com/oliver006/redis_exporter v1.62.0 h1:7T0Fh8fJeYxf9gWa5gI6IliOSOWY9F5WlJCQMjZcjVE=
github.com/oliver006/redis_exporter v1.62.0/go.mod h1:a13ST3kely3DoWB7ffNkZX0x+LAQFxiK91+yclXlR9U=
github.com/prometheus/client_golang v1.19.1 h1:wZWJDwK+NameRJuPGDhlnFgx8e8HN3XHQeLaYJFJBOE=
github.com/prometheus/client_golang v1.19.1/go.mod h1:mP78NwGzrVks5S2H6ab8+ZZGJLZUq1hoULYBAYBw1Ho=
github.com/prometheus/client_model v0.6.1 h1:ZKSh/rekM+n3CeS952MLRAdFwIKqeY8b62p8ais2e9E=
github.com/prometheus/client_model v0.6.1/go.mod h1:OrxVMOVHjw3lKMa8+x6HeMGkHMQyHDk9E3jmP2AmGiY=
github.com/prometheus/common v0.48.0 h1:QO8U2CdOzSn1BBsmXJXduaaW+dY/5QLjfB8svtSzKKE=
github.com/prometheus/common v0.48.0/go.mod h1:0/KsvlIEfPQCQ5I2iNSAWKPZziNCvRs5EC6ILDTlAPc=
github.com/prometheus/procfs v0.12.0 h1:jluTpSng7V9hY0O2R9DzzJHYb2xULk9VTR1V1R/k6Bo=
github.com/prometheus/procfs v0.12.0/go.mod h1:pcuDEFsWDnvcgNzo4EEweacyhjeA9Zk3cnaOZAZEfOo=
github.com/sirupsen/logrus v1.9.3 h1:dueUQJ1C2q9oE3F7wvmSGAaVtTmUizReu6fjN8uqzbQ=
github.com/sirupsen/logrus v1.9.3/go.mod h1:naHLuLoDiP4jHNo9R0sCBMtWGeIprob74mVsIT4qYEQ=
golang.org/x/sys v0.17.0 h1:25cE3gD+tdBA7lp7QfhuV+rJiE9YXTcS3VG1SqssI/Y=
golang.org/x/sys v0.17.0/go.mod h1:/VUhepiaJMQUp4+oa/7Zr1D23ma6VTLIYjOOTFZPUcA=
google.golang.org/protobuf v1.33.0 h1:uNO2rsAINq/JlFpSdYEKIZ0uKD/R9cpdv0T+yoGwGmI=
google.golang.org/protobuf v1.33.0/go.mod h1:c6P6GXX6sHbq/GpV6MGZEdwhWPcYBgnhAHhKbcUYpos=
EOF
	(cd "$mod" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w -X main.BuildVersion=$REDIS_EXPORTER_VERSION -X main.BuildCommitSha=$REDIS_EXPORTER_COMMIT -X main.BuildDate=2024-07-17T05:07:06Z" \
		-o "$exporter.tmp" github.com/oliver006/redis_exporter) || {
		rm -rf "$mod"
		log "redis_exporter $REDIS_EXPORTER_VERSION did not build (module proxy?); building the other images without it"
		exporter=""
	}
	if [[ -n $exporter ]]; then
		mv "$exporter.tmp" "$exporter"
		rm -rf "$mod"
		log "redis_exporter $REDIS_EXPORTER_VERSION built in $(took "$t")"
	fi
fi

"$bin/k8s-images" -out "$out" -oms-bin "$bin/oms" -oms-tag "$(IFS=,; echo "${oms_tags[*]:-omscloud.test/oms:local}")" \
	-oms-broken-tag "$(IFS=,; echo "${broken_tags[*]:-}")" -pause-bin "$bin/pause" \
	${exporter:+-redis-exporter-bin "$exporter"} ${force[@]+"${force[@]}"}
log "done in $(took "$total"), tarballs in $out"
