#!/usr/bin/env bash
# A lossy link: a fault-injecting proxy between agent and server resets 20% of the
# requests, before the server sees them or after it answered. The stored log is still
# byte-identical to the job's output, and the run is handed over.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/lib-agent.sh"

start_dockerd
import_busybox "$DOCKER_SOCK"
export DOCKER_HOST=$DOCKER_ENDPOINT
start_server --lease-ttl 5s --reap-interval 200ms

plan 8

python3 "$SRCDIR/tests/tools/faultproxy.py" --upstream "127.0.0.1:$SERVER_PORT" --reset 0.2 --seed "${LOSSY_SEED:-20}" \
	--port-file "$T_TMP/proxy.port" --log "$T_TMP/proxy.log" >/dev/null 2>"$T_TMP/proxy.err" &
PROXY_PID=$!
at_exit 'kill "$PROXY_PID" 2>/dev/null'
wait_for test -s "$T_TMP/proxy.port" || { echo "Bail out! the proxy did not start"; exit 1; }
PROXY_URL=http://127.0.0.1:$(cat "$T_TMP/proxy.port")

gen='i=0; while [ $i -lt 3000 ]; do echo "line $i of the lossy link test, with some padding to make it longer"; i=$((i+1)); [ $((i % 100)) = 0 ] && sleep 0.1; done; printf "no newline at the end"'
project "$T_TMP/p" "name: lossy
image: busybox
command: '$gen'"
id=$("$PILOT" submit "$T_TMP/p")
expect_status 0 "the agent hands the run over through the lossy link" \
	"$PILOT" agent --server "$PROXY_URL" --token-file "$TOKEN_FILE" --name l1 --once
contains "the run succeeded" "$(tt wait "$id")" "succeeded exit_code 0"
"$PILOT" logs "$id" >"$T_TMP/stored"
sh -c "$gen" >"$T_TMP/expected"
if cmp -s "$T_TMP/stored" "$T_TMP/expected"; then ok "the stored log is byte-identical"; else
	not_ok "the stored log is byte-identical" "$(cmp "$T_TMP/stored" "$T_TMP/expected" 2>&1)"; fi
echo "# proxy: $(grep -c . "$T_TMP/proxy.log") requests, attempts: $(run_json "$id" "len(j[\"attempts\"])")"
resets=$(grep -c -E ' (before|after) ' "$T_TMP/proxy.log")
lost_answers=$(grep -c ' after ' "$T_TMP/proxy.log")
if [ "$resets" -gt 0 ]; then ok "the proxy reset $resets requests"; else not_ok "the proxy reset requests"; fi
if [ "$lost_answers" -gt 0 ]; then ok "$lost_answers of them after the server answered"; else not_ok "some after the server answered"; fi
if grep -q -E ' (before|after) PUT /v1/attempts/.*/logs' "$T_TMP/proxy.log"; then ok "log appends were among them"; else
	not_ok "log appends were among them"; fi
equals "one success" "$(run_json "$id" 'sum(a["state"] == "succeeded" for a in j["attempts"])')" 1

no_sanitizer_reports
done_testing
