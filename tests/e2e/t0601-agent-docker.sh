#!/usr/bin/env bash
# pilot agent against a real server and a private dockerd: a run in a container with its
# log (secrets redacted), metrics and artifacts (a symlink out of the workspace is not
# uploaded), a host job refused without --allow-host and run with it, cancel, orphan
# containers of a crashed self, and pilot agents over the server.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/lib-agent.sh"

start_dockerd
import_busybox "$DOCKER_SOCK"
export DOCKER_HOST=$DOCKER_ENDPOINT
start_server --lease-ttl 4s --reap-interval 200ms

plan 32

# ---- a run in a container --------------------------------------------------------------
project "$T_TMP/p1" 'name: hello
image: busybox
secrets: [API_KEY]
command: |
  echo hello; echo "the key is $API_KEY"; seq 1 3
  mkdir -p out; echo data > out/real.txt; ln -s /etc/passwd out/evil.txt; ln -s real.txt out/inner.txt
  echo "METRIC loss=0.5 step=1"
artifacts: [out/]'
id=$(API_KEY=hunter2-secret "$PILOT" submit "$T_TMP/p1")
expect_status 0 "--once runs it in a container" "$PILOT" agent --token-file "$TOKEN_FILE" --name d1 --once
contains "on docker" "$ERR" "run $id attempt 1: started (docker)"
expect_status 0 "pilot logs" "$PILOT" logs "$id"
equals "the log, the secret redacted" "$OUT" "$(printf 'hello\nthe key is ***\n1\n2\n3\nMETRIC loss=0.5 step=1')"
equals "the run succeeded" "$(tt wait "$id")" "succeeded exit_code 0 1"
equals "only the regular file is an artifact, no symlink" "$(tt artifacts "$id")" "1 out/real.txt 5"
equals "the metric" "$(tt metrics "$id")" '{"loss":0.5,"step":1}'
equals "no container is left" "$(engine_managed "$DOCKER_SOCK")" ""

# ---- a token the server refuses: a clear error, at once -----------------------------------
printf 'pilot_bogus\n' >"$T_TMP/bad-token"
chmod 600 "$T_TMP/bad-token"
expect_status 1 "a refused token ends the agent" "$PILOT" agent --token-file "$T_TMP/bad-token" --name d1 --once
contains "it says why" "$ERR" "token"

# ---- where a run goes ------------------------------------------------------------------
project "$T_TMP/p2" 'name: host
command: echo on the host'
id=$("$PILOT" submit "$T_TMP/p2")
expect_status 0 "a host job without --allow-host: refused, handed over" \
	"$PILOT" agent --token-file "$TOKEN_FILE" --name d1 --once
contains "the agent says why" "$ERR" "refused"
equals "the run failed (runtime_error)" "$(tt wait "$id")" "failed runtime_error - 1"
contains "the message says how" "$(run_json "$id" 'j["attempts"][0]["message"]')" "--allow-host"
id=$("$PILOT" submit "$T_TMP/p2")
expect_status 0 "with --allow-host it runs on the host" \
	"$PILOT" agent --token-file "$TOKEN_FILE" --name d1 --once --allow-host
contains "on the host" "$ERR" "started (host)"
equals "the host run succeeded" "$(tt wait "$id")" "succeeded exit_code 0 1"
equals "its log" "$("$PILOT" logs "$id")" "on the host"

# ---- cancel ----------------------------------------------------------------------------------
project "$T_TMP/p3" 'name: trap
image: busybox
command: trap "echo bye; exit 1" TERM; echo started; while true; do sleep 0.1; done'
id=$("$PILOT" submit "$T_TMP/p3")
start_agent d1 "$T_TMP/d1.err" --once
wait_for log_has "$id" started
expect_status 0 "pilot cancel" "$PILOT" cancel "$id"
wait_pid "$AGENT_PID"
equals "the agent exits 0" "$ST" 0
equals "the run was canceled" "$(tt wait "$id")" "canceled canceled - 1"
equals "the job saw SIGTERM" "$("$PILOT" logs "$id")" "$(printf 'started\nbye')"
equals "its container is gone" "$(engine_managed "$DOCKER_SOCK")" ""

# ---- a crashed agent's container is removed when it comes back ---------------------------------
project "$T_TMP/p4" 'name: long
image: busybox
command: echo started; sleep 60'
id=$("$PILOT" submit "$T_TMP/p4")
start_agent d2 "$T_TMP/d2.err" --once
wait_for log_has "$id" started
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
cid=$(engine_managed "$DOCKER_SOCK")
if [ -n "$cid" ]; then ok "the container outlived its agent"; else not_ok "the container outlived its agent"; fi
expect_status 0 "pilot agents lists d2 as busy" "$PILOT" agents
contains "d2 busy" "$(echo "$OUT" | grep '^d2 ')" "busy"
"$PILOT" cancel "$id" >/dev/null
expect_status 0 "the agent comes back" "$PILOT" agent --token-file "$TOKEN_FILE" --name d2 --once --idle-timeout 100ms
contains "it removed its old container" "$ERR" "removed 1 container left by an earlier run of agent 'd2'"
equals "no container is left" "$(engine_managed "$DOCKER_SOCK")" ""
expect_status 0 "pilot agents --all -o json" "$PILOT" agents --all -o json
contains "labels include the runtime" "$OUT" '"runtime": "docker"'

no_sanitizer_reports
done_testing
