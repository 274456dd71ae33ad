# Sourced by testtools/k8s-up.sh and dataplane-up.sh. The caller sets: state (its STATE_DIR, with pids and logs/),
# timeout_s (per component), me (its name, for messages) and down (the script that stops what it started).

# fail MESSAGE COMPONENT: reports the component's last log lines, stops what was started (logs kept), exits 1.
fail() {
	echo "$me: $1; last lines of $state/logs/$2.log:" >&2
	tail -n 30 "$state/logs/$2.log" >&2 || true
	"$down" "$state" --keep >&2 || true
	exit 1
}

# wait_for NAME CMD...: polls CMD until it succeeds; fails as soon as the component's process has exited.
wait_for() {
	local name="$1" pid deadline
	shift
	pid=$(awk -v n="$name" '$1 == n {print $2}' "$state/pids")
	deadline=$(($(date +%s) + timeout_s))
	until "$@" >/dev/null 2>&1; do
		kill -0 "$pid" 2>/dev/null || fail "$name exited" "$name"
		(($(date +%s) < deadline)) || fail "$name not ready after ${timeout_s}s" "$name"
		sleep 0.1
	done
}

# watch_owner PID: a test binary that owns the cluster may be killed (go test -timeout) before it can stop it: stop
# the cluster when the owner is gone. The watcher ends by itself once the down script has removed the pids file.
watch_owner() {
	setsid bash -c 'while kill -0 "$1" 2>/dev/null && [[ -f "$2/pids" ]]; do sleep 1; done
		if [[ -f "$2/pids" ]]; then "$3" "$2"; fi' "$me-watch" "$1" "$state" "$down" >/dev/null 2>&1 </dev/null &
}
