#!/usr/bin/env bash
# Runs every benchmark figure of the OMS runtime on this machine and prints one table (figure, result,
# baseline from the same run, ratio) and the same as JSON, also written to bench/results/<UTC time>.json.
#
#   bash bench/run.sh            # default sizes: 1M inventory lines, 15 s phases (about 3 minutes)
#   bash bench/run.sh --quick    # small sizes and short phases (about 1.5 minutes), to smoke-check
#   bash bench/run.sh -- -standby -clients 100   # anything after -- goes to omsbench (see omsbench -h)
#
# Needs Go and the local services (PostgreSQL with pgbench/pg_dump/pg_restore, Redis + Sentinel,
# RabbitMQ): scripts/install-services.sh installs them. omsbench starts its own instances on free loopback
# ports and stops them when it ends. See bench/README.md for what each figure means.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) args+=(-duration 5s -lines 100000); shift ;;
    --) shift; args+=("$@"); break ;;
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (use --quick, or pass omsbench flags after --)" >&2; exit 2 ;;
  esac
done

fail() { echo "bench/run.sh: $*" >&2; exit 1; }
install_hint="install the services with: sudo bash scripts/install-services.sh"

# Fail before building anything when a binary is missing, naming it. The lookup is localenv's: the newest
# /usr/lib/postgresql/<version>/bin (else PATH) for PostgreSQL, /usr/lib/rabbitmq/bin (else PATH) for RabbitMQ.
command -v go >/dev/null || fail "go not found on PATH: install Go (the version in runtime/go.mod)"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z $pgbin || ! -x $pgbin/postgres ]]; then
  pg=$(command -v postgres || true)
  [[ -n $pg ]] || fail "PostgreSQL server (postgres) not found in /usr/lib/postgresql/*/bin nor on PATH; $install_hint"
  pgbin=$(dirname "$pg")
fi
for tool in pgbench psql pg_dump pg_restore; do
  [[ -x $pgbin/$tool ]] || fail "$tool not found in $pgbin (next to the PostgreSQL server); $install_hint"
done
command -v redis-server >/dev/null || fail "redis-server (Redis, also runs the Sentinels) not found on PATH; $install_hint"
command -v redis-cli >/dev/null || fail "redis-cli (the Redis pods' init.sh runs it) not found on PATH; $install_hint"
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || command -v rabbitmq-server >/dev/null ||
  fail "rabbitmq-server not found in /usr/lib/rabbitmq/bin nor on PATH; $install_hint"

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "· building oms and omsbench" >&2
(cd "$root/runtime" && go build -o "$bin/oms" ./cmd/oms && go build -o "$bin/omsbench" ./cmd/omsbench)

mkdir -p "$root/bench/results"
out="$root/bench/results/$(date -u +%Y%m%dT%H%M%SZ).json"
"$bin/omsbench" -oms-bin "$bin/oms" -json "$out" "${args[@]}"
echo "· JSON written to ${out#"$root"/}" >&2
