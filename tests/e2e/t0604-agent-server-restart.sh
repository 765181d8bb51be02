#!/usr/bin/env bash
# The server is killed (-9) and restarted mid-run: the agent keeps the job running,
# ships what it held back once the server is back, and the run ends with one attempt and
# a log byte-identical to the job's output.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/lib-agent.sh"

start_dockerd
import_busybox "$DOCKER_SOCK"
export DOCKER_HOST=$DOCKER_ENDPOINT
start_server --lease-ttl 12s --reap-interval 200ms

plan 7

project "$T_TMP/p" 'name: steady
image: busybox
command: |
  i=0; while [ $i -lt 40 ]; do echo "line $i: $(seq -s, 1 20)"; i=$((i+1)); sleep 0.1; done'
id=$("$PILOT" submit "$T_TMP/p")
start_agent r1 "$T_TMP/r1.err" --once
if wait_for log_has "$id" "line 5:"; then ok "the job runs"; else not_ok "the job runs"; fi
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
sleep 1.5
if restart_server; then ok "the server restarts on the same port"; else not_ok "the server restarts on the same port"; fi
wait_pid "$AGENT_PID"
equals "the agent hands the run over: exit 0" "$ST" 0
equals "one attempt, succeeded" "$(tt wait "$id")" "succeeded exit_code 0 1"
expect_status 0 "pilot logs" "$PILOT" logs "$id"
equals "the log is byte-identical to the output" "$(echo "$OUT" | sha256sum)" \
	"$(for i in $(seq 0 39); do echo "line $i: $(seq -s, 1 20)"; done | sha256sum)"

no_sanitizer_reports
done_testing
