#!/usr/bin/env bash
# concurrency: {group, max} over both transports, run by a real agent with room for
# four jobs: at most max runs of the group run at once (each job counts the others
# running beside it), the rest wait for a slot (pilot list, show and logs -f say so)
# and all of them run in the end; a run outside the group is not held back.
# submit --unless-running ends a duplicate of a run that goes skipped.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

groups() {
	local live=$CLI_DIR/live
	mkdir -p "$live"
	: >"$CLI_DIR/seen"
	# Each job marks itself live, records how many are live, lingers, and leaves.
	project "$CLI_DIR/job" "name: limited
concurrency: {group: train, max: 2}
command: m=\$(mktemp $live/job.XXXXXX); trap 'rm -f \$m' EXIT; trap 'exit 143' TERM;
  echo \"\$(ls $live | wc -l) \$PILOT_RUN_ID \$PILOT_ATTEMPT\" >>$CLI_DIR/seen; sleep 1.5 & wait"
	project "$CLI_DIR/free" 'name: free
command: echo free-ran'

	stop_agent
	local ids=() i
	for i in 1 2 3 4 5; do ids+=("$("$PILOT" submit "$CLI_DIR/job")"); done
	equals "$(t 'the first two are queued')" "$(run_field "${ids[1]}" 'j["state"]')" "queued"
	equals "$(t 'the third waits for a slot')" "$(run_field "${ids[2]}" 'j["state"] + " " + str(j["slot_wait"])')" \
		"waiting True"
	expect_status 0 "$(t 'pilot list')" "$PILOT" list
	contains "$(t 'says it waits for a slot')" "$OUT" "waiting (for a slot)"
	expect_status 0 "$(t 'pilot show')" "$PILOT" show "${ids[4]}"
	contains "$(t 'shows the group')" "$OUT" "group train, at most 2 at once (waiting for a slot)"
	expect_status 124 "$(t 'logs -f of a run waiting for a slot, for 3 s')" timeout 3 env PILOT_QUEUED_NOTE=0 \
		"$PILOT" logs -f "${ids[4]}"
	contains "$(t 'says why it waits')" "$ERR" "run ${ids[4]} is waiting for a slot: concurrency group train has 2 runs going"

	start_agent -c 4
	local free
	free=$("$PILOT" submit "$CLI_DIR/free")
	if wait_state "$free" succeeded; then ok "$(t 'a run outside the group is not held back')"; else
		not_ok "$(t 'a run outside the group is not held back')" "$(run_field "$free" 'j["state"]')"; fi
	for i in "${ids[@]}"; do wait_state "$i" succeeded; done
	equals "$(t 'every run of the group succeeded')" "$(for i in "${ids[@]}"; do run_field "$i" 'j["state"]'; done | sort -u)" \
		"succeeded"
	# Each once, unless an agent gave up a lease on a loaded machine: each attempt once.
	local attempts
	attempts=$(for i in "${ids[@]}"; do run_field "$i" 'j["attempt_count"]'; done | awk '{n += $1} END {print n}')
	equals "$(t 'each attempt ran once')" "$(wc -l <"$CLI_DIR/seen") $(awk '{print $2, $3}' "$CLI_DIR/seen" | sort -u | wc -l)" \
		"$attempts $attempts"
	equals "$(t 'every run ran')" "$(awk '{print $2}' "$CLI_DIR/seen" | sort -u | wc -l)" "5"
	equals "$(t 'never more than two at once, and two at times')" "$(awk '{print $1}' "$CLI_DIR/seen" | sort -n | tail -n 1)" "2"
	expect_status 0 "$(t 'pilot show of the last')" "$PILOT" show "${ids[4]}"
	contains "$(t 'it took a slot that came free')" "$OUT" "a slot of concurrency group train came free"

	# Duplicates: --unless-running skips a run while one of the same name and params goes.
	project "$CLI_DIR/nightly" 'name: nightly
params: {day: "1"}
command: echo nightly'
	local first dup other
	stop_agent
	first=$("$PILOT" submit "$CLI_DIR/nightly")
	dup=$("$PILOT" submit --unless-running "$CLI_DIR/nightly")
	equals "$(t '--unless-running while one goes: skipped')" "$(run_field "$dup" 'j["state"] + " " + j["reason"]')" \
		"skipped duplicate"
	contains "$(t 'naming the run that goes')" "$(run_field "$dup" 'j["message"]')" "$first"
	expect_status 125 "$(t 'submit --wait --unless-running of a duplicate exits 125')" \
		"$PILOT" submit --wait --unless-running "$CLI_DIR/nightly"
	other=$("$PILOT" submit --unless-running -p day=2 "$CLI_DIR/nightly")
	start_agent -c 4
	wait_state "$first" succeeded
	wait_state "$other" succeeded
	equals "$(t 'other params are no duplicate: it ran')" "$(run_field "$other" 'j["state"]')" "succeeded"
	expect_status 0 "$(t 'pilot status')" "$PILOT" status
	contains "$(t 'counts the skipped runs')" "$OUT" "2 skipped"
}

for_transports groups
