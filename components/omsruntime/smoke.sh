#!/bin/sh
# Smoke test of one color through its preview Service, run by the smoke Job before the public Service may select
# that color. It writes nothing: every API call is one the runtime must refuse, which exercises routing,
# authentication against the control database and validation. Never echo the arguments: they carry the admin token.
set -eu
base="http://${OMS_PREVIEW_SERVICE}"
echo "smoke test of ${base}"

i=0
until curl -fsS -o /dev/null --max-time 5 "${base}/readyz"; do
	i=$((i + 1))
	if [ "$i" -ge 30 ]; then
		echo "FAIL GET /readyz: not ready after 30 attempts (database or Redis unreachable, or no pod)"
		exit 1
	fi
	sleep 2
done
echo "ok   GET /readyz"

check() {
	name=$1
	want=$2
	shift 2
	got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" || true)
	if [ "$got" != "$want" ]; then
		echo "FAIL ${name}: HTTP ${got}, want ${want}"
		exit 1
	fi
	echo "ok   ${name}"
}

json='Content-Type: application/json'
check "GET /healthz" 200 "${base}/healthz"
check "GET /metrics is not served on the API port" 404 "${base}/metrics"
check "POST /v1/accounts without the admin token is refused" 401 -X POST -H "$json" -d '{"id":"smoke","name":"smoke"}' "${base}/v1/accounts"
check "POST /v1/accounts with a wrong admin token is refused" 403 -X POST -H "$json" -H "Authorization: Bearer not-the-admin-token" -d '{"id":"smoke","name":"smoke"}' "${base}/v1/accounts"
check "POST /v1/accounts with the admin token validates the id" 400 -X POST -H "$json" -H "Authorization: Bearer ${OMS_ADMIN_TOKEN}" -d '{"id":"-invalid-","name":"smoke"}' "${base}/v1/accounts"
check "GET /v1/orders with an unknown API key is refused" 401 -H "Authorization: Bearer smoke-unknown-key" "${base}/v1/orders"
echo "smoke test passed"
