#!/usr/bin/env bash
# A sleep schedule over both transports with a real agent: a window a few seconds
# ahead, given in Asia/Kathmandu (+05:45) wall-clock time, puts the agent to sleep when
# it opens (told by "schedule"), a run submitted meanwhile waits, and the agent wakes
# and runs it when the window closes; --clear removes the schedule; mistakes are
# refused with a reason. The window's times come from GNU date in that zone.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }

agent_field() {
	"$PILOT" agents show -o json "$1" | python3 -c 'import json,sys
j = json.load(sys.stdin)
v = j[sys.argv[1]]
print("" if v is None else v)' "$2"
}

agent_state_is() { [ "$(agent_field "$1" state)" = "$2" ]; }

schedule() {
	local a="agent-$CLI_TRANSPORT" r open close t_open t_close asleep_ms
	project "$CLI_DIR/quick" 'name: quick
runtime: host
command: echo quick'
	# Whole seconds, so that the window's edges fall on them.
	t_open=$(($(date +%s) + 4))
	t_close=$((t_open + 5))
	open=$(TZ=Asia/Kathmandu date -d "@$t_open" +%H:%M:%S)
	close=$(TZ=Asia/Kathmandu date -d "@$t_close" +%H:%M:%S)
	# As pilot writes them back: HH:MM when the seconds are 00.
	open=${open%:00} close=${close%:00}
	expect_status 0 "$(t 'pilot agents schedule --sleep --tz')" \
		"$PILOT" agents schedule "$a" --sleep "daily $open-$close" --tz Asia/Kathmandu
	contains "$(t 'says the schedule')" "$OUT" "agent $a sleeps daily $open-$close (Asia/Kathmandu) (idle)"
	expect_status 0 "$(t 'pilot agents show')" "$PILOT" agents show "$a"
	contains "$(t 'show: the schedule and its next change')" "$OUT" "sleeps   daily $open-$close (Asia/Kathmandu), next change "
	equals "$(t 'the next change is when the window opens')" "$(agent_field "$a" sleep_next_ms)" "${t_open}000"

	wait_for agent_state_is "$a" asleep
	asleep_ms=$(now_ms)
	equals "$(t 'asleep once the window opened')" "$(agent_field "$a" state)" asleep
	check "$(t 'not before')" test "$asleep_ms" -ge "${t_open}000"
	equals "$(t 'told by the schedule')" "$(agent_field "$a" control_by)" schedule
	equals "$(t 'the next change is when it closes')" "$(agent_field "$a" sleep_next_ms)" "${t_close}000"
	r=$("$PILOT" submit "$CLI_DIR/quick")
	wait_state "$r" succeeded
	check "$(t 'the run waited for the window to close')" \
		test "$(run_field "$r" 'j["started_ms"]')" -ge "${t_close}000"
	equals "$(t 'awake after')" "$(agent_field "$a" state)" idle
	equals "$(t 'the next change is tomorrow')" "$(agent_field "$a" sleep_next_ms)" "$((t_open + 86400))000"

	expect_status 0 "$(t 'pilot agents schedule --clear')" "$PILOT" agents schedule "$a" --clear
	contains "$(t 'says so')" "$OUT" "agent $a has no sleep schedule (idle)"
	equals "$(t 'no schedule')" "$(agent_field "$a" sleep_schedule)" ""

	# Mistakes.
	expect_status 1 "$(t 'a time out of range')" "$PILOT" agents schedule "$a" --sleep "mon 25:00-26:00"
	contains "$(t 'named')" "$ERR" "'25:00-26:00' is not a time range"
	expect_status 1 "$(t 'an unknown zone')" "$PILOT" agents schedule "$a" --sleep "mon 09:00-17:00" --tz Mars/Base
	contains "$(t 'named')" "$ERR" "unknown time zone 'Mars/Base'"
	expect_status 2 "$(t 'schedule without --sleep or --clear')" "$PILOT" agents schedule "$a"
	expect_status 2 "$(t '--tz elsewhere')" "$PILOT" agents drain "$a" --tz UTC
	expect_status 1 "$(t 'an unknown agent')" "$PILOT" agents schedule nosuch --clear
	contains "$(t 'named')" "$ERR" "agent 'nosuch' not found"
}

export PILOT_REAP_INTERVAL=200ms
for_transports schedule
finish
