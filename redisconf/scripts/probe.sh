#!/bin/sh
# Probes. live: the server answers (loading or waiting for a master counts). ready: a master, or a replica in sync
# with its master (so the PodDisruptionBudget never counts a syncing replica). sentinel: the sentinel answers.
case "${1:-}" in
live)
	reply=$(redis-cli -p 6379 PING 2>&1) || true
	case "$reply" in PONG | *LOADING* | *MASTERDOWN*) exit 0 ;; esac
	;;
ready)
	info=$(redis-cli -p 6379 INFO replication 2>/dev/null | tr -d '\r') || true
	case "$info" in *role:master* | *master_link_status:up*) exit 0 ;; esac
	;;
sentinel)
	[ "$(redis-cli -p 26379 PING 2>&1)" = PONG ] && exit 0
	;;
esac
exit 1
