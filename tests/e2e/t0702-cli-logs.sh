#!/usr/bin/env bash
# pilot logs over both transports: the exact bytes (binary, CR, escapes, no final
# newline), --tail, --attempt, -f across attempts with a notice, -f through a server
# restart without gaps or repeats (http), a reader that goes away (| head), and the
# options that are not supported yet.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

logs() {
	mkdir -p "$CLI_DIR/bytes"
	# Every byte value, CR, an escape sequence, and no newline at the end.
	cat >"$CLI_DIR/bytes/emit.py" <<'EOF'
import os, sys
os.write(1, bytes(range(256)))
os.write(1, b"\nprogress 10%\rprogress 100%\r\n\x1b[31mred\x1b[0m\n")
os.write(1, b"the end, no newline")
EOF
	project "$CLI_DIR/bytes" 'name: bytes
command: python3 emit.py'
	python3 "$CLI_DIR/bytes/emit.py" >"$CLI_DIR/want" 2>&1
	expect_status 0 "$(t 'a job writing raw bytes')" "$PILOT" submit --wait "$CLI_DIR/bytes"
	local id=$OUT
	"$PILOT" logs "$id" >"$CLI_DIR/got"
	if cmp -s "$CLI_DIR/got" "$CLI_DIR/want"; then ok "$(t 'logs prints exactly the bytes')"; else
		not_ok "$(t 'logs prints exactly the bytes')" "$(cmp "$CLI_DIR/got" "$CLI_DIR/want" 2>&1)"; fi
	expect_status 0 "$(t '--tail 2')" "$PILOT" logs --tail 2 "$id"
	equals "$(t 'the last two lines, the last without a newline')" "$OUT" "$(printf '\033[31mred\033[0m\nthe end, no newline')"

	project "$CLI_DIR/seq" 'name: seq
command: seq 1 200000'
	expect_status 0 "$(t 'a long log')" "$PILOT" submit --wait "$CLI_DIR/seq"
	local big=$OUT
	expect_status 0 "$(t '-n 3')" "$PILOT" logs -n 3 "$big"
	equals "$(t 'the last three lines')" "$OUT" "$(printf '199998\n199999\n200000')"
	expect_status 0 "$(t '--tail 0')" "$PILOT" logs --tail 0 "$big"
	equals "$(t 'nothing')" "$OUT" ""
	expect_status 0 "$(t '--tail all')" "$PILOT" logs --tail all "$big"
	equals "$(t 'everything')" "$(md5sum <<<"$OUT")" "$(seq 1 200000 | md5sum)"
	"$PILOT" logs "$big" 2>"$CLI_DIR/pipe.err" | head -n 1 >/dev/null
	local st=${PIPESTATUS[0]}
	equals "$(t 'a reader that goes away: exit 0')" "$st" 0
	equals "$(t 'and not a word')" "$(cat "$CLI_DIR/pipe.err")" ""
	expect_status 2 "$(t 'a bad --tail')" "$PILOT" logs --tail -1 "$big"

	# A run that fails once and succeeds on its retry: two attempts.
	project "$CLI_DIR/flaky" 'name: flaky
command: echo "attempt $PILOT_ATTEMPT"; sleep 0.5; echo "done $PILOT_ATTEMPT"; test "$PILOT_ATTEMPT" = 2
retry: {max_attempts: 2, backoff: 200ms}'
	stop_agent
	expect_status 0 "$(t 'submit a flaky run')" "$PILOT" submit "$CLI_DIR/flaky"
	local flaky=$OUT
	timeout 120 "$PILOT" logs -f "$flaky" >"$CLI_DIR/follow.out" 2>"$CLI_DIR/follow.err" &
	local fpid=$!
	start_agent
	st=0
	wait "$fpid" || st=$?
	equals "$(t 'logs -f ends with the run: exit 0')" "$st" 0
	equals "$(t 'it printed both attempts')" "$(cat "$CLI_DIR/follow.out")" "$(printf 'attempt 1\ndone 1\nattempt 2\ndone 2')"
	equals "$(t 'and said when it moved on')" "$(cat "$CLI_DIR/follow.err")" "pilot: attempt 2 started; following it"
	expect_status 0 "$(t 'the latest attempt by default')" "$PILOT" logs "$flaky"
	equals "$(t 'attempt 2')" "$OUT" "$(printf 'attempt 2\ndone 2')"
	expect_status 0 "$(t '--attempt 1')" "$PILOT" logs --attempt 1 "$flaky"
	equals "$(t 'attempt 1')" "$OUT" "$(printf 'attempt 1\ndone 1')"
	expect_status 1 "$(t '--attempt 3 does not exist')" "$PILOT" logs --attempt 3 "$flaky"
	contains "$(t 'says which attempts there are')" "$ERR" "no attempt 3 (its attempts are 1 to 2)"
	expect_status 0 "$(t '-f of a finished run prints it and ends')" "$PILOT" logs -f -n 1 "$flaky"
	equals "$(t 'the last line')" "$OUT" "done 2"

	# Following a canceled queued run ends too.
	stop_agent
	expect_status 0 "$(t 'a queued run')" "$PILOT" submit "$CLI_DIR/seq"
	local queued=$OUT
	timeout 120 "$PILOT" logs -f "$queued" >"$CLI_DIR/q.out" 2>&1 &
	fpid=$!
	sleep 0.5
	"$PILOT" cancel "$queued" >/dev/null
	st=0
	wait "$fpid" || st=$?
	equals "$(t 'logs -f of a run canceled before it started ends: exit 0')" "$st:$(cat "$CLI_DIR/q.out")" "0:"
	start_agent

	if [ "$CLI_TRANSPORT" = http ]; then
		# An agent patient enough to keep its job through the outage.
		AGENT_HEARTBEAT=1s AGENT_GIVE_UP=60s start_agent
		project "$CLI_DIR/slow" 'name: slow
command: for i in $(seq 1 40); do echo "line $i"; sleep 0.1; done'
		expect_status 0 "$(t 'a slow job')" "$PILOT" submit "$CLI_DIR/slow"
		local slow=$OUT
		timeout 120 "$PILOT" logs -f "$slow" >"$CLI_DIR/slow.out" 2>"$CLI_DIR/slow.err" &
		fpid=$!
		wait_for grep -q "line 5" "$CLI_DIR/slow.out"
		# Down for longer than the transport's own quick retries.
		if restart_server 3; then ok "$(t 'the server restarted mid-follow')"; else not_ok "$(t 'the server restarted mid-follow')"; fi
		st=0
		wait "$fpid" || st=$?
		equals "$(t 'logs -f survived it: exit 0')" "$st" 0
		seq 1 40 | sed 's/^/line /' >"$CLI_DIR/slow.want"
		if cmp -s "$CLI_DIR/slow.out" "$CLI_DIR/slow.want"; then ok "$(t 'every line exactly once')"; else
			not_ok "$(t 'every line exactly once')" "$(diff "$CLI_DIR/slow.want" "$CLI_DIR/slow.out")" \
				"stored: $("$PILOT" logs "$slow" | tr '\n' ' ')"; fi
		contains "$(t 'it said the connection was lost')" "$(cat "$CLI_DIR/slow.err")" "retrying"
		contains "$(t 'and that it was back')" "$(cat "$CLI_DIR/slow.err")" "reconnected"
	fi

	expect_status 2 "$(t '--timestamps is not an option (no times are stored)')" "$PILOT" logs --timestamps "$flaky"
	expect_status 2 "$(t '--since likewise')" "$PILOT" logs --since 1m "$flaky"
}

for_transports logs
finish
