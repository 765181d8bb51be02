#!/usr/bin/env bash
# pilot run on the host runtime: output, exit statuses, timeout, Ctrl-C, 50 MB of
# output, metrics, artifacts, secrets — the cases every runtime passes (run-cases.sh).
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/run-cases.sh"
RT=host
RT_IMAGE=
# Gone within 10 s: a killed process group is reaped asynchronously.
rt_gone() {
	local i
	for ((i = 0; i < 100; i++)); do
		pgrep -f "sleep 2999" >/dev/null || return 0
		sleep 0.1
	done
	return 1
}
plan $((run_cases_plan + 7))
run_cases

# The choice of runtime: no image means the host, with a notice.
p=$(proj noimage <<<'command: echo hi')
expect_status 0 "a spec without an image runs" "$PILOT" run "$p"
contains "...on the host, saying it is not isolated" "$ERR" "not isolated"
expect_status 125 "a bad spec is pilot's failure (125)" "$PILOT" run "$T_TMP/nowhere"
expect_status 0 "--detach prints the run id" "$PILOT" run -d --runtime host "$p"
id=$OUT
for ((i = 0; i < 100; i++)); do "$PILOT" list | grep -q "^$id .*succeeded" && break; sleep 0.1; done
contains "...and the detached run succeeds" "$("$PILOT" list)" "$id  noimage  succeeded"
# One attempt, but the rest of the spec's retry policy is recorded as the spec says.
expect_status 0 "show -o json of a pilot run" "$PILOT" show -o json "$id"
equals "...its retry policy: one attempt, the spec's backoff" \
	"$(python3 -c 'import json,sys; r=json.load(sys.stdin)["retry"]; print(r["max_attempts"], r["backoff_ms"], r["max_backoff_ms"])' <<<"$OUT")" \
	"1 5000 300000"
done_testing
