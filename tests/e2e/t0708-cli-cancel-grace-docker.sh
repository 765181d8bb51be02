#!/usr/bin/env bash
# pilot cancel --grace/--now with jobs in docker containers, over both transports: a real
# agent on the docker runtime (a private dockerd) whose own grace is long (20s). A job
# that traps SIGTERM prints its last line and ends the run canceled at once; one that
# ignores it is killed when --grace 2s runs out, not after the agent's 20s; --now never
# lets it see SIGTERM. The run's events say which signals ended the job, and no
# container is left. (t0707 runs the same on the host runtime, with exact timings.)
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

engines_need dockerd docker-init
start_dockerd
import_busybox "$DOCKER_SOCK"
export DOCKER_HOST=$DOCKER_ENDPOINT
AGENT_RUNTIME=docker
AGENT_GRACE=20s

now_ms() { date +%s%3N; }
log_has() { "$PILOT" logs "$1" 2>/dev/null | grep -q "$2"; }
finished_msg() { run_field "$1" '[e["message"] for e in j["events"] if e["type"] == "finished"][-1]'; }
no_container() { [ -z "$(engine_managed "$DOCKER_SOCK")" ]; }

# submit_started DIR: a run of DIR whose container is up and ticking; the id in RUN.
submit_started() {
	RUN=$("$PILOT" submit "$1")
	wait_for log_has "$RUN" started || not_ok "$(t "run $RUN started")" "$("$PILOT" show "$RUN" 2>&1 | tail -n 5)"
}

docker_cases() {
	project "$CLI_DIR/stubborn" 'name: stubborn
image: busybox
command: trap "echo TERM" TERM; echo started; while :; do echo tick; sleep 0.1; done'
	project "$CLI_DIR/polite" 'name: polite
image: busybox
command: trap "echo saving; echo last line; exit 3" TERM; echo started; while :; do sleep 0.1; done'
	local t0 dt

	# A job that traps SIGTERM gets to print its last line, and the run ends at once.
	submit_started "$CLI_DIR/polite"
	t0=$(now_ms)
	expect_status 0 "$(t 'cancel --grace 10s a container that exits on SIGTERM')" "$PILOT" cancel --grace 10s "$RUN"
	wait_state "$RUN" canceled
	dt=$(($(now_ms) - t0))
	echo "# [$CLI_TRANSPORT] docker, exits on SIGTERM: cancel -> canceled ${dt} ms"
	equals "$(t 'its last line is the log'"'"'s last')" "$("$PILOT" logs "$RUN" | grep -vx Terminated | tail -n 2 | tr '\n' '|')" \
		"saving|last line|"
	if [ "$dt" -lt 8000 ]; then ok "$(t "canceled in ${dt} ms, not after the grace")"; else
		not_ok "$(t 'canceled before the grace')" "${dt} ms"; fi
	equals "$(t 'the events say it exited after SIGTERM')" "$(finished_msg "$RUN")" \
		"attempt 1 canceled: sent SIGTERM, exited 3"

	# --grace 2s on a job that ignores SIGTERM: SIGKILL when the 2s are out.
	submit_started "$CLI_DIR/stubborn"
	t0=$(now_ms)
	expect_status 0 "$(t 'cancel --grace 2s')" "$PILOT" cancel --grace 2s "$RUN"
	wait_state "$RUN" canceled
	dt=$(($(now_ms) - t0))
	echo "# [$CLI_TRANSPORT] docker, --grace 2s: cancel -> canceled ${dt} ms"
	check "$(t 'the job saw SIGTERM')" log_has "$RUN" '^TERM'
	if [ "$dt" -ge 1800 ] && [ "$dt" -lt 12000 ]; then ok "$(t "canceled after ${dt} ms: the 2s grace, not 20s")"; else
		not_ok "$(t 'canceled after about 2s')" "${dt} ms"; fi
	equals "$(t 'the events say SIGKILL ended it after the grace')" "$(finished_msg "$RUN")" \
		"attempt 1 canceled: SIGTERM, then SIGKILL when the grace ran out"

	# --now: SIGKILL, no SIGTERM for the job to see.
	submit_started "$CLI_DIR/stubborn"
	expect_status 0 "$(t 'cancel --now')" "$PILOT" cancel --now "$RUN"
	wait_state "$RUN" canceled
	if log_has "$RUN" '^TERM'; then not_ok "$(t 'the job never saw SIGTERM')"; else ok "$(t 'the job never saw SIGTERM')"; fi
	equals "$(t 'the events say SIGKILL at once')" "$(finished_msg "$RUN")" \
		"attempt 1 canceled: killed with SIGKILL at once, no grace"

	check "$(t 'no container is left')" wait_for no_container
}

for_transports docker_cases
finish
