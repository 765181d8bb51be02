#!/usr/bin/env bash
# pilot cancel --grace/--now over both transports, with a real agent on the host runtime
# whose own grace is long (20s), so a cancel that ends sooner shows the requested grace
# was used: --grace 2s on a job that ignores SIGTERM (SIGTERM, then SIGKILL ~2s later,
# measured from the job's own timestamps), --now (no SIGTERM at all), a job that exits
# on SIGTERM (canceled at once), a plain cancel hurried by --now, --all --grace, usage
# errors and (http) the REST body refused when invalid. The run's events say which
# signals ended the job. t0708 runs the same cancels in docker containers.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

AGENT_GRACE=20s

now_ms() { date +%s%3N; }

# The job prints a tick every 100 ms and "TERM <ms>" when it gets SIGTERM; it ignores
# the signal unless EXIT_ON_TERM is set.
job_project() { # DIR NAME [exit]
	project "$1" "name: $2
command: [sh, job.sh]"
	cat >"$1/job.sh" <<EOF
trap 'echo "TERM \$(date +%s%3N)"; [ -n "${3:-}" ] && exit 3' TERM
echo started
while :; do echo "tick \$(date +%s%3N)"; sleep 0.1; done
EOF
}

started() { "$PILOT" logs "$1" 2>/dev/null | grep -q started; }
got_term() { "$PILOT" logs "$1" 2>/dev/null | grep -q '^TERM'; }

# submit_started DIR: a run of DIR, its job up and ticking; the id in RUN.
submit_started() {
	RUN=$("$PILOT" submit "$1")
	wait_for started "$RUN" || not_ok "$(t "run $RUN started")"
}

# The ms between the job's SIGTERM and its last tick (it died by SIGKILL right after).
term_to_kill_ms() {
	"$PILOT" logs "$1" | awk '$1 == "TERM" { t = $2 } $1 == "tick" && $2 != "" { last = $2 }
		END { if (t == "") print "none"; else print last - t }'
}

# The time bounds below only tell the grace asked for from the agent's own 20s (or from
# no grace at all), with room for a loaded machine: they are not measurements.
between() { [ "$1" != none ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

# The message of the run's "finished" event (how the agent says the job ended).
finished_msg() { run_field "$1" '[e["message"] for e in j["events"] if e["type"] == "finished"][-1]'; }

grace_cases() {
	job_project "$CLI_DIR/stubborn" stubborn
	job_project "$CLI_DIR/polite" polite exit
	local t0 dt gap

	# --grace 2s: SIGTERM, which the job ignores, then SIGKILL about 2 s later.
	submit_started "$CLI_DIR/stubborn"
	t0=$(now_ms)
	expect_status 0 "$(t 'cancel --grace 2s a running run')" "$PILOT" cancel --grace 2s "$RUN"
	equals "$(t 'says the grace')" "$OUT" "$RUN  canceling (the agent is stopping it, grace 2.0s)"
	equals "$(t 'the run records it')" "$(run_field "$RUN" 'j["cancel_grace_ms"]')" "2000"
	wait_state "$RUN" canceled
	dt=$(($(now_ms) - t0))
	check "$(t 'the job got SIGTERM')" got_term "$RUN"
	gap=$(term_to_kill_ms "$RUN")
	diag_line="SIGTERM -> SIGKILL ${gap} ms, cancel -> canceled ${dt} ms"
	echo "# [$CLI_TRANSPORT] --grace 2s: $diag_line"
	if between "$gap" 1200 3500; then ok "$(t "SIGKILL came ~2s after SIGTERM ($gap ms)")"; else
		not_ok "$(t 'SIGKILL came ~2s after SIGTERM')" "$diag_line" "$("$PILOT" logs "$RUN" | tail -n 5)"; fi
	if [ "$dt" -lt 12000 ]; then ok "$(t "canceled in ${dt} ms, not the agent's 20s")"; else
		not_ok "$(t 'canceled well before the agent grace')" "$diag_line"; fi
	equals "$(t 'canceled (canceled)')" "$(run_field "$RUN" 'j["state"] + " " + j["reason"]')" "canceled canceled"
	contains "$(t 'the cancel event names the grace')" \
		"$(run_field "$RUN" '[e["message"] for e in j["events"] if e["type"] == "cancel_requested"][0]')" "(grace 2.0s)"
	equals "$(t 'the events say SIGKILL ended it after the grace')" "$(finished_msg "$RUN")" \
		"attempt 1 canceled: SIGTERM, then SIGKILL when the grace ran out"

	# --now: SIGKILL at once, no SIGTERM for the job to see.
	submit_started "$CLI_DIR/stubborn"
	t0=$(now_ms)
	expect_status 0 "$(t 'cancel --now')" "$PILOT" cancel --now "$RUN"
	equals "$(t 'says it is killed')" "$OUT" "$RUN  canceling (the agent is killing it)"
	wait_state "$RUN" canceled
	dt=$(($(now_ms) - t0))
	echo "# [$CLI_TRANSPORT] --now: cancel -> canceled ${dt} ms"
	if got_term "$RUN"; then not_ok "$(t 'the job never saw SIGTERM')" "$("$PILOT" logs "$RUN" | tail -n 3)"; else
		ok "$(t 'the job never saw SIGTERM')"; fi
	if [ "$dt" -lt 10000 ]; then ok "$(t "canceled in ${dt} ms")"; else not_ok "$(t 'canceled fast')" "${dt} ms"; fi
	equals "$(t 'the events say SIGKILL at once')" "$(finished_msg "$RUN")" \
		"attempt 1 canceled: killed with SIGKILL at once, no grace"

	# A job that exits on SIGTERM ends canceled as soon as it does, whatever the grace.
	submit_started "$CLI_DIR/polite"
	t0=$(now_ms)
	expect_status 0 "$(t 'cancel --grace 10s a job that exits on SIGTERM')" "$PILOT" cancel --grace 10s "$RUN"
	wait_state "$RUN" canceled
	dt=$(($(now_ms) - t0))
	echo "# [$CLI_TRANSPORT] exits on SIGTERM: cancel -> canceled ${dt} ms"
	check "$(t 'it got SIGTERM')" got_term "$RUN"
	if [ "$dt" -lt 8000 ]; then ok "$(t "canceled in ${dt} ms, not after the grace")"; else
		not_ok "$(t 'canceled fast')" "${dt} ms"; fi
	equals "$(t 'canceled (canceled), not failed')" "$(run_field "$RUN" 'j["state"] + " " + j["reason"]')" \
		"canceled canceled"
	equals "$(t 'the events say it exited after SIGTERM')" "$(finished_msg "$RUN")" \
		"attempt 1 canceled: sent SIGTERM, exited 3"
	# The shell's own "Terminated" note for the sleep that SIGTERM killed comes on
	# stderr, in either order with the job's stdout: it is not the job's line.
	contains "$(t 'its last line is in the log')" "$("$PILOT" logs "$RUN" | grep -vx Terminated | tail -n 1)" "TERM "

	# A plain cancel (the agent's 20s) hurried by --now.
	submit_started "$CLI_DIR/stubborn"
	expect_status 0 "$(t 'a plain cancel')" "$PILOT" cancel "$RUN"
	wait_for got_term "$RUN"
	check "$(t 'the job got SIGTERM')" got_term "$RUN"
	equals "$(t 'it is canceling')" "$(run_field "$RUN" 'j["state"]')" "canceling"
	t0=$(now_ms)
	expect_status 0 "$(t 'cancel --now hurries it')" "$PILOT" cancel --now "$RUN"
	equals "$(t 'says so')" "$OUT" "$RUN  canceling (the agent is killing it)"
	wait_state "$RUN" canceled
	dt=$(($(now_ms) - t0))
	echo "# [$CLI_TRANSPORT] plain cancel, then --now: --now -> canceled ${dt} ms"
	if [ "$dt" -lt 10000 ]; then ok "$(t "killed ${dt} ms after --now")"; else not_ok "$(t 'killed soon after --now')" "${dt} ms"; fi
	contains "$(t 'the hurry is an event')" \
		"$(run_field "$RUN" '[e["message"] for e in j["events"] if e["type"] == "cancel_hurried"][0]')" \
		"(now: no grace)"
	expect_status 0 "$(t 'cancel --now once it has ended')" "$PILOT" cancel --now "$RUN"
	equals "$(t 'says it had finished')" "$OUT" "$RUN  already finished: canceled"

	# --all passes the grace on.
	submit_started "$CLI_DIR/stubborn"
	expect_status 0 "$(t 'cancel --all --grace 1s')" "$PILOT" cancel --all --state running --grace 1s --yes
	equals "$(t 'says the grace')" "$OUT" "$RUN  canceling (the agent is stopping it, grace 1.0s)"
	wait_state "$RUN" canceled
	gap=$(term_to_kill_ms "$RUN")
	echo "# [$CLI_TRANSPORT] --all --grace 1s: SIGTERM -> SIGKILL ${gap} ms"
	if between "$gap" 500 1900; then ok "$(t "SIGKILL ~1s after SIGTERM ($gap ms)")"; else
		not_ok "$(t 'SIGKILL ~1s after SIGTERM')" "$gap ms"; fi

	# Usage errors: nothing is canceled.
	local q
	stop_agent
	q=$("$PILOT" submit "$CLI_DIR/stubborn")
	expect_status 2 "$(t '--grace and --now together')" "$PILOT" cancel --grace 2s --now "$q"
	contains "$(t 'is a usage error')" "$ERR" "--grace and --now together"
	expect_status 2 "$(t 'a negative --grace')" "$PILOT" cancel --grace=-2s "$q"
	contains "$(t 'is refused')" "$ERR" "a grace period cannot be negative"
	expect_status 2 "$(t 'an invalid --grace')" "$PILOT" cancel --grace soon "$q"
	contains "$(t 'names the value')" "$ERR" "invalid duration 'soon'"
	expect_status 2 "$(t 'a --grace over a day')" "$PILOT" cancel --grace 2d "$q"
	equals "$(t 'the run is still queued')" "$(run_field "$q" 'j["state"]')" "queued"
	expect_status 0 "$(t 'a queued run with a grace')" "$PILOT" cancel --grace 5s "$q"
	equals "$(t 'is canceled at once')" "$OUT" "$q  canceled"

	if [ "$CLI_TRANSPORT" = http ]; then
		local code
		for body in '{"grace_ms": -5}' '{"grace_ms": "2s"}' '[1]'; do
			code=$(curl -s -o "$CLI_DIR/resp" -w '%{http_code}' -X POST -H "Authorization: Bearer $CLI_ADMIN" \
				-H 'Content-Type: application/json' -d "$body" "$SRV_URL/v1/runs/$q/cancel")
			equals "$(t "REST: $body is refused with 400")" "$code" "400"
		done
		contains "$(t 'naming the field')" "$(cat "$CLI_DIR/resp")" "expected an object"
	fi
	start_agent
}

for_transports grace_cases
finish
