#!/usr/bin/env bash
# Failures across agents, over both transports with two real agents: a job that fails
# on agent A only is retried on agent B, not on A again; after two failures in a row of
# that job on A (PILOT_BLOCKLIST_AFTER=2) A is blocklisted for it: pilot agents
# blocklist lists the entry, B gets the next run, and with B gone a run fails at once
# (no_agent) saying how to clear it; --clear lets A take it again. A run no agent has the labels for fails after its start_timeout.
export PILOT_BLOCKLIST_AFTER=2
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

B_PID=

start_b() {
	local srv=()
	if [ "$CLI_TRANSPORT" = http ]; then srv=(--server "$SRV_URL" --token-file "$CLI_DIR/agent.token"); fi
	: >"$CLI_DIR/agent-b.log"
	PILOT_HEARTBEAT=100ms PILOT_CLAIM_WAIT=2s "$PILOT" agent "${srv[@]}" --runtime host --allow-host \
		--name "b-$CLI_TRANSPORT" --workdir "$CLI_DIR/wb" 2>>"$CLI_DIR/agent-b.log" &
	B_PID=$!
	wait_for grep -q claiming "$CLI_DIR/agent-b.log"
}

stop_b() {
	[ -n "$B_PID" ] || return 0
	kill -TERM "$B_PID" 2>/dev/null
	wait "$B_PID" 2>/dev/null
	B_PID=
}
at_exit stop_b

# "AGENT:STATE ..." of the run's attempts.
attempts_of() {
	run_field "$1" '" ".join(a["agent"] + ":" + a["state"] for a in j["attempts"])'
}

blocklists() {
	local a="agent-$CLI_TRANSPORT" b="b-$CLI_TRANSPORT"
	start_agent --workdir "$CLI_DIR/wa"
	project "$CLI_DIR/picky" "name: picky
runtime: host
retry: {max_attempts: 2, backoff: 10s}
command: case \$PWD in $CLI_DIR/wa/*) echo 'not on this one'; exit 7 ;; esac; echo fine"
	# The same job without retries.
	mkdir -p "$CLI_DIR/once"
	sed '/^retry:/d' "$CLI_DIR/picky/pilot.yaml" >"$CLI_DIR/once/pilot.yaml"
	local r
	r=$("$PILOT" submit "$CLI_DIR/picky")
	wait_for sh -c "'$PILOT' show -o json $r | grep -q '\"state\": \"failed\"'"
	start_b
	wait_state "$r" succeeded
	equals "$(t 'failed on A, retried on B (not on A again)')" "$(attempts_of "$r")" "$a:failed $b:succeeded"

	stop_b
	r=$("$PILOT" submit "$CLI_DIR/once")
	wait_state "$r" failed
	equals "$(t 'with B gone, A fails it: its second failure of picky in a row')" "$(attempts_of "$r")" "$a:failed"
	expect_status 0 "$(t 'pilot agents blocklist')" "$PILOT" agents blocklist
	contains "$(t 'A is blocked for picky')" "$OUT" "$a  picky  blocked for"
	equals "$(t 'the run says so')" "$("$PILOT" show -o json "$r" | python3 -c 'import json,sys
print(sum(1 for e in json.load(sys.stdin)["events"] if e["type"] == "blocklisted"))')" "1"

	start_b
	r=$("$PILOT" submit "$CLI_DIR/once")
	wait_state "$r" succeeded
	equals "$(t 'the next run goes to B')" "$(attempts_of "$r")" "$b:succeeded"
	stop_b
	r=$("$PILOT" submit "$CLI_DIR/once")
	wait_state "$r" failed
	equals "$(t 'only A left: it fails at once, no_agent, never run')" \
		"$(run_field "$r" 'j["reason"] + " " + str(j["attempt_count"])')" "no_agent 0"
	contains "$(t 'saying how to clear the blocklist')" "$(run_field "$r" 'j["message"]')" \
		"pilot agents blocklist --clear AGENT picky"
	expect_status 0 "$(t 'clear the entry')" "$PILOT" agents blocklist --clear "$a" picky
	contains "$(t 'one cleared')" "$OUT" "1 blocklist entry cleared"
	r=$("$PILOT" submit "$CLI_DIR/once")
	wait_state "$r" failed
	equals "$(t 'A takes it again')" "$(attempts_of "$r")" "$a:failed"
	project "$CLI_DIR/nowhere" 'name: nowhere
runtime: host
requires: {gpu: h100}
start_timeout: 1s
command: echo never'
	r=$("$PILOT" submit "$CLI_DIR/nowhere")
	expect_status 0 "$(t 'pilot show of a run with a start_timeout')" "$PILOT" show "$r"
	contains "$(t 'says when it fails')" "$OUT" "fails if   1.0s queued with no agent that could take it"
	wait_state "$r" failed
	equals "$(t 'no agent has its labels: it fails after its start_timeout (no_agent)')" \
		"$(run_field "$r" 'j["reason"] + " " + str(j["attempt_count"])')" "no_agent 0"
	contains "$(t 'saying why')" "$(run_field "$r" 'j["message"]')" "within its start_timeout (1.0s)"
	expect_status 2 "$(t 'an unknown subcommand')" "$PILOT" agents nope
	expect_status 0 "$(t 'pilot agents list')" "$PILOT" agents list
	contains "$(t 'lists A')" "$OUT" "$a"
}

for_transports blocklists
