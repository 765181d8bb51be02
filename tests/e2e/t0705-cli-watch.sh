#!/usr/bin/env bash
# pilot watch over both transports: one line per event without a terminal (several
# runs at once, --exit-status); on a terminal (tmux) the screen redrawn in place with
# the state, metrics sparklines and the log's last lines, q to quit, the end of the runs
# ending it, and the terminal's mode restored after q and after a signal.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"
command -v tmux >/dev/null || skip_all "tmux is not installed"

SOCK=pilot-e2e-watch-$$
at_exit "tmux -L $SOCK kill-server 2>/dev/null"
pane() { tmux -L "$SOCK" capture-pane -p; }
pane_has() { pane | grep -qF -- "$1"; }
pane_fresh_running() { local s; s=$(pane); [[ $s != *end.* && $s == *running* ]]; }
# A shell in a terminal 100x30 with this transport's settings.
term_start() {
	tmux -L "$SOCK" kill-server 2>/dev/null
	tmux -L "$SOCK" new-session -d -x 100 -y 30 \
		"env XDG_CONFIG_HOME=$XDG_CONFIG_HOME XDG_DATA_HOME=$XDG_DATA_HOME PS1='$ ' bash --norc --noprofile"
}
type_line() { tmux -L "$SOCK" send-keys "$1" Enter; }

watches() {
	project "$CLI_DIR/ok" 'name: ok
command: echo fine'
	project "$CLI_DIR/bad" 'name: bad
command: exit 4'
	project "$CLI_DIR/long" 'name: long
command: for i in $(seq 1 3000); do echo "line $i"; echo "METRIC step=$i"; sleep 0.1; done'
	local ok bad
	ok=$("$PILOT" submit --wait "$CLI_DIR/ok" 2>/dev/null)
	bad=$("$PILOT" submit --wait "$CLI_DIR/bad" 2>/dev/null)

	# ---- without a terminal
	expect_status 0 "$(t 'watch a finished run')" "$PILOT" watch "$ok"
	equals "$(t 'one line per event')" "$(awk '{print $2, $3, $4}' <<<"$OUT")" "$(printf '%s submitted queued\n%s claimed running\n%s finished succeeded' "$ok" "$ok" "$ok")"
	expect_status 4 "$(t '--exit-status: the job code')" "$PILOT" watch --exit-status "$bad"
	expect_status 4 "$(t 'several runs: the first that did not succeed')" "$PILOT" watch --exit-status "$ok" "$bad"
	contains "$(t 'events of both')" "$OUT" "$bad  finished"
	expect_status 1 "$(t 'an unknown run')" "$PILOT" watch rzzzzzzzzzzzzzz
	expect_status 125 "$(t 'an unknown run with --exit-status')" "$PILOT" watch --exit-status rzzzzzzzzzzzzzz
	stop_agent
	local queued
	queued=$("$PILOT" submit "$CLI_DIR/ok")
	timeout 120 "$PILOT" watch --exit-status "$queued" >"$CLI_DIR/w.out" 2>&1 &
	local wpid=$!
	wait_for grep -q submitted "$CLI_DIR/w.out"
	start_agent
	local st=0
	wait "$wpid" || st=$?
	equals "$(t 'a live run: watch follows it to the end')" "$st" 0
	equals "$(t 'printing events as they come')" "$(awk '{print $3}' "$CLI_DIR/w.out" | tr '\n' ' ')" "submitted claimed finished "

	# ---- on a terminal
	local long
	long=$("$PILOT" submit "$CLI_DIR/long")
	wait_for sh -c "'$PILOT' logs '$long' | grep -q 'line 3$'"
	term_start
	type_line "clear; '$PILOT' watch -n 4 '$long'; echo status=\$?; stty -a | grep -o -- '-\\?icanon' | head -n 1; echo en\"\"d."
	if wait_for pane_has "line 5"; then ok "$(t 'the screen shows the log')"; else not_ok "$(t 'the screen shows the log')" "$(pane)"; fi
	local screen
	screen=$(pane)
	contains "$(t 'the header says how to quit')" "$screen" "pilot watch: 1 run, 0 ended   (q to quit)"
	contains "$(t 'the run, its state, attempt and agent')" "$screen" "$long  long  running  attempt 1 on agent-$CLI_TRANSPORT  elapsed"
	contains "$(t 'the metric with a sparkline')" "$screen" "  step "
	contains "$(t '(sparkline bars)')" "$screen" "▁"
	equals "$(t 'the last 4 log lines')" "$(grep -c '│ ' <<<"$screen")" 4
	# Redrawn in place: a later screen has the same shape, not a second copy.
	wait_for sh -c "tmux -L $SOCK capture-pane -p | grep -q 'line 25'"
	screen=$(pane)
	equals "$(t 'redrawn in place, not appended')" "$(grep -c 'pilot watch:' <<<"$screen")" 1
	tmux -L "$SOCK" send-keys q
	if wait_for pane_has "end."; then ok "$(t 'q quits')"; else not_ok "$(t 'q quits')" "$(pane)"; fi
	screen=$(pane)
	contains "$(t 'with status 0')" "$screen" "status=0"
	contains "$(t 'and the terminal back in canonical mode')" "$(grep -A1 status= <<<"$screen")" "icanon"
	lacks "$(t '(not -icanon)')" "$(grep -A1 status= <<<"$screen")" "-icanon"

	# A signal restores the terminal too.
	type_line "clear; '$PILOT' watch --exit-status '$long'; echo status=\$?; stty -a | grep -o -- '-\\?echo ' | head -n 1; echo en\"\"d."
	# The new watch's screen, not the last one's (still up until clear runs): the
	# signal must reach a watch that has set up its handlers.
	wait_for pane_fresh_running
	local shell_pid watch_pid
	shell_pid=$(tmux -L "$SOCK" display-message -p '#{pane_pid}')
	watch_pid=$(pgrep -P "$shell_pid" | head -n 1)
	if [ -n "$watch_pid" ]; then kill -TERM "$watch_pid"; fi
	if wait_for pane_has "end."; then ok "$(t 'SIGTERM ends watch')"; else not_ok "$(t 'SIGTERM ends watch')" "$(pane)"; fi
	screen=$(pane)
	contains "$(t 'quitting before the end with --exit-status: 130')" "$screen" "status=130"
	contains "$(t 'echo is back on')" "$(grep -A1 status= <<<"$screen")" "echo"
	lacks "$(t '(not -echo)')" "$(grep -A1 status= <<<"$screen")" "-echo"

	# The run ending ends watch, leaving the final screen.
	type_line "clear; '$PILOT' watch --exit-status '$long'; echo st\"\"atus=\$?"
	wait_for pane_has "running"
	"$PILOT" cancel "$long" >/dev/null
	if wait_for pane_has "status="; then ok "$(t 'the end of the run ends watch')"; else not_ok "$(t 'the end of the run ends watch')" "$(pane)"; fi
	screen=$(pane)
	contains "$(t 'the final screen stays')" "$screen" "pilot watch: the run has ended"
	contains "$(t 'with the final state')" "$screen" "$long  long  canceled"
	contains "$(t 'and --exit-status 130 for a canceled run')" "$screen" "status=130"
	tmux -L "$SOCK" kill-server 2>/dev/null
}

for_transports watches
finish
