# Sourced by scripts/install-*.sh: `apt_install PACKAGE...` installs what is missing, idempotently and with no
# service started. Installed packages are left alone and `apt-get update` runs only when a package has no install
# candidate yet. Maintainer scripts would start system-wide services on their default ports or sockets; a temporary
# policy-rc.d denies those starts (an existing policy-rc.d is left untouched), so the only instances on this machine
# are the ones tests start. Runs as root, non-interactively (CI=true, no stdin). The caller sets LOG_TAG.

export DEBIAN_FRONTEND=noninteractive
POLICY=/usr/sbin/policy-rc.d

log() { printf '[%s] %s\n' "$LOG_TAG" "$*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# Outputs are captured before matching: with pipefail, `cmd | grep -q` can fail when grep exits early.
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }
has_candidate() {
  local policy
  policy=$(apt-cache policy "$1" 2>/dev/null || true)
  [[ $policy =~ Candidate:\ [^\(] ]]
}

apt_install() {
  if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (apt-get install); try: sudo $0"
    exit 1
  fi
  local missing=() p t need_update=false created_policy=false
  for p in "$@"; do
    installed "$p" || missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "all packages already installed: $*"
    return
  fi
  log "to install: ${missing[*]}"
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
  if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\n# temporary, written by omscloud %s\nexit 101\n' "$0" >"$POLICY"
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
}
