#!/usr/bin/env bash
# Installs the data tier the runtime tests start as local processes (runtime/localenv):
# PostgreSQL 15 (server, contrib, client incl. pgbench), Redis + Sentinel, RabbitMQ, and Prometheus (its promtool
# checks and unit-tests the alert rules of components/observability; the end-to-end alert test runs the server).
#
# Idempotent: installed packages are left alone and `apt-get update` runs only when a package has no
# install candidate yet. The packages' maintainer scripts would start system-wide services on the default
# ports; a temporary policy-rc.d denies those starts (an existing policy-rc.d is left untouched), so the only
# instances on this machine are the ones tests start on free ports. Runs as root, non-interactively (CI=true,
# no stdin).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
  postgresql-15          # server; ships pgbench and the contrib extensions
  postgresql-contrib     # metapackage kept explicit: contrib extensions for the supported version
  postgresql-client-15   # psql, pg_dump, pg_restore
  redis-server
  redis-sentinel
  rabbitmq-server
  prometheus             # prometheus + promtool: the alert rules' tests (components/observability/rules)
)
POLICY=/usr/sbin/policy-rc.d

log() { printf '[install-services] %s\n' "$*"; }
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
    printf '#!/bin/sh\n# temporary, written by omscloud scripts/install-services.sh\nexit 101\n' >"$POLICY"
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

# Report what is there, and whether anything holds the services' default ports (this script started nothing;
# anything listed was started by someone else and is left alone).
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
log "postgres:  $("$pgbin/postgres" --version) ($pgbin)"
log "pgbench:   $("$pgbin/pgbench" --version)"
log "redis:     $(redis-server --version | cut -d' ' -f1-3)"
log "sentinel:  $(command -v redis-sentinel)"
log "rabbitmq:  $(dpkg-query -W -f='${Version}' rabbitmq-server) (/usr/lib/rabbitmq/bin/rabbitmq-server)"
log "promtool:  $(promtool --version 2>&1 | head -n1)"
if command -v ss >/dev/null; then
  busy=$(ss -Htln '( sport = :5432 or sport = :6379 or sport = :26379 or sport = :5672 )' 2>/dev/null || true)
  if [[ -n $busy ]]; then
    log "note: default service ports are in use (not by this script):"
    printf '%s\n' "$busy"
  else
    log "no listener on the default ports 5432/6379/26379/5672"
  fi
fi
log "done in $(elapsed "$start_all")"
