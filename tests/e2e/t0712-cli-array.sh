#!/usr/bin/env bash
# pilot submit --array and --matrix over both transports, run by a real agent with room
# for eight jobs: a 100-element array %4 runs every element once, never more than four
# at once (each job counts the others running beside it), each job sees its index as
# ${index} and PILOT_ARRAY_INDEX; pilot list --array lists the array; --matrix makes
# one run per combination of params (examples/sweep, with its metrics and artifacts);
# pilot show, watch, retry --failed (only the failed
# element runs again) and cancel of an array; bad --array values are usage errors.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

# Up to 4 minutes for n runs of array $1 to have succeeded.
wait_array() {
	local i
	case $1 in x*) ;; *) return 1 ;; esac
	for ((i = 0; i < 2400; i++)); do
		[ "$("$PILOT" list --array "$1" --all --state succeeded -q | wc -l)" -eq "$2" ] && return 0
		[ "$("$PILOT" list --array "$1" --all --state failed,canceled -q | wc -l)" -gt 0 ] && return 1
		sleep 0.1
	done
	return 1
}

arrays() {
	local live=$CLI_DIR/live
	mkdir -p "$live"
	: >"$CLI_DIR/seen"
	project "$CLI_DIR/sweep" "name: sweep
command: m=\$(mktemp $live/job.XXXXXX); trap 'rm -f \$m' EXIT; trap 'exit 143' TERM;
  echo \"\$(ls $live | wc -l) \$PILOT_RUN_ID \$PILOT_ATTEMPT\" >>$CLI_DIR/seen;
  echo \"index=\${index} env=\$PILOT_ARRAY_INDEX\"; sleep 0.2 & wait"

	start_agent -c 8
	local a
	a=$("$PILOT" submit --array 0-99%4 "$CLI_DIR/sweep")
	case $a in x*) ok "$(t 'submit --array prints the array id')" ;; *) not_ok "$(t 'submit --array prints the array id')" "$a" ;; esac
	if wait_array "$a" 100; then ok "$(t 'all 100 runs succeeded')"; else
		not_ok "$(t 'all 100 runs succeeded')" "$("$PILOT" list --array "$a" --all | awk '{print $3}' | sort | uniq -c)"; fi
	equals "$(t 'pilot list --array lists the 100')" "$("$PILOT" list --array "$a" --all -q | wc -l)" "100"
	# Each run once, unless an agent gave up a lease on a loaded machine (the job is
	# stopped, the run goes again): then each attempt once.
	local attempts
	attempts=$("$PILOT" list --array "$a" --all -o json | python3 -c 'import json,sys
print(sum(r["attempt_count"] for r in json.load(sys.stdin)["runs"]))')
	equals "$(t 'each attempt ran once')" "$(wc -l <"$CLI_DIR/seen") $(awk '{print $2, $3}' "$CLI_DIR/seen" | sort -u | wc -l)" \
		"$attempts $attempts"
	equals "$(t 'every element ran')" "$(awk '{print $2}' "$CLI_DIR/seen" | sort -u | wc -l)" "100"
	[ "$attempts" = 100 ] || echo "# $((attempts - 100)) attempt(s) lost and run again: $(awk '$3 > 1' "$CLI_DIR/seen" | tr '\n' ' ')"
	local most limit
	most=$(awk '{print $1}' "$CLI_DIR/seen" | sort -n | tail -n 1)
	# A job whose lease was given up may still be stopping when its run starts again.
	limit=$((4 + attempts - 100))
	if [ "$most" -le "$limit" ] && [ "$most" -ge 2 ]; then ok "$(t "at most four at once (seen: $most)")"; else
		not_ok "$(t "at most four at once ($limit with lost leases), and more than one")" "seen $most"; fi
	local r7
	r7=$("$PILOT" list --array "$a" --all -o json | python3 -c 'import json,sys
print([r["id"] for r in json.load(sys.stdin)["runs"] if r["array"]["index"] == 7][0])')
	contains "$(t 'element 7 saw its index in the spec and the environment')" "$("$PILOT" logs "$r7")" "index=7 env=7"
	equals "$(t 'the run shows its array')" "$(run_field "$r7" 'j["array"]["id"]')" "$a"
	expect_status 0 "$(t 'pilot show of an element')" "$PILOT" show "$r7"
	contains "$(t 'names the array and the index')" "$OUT" "$a, index 7"

	project "$CLI_DIR/grid" 'name: grid
params: {lr: "1", bs: "8"}
command: echo "lr=${lr} bs=${bs}"'
	a=$("$PILOT" submit --matrix lr=0.1,0.01 --matrix bs=32,64 "$CLI_DIR/grid")
	wait_array "$a" 4
	equals "$(t '--matrix: one run per combination, with its params')" "$("$PILOT" list --array "$a" --all -o json |
		python3 -c 'import json,sys
print(" ".join(sorted(json.loads(r["params_json"])["lr"] + "/" + json.loads(r["params_json"])["bs"] for r in json.load(sys.stdin)["runs"])))')" \
		"0.01/32 0.01/64 0.1/32 0.1/64"
	local logs="" id
	for id in $("$PILOT" list --array "$a" --all -q); do logs+="$("$PILOT" logs "$id") "; done
	contains "$(t 'the spec saw them')" "$logs" "lr=0.01 bs=64"

	# examples/sweep: a matrix of params, each run with its loss curve and summary.
	a=$("$PILOT" submit --matrix lr=0.1,0.01 --matrix bs=32,64 --throttle 2 "$SRCDIR/examples/sweep")
	if wait_array "$a" 4; then ok "$(t 'examples/sweep: the four runs of the sweep succeeded')"; else
		not_ok "$(t 'examples/sweep: the four runs of the sweep succeeded')" "$("$PILOT" show "$a")"; fi
	local last
	last=$("$PILOT" list --array "$a" -q | head -n 1)
	expect_status 0 "$(t 'its metrics')" "$PILOT" metrics -o json "$last"
	equals "$(t 'a loss for each of 20 steps')" "$(python3 -c 'import json,sys; m=json.load(sys.stdin)["metrics"]
print(len([x for x in m if "loss" in x["values"]]))' <<<"$OUT")" "20"
	expect_status 0 "$(t 'its artifacts')" "$PILOT" artifacts "$last"
	contains "$(t 'hold the summary')" "$OUT" "out/summary.txt"
	contains "$(t 'which names its element')" "$("$PILOT" logs "$last")" "index=3 lr=0.01 bs=64"

	# show, retry --failed and cancel of an array.
	project "$CLI_DIR/flaky" "name: flaky
command: test \${index} -ne 1 || test -e $CLI_DIR/fixed"
	a=$("$PILOT" submit --array 0-2 "$CLI_DIR/flaky")
	wait_for sh -c "[ \$('$PILOT' list --array $a --state failed -q | wc -l) -eq 1 ] &&
		[ \$('$PILOT' list --array $a --state succeeded -q | wc -l) -eq 2 ]"
	expect_status 0 "$(t 'pilot show of the array')" "$PILOT" show "$a"
	contains "$(t 'counts its runs by state')" "$OUT" "runs       3: 2 succeeded, 1 failed"
	contains "$(t 'lists them by index')" "$OUT" "1      r"
	expect_status 2 "$(t 'retry of an array without --failed')" "$PILOT" retry "$a"
	touch "$CLI_DIR/fixed"
	expect_status 0 "$(t 'retry --failed of the array')" "$PILOT" retry --failed "$a"
	contains "$(t 'one element runs again')" "$ERR" "1 element run again"
	if wait_array "$a" 3; then ok "$(t 'the failed element succeeded this time')"; else
		not_ok "$(t 'the failed element succeeded this time')" "$("$PILOT" show "$a")"; fi
	equals "$(t 'the others did not run again')" "$("$PILOT" list --array "$a" -q | wc -l)" "4"
	expect_status 0 "$(t 'watch --exit-status of the array: its newest runs all succeeded')" \
		"$PILOT" watch --exit-status "$a"
	expect_status 0 "$(t 'retry --failed with nothing failed')" "$PILOT" retry --failed "$a"
	contains "$(t 'says so')" "$ERR" "nothing to retry"
	project "$CLI_DIR/brittle" 'name: brittle
command: test ${index} -ne 1'
	a=$("$PILOT" submit --array 0-4%1 --max-failures 1 "$CLI_DIR/brittle")
	wait_for sh -c "[ \$('$PILOT' list --array $a --state skipped -q | wc -l) -ge 3 ]"
	wait_for sh -c "[ \$('$PILOT' list --array $a --state queued,waiting,running -q | wc -l) -eq 0 ]"
	expect_status 0 "$(t 'pilot show of an array with --max-failures 1')" "$PILOT" show "$a"
	contains "$(t 'the rest were skipped after the first failure')" "$OUT" "5: 1 succeeded, 1 failed, 3 skipped"
	expect_status 1 "$(t 'watch --exit-status of it: the failed element exit code')" "$PILOT" watch --exit-status "$a"
	contains "$(t 'why')" "$("$PILOT" list --array "$a" --state skipped)" "skipped (too_many_failures)"

	stop_agent
	a=$("$PILOT" submit --array 0-3%2 "$CLI_DIR/sweep")
	expect_status 0 "$(t 'cancel an array')" "$PILOT" cancel "$a"
	contains "$(t 'every run of it')" "$OUT" "$a  4 of its 4 runs canceled or stopping"
	equals "$(t 'all canceled')" "$("$PILOT" list --array "$a" --state canceled -q | wc -l)" "4"
	start_agent -c 8

	expect_status 2 "$(t '--array with a range that goes down')" "$PILOT" submit --array 9-7 "$CLI_DIR/sweep"
	contains "$(t 'says so')" "$ERR" "the range 9-7 goes down"
	expect_status 2 "$(t '--array with an index twice')" "$PILOT" submit --array 1,2,1 "$CLI_DIR/sweep"
	expect_status 2 "$(t '--array and --matrix together')" "$PILOT" submit --array 0-1 --matrix lr=1 "$CLI_DIR/grid"
	expect_status 1 "$(t '--matrix of a param the spec does not declare')" "$PILOT" submit --matrix zz=1,2 "$CLI_DIR/grid"
	contains "$(t 'names it')" "$ERR" "unknown param 'zz'"
}

for_transports arrays
