#!/usr/bin/env bash
# Installs the data tier the runtime tests start as local processes (runtime/localenv):
# PostgreSQL 15 (server, contrib, client incl. pgbench), Redis + Sentinel, RabbitMQ, and Prometheus (its promtool
# checks and unit-tests the alert rules of components/observability; the end-to-end alert test runs the server).
#
# Idempotent, and starts no service: scripts/apt-install.sh.
set -euo pipefail

PACKAGES=(
  postgresql-15          # server; ships pgbench and the contrib extensions
  postgresql-contrib     # metapackage kept explicit: contrib extensions for the supported version
  postgresql-client-15   # psql, pg_dump, pg_restore
  redis-server
  redis-sentinel
  rabbitmq-server
  prometheus             # prometheus + promtool: the alert rules' tests (components/observability/rules)
)
LOG_TAG=install-services
# shellcheck source=scripts/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
start_all=$(now)
apt_install "${PACKAGES[@]}"

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
