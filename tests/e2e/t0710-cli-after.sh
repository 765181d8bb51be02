#!/usr/bin/env bash
# pilot submit --after over both transports, run by a real agent: a run waits until the
# one it names has succeeded (it starts only after that one finished), a failure fails
# the waiter and its own waiter at once (dependency_failed) without running them,
# RUN:failed and RUN:any accept other ends, pilot show and list say what a run waits for
# (and logs -f, while it waits), and bad --after values are usage errors.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

afters() {
	project "$CLI_DIR/ok" 'name: ok
command: sleep 1; echo ok-done'
	project "$CLI_DIR/bad" 'name: bad
command: echo failing; exit 3'
	project "$CLI_DIR/next" 'name: next
command: echo next-ran'

	# No agent while the waiting run is looked at: nothing moves.
	stop_agent
	local a b c
	a=$("$PILOT" submit "$CLI_DIR/ok")
	b=$("$PILOT" submit --after "${a:0:12}" "$CLI_DIR/next")
	equals "$(t 'the waiting run is waiting')" "$(run_field "$b" 'j["state"] + " " + str(j["needs_left"])')" \
		"waiting 1"
	expect_status 0 "$(t 'pilot list')" "$PILOT" list
	contains "$(t 'says what it waits for')" "$OUT" "waiting (for 1 run)"
	expect_status 0 "$(t 'pilot show')" "$PILOT" show "$b"
	contains "$(t 'lists what it waits for, by full id')" "$OUT" "$a (succeeded)"
	expect_status 124 "$(t 'logs -f of the waiting run, for 3 s')" timeout 3 env PILOT_QUEUED_NOTE=0 "$PILOT" logs -f "$b"
	contains "$(t 'says what it waits for')" "$ERR" "run $b is waiting for 1 run to end: $a (queued)"
	start_agent
	expect_status 0 "$(t 'submit --wait of a third run, waiting for the second')" "$PILOT" submit --wait \
		--after "$b" "$CLI_DIR/next"
	equals "$(t 'the first succeeded')" "$(run_field "$a" 'j["state"]')" "succeeded"
	equals "$(t 'then the second')" "$(run_field "$b" 'j["state"]')" "succeeded"
	local a_end b_start
	a_end=$(run_field "$a" 'j["finished_ms"]')
	b_start=$(run_field "$b" 'j["started_ms"]')
	if [ "$b_start" -ge "$a_end" ]; then ok "$(t 'the waiter started after the run it waited for ended')"; else
		not_ok "$(t 'the waiter started after the run it waited for ended')" "started $b_start, ended $a_end"; fi

	# A failure fails its waiters (and theirs) at once; RUN:failed runs; RUN:any too.
	a=$("$PILOT" submit "$CLI_DIR/bad")
	b=$("$PILOT" submit --after "$a" "$CLI_DIR/next")
	c=$("$PILOT" submit --after "$b" "$CLI_DIR/next")
	local on_fail any
	on_fail=$("$PILOT" submit --after "$a:failed" "$CLI_DIR/next")
	any=$("$PILOT" submit --after "$a:any" --after "$on_fail" "$CLI_DIR/next")
	wait_state "$c" failed
	equals "$(t 'the waiter failed: dependency_failed')" "$(run_field "$b" 'j["state"] + " " + j["reason"]')" \
		"failed dependency_failed"
	contains "$(t 'naming the run and how it ended')" "$(run_field "$b" 'j["message"]')" "run $a, which it waits for, ended failed"
	equals "$(t 'it never ran')" "$(run_field "$b" 'j["attempt_count"]')" "0"
	equals "$(t 'its own waiter failed too')" "$(run_field "$c" 'j["reason"]')" "dependency_failed"
	expect_status 125 "$(t 'submit --wait of a run waiting for a failed one: pilot could not run it')" \
		"$PILOT" submit --wait --after "$c" "$CLI_DIR/next"
	wait_state "$any" succeeded
	equals "$(t 'RUN:failed ran')" "$(run_field "$on_fail" 'j["state"]')" "succeeded"
	contains "$(t 'its log')" "$("$PILOT" logs "$on_fail")" "next-ran"

	expect_status 2 "$(t '--after with a state that is not an end')" "$PILOT" submit --after "$a:running" "$CLI_DIR/next"
	contains "$(t 'says which states')" "$ERR" "succeeded, failed, canceled, skipped, or any"
	expect_status 2 "$(t '--after with an empty run')" "$PILOT" submit --after ":failed" "$CLI_DIR/next"
	expect_status 1 "$(t '--after an unknown run')" "$PILOT" submit --after rzzzzzzzzzzzzzz "$CLI_DIR/next"
	contains "$(t 'names it')" "$ERR" "cannot wait for run 'rzzzzzzzzzzzzzz'"
}

for_transports afters
