#!/usr/bin/env bash
# Agent control over both transports with a real agent: a drained agent takes no runs
# until resumed (the run starts after the resume); drain --now stops the running job
# and requeues its run (not a failure: attempt 1 canceled, attempt 2 succeeds after
# the resume); sleep/wake; a lazy shutdown lets the running job finish, then the agent
# exits 0 and runs its --shutdown-command; forget removes it once offline; mistakes
# are refused with a reason.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }

agent_state() {
	"$PILOT" agents list --all -o json | python3 -c 'import json,sys
for a in json.load(sys.stdin)["agents"]:
    if a["name"] == sys.argv[1]: print(a["state"])' "$1"
}

state_of_agent_is() { [ "$(agent_state "$1")" = "$2" ]; }

attempts_of() {
	run_field "$1" '" ".join(a["state"] for a in j["attempts"])'
}

control() {
	local a="agent-$CLI_TRANSPORT" r t0 stayed=yes
	project "$CLI_DIR/quick" 'name: quick
runtime: host
command: echo quick'

	# drain: no runs until resume.
	expect_status 0 "$(t 'pilot agents drain')" "$PILOT" agents drain "$a"
	contains "$(t 'says what it means')" "$OUT" "agent $a takes no more runs; its running jobs finish (drained)"
	wait_for grep -q "drained by the server" "$CLI_DIR/agent.log"
	check "$(t 'the agent hears it is drained')" grep -q "drained by the server" "$CLI_DIR/agent.log"
	expect_status 0 "$(t 'pilot agents show')" "$PILOT" agents show "$a"
	contains "$(t 'show: the state')" "$OUT" "state    drained"
	contains "$(t 'show: who told it what')" "$OUT" "told     drain, "
	r=$("$PILOT" submit "$CLI_DIR/quick")
	# Three seconds (more than a claim's long-poll) in which it must stay queued.
	local until=$(($(now_ms) + 3000))
	while [ "$(now_ms)" -lt "$until" ]; do
		state_is "$r" queued || { stayed=no; break; }
		sleep 0.2
	done
	equals "$(t 'a drained agent takes no run')" "$stayed" yes
	expect_status 124 "$(t 'logs -f of the run, for 2 s')" timeout 2 env PILOT_QUEUED_NOTE=0 "$PILOT" logs -f "$r"
	contains "$(t 'says why it waits')" "$ERR" "the 1 agent that could take it is drained, asleep or shutting down"
	t0=$(now_ms)
	expect_status 0 "$(t 'pilot agents resume')" "$PILOT" agents resume "$a"
	contains "$(t 'resume says so')" "$OUT" "takes runs again (idle)"
	wait_state "$r" succeeded
	check "$(t 'the run started after the resume')" test "$(run_field "$r" 'j["started_ms"]')" -ge "$t0"
	check "$(t 'the agent heard it resumed')" grep -q "resumed by the server" "$CLI_DIR/agent.log"

	# drain --now: the running job is stopped and its run requeued, not failed.
	rm -f "$CLI_DIR/first"
	project "$CLI_DIR/long" "name: long
runtime: host
command: if [ -e '$CLI_DIR/first' ]; then echo second; else touch '$CLI_DIR/first'; exec sleep 60; fi"
	r=$("$PILOT" submit "$CLI_DIR/long")
	wait_for test -e "$CLI_DIR/first"
	expect_status 0 "$(t 'pilot agents drain --now')" "$PILOT" agents drain --now "$a"
	contains "$(t 'says the jobs are stopped')" "$OUT" "its running jobs are stopped and their runs requeued"
	wait_for sh -c "'$PILOT' show -o json $r | grep -q '\"type\": \"requeued\"'"
	equals "$(t 'attempt 1 canceled, the run back in the queue')" \
		"$(run_field "$r" 'j["state"] + " " + " ".join(a["state"] for a in j["attempts"])')" "queued canceled"
	contains "$(t 'the event says why')" "$("$PILOT" show "$r")" "was told to drain at once"
	wait_for state_of_agent_is "$a" drained
	equals "$(t 'the agent is drained')" "$(agent_state "$a")" drained
	expect_status 0 "$(t 'resume')" "$PILOT" agents resume "$a"
	wait_state "$r" succeeded
	equals "$(t 'attempt 2 ran it: no retry budget spent, no failure')" \
		"$(run_field "$r" '" ".join(a["state"] for a in j["attempts"]) + " " + str(j["reason"])')" \
		"canceled succeeded exit_code"

	# sleep / wake.
	expect_status 0 "$(t 'pilot agents sleep')" "$PILOT" agents sleep "$a"
	equals "$(t 'asleep')" "$(agent_state "$a")" asleep
	expect_status 0 "$(t 'pilot status')" "$PILOT" status
	contains "$(t 'status counts it')" "$OUT" "1 drained or asleep"
	expect_status 0 "$(t 'pilot agents wake')" "$PILOT" agents wake "$a"
	equals "$(t 'awake: idle')" "$(agent_state "$a")" idle

	# Mistakes.
	expect_status 1 "$(t 'an unknown agent')" "$PILOT" agents drain nosuch
	contains "$(t 'named')" "$ERR" "agent 'nosuch' not found"
	expect_status 2 "$(t 'an action without an agent')" "$PILOT" agents drain
	expect_status 2 "$(t '--now with resume')" "$PILOT" agents resume --now "$a"
	expect_status 2 "$(t 'a misspelt action')" "$PILOT" agents drian "$a"
	contains "$(t 'suggests the right one')" "$ERR" "did you mean 'drain'"
	expect_status 1 "$(t 'forget a connected agent')" "$PILOT" agents forget "$a"
	contains "$(t 'refused: it is connected')" "$ERR" "is connected"

	# A lazy shutdown: the job finishes, then the agent exits 0 and runs its
	# shutdown command.
	stop_agent
	start_agent --shutdown-command "touch '$CLI_DIR/powered-off'"
	rm -f "$CLI_DIR/started" "$CLI_DIR/go"
	project "$CLI_DIR/held" "name: held
runtime: host
command: touch '$CLI_DIR/started'; while [ ! -e '$CLI_DIR/go' ]; do sleep 0.05; done; echo done"
	r=$("$PILOT" submit "$CLI_DIR/held")
	wait_for test -e "$CLI_DIR/started"
	expect_status 0 "$(t 'pilot agents shutdown')" "$PILOT" agents shutdown "$a"
	contains "$(t 'stops once its jobs end')" "$OUT" "stops once its running jobs end (draining)"
	# One slot, busy: it hears of the shutdown when it asks for work again.
	touch "$CLI_DIR/go"
	wait_state "$r" succeeded
	equals "$(t 'its job finished')" "$(attempts_of "$r")" succeeded
	local status=0
	wait_for sh -c "! kill -0 $AGENT_PID"
	wait "$AGENT_PID" || status=$?
	AGENT_PID=
	equals "$(t 'the agent exited 0')" "$status" 0
	check "$(t 'saying why')" grep -q "asked this agent to shut down" "$CLI_DIR/agent.log"
	check "$(t 'and ran its --shutdown-command')" test -e "$CLI_DIR/powered-off"
	equals "$(t 'offline')" "$(agent_state "$a")" offline
	expect_status 1 "$(t 'shutdown of an offline agent')" "$PILOT" agents shutdown "$a"
	contains "$(t 'says so')" "$ERR" "offline already"
	expect_status 0 "$(t 'pilot agents forget')" "$PILOT" agents forget "$a"
	contains "$(t 'forgotten')" "$OUT" "agent $a forgotten"
	equals "$(t 'gone from the list')" "$(agent_state "$a")" ""
	# The next agent of that name starts afresh (for_transports stops it).
	start_agent
}

for_transports control
finish
