#!/bin/sh
# Renders this pod's redis.conf and sentinel.conf. The master is, in order of trust:
#   1. what a running sentinel reports (right after any failover);
#   2. what a running peer Redis reports (a master, or a replica's master);
#   3. what this pod's sentinel last recorded on its volume (a full restart, nothing else up yet);
#   4. pod 0 (a new cluster).
# Starting as a replica of the wrong master is harmless (the sentinels reconfigure it); starting as a stale master is
# contained by min-replicas-to-write, which refuses writes on a master without replicas.
#
# Passwords: REDISCLI_AUTH is the pods' own (replication, sentinels among themselves, these scripts); clients use
# REDIS_CLIENT_PASSWORD and, until their pods have rolled after a rotation, REDIS_PREVIOUS_CLIENT_PASSWORD. Redis and
# the sentinels accept all three, so a rolling restart never refuses a peer or a client (components/redis README).
set -eu

: "${POD_NAME:?}" "${REPLICAS:?}" "${MASTER_NAME:?}" "${REDISCLI_AUTH:?}"
TEMPLATES=${TEMPLATES:-/scripts}
CONF_DIR=${CONF_DIR:-/conf}
DATA_DIR=${DATA_DIR:-/data}
DNS_WAIT_SECONDS=${DNS_WAIT_SECONDS:-60}
sentinel_conf="$DATA_DIR/sentinel/sentinel.conf"

# host N: the address of pod N, its DNS name under the headless Service. Without cluster DNS (the runtime's local
# test environment), POD_ADDRESSES lists the pods' addresses by ordinal instead.
host() {
	if [ -n "${POD_ADDRESSES:-}" ]; then
		echo "$POD_ADDRESSES" | awk -v n="$1" '{ print $(n + 1) }'
	else
		echo "${STATEFULSET:?}-$1.${HEADLESS:?}"
	fi
}
self=$(host "${POD_NAME##*-}")
[ -n "$self" ] || { echo "no address for $POD_NAME in POD_ADDRESSES" >&2; exit 1; }

peers() {
	n=0
	while [ "$n" -lt "$REPLICAS" ]; do
		peer=$(host "$n")
		n=$((n + 1))
		[ "$peer" = "$self" ] || echo "$peer"
	done
}

ask_sentinels() {
	for peer in $(peers); do
		reply=$(timeout 3 redis-cli --raw -h "$peer" -p 26379 SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1)
		case "$reply" in
		"" | *" "* | ERR* | NOAUTH* | WRONGPASS* | IDONTKNOW*) continue ;;
		esac
		echo "$reply"
		return 0
	done
	return 1
}

ask_peers() {
	for peer in $(peers); do
		info=$(timeout 3 redis-cli -h "$peer" -p 6379 INFO replication 2>/dev/null | tr -d '\r')
		case "$info" in
		*role:master*)
			echo "$peer"
			return 0
			;;
		*role:slave*)
			m=$(echo "$info" | sed -n 's/^master_host://p')
			if [ -n "$m" ]; then
				echo "$m"
				return 0
			fi
			;;
		esac
	done
	return 1
}

recorded_master() {
	[ -f "$sentinel_conf" ] || return 1
	m=$(awk -v name="$MASTER_NAME" '$1 == "sentinel" && $2 == "monitor" && $3 == name { print $4; exit }' "$sentinel_conf")
	[ -n "$m" ] || return 1
	echo "$m"
}

if master=$(ask_sentinels); then
	echo "master: $master (reported by a running sentinel)"
elif master=$(ask_peers); then
	echo "master: $master (reported by a running peer)"
elif master=$(recorded_master); then
	echo "master: $master (last recorded by this pod's sentinel)"
else
	master=$(host 0)
	echo "master: $master (new cluster)"
fi

# acl_default is the default user with every accepted password (a Redis 6+ ACL user may have several).
acl_default() {
	printf 'user default on ">%s"' "$REDISCLI_AUTH"
	for p in "${REDIS_CLIENT_PASSWORD:-}" "${REDIS_PREVIOUS_CLIENT_PASSWORD:-}"; do
		[ -z "$p" ] || printf ' ">%s"' "$p"
	done
	printf ' ~* "&*" +@all\n'
}

# Rendered files hold the passwords: readable by this user only.
umask 077
mkdir -p "$CONF_DIR" "$DATA_DIR/sentinel"
{
	cat "$TEMPLATES/redis.conf"
	echo "dir \"$DATA_DIR\""
	echo "replica-announce-ip $self"
	acl_default
	echo "masterauth \"$REDISCLI_AUTH\""
	if [ "$master" != "$self" ]; then
		echo "replicaof $master 6379"
	fi
} >"$CONF_DIR/redis.conf"
{
	sed -e "s/@MASTER_HOST@/$master/" "$TEMPLATES/sentinel.conf"
	echo "sentinel announce-ip $self"
	acl_default
	echo "sentinel sentinel-pass \"$REDISCLI_AUTH\""
	echo "sentinel auth-pass $MASTER_NAME \"$REDISCLI_AUTH\""
} >"$sentinel_conf.new"
mv "$sentinel_conf.new" "$sentinel_conf"

# Sentinel refuses to start while the master's name does not resolve; DNS records of new pods take a moment.
i=0
while ! getent hosts "$master" >/dev/null 2>&1 && [ "$i" -lt "$DNS_WAIT_SECONDS" ]; do
	sleep 1
	i=$((i + 1))
done
