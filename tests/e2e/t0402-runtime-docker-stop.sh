#!/usr/bin/env bash
# Stopping docker jobs: the timeout (124), a cancel (130, graceful then forced), the
# container removed every time, and orphans left by a killed pilot cleaned up by label.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
: "${RUNTIME_DRIVER:?RUNTIME_DRIVER must point at tests/runtime-driver}"

start_dockerd
import_busybox "$DOCKER_SOCK"

plan 26

WS=$T_TMP/ws
mkdir -p "$WS"
drv() { "$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" --image busybox --workspace "$WS" "$@"; }

# ---- timeout ----
expect_status 124 "timeout: 124" drv --events-out "$T_TMP/ev" --timeout 2s --grace 1s --shell 'echo started; sleep 600'
equals "output before the timeout arrives" "$OUT" "started"
contains "reported as timed out" "$(cat "$T_TMP/ev")" "timed_out=1"
equals "the container is gone" "$(engine_managed "$DOCKER_SOCK")" ""

# The job gets SIGTERM first and may clean up within the grace.
expect_status 124 "timeout with a TERM handler" drv --timeout 2s --grace 20s \
	--shell 'trap "echo cleaning up; exit 7" TERM; echo started; sleep 600 & wait'
equals "the handler ran and its output arrived" "$OUT" "$(printf 'started\ncleaning up')"

# A job ignoring SIGTERM is killed after the grace.
expect_status 124 "timeout, TERM ignored: killed after the grace" drv --timeout 1s --grace 1s \
	--shell 'trap "" TERM; echo stubborn; while :; do sleep 1; done'
equals "stubborn output arrived" "$OUT" "stubborn"
equals "no container left" "$(engine_managed "$DOCKER_SOCK")" ""

# ---- cancel ----
# run_and_signal SIGNALS... : starts a job, waits for it to run, sends each signal to the
# driver (a second apart), and collects its status in $ST and output in $T_TMP/c.out.
run_and_signal() {
	local script=$1; shift
	# The driver itself in the background, not a shell function (a subshell would get
	# the signals, and ignores SIGINT).
	"$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" --image busybox --workspace "$WS" \
		--events-out "$T_TMP/cev" --grace "${GRACE:-20s}" --shell "$script" >"$T_TMP/c.out" 2>"$T_TMP/c.err" &
	local pid=$! sig
	wait_for_managed "$DOCKER_SOCK" "$pid" >/dev/null || true
	for sig in "$@"; do
		kill "-$sig" "$pid" 2>/dev/null
		sleep 1
	done
	ST=0
	wait "$pid" || ST=$?
}

run_and_signal 'trap "echo got TERM; exit 0" TERM; echo running; sleep 600 & wait' INT
equals "SIGINT: canceled, 130" "$ST" 130
equals "the job saw SIGTERM and its last words arrived" "$(cat "$T_TMP/c.out")" "$(printf 'running\ngot TERM')"
contains "reported as canceled" "$(cat "$T_TMP/cev")" "canceled=1"
equals "the canceled container is gone" "$(engine_managed "$DOCKER_SOCK")" ""

run_and_signal 'echo running; exec sleep 600' TERM
equals "SIGTERM to pilot: canceled too" "$ST" 130

# A job that ignores SIGTERM with a long grace: the second cancel kills it at once.
GRACE=10m run_and_signal 'trap "" TERM; echo running; while :; do sleep 1; done' INT INT
equals "second SIGINT: 130 without waiting for the grace" "$ST" 130
equals "forced cancel leaves no container" "$(engine_managed "$DOCKER_SOCK")" ""

# ---- orphans ----
# A pilot killed with -9 leaves its container running.
"$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" --owner agent-a --image busybox \
	--workspace "$WS" sleep 600 >/dev/null 2>&1 &
pid=$!
orphan=$(wait_for_managed "$DOCKER_SOCK" "$pid")
kill -9 "$pid"; wait "$pid" 2>/dev/null
check "the killed driver's container still runs" test -n "$orphan"

# Two more: another owner's, and a container pilot does not manage.
mk() {
	engine_api "$DOCKER_SOCK" POST /containers/create -H 'Content-Type: application/json' -d "$1" |
		json_get 'j["Id"]'
}
other=$(mk '{"Image":"busybox","Cmd":["sleep","600"],"Labels":{"pilot.managed":"1","pilot.owner":"agent-b"}}')
mine=$(mk '{"Image":"busybox","Cmd":["sleep","600"],"Labels":{"owner":"someone"}}')
engine_api "$DOCKER_SOCK" POST "/containers/$other/start" >/dev/null

expect_status 0 "cleanup of one owner's orphans" "$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" \
	--owner agent-a --cleanup-orphans
equals "removed the one of agent-a" "$OUT" "removed 1"
left=$(engine_managed "$DOCKER_SOCK")
equals "agent-b's is still there" "$left" "$other"

expect_status 0 "cleanup of every pilot orphan" "$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" \
	--cleanup-orphans
equals "removed agent-b's" "$OUT" "removed 1"
equals "no pilot container left" "$(engine_managed "$DOCKER_SOCK")" ""
equals "a container pilot does not manage is left alone" \
	"$(engine_api "$DOCKER_SOCK" GET "/containers/$mine/json" -o /dev/null -w '%{http_code}')" 200
expect_status 0 "cleanup with nothing to do" "$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" \
	--cleanup-orphans
equals "removed nothing" "$OUT" "removed 0"

done_testing
