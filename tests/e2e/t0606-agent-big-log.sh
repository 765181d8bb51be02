#!/usr/bin/env bash
# A job printing 1,000,000 lines through an agent and a server: `pilot logs` prints
# exactly what a local `pilot run` of the same project prints.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/lib-agent.sh"

start_dockerd
import_busybox "$DOCKER_SOCK"
export DOCKER_HOST=$DOCKER_ENDPOINT
start_server

plan 6

project "$T_TMP/p" 'name: million
image: busybox
command: seq 1 1000000'
id=$("$PILOT" submit "$T_TMP/p")
expect_status 0 "the agent runs it" "$PILOT" agent --token-file "$TOKEN_FILE" --name big --once
equals "the run succeeded" "$(tt wait "$id")" "succeeded exit_code 0 1"
"$PILOT" logs "$id" >"$T_TMP/remote"
env -u PILOT_SERVER -u PILOT_TOKEN "$PILOT" run --runtime docker "$T_TMP/p" >"$T_TMP/local" 2>"$T_TMP/local.err"
equals "a local run prints 1,000,000 lines" "$(wc -l <"$T_TMP/local")" 1000000
if cmp -s "$T_TMP/remote" "$T_TMP/local"; then ok "pilot logs is byte-identical to the local run"; else
	not_ok "pilot logs is byte-identical to the local run" "$(cmp "$T_TMP/remote" "$T_TMP/local" 2>&1)" "$(tail -3 "$T_TMP/local.err")"; fi
equals "and to seq" "$(sha256sum <"$T_TMP/remote")" "$(seq 1 1000000 | sha256sum)"

no_sanitizer_reports
done_testing
