#!/usr/bin/env bash
# An agent killed with -9 mid-run: after its lease expires the run is requeued as attempt
# 2 and a second agent completes it; exactly one success is recorded; the first agent's
# orphaned container is removed when that agent starts again.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/lib-agent.sh"

start_dockerd
import_busybox "$DOCKER_SOCK"
export DOCKER_HOST=$DOCKER_ENDPOINT
start_server --lease-ttl 3s --reap-interval 200ms

plan 14

project "$T_TMP/p" 'name: victim
image: busybox
command: echo "start $PILOT_ATTEMPT"; sleep 3; echo "done $PILOT_ATTEMPT"'
id=$("$PILOT" submit "$T_TMP/p")
start_agent k1 "$T_TMP/k1.err" --once
if wait_for log_has "$id" "start 1"; then ok "agent k1 runs attempt 1"; else not_ok "agent k1 runs attempt 1" "$(cat "$T_TMP/k1.err")"; fi
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
orphan=$(engine_managed "$DOCKER_SOCK")
if [ -n "$orphan" ]; then ok "its container outlives it"; else not_ok "its container outlives it"; fi

start_agent k2 "$T_TMP/k2.err" --once
wait_pid "$AGENT_PID"
equals "agent k2 hands its run over: exit 0" "$ST" 0
equals "the run succeeded on attempt 2" "$(tt wait "$id")" "succeeded exit_code 0 2"
equals "attempt 1 lost, attempt 2 succeeded" "$(run_json "$id" '",".join(a["state"] for a in j["attempts"])')" "lost,succeeded"
equals "by k1, then k2" "$(run_json "$id" '",".join(a["agent"] for a in j["attempts"])')" "k1,k2"
equals "exactly one success" "$(run_json "$id" 'sum(a["state"] == "succeeded" for a in j["attempts"])')" 1
equals "the log of attempt 2" "$("$PILOT" logs "$id")" "$(printf 'start 2\ndone 2')"
expect_status 0 "the log of attempt 1" "$PILOT" logs --attempt 1 "$id"
equals "attempt 1 never finished" "$OUT" "start 1"
equals "k1's container is still there" "$(engine_managed "$DOCKER_SOCK")" "$orphan"

expect_status 0 "k1 starts again" "$PILOT" agent --token-file "$TOKEN_FILE" --name k1 --once --idle-timeout 100ms
equals "and removed its orphaned container" "$(engine_managed "$DOCKER_SOCK")" ""

no_sanitizer_reports
done_testing
