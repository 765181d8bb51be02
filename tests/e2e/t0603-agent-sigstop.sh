#!/usr/bin/env bash
# An agent stopped (SIGSTOP) past its lease and then continued: its writes are refused
# (409 superseded), it kills its container and drops its results; the run's result is
# that of the new attempt only.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/lib-agent.sh"

start_dockerd
import_busybox "$DOCKER_SOCK"
export DOCKER_HOST=$DOCKER_ENDPOINT
start_server --lease-ttl 3s --reap-interval 200ms

plan 13

owned_by() { # containers of agent $1
	engine_api "$DOCKER_SOCK" GET "/containers/json?all=1&filters=$(python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.dumps({"label": ["pilot.owner=" + sys.argv[1]]})))' "$1")" |
		json_get '"\n".join(c["Id"] for c in j)'
}

project "$T_TMP/p" 'name: ticker
image: busybox
command: i=0; while [ $i -lt 50 ]; do echo "tick $PILOT_ATTEMPT $i"; i=$((i+1)); sleep 0.1; done'
id=$("$PILOT" submit "$T_TMP/p")
start_agent s1 "$T_TMP/s1.err" --once
s1=$AGENT_PID
if wait_for log_has "$id" "tick 1 3"; then ok "agent s1 runs attempt 1"; else not_ok "agent s1 runs attempt 1"; fi
kill -STOP "$s1"
attempt1_lost() { [ "$(run_json "$id" 'j["attempts"][0]["state"]')" = lost ]; }
if wait_for attempt1_lost; then ok "its lease expires: attempt 1 lost"; else
	not_ok "its lease expires: attempt 1 lost" "$(tt get "$id")"; fi

start_agent s2 "$T_TMP/s2.err" --once
s2=$AGENT_PID
if wait_for log_has "$id" "tick 2 3"; then ok "agent s2 runs attempt 2"; else not_ok "agent s2 runs attempt 2"; fi
kill -CONT "$s1"
wait_pid "$s1"
equals "s1 exits 1: its result was not handed over" "$ST" 1
contains "s1 was told it was superseded" "$(cat "$T_TMP/s1.err")" "superseded"
equals "s1's container is gone" "$(owned_by s1)" ""
contains "the server refused s1's writes with 409" "$(grep ' 409 ' "$T_TMP/server.log")" "/v1/attempts/"

wait_pid "$s2"
equals "s2 exits 0" "$ST" 0
equals "the run succeeded on attempt 2" "$(tt wait "$id")" "succeeded exit_code 0 2"
equals "attempt 1 lost, attempt 2 succeeded" "$(run_json "$id" '",".join(a["state"] for a in j["attempts"])')" "lost,succeeded"
equals "the log is attempt 2's, whole" "$("$PILOT" logs "$id")" "$(for i in $(seq 0 49); do echo "tick 2 $i"; done)"
a1=$("$PILOT" logs --attempt 1 "$id")
equals "attempt 1's log holds only its own lines, in order" "$a1" "$(for i in $(seq 0 $(($(echo "$a1" | wc -l) - 1))); do echo "tick 1 $i"; done)"

no_sanitizer_reports
done_testing
