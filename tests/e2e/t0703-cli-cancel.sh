#!/usr/bin/env bash
# pilot cancel over both transports: a queued run, a running one (the agent stops it),
# one already finished, --wait, --all with --state/--name and its confirmation (--yes,
# refused without a terminal, asked on one), unknown and ambiguous runs, usage errors.
# --grace and --now are t0707's.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

cancels() {
	project "$CLI_DIR/long" 'name: long
command: echo started; sleep 300'
	project "$CLI_DIR/other" 'name: other
command: echo other; sleep 300'

	# Queued runs: the agent is stopped so they stay queued.
	stop_agent
	local q1 q2 q3 o1
	q1=$("$PILOT" submit "$CLI_DIR/long")
	q2=$("$PILOT" submit "$CLI_DIR/long")
	q3=$("$PILOT" submit "$CLI_DIR/long")
	o1=$("$PILOT" submit "$CLI_DIR/other")
	expect_status 0 "$(t 'cancel a queued run')" "$PILOT" cancel "$q1"
	equals "$(t 'canceled at once')" "$OUT" "$q1  canceled"
	equals "$(t 'its state')" "$(run_field "$q1" 'j["state"] + " " + j["reason"]')" "canceled canceled"
	expect_status 1 "$(t '--all without a terminal needs --yes')" "$PILOT" cancel --all --state queued --name long
	contains "$(t 'says so')" "$ERR" "not canceling 2 runs (queued, name long) without a confirmation: add --yes"
	equals "$(t 'nothing was canceled')" "$(run_field "$q2" 'j["state"]')" "queued"
	expect_status 0 "$(t '--all --state queued --name long --yes')" "$PILOT" cancel --all --state queued --name long --yes
	equals "$(t 'both long runs, newest first')" "$OUT" "$(printf '%s  canceled\n%s  canceled' "$q3" "$q2")"
	equals "$(t 'the other name is left')" "$(run_field "$o1" 'j["state"]')" "queued"
	expect_status 0 "$(t '--all with nothing left to cancel')" "$PILOT" cancel --all --name long --yes
	contains "$(t 'says so')" "$ERR" "no run to cancel"
	expect_status 2 "$(t '--all --state succeeded is a usage error')" "$PILOT" cancel --all --state succeeded
	expect_status 2 "$(t 'runs and --all together')" "$PILOT" cancel --all "$o1"
	expect_status 2 "$(t 'nothing to cancel')" "$PILOT" cancel
	expect_status 2 "$(t '--state without --all')" "$PILOT" cancel --state queued "$o1"
	expect_status 2 "$(t '--grace with --now')" "$PILOT" cancel --grace 30s --now "$o1"
	equals "$(t 'and nothing was canceled')" "$(run_field "$o1" 'j["state"]')" "queued"
	expect_status 1 "$(t 'an unknown run')" "$PILOT" cancel rzzzzzzzzzzzzzz "$o1"
	contains "$(t 'is reported')" "$ERR" "not found"
	equals "$(t 'the others are still canceled')" "$OUT" "$o1  canceled"
	expect_status 1 "$(t 'an ambiguous prefix')" "$PILOT" cancel r
	contains "$(t 'lists the candidates')" "$ERR" "$q3  long"

	# A running run: the agent stops its job.
	start_agent
	local run
	run=$("$PILOT" submit "$CLI_DIR/long")
	wait_for sh -c "'$PILOT' logs '$run' | grep -q started"
	expect_status 0 "$(t 'cancel --wait a running run')" "$PILOT" cancel --wait "${run:0:14}"
	equals "$(t 'it turns canceling')" "$OUT" "$run  canceling (the agent is stopping it)"
	contains "$(t 'and --wait says when it stopped')" "$ERR" "run $run canceled"
	equals "$(t 'the run is canceled')" "$(run_field "$run" 'j["state"] + " " + j["reason"]')" "canceled canceled"
	equals "$(t 'its attempt too')" "$(run_field "$run" 'j["attempts"][0]["state"]')" "canceled"
	expect_status 0 "$(t 'cancel a finished run')" "$PILOT" cancel "$run"
	equals "$(t 'says it had finished')" "$OUT" "$run  already finished: canceled"
}

for_transports cancels

# The confirmation on a terminal (tmux): "n" keeps the runs, "y" cancels them.
if command -v tmux >/dev/null; then
	CLI_TRANSPORT=local CLI_DIR=$T_TMP/tty
	mkdir -p "$CLI_DIR"
	export XDG_CONFIG_HOME=$CLI_DIR/config XDG_DATA_HOME=$CLI_DIR/data
	project "$CLI_DIR/p" 'name: p
command: true'
	a=$("$PILOT" submit "$CLI_DIR/p")
	sock=pilot-e2e-$$
	at_exit "tmux -L $sock kill-server 2>/dev/null"
	tmux -L "$sock" new-session -d -x 120 -y 20 "env XDG_CONFIG_HOME=$XDG_CONFIG_HOME XDG_DATA_HOME=$XDG_DATA_HOME bash --norc --noprofile"
	tmux -L "$sock" send-keys "'$PILOT' cancel --all; echo st\"\"atus=\$?" Enter
	wait_for sh -c "tmux -L $sock capture-pane -p | grep -q 'cancel 1 run (active)? \[y/N\]'"
	contains "a terminal is asked" "$(tmux -L "$sock" capture-pane -p)" "cancel 1 run (active)? [y/N]"
	tmux -L "$sock" send-keys "n" Enter
	wait_for sh -c "tmux -L $sock capture-pane -p | grep -q status="
	contains "'n' keeps them: exit 1" "$(tmux -L "$sock" capture-pane -p)" "status=1"
	equals "the run is still queued" "$(run_field "$a" 'j["state"]')" "queued"
	tmux -L "$sock" send-keys "clear; '$PILOT' cancel --all; echo st\"\"atus=\$?" Enter
	wait_for sh -c "tmux -L $sock capture-pane -p | grep -q 'y/N'"
	tmux -L "$sock" send-keys "y" Enter
	wait_for sh -c "tmux -L $sock capture-pane -p | grep -q status="
	contains "'y' cancels them: exit 0" "$(tmux -L "$sock" capture-pane -p)" "status=0"
	equals "the run is canceled" "$(run_field "$a" 'j["state"]')" "canceled"
else
	ok "# SKIP tmux is not installed"
fi
finish
