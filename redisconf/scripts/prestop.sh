#!/bin/sh
# Before this pod stops (rolling update, node drain), hand the master role to a replica, so clients see a planned
# switch instead of waiting for failure detection. The sentinel container waits for that switch before it stops.
is_master() {
	redis-cli -p 6379 INFO replication 2>/dev/null | tr -d '\r' | grep -q '^role:master'
}
wait_not_master() {
	i=0
	while is_master && [ "$i" -lt 20 ]; do
		sleep 1
		i=$((i + 1))
	done
}
case "${1:-}" in
redis)
	is_master || exit 0
	redis-cli -p 6379 INFO replication 2>/dev/null | tr -d '\r' | grep -q '^connected_slaves:0' && exit 0
	redis-cli -p 26379 SENTINEL FAILOVER "$MASTER_NAME" >/dev/null 2>&1 || exit 0
	wait_not_master
	;;
sentinel)
	wait_not_master
	;;
esac
exit 0
